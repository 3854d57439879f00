// Package auditexport serves GET /audit/export: the audit of a period for
// an auditor, streamed as NDJSON (internal/audit/export.go describes the
// lines), its end line signed by the service's key, and verifiable offline
// with `audit-verify -file … -jwks …`.
//
// NDJSON rather than FHIR AuditEvent (IHE BALP): the offline check must
// recompute each event's hash from exactly the fields it was computed over,
// and a line per stored event gives that without a mapping back and forth;
// it streams line by line and splits per patient with any JSON tool. Each
// event names at most one patient, as BALP asks of its records.
package auditexport

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Path is the export's route.
const Path = "/audit/export"

// Handler streams audit exports.
type Handler struct {
	Workflow  *workflow.Service
	Audit     audit.Sink
	RequestID func(context.Context) string
	Logger    *slog.Logger
	// Signer signs each export's end line (the opinion-signing key, whose
	// public half is at /.well-known/jwks.json); without it nothing is
	// exported, as an unsigned export proves nothing.
	Signer *signing.Signer
}

// flushEvery is how many lines are buffered before they are sent on.
const flushEvery = 256

// ServeHTTP answers GET /audit/export?from=YYYY-MM-DD&to=YYYY-MM-DD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, ok := domain.PrincipalFrom(ctx)
	if !ok {
		writeError(w, domain.Errorf(domain.CodeUnauthenticated, "authentication required"))
		return
	}
	// The role is checked before the query is read: anyone else learns
	// nothing, whatever they ask for.
	if err := workflow.AuditExportAllowed(p); err != nil {
		writeError(w, err)
		return
	}
	from, err1 := day(r.URL.Query().Get("from"))
	to, err2 := day(r.URL.Query().Get("to"))
	if err1 != nil || err2 != nil {
		writeError(w, domain.Errorf(domain.CodeBadUserInput, "from and to are UTC days, YYYY-MM-DD"))
		return
	}
	if err := workflow.AuditExportPeriod(from, to); err != nil {
		writeError(w, err)
		return
	}
	if h.Signer == nil {
		writeError(w, audit.ErrUnsigned)
		return
	}
	reqID := ""
	if h.RequestID != nil {
		reqID = h.RequestID(ctx)
	}
	rec := audit.NewRecorder(p, reqID, "GET "+Path, nil)
	bw := bufio.NewWriterSize(w, 64<<10)
	// The writer keeps a running digest of the bytes sent and signs it in
	// the end line: nothing is held but the chain heads.
	out := audit.NewExportWriter(bw, h.Signer)
	started, lines := false, 0
	err := h.Workflow.ExportAudit(ctx, p, from, to, rec, h.Audit, func(l audit.ExportLine) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Content-Disposition", `attachment; filename="audit-`+from.Format(time.DateOnly)+"-"+to.Format(time.DateOnly)+`.ndjson"`)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
		}
		if err := out.Write(l); err != nil {
			return err
		}
		if lines++; lines%flushEvery == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			http.NewResponseController(w).Flush() //nolint:errcheck // best effort: the next write reports a gone client
		}
		return nil
	})
	if err != nil && !started {
		writeError(w, err)
		return
	}
	if err != nil {
		// The status is sent: the export ends without its end line, which
		// the verifier refuses as incomplete.
		if h.Logger != nil && ctx.Err() == nil {
			h.Logger.WarnContext(ctx, "audit export cut short", "error", domain.Scrub(err.Error()))
		}
	}
	_ = bw.Flush()
}

func day(s string) (time.Time, error) { return time.Parse(time.DateOnly, s) }

func writeError(w http.ResponseWriter, err error) {
	code := domain.ErrorCode(err)
	status := http.StatusInternalServerError
	switch code {
	case domain.CodeUnauthenticated:
		status = http.StatusUnauthorized
	case domain.CodeForbidden:
		status = http.StatusForbidden
	case domain.CodeBadUserInput:
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": domain.ErrorMessage(err), "extensions": map[string]any{"code": code},
	}}})
}
