package server

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/telemetry"
)

// observer writes the access log, the request metrics and the spans. It
// sees names, types, codes and the caller's claims, never a value.
type observer struct {
	log     *slog.Logger
	metrics *telemetry.Metrics
	tracer  trace.Tracer
	names   telemetry.OperationNames
	ws      *wsTracker
}

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// statusWriter remembers the status code; it keeps Flush and Hijack so
// streaming and websockets still work through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("server: response writer cannot hijack")
	}
	return h.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware starts the request's record and server span, and writes the
// access-log line and the request metrics once the response is sent. A
// websocket connection is tracked for shutdown and logged when it ends; its
// operations are logged one by one (see aroundOperations).
func (o *observer) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := o.tracer.Start(ctx, r.Method+" "+routeOf(r), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", routeOf(r))))
		defer span.End()
		rec := &telemetry.Record{RequestID: RequestID(ctx), Start: time.Now(), Websocket: isUpgrade(r)}
		rec.SetTraceID(telemetry.TraceID(ctx))
		span.SetAttributes(attribute.String("request.id", rec.RequestID))
		ctx = telemetry.WithRecord(ctx, rec)

		if rec.Websocket {
			ctx, done := o.ws.track(ctx)
			defer done()
			next.ServeHTTP(w, r.WithContext(ctx))
			o.log.LogAttrs(ctx, slog.LevelInfo, "websocket closed", append(rec.Attrs(),
				slog.String("path", r.URL.Path), slog.Duration("duration", rec.Since()))...)
			return
		}

		if r.URL.Path == "/graphql" {
			o.metrics.RequestStarted()
			defer o.metrics.RequestEnded()
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		if r.URL.Path != "/graphql" {
			o.log.LogAttrs(ctx, slog.LevelDebug, "request", append(rec.Attrs(),
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Duration("duration", rec.Since()))...)
			return
		}
		if status >= 400 && len(rec.Codes()) == 0 {
			// Refused before GraphQL ran: the transport guard, the rate
			// limits or authentication answered.
			rec.AddResult(false, string(codeForStatus(status)))
			o.metrics.ObserveError(string(codeForStatus(status)))
		}
		if status == http.StatusTooManyRequests {
			scope := "address"
			if rec.HasPrincipal() {
				scope = "principal"
			}
			o.metrics.ObserveRateLimited(scope)
		}
		name, opType := rec.Operation()
		if opType == "" {
			opType = "none"
		}
		outcome := rec.Outcome(status)
		o.metrics.ObserveOperation(o.names.Label(name), opType, outcome, rec.Since())
		level := slog.LevelInfo
		if status >= 500 || contains(rec.Codes(), string(domain.CodeInternal)) {
			level = slog.LevelWarn
		}
		o.log.LogAttrs(ctx, level, "request", append(rec.Attrs(),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Duration("duration", rec.Since()), slog.String("outcome", outcome),
			slog.Any("error_codes", rec.Codes()))...)
	})
}

// notePrincipal copies the authenticated caller into the request's record.
func notePrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := domain.PrincipalFrom(r.Context()); ok {
			telemetry.RecordFrom(r.Context()).SetPrincipal(p.Subject, string(p.Role), p.Org)
		}
		next.ServeHTTP(w, r)
	})
}

// authRefused counts and records a refused HTTP authentication.
func (o *observer) authRefused(r *http.Request, reason string) {
	o.metrics.ObserveError(string(domain.CodeUnauthenticated))
	o.metrics.ObserveAuthFailure(reason, "http")
	rec := telemetry.RecordFrom(r.Context())
	rec.SetAuthFailure(reason)
	rec.AddResult(false, string(domain.CodeUnauthenticated))
}

// aroundOperations names the operation in the record and opens its span.
// Over a websocket, where one connection carries many operations, each
// operation gets its own log line and metrics when it ends.
func (o *observer) aroundOperations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	name, opType := oc.OperationName, "unknown"
	if oc.Operation != nil {
		opType = string(oc.Operation.Operation)
		if oc.Operation.Name != "" {
			name = oc.Operation.Name
		}
	}
	name = audit.OperationLabel(name)
	label := o.names.Label(name)
	rec := telemetry.RecordFrom(ctx)
	ws := rec != nil && rec.Websocket
	if ws {
		// The connection's record is shared: each operation gets its own.
		parent := rec
		rec = &telemetry.Record{RequestID: parent.RequestID, Start: time.Now()}
		if p, ok := domain.PrincipalFrom(ctx); ok {
			rec.SetPrincipal(p.Subject, string(p.Role), p.Org)
		}
		ctx = telemetry.WithRecord(ctx, rec)
	}
	rec.SetOperation(name, opType)
	ctx, span := o.tracer.Start(ctx, opType+" "+label, trace.WithAttributes(
		attribute.String("graphql.operation.name", label),
		attribute.String("graphql.operation.type", opType),
		attribute.String("request.id", RequestID(ctx)),
	))
	rec.SetTraceID(telemetry.TraceID(ctx))
	rh := next(ctx)
	var once sync.Once
	finish := func() {
		once.Do(func() {
			codes := rec.Codes()
			if len(codes) > 0 {
				span.SetStatus(codes2status(codes))
				span.SetAttributes(attribute.StringSlice("graphql.error.codes", codes))
			}
			span.End()
			if !ws {
				return
			}
			outcome := rec.Outcome(http.StatusOK)
			o.metrics.ObserveOperation(label, opType, outcome, rec.Since())
			o.log.LogAttrs(ctx, slog.LevelInfo, "operation", append(rec.Attrs(),
				slog.String("transport", "websocket"), slog.Duration("duration", rec.Since()),
				slog.String("outcome", outcome), slog.Any("error_codes", codes))...)
		})
	}
	return func(ctx context.Context) *graphql.Response {
		resp := rh(ctx)
		if resp == nil || opType != "subscription" {
			finish()
		}
		return resp
	}
}

