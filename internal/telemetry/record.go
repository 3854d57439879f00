package telemetry

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Record is what the access log says about one request. The HTTP layer
// starts it, authentication and the GraphQL layer fill it in, and the HTTP
// layer writes it out once the response is sent. It holds identifiers,
// names and codes only.
type Record struct {
	mu        sync.Mutex
	RequestID string
	Start     time.Time
	Websocket bool

	subject, role, org string
	opName, opType     string
	codes              []string
	hasData            bool
	authReason         string
	traceID            string
}

type recordKey struct{}

// WithRecord puts r in ctx.
func WithRecord(ctx context.Context, r *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, r)
}

// RecordFrom returns the request's record, or nil.
func RecordFrom(ctx context.Context) *Record {
	r, _ := ctx.Value(recordKey{}).(*Record)
	return r
}

// SetPrincipal notes who called.
func (r *Record) SetPrincipal(subject, role, org string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subject, r.role, r.org = subject, role, org
}

// HasPrincipal reports whether the caller was authenticated.
func (r *Record) HasPrincipal() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.role != ""
}

// SetOperation notes the operation's name and type.
func (r *Record) SetOperation(name, opType string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opName, r.opType = name, opType
}

// Operation returns the operation's name and type.
func (r *Record) Operation() (name, opType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opName, r.opType
}

// AddResult notes a response: whether it held data, and its error codes.
func (r *Record) AddResult(hasData bool, codes ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hasData = r.hasData || hasData
	r.codes = append(r.codes, codes...)
}

// Codes returns the error codes noted so far, sorted and without repeats.
func (r *Record) Codes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := slices.Clone(r.codes)
	slices.Sort(c)
	return slices.Compact(c)
}

// SetAuthFailure notes why authentication refused the request.
func (r *Record) SetAuthFailure(reason string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.authReason = reason
}

// SetTraceID notes the request's trace id.
func (r *Record) SetTraceID(id string) {
	if r == nil || id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traceID = id
}

// Outcome classifies a finished request: "ok" (no errors), "partial" (data
// and errors), "error" (errors and no data), "refused" (turned away before
// execution with an HTTP error status).
func (r *Record) Outcome(status int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case status >= 400 && r.opType == "":
		return "refused"
	case len(r.codes) == 0 && status < 400:
		return "ok"
	case r.hasData:
		return "partial"
	default:
		return "error"
	}
}

// Attrs are the record's log attributes.
func (r *Record) Attrs() []slog.Attr {
	r.mu.Lock()
	defer r.mu.Unlock()
	attrs := []slog.Attr{slog.String("request_id", r.RequestID)}
	if r.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", r.traceID))
	}
	if r.role != "" {
		attrs = append(attrs, slog.Group("principal", slog.String("sub", r.subject), slog.String("role", r.role), slog.String("org", r.org)))
	}
	if r.opType != "" {
		attrs = append(attrs, slog.String("operation", r.opName), slog.String("operation_type", r.opType))
	}
	if r.authReason != "" {
		attrs = append(attrs, slog.String("auth_failure", r.authReason))
	}
	return attrs
}

// Since is the request's duration so far.
func (r *Record) Since() time.Duration { return since(r.Start) }
