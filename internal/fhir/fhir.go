// Package fhir is the FHIR R4 door (README, "FHIR"): the same rooms as the
// GraphQL API, entered through FHIR resources. It holds no rules of its own
// and never reads the store: every read and write goes through the workflow
// use cases with the caller's principal (the same scoped reads GraphQL's
// resolvers and loaders make), and every read of protected health
// information is recorded for the audit exactly as the GraphQL field guard
// records it (same resource types, ids, field groups, outcomes and whose
// data it is), then flushed before the response leaves (fail closed).
package fhir

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// ContentType is the only format the door speaks.
const ContentType = "application/fhir+json"

// Prefix is where the door is mounted.
const Prefix = "/fhir/r4"

// CodeSystem names our error codes inside OperationOutcome.issue.details.
const CodeSystem = "https://secondopinion.example/fhir/CodeSystem/error-code"

// Config is what the door needs; it builds nothing itself.
type Config struct {
	// Workflow is the use cases: every read and write of the door.
	Workflow *workflow.Service
	// Documents makes a record's signed download link (GraphQL's
	// Document.downloadUrl) and stores the files a referral carries inline;
	// nil when uploads are not enabled, and then a DocumentReference carries
	// no URL and a referral no file.
	Documents DocumentLinks
	// Audit stores the audit events of each request before it answers.
	Audit audit.Sink
	// RequestID returns the request's id for the audit (none when nil).
	RequestID func(context.Context) string
	Logger    *slog.Logger
}

// DocumentLinks is the document service as the door uses it
// (documents.Service): the short-lived download link of a record's
// document for p (a path on the gateway), whether a file's first bytes are
// of an accepted type, and the upload of a file as a new record of a case,
// with the same rights, checks and encryption as uploadMedicalRecord.
type DocumentLinks interface {
	Link(p domain.Principal, doc *domain.Document, ttl time.Duration) (string, error)
	Accepts(head []byte) bool
	MaxBytes() int64
	Upload(ctx context.Context, p domain.Principal, caseID string, in workflow.RecordInput, file io.Reader) (*domain.Case, *domain.Record, error)
}

// Handler serves /fhir/r4/…; mount it behind the authentication middleware.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the FHIR handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestID == nil {
		cfg.RequestID = func(context.Context) string { return "" }
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET "+Prefix+"/metadata", h.metadata)
	h.mux.HandleFunc("GET "+Prefix+"/Composition/{id}/{op}", h.document)
	h.mux.HandleFunc("GET "+Prefix+"/{type}/{id}", h.read)
	h.mux.HandleFunc("GET "+Prefix+"/{type}", h.search)
	h.mux.HandleFunc("POST "+Prefix, h.transaction)
	h.mux.HandleFunc("POST "+Prefix+"/{$}", h.transaction)
	h.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, domain.Errorf(domain.CodeBadUserInput, "%s %s is not supported by this server (see %s/metadata)", r.Method, r.URL.Path, Prefix))
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := r.URL.Query().Get("_format"); f != "" && f != "json" && f != ContentType && f != "application/json" {
		h.fail(w, r, domain.Errorf(domain.CodeBadUserInput, "only JSON (%s) is supported", ContentType))
		return
	}
	if !acceptsJSON(r.Header.Get("Accept")) {
		writeOutcome(w, http.StatusNotAcceptable, domain.CodeBadUserInput, "only "+ContentType+" is supported")
		return
	}
	h.mux.ServeHTTP(w, r)
}

func acceptsJSON(accept string) bool {
	if accept == "" {
		return true
	}
	for _, part := range strings.Split(accept, ",") {
		mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		switch mt {
		case "*/*", "application/*", "application/json", ContentType, "application/json+fhir":
			return true
		}
	}
	return false
}

// begin returns the caller and a context that records the audit of this
// request under the operation label "fhir <METHOD> <path kind>".
func (h *Handler) begin(r *http.Request, label string) (context.Context, domain.Principal, error) {
	p, err := domain.RequirePrincipal(r.Context())
	if err != nil {
		return r.Context(), p, err
	}
	ctx := audit.WithRecorder(r.Context(), audit.NewRecorder(p, h.cfg.RequestID(r.Context()), "fhir "+label, nil))
	return ctx, p, nil
}

