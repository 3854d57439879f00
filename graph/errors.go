package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/trace"

	"github.com/secondopinion/gateway/internal/domain"
)

// RequestIDFrom returns the request id an HTTP middleware put in the context.
type RequestIDFunc func(ctx context.Context) string

// ErrorPresenter turns every resolver error into a client-safe one with a
// stable extensions.code. Domain errors keep their message; anything else is
// INTERNAL with the request id, and its detail goes to the log only.
func ErrorPresenter(log *slog.Logger, requestID RequestIDFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var de *domain.Error
		if errors.As(err, &de) {
			gerr.Message = de.Message
			setCode(gerr, de.Code)
			return gerr
		}
		// gqlgen's own validation and parse errors already carry a code.
		if gerr.Extensions != nil {
			if _, ok := gerr.Extensions["code"]; ok {
				return gerr
			}
		}
		// Production refuses introspection: the caller's doing, not ours.
		if gerr.Message == "introspection disabled" || strings.HasSuffix(err.Error(), " introspection disabled") {
			gerr.Message = "introspection is disabled"
			setCode(gerr, domain.CodeForbidden)
			return gerr
		}
		var ge *gqlerror.Error
		if errors.As(err, &ge) && ge.Err == nil && ge.Rule != "" {
			setCode(gerr, domain.CodeBadUserInput)
			return gerr
		}
		// An error gqlgen raises about the request itself before anything
		// runs (an APQ hash that does not match its query, an APQ version it
		// does not know) has no cause and no path: the client's mistake.
		// Anything a resolver returns carries a path.
		if errors.As(err, &ge) && ge.Err == nil && len(ge.Path) == 0 {
			setCode(gerr, domain.CodeBadUserInput)
			return gerr
		}
		rid := requestID(ctx)
		attrs := []any{"request_id", rid, "path", gerr.Path.String(), "error", Scrub(err.Error())}
		tid := traceID(ctx)
		if tid != "" {
			attrs = append(attrs, "trace_id", tid)
		}
		log.ErrorContext(ctx, "internal error", attrs...)
		gerr.Message = fmt.Sprintf("internal error (request %s)", rid)
		setCode(gerr, domain.CodeInternal)
		gerr.Extensions["requestId"] = rid
		if tid != "" {
			// Lets support find the request's trace as well as its log line.
			gerr.Extensions["traceId"] = tid
		}
		return gerr
	}
}

// traceID is the id of the recording span in ctx, or "" (tracing off).
func traceID(ctx context.Context) string {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return ""
	}
	return span.SpanContext().TraceID().String()
}

// Scrub blanks quoted values in an error text before it is logged (see
// domain.Scrub).
func Scrub(s string) string { return domain.Scrub(s) }

func setCode(e *gqlerror.Error, c domain.Code) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = string(c)
}

// Recover turns a resolver panic into INTERNAL; the process keeps serving.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "resolver panic", "panic", Scrub(fmt.Sprint(v)))
		return errors.New("panic in resolver")
	}
}
