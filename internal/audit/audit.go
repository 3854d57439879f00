// Package audit records who touched protected health information. Reads and
// writes are collected per operation and written in one command before the
// response leaves; if that write fails the response is replaced by an error
// (fail closed), so no PHI leaves without its audit record.
package audit

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/secondopinion/gateway/internal/domain"
)

// Outcomes.
const (
	OutcomeAllowed  = "ALLOWED"
	OutcomeDenied   = "DENIED"
	OutcomeNotFound = "NOT_FOUND"
)

// Sink stores audit events.
type Sink interface {
	AppendAudit(ctx context.Context, events []domain.AuditEvent) error
}

// Recorder collects the audit events of one operation.
type Recorder struct {
	principal domain.Principal
	requestID string
	operation string
	now       func() time.Time

	mu     sync.Mutex
	events []domain.AuditEvent
	seen   map[string]struct{}
}

// MaxOperationLabel bounds the operation label stored in every event, in
// characters: the label comes from the client, and copied
// verbatim into each event of a page it would let one request write
// megabytes of audit.
const MaxOperationLabel = 100

// OperationLabel is operation as stored: valid UTF-8, cut to
// MaxOperationLabel characters on a character boundary.
func OperationLabel(operation string) string {
	if len(operation) <= MaxOperationLabel && utf8.ValidString(operation) {
		return operation
	}
	// Look at no more than the bytes the label can use, however long the
	// name: MaxOperationLabel characters are at most 4 bytes each.
	head := operation[:min(len(operation), 4*MaxOperationLabel)]
	head = strings.ToValidUTF8(head, "\uFFFD")
	n := 0
	for i := range head {
		if n == MaxOperationLabel {
			return head[:i]
		}
		n++
	}
	return head
}

// NewRecorder starts collecting for one operation; the operation label is
// bounded by OperationLabel.
func NewRecorder(p domain.Principal, requestID, operation string, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{principal: p, requestID: requestID, operation: OperationLabel(operation), now: now, seen: map[string]struct{}{}}
}

// Entry is one access to record.
type Entry struct {
	ResourceType string
	ResourceID   string
	Group        domain.Group
	Outcome      string
	CaseID       string
	// PatientID is the member key of the patient whose data this is, where
	// the object read tells it.
	PatientID string
}

// Record notes one access; repeats within the operation are kept once.
func (r *Recorder) Record(e Entry) {
	if r == nil {
		return
	}
	// The case is part of the key: one patient read through two cases is
	// two rows, each findable by its case.
	key := e.ResourceType + "\x00" + e.ResourceID + "\x00" + string(e.Group) + "\x00" + e.Outcome + "\x00" + e.CaseID
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.seen[key]; dup {
		return
	}
	r.seen[key] = struct{}{}
	caseID := e.CaseID
	if caseID == "" && e.ResourceType == "Case" {
		caseID = e.ResourceID
	}
	r.events = append(r.events, domain.AuditEvent{
		At: r.now().UTC(), Subject: r.principal.Subject, Role: r.principal.Role, Org: r.principal.Org,
		Operation: r.operation, ResourceType: e.ResourceType, ResourceID: e.ResourceID,
		FieldGroup: string(e.Group), RequestID: r.requestID, Outcome: e.Outcome, CaseID: caseID,
		PatientID: e.PatientID, ClientID: r.principal.ClientID,
	})
}

// Flush writes the collected events and clears them.
func (r *Recorder) Flush(ctx context.Context, sink Sink) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	events := r.events
	r.events = nil
	r.seen = map[string]struct{}{}
	r.mu.Unlock()
	if len(events) == 0 {
		return nil
	}
	return sink.AppendAudit(ctx, events)
}

type recorderKey struct{}

// WithRecorder returns a context carrying r.
func WithRecorder(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// From returns the operation's recorder, or nil.
func From(ctx context.Context) *Recorder {
	r, _ := ctx.Value(recorderKey{}).(*Recorder)
	return r
}

// Record notes one access on the operation's recorder, if any.
func Record(ctx context.Context, e Entry) { From(ctx).Record(e) }