// respond writes v once its audit is stored; if the audit cannot be stored
// nothing of v leaves (fail closed).
func (h *Handler) respond(ctx context.Context, w http.ResponseWriter, status int, v any) {
	if err := audit.From(ctx).Flush(context.WithoutCancel(ctx), h.cfg.Audit); err != nil {
		h.cfg.Logger.ErrorContext(ctx, "audit write failed; FHIR response withheld", "error", err.Error())
		writeOutcome(w, http.StatusInternalServerError, domain.CodeInternal, "internal error (request "+h.cfg.RequestID(ctx)+")")
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, domain.CodeInternal, "internal error")
		return
	}
	w.Header().Set("Content-Type", ContentType+"; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fail answers err as an OperationOutcome, flushing whatever audit the
// request recorded (denials and misses are audited too).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.failCtx(r.Context(), w, err)
}

func (h *Handler) failCtx(ctx context.Context, w http.ResponseWriter, err error) {
	code := domain.ErrorCode(err)
	msg := domain.ErrorMessage(err)
	if code == domain.CodeInternal {
		h.cfg.Logger.ErrorContext(ctx, "FHIR request failed", "error", err.Error())
		msg = "internal error (request " + h.cfg.RequestID(ctx) + ")"
	}
	if ferr := audit.From(ctx).Flush(context.WithoutCancel(ctx), h.cfg.Audit); ferr != nil {
		code, msg = domain.CodeInternal, "internal error (request "+h.cfg.RequestID(ctx)+")"
	}
	writeOutcome(w, statusOf(code), code, msg)
}

func statusOf(code domain.Code) int {
	switch code {
	case domain.CodeUnauthenticated:
		return http.StatusUnauthorized
	case domain.CodeForbidden, domain.CodeConsentRequired:
		return http.StatusForbidden
	case domain.CodeNotFound:
		return http.StatusNotFound
	case domain.CodeBadUserInput:
		return http.StatusBadRequest
	case domain.CodeNotEligible, domain.CodeInvalidTransition:
		return http.StatusUnprocessableEntity
	case domain.CodeConflict, domain.CodeIdempotencyKeyReused:
		return http.StatusConflict
	case domain.CodeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// issueType is the FHIR issue type closest to each of our codes.
func issueType(code domain.Code) fm.IssueType {
	switch code {
	case domain.CodeUnauthenticated:
		return fm.IssueTypeLogin
	case domain.CodeForbidden, domain.CodeConsentRequired:
		return fm.IssueTypeForbidden
	case domain.CodeNotFound:
		return fm.IssueTypeNotFound
	case domain.CodeBadUserInput:
		return fm.IssueTypeInvalid
	case domain.CodeNotEligible, domain.CodeInvalidTransition:
		return fm.IssueTypeBusinessRule
	case domain.CodeConflict, domain.CodeIdempotencyKeyReused:
		return fm.IssueTypeConflict
	case domain.CodeRateLimited:
		return fm.IssueTypeThrottled
	}
	return fm.IssueTypeException
}

// Outcome builds the OperationOutcome for one of our error codes: the code
// rides in issue.details.coding, the message in diagnostics.
func Outcome(code domain.Code, msg string) fm.OperationOutcome {
	return fm.OperationOutcome{Issue: []fm.OperationOutcomeIssue{{
		Severity: fm.IssueSeverityError,
		Code:     issueType(code),
		Details: &fm.CodeableConcept{
			Coding: []fm.Coding{{System: ptr(CodeSystem), Code: ptr(string(code))}},
			Text:   ptr(msg),
		},
		Diagnostics: ptr(msg),
	}}}
}

func writeOutcome(w http.ResponseWriter, status int, code domain.Code, msg string) {
	b, _ := json.Marshal(Outcome(code, msg))
	w.Header().Set("Content-Type", ContentType+"; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func ptr[T any](v T) *T { return &v }

// ---- ids

var safeID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ID turns one of our raw ids into a FHIR id ([A-Za-z0-9-.]{1,64}): kept as
// it is when it already is one, else "b32-" and its base32 (member keys hold
// a colon).
func ID(raw string) string {
	if safeID.MatchString(raw) && !strings.HasPrefix(raw, "b32-") {
		return raw
	}
	return "b32-" + strings.ToLower(b32.EncodeToString([]byte(raw)))
}

// RawID reverses ID.
func RawID(id string) (string, bool) {
	if !safeID.MatchString(id) {
		return "", false
	}
	if rest, ok := strings.CutPrefix(id, "b32-"); ok {
		b, err := b32.DecodeString(strings.ToUpper(rest))
		if err != nil || len(b) == 0 {
			return "", false
		}
		return string(b), true
	}
	return id, true
}

// errNotFound is the one answer for an id we cannot read.
func errNotFound(typ string) error { return domain.ErrNotFound(strings.ToLower(typ)) }

var errUnsupportedType = errors.New("unsupported type")