// observeResponse notes a response's error codes (after normalizeErrors).
func (o *observer) observeResponse(ctx context.Context, resp *graphql.Response) {
	codes := make([]string, 0, len(resp.Errors))
	for _, e := range resp.Errors {
		c, _ := e.Extensions["code"].(string)
		codes = append(codes, c)
		o.metrics.ObserveError(c)
	}
	hasData := len(resp.Data) > 0 && string(resp.Data) != "null"
	telemetry.RecordFrom(ctx).AddResult(hasData, codes...)
}

// aroundFields opens a span for each field that runs a resolver (root
// fields and fields that load something), not for plain struct fields.
func (o *observer) aroundFields(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !fc.IsResolver || !trace.SpanFromContext(ctx).IsRecording() {
		return next(ctx)
	}
	ctx, span := o.tracer.Start(ctx, fc.Object+"."+fc.Field.Name, trace.WithAttributes(
		attribute.String("graphql.field.path", fc.Path().String()),
	))
	defer span.End()
	res, err := next(ctx)
	if err != nil {
		span.SetStatus(codes.Error, "resolver error")
	}
	return res, err
}

func codes2status(c []string) (codes.Code, string) {
	if contains(c, string(domain.CodeInternal)) {
		return codes.Error, "internal error"
	}
	return codes.Unset, ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// codeForStatus names the contract code of an HTTP refusal.
func codeForStatus(status int) domain.Code {
	switch {
	case status == http.StatusUnauthorized:
		return domain.CodeUnauthenticated
	case status == http.StatusTooManyRequests:
		return domain.CodeRateLimited
	case status >= 500:
		return domain.CodeInternal
	default:
		return domain.CodeBadUserInput
	}
}

// routeOf names the route, not the raw path, so span names stay bounded.
func routeOf(r *http.Request) string {
	switch p := r.URL.Path; p {
	case "/graphql", "/healthz", "/readyz", "/metrics", "/":
		return p
	default:
		return "other"
	}
}

// isUpgrade matches the websocket transport's own test (any Upgrade header).
func isUpgrade(r *http.Request) bool { return r.Header.Get("Upgrade") != "" }

// wsTracker knows the live websocket connections so that shutdown can close
// them with 1001 (going away) and wait for their handlers to return:
// http.Server.Shutdown neither closes nor waits for hijacked connections.
type wsTracker struct {
	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	cancels  map[*context.CancelFunc]struct{}
	draining bool
	wg       sync.WaitGroup
}

func newWSTracker() *wsTracker {
	return &wsTracker{conns: map[*trackedConn]struct{}{}, cancels: map[*context.CancelFunc]struct{}{}}
}

// track gives a websocket request a context that shutdown cancels.
func (t *wsTracker) track(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	t.mu.Lock()
	if t.draining {
		cancel()
	}
	t.cancels[&cancel] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	return ctx, func() {
		cancel()
		t.mu.Lock()
		delete(t.cancels, &cancel)
		t.mu.Unlock()
		t.wg.Done()
	}
}

// closeAll sends every connection a 1001 close frame and ends its context
// (which ends its subscriptions).
func (t *wsTracker) closeAll() {
	t.mu.Lock()
	t.draining = true
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	cancels := make([]context.CancelFunc, 0, len(t.cancels))
	for c := range t.cancels {
		cancels = append(cancels, *c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.WebsocketConn.WriteClose(closeGoingAway, "server shutting down")
	}
	for _, cancel := range cancels {
		cancel()
	}
}

// wait blocks until every websocket handler returned or ctx ends.
func (t *wsTracker) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeGoingAway is RFC 6455's "going away": the server is shutting down;
// clients reconnect (to another replica).
const closeGoingAway = 1001

// trackingWS wraps gqlgen's websocket implementation to register each
// accepted connection with the tracker.
type trackingWS struct {
	inner   transport.WebsocketImplementation
	tracker *wsTracker
	limits  WSLimits
}

func (w trackingWS) Accept(rw http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := w.inner.Accept(rw, r, opts)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{WebsocketConn: c, tracker: w.tracker}
	if w.limits.MessagesPerSecond > 0 {
		tc.messages = newMessageLimiter(w.limits)
	}
	w.tracker.mu.Lock()
	w.tracker.conns[tc] = struct{}{}
	draining := w.tracker.draining
	w.tracker.mu.Unlock()
	if draining {
		_ = c.WriteClose(closeGoingAway, "server shutting down")
	}
	return tc, nil
}

type trackedConn struct {
	transport.WebsocketConn
	tracker  *wsTracker
	messages *messageLimiter // nil: no message rate
}

func (c *trackedConn) Close() error {
	c.tracker.mu.Lock()
	delete(c.tracker.conns, c)
	c.tracker.mu.Unlock()
	return c.WebsocketConn.Close()
}

// SetReadLimit keeps the payload cap working through the wrapper.
func (c *trackedConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

// SetReadDeadline keeps ping/pong deadlines working through the wrapper.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
