package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracerName names the gateway's instrumentation scope.
const TracerName = "github.com/secondopinion/gateway"

// Tracing is the process's tracer provider and how to flush it.
type Tracing struct {
	Provider trace.TracerProvider
	// Shutdown flushes pending spans and stops the exporter (a no-op when
	// tracing is off).
	Shutdown func(context.Context) error
}

// SetupTracing exports spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; otherwise tracing is off
// and every span is a no-op. The exporter reads the other standard OTEL_*
// variables (headers, timeout, protocol details) itself.
func SetupTracing(ctx context.Context, getenv func(string) string, version string) (Tracing, error) {
	off := Tracing{Provider: noop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return off, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return off, fmt.Errorf("telemetry: otlp exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "second-opinion-gateway"
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name), semconv.ServiceVersion(version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return Tracing{Provider: tp, Shutdown: tp.Shutdown}, nil
}

// TraceID returns the id of the recording span in ctx, or "".
func TraceID(ctx context.Context) string {
	sc := trace.SpanFromContext(ctx)
	if !sc.IsRecording() {
		return ""
	}
	return sc.SpanContext().TraceID().String()
}

// CommandMonitor times every database command into m (when not nil) and
// makes a client span per command under the caller's span (when tp is not
// nil). Only the command and collection names are recorded, never the
// command document: filters and updates carry PHI.
func CommandMonitor(m *Metrics, tp trace.TracerProvider) *event.CommandMonitor {
	var tracer trace.Tracer
	if tp != nil {
		tracer = tp.Tracer(TracerName)
	}
	type key struct {
		conn string
		id   int64
	}
	var spans sync.Map // key -> trace.Span
	end := func(conn string, id int64, err error) {
		v, ok := spans.LoadAndDelete(key{conn, id})
		if !ok {
			return
		}
		span := v.(trace.Span)
		if err != nil {
			span.SetStatus(codes.Error, "command failed")
		}
		span.End()
	}
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			if tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
				return // no parent: a background command (heartbeat, hub tail)
			}
			coll := ""
			if v, err := e.Command.LookupErr(e.CommandName); err == nil {
				coll, _ = v.StringValueOK()
			}
			_, span := tracer.Start(ctx, "mongodb."+e.CommandName, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(
					attribute.String("db.system", "mongodb"),
					attribute.String("db.operation.name", e.CommandName),
					attribute.String("db.namespace", e.DatabaseName),
					attribute.String("db.collection.name", coll),
				))
			spans.Store(key{e.ConnectionID, e.RequestID}, span)
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			if m != nil {
				m.ObserveDBCommand(e.CommandName, "ok", e.Duration)
			}
			end(e.ConnectionID, e.RequestID, nil)
		},
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			if m != nil {
				m.ObserveDBCommand(e.CommandName, "error", e.Duration)
			}
			end(e.ConnectionID, e.RequestID, errors.New("failed"))
		},
	}
}

// ChainMonitors calls every non-nil monitor in order.
func ChainMonitors(ms ...*event.CommandMonitor) *event.CommandMonitor {
	var live []*event.CommandMonitor
	for _, m := range ms {
		if m != nil {
			live = append(live, m)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			for _, m := range live {
				if m.Started != nil {
					m.Started(ctx, e)
				}
			}
		},
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) {
			for _, m := range live {
				if m.Succeeded != nil {
					m.Succeeded(ctx, e)
				}
			}
		},
		Failed: func(ctx context.Context, e *event.CommandFailedEvent) {
			for _, m := range live {
				if m.Failed != nil {
					m.Failed(ctx, e)
				}
			}
		},
	}
}

// since is time.Since, kept apart so the record's clock is one place.
func since(t time.Time) time.Duration { return time.Since(t) }
