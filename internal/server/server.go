// Package server builds the gateway's HTTP handler: transports, limits,
// middleware, routes and health.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	coderws "github.com/coder/websocket"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/telemetry"
	"github.com/secondopinion/gateway/internal/trusted"
)

// Deps are what the handler serves: it builds none of them (internal/app
// does), so this package only speaks HTTP.
type Deps struct {
	// Schema is the executable GraphQL schema with its resolvers.
	Schema graphql.ExecutableSchema
	// FieldMiddleware runs around every field: the field guard.
	FieldMiddleware graphql.FieldMiddleware
	// Extensions are GraphQL handler extensions of the schema's own (the
	// input limits), run after the document and complexity checks.
	Extensions []graphql.HandlerExtension
	// ErrorPresenter shapes every GraphQL error; Recover turns a panic into
	// one.
	ErrorPresenter graphql.ErrorPresenterFunc
	Recover        graphql.RecoverFunc
	// WithLoaders puts the request's loaders, built for p, in ctx; batch
	// says whether the operation reads lists of objects with edges.
	WithLoaders func(ctx context.Context, p domain.Principal, batch bool) context.Context
	// AuditSink stores each response's audit events before it leaves.
	AuditSink audit.Sink
	// Ping reports whether the database answers (/readyz).
	Ping func(context.Context) error
	// ActiveSubscriptions counts live subscriptions, for the metrics (nil:
	// none).
	ActiveSubscriptions func() int
	// Routes are further handlers, served behind the same authentication,
	// rate limits and deadline as /graphql (pattern → handler).
	Routes map[string]http.Handler
	// PublicRoutes are served without authentication (pattern → handler).
	PublicRoutes map[string]http.Handler

	Verifier   *auth.Verifier
	Logger     *slog.Logger
	Production bool
	// RequestTimeout bounds one request, database calls included.
	RequestTimeout time.Duration
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// Limits bound GraphQL documents (DefaultLimits when zero).
	Limits Limits
	// RateLimits bound request rates (DefaultRateLimits when zero).
	RateLimits RateLimits
	// WSLimits bound subscriptions and messages per websocket
	// (DefaultWSLimits when zero).
	WSLimits WSLimits
	// Trusted binds partner clients to allow-lists of operations (nil: none).
	Trusted *trusted.Registry
	// AllowedOrigins lists the browser origins allowed to open websockets
	// (patterns as in path.Match); none means same-origin only.
	AllowedOrigins []string
	// Metrics are served at /metrics (a fresh registry when nil). Pass the
	// same Metrics to telemetry.CommandMonitor for database timings.
	Metrics *telemetry.Metrics
	// MetricsApart keeps /metrics off this handler: it is served by
	// Handler.MetricsHandler on its own listener (METRICS_ADDR). In
	// production /metrics is never on this handler, whatever this says:
	// it names auth failures, operations and timings to anyone.
	MetricsApart bool
	// Tracer makes the spans (no-op when nil).
	Tracer trace.TracerProvider
	// Documents stores and serves records' files (uploadMedicalRecord,
	// GET /files/<token>); nil disables both.
	Documents *documents.Service
	// MaxUploadBytes caps one uploaded file (MAX_UPLOAD_BYTES; the
	// documents service's cap when 0).
	MaxUploadBytes int64
	// TransferTimeout bounds one request that carries a file, an upload or
	// a download (DefaultTransferTimeout when 0): other requests keep
	// RequestTimeout.
	TransferTimeout time.Duration
	// TransferStall is how long an upload or a download waits for its
	// client to send or take the next part of the file before it is cut
	// (DefaultTransferStall when 0).
	TransferStall time.Duration
	// Downloads bound the downloads under way (DefaultDownloadLimits
	// where zero).
	Downloads DownloadLimits
	// Operations are the operation names that keep their own metric label;
	// others count as "other".
	Operations telemetry.OperationNames
}

// Handler is the gateway's HTTP handler. Shutdown closes its websockets.
type Handler struct {
	http.Handler
	metrics *telemetry.Metrics
	ws      *wsTracker
}

// MetricsHandler serves GET /metrics alone, for the separate metrics
// listener; every other path is 404.
func (h *Handler) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.metrics.Handler())
	return withSecurityHeaders(mux)
}

// CloseWebsockets closes every websocket connection with 1001 (going away),
// ending its subscriptions; connections accepted afterwards are closed at
// once. Give it to http.Server.RegisterOnShutdown.
func (h *Handler) CloseWebsockets() { h.ws.closeAll() }

// WaitWebsockets blocks until every websocket handler has returned, or ctx
// ends.
func (h *Handler) WaitWebsockets(ctx context.Context) error { return h.ws.wait(ctx) }

// New returns the gateway's HTTP handler with every route in one place.
func New(d Deps) *Handler {
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 10 * time.Second
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.RateLimits == (RateLimits{}) {
		d.RateLimits = DefaultRateLimits
	}
	if d.WSLimits == (WSLimits{}) {
		d.WSLimits = DefaultWSLimits
	}
	if d.Limits == (Limits{}) {
		d.Limits = DefaultLimits
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = telemetry.NewMetrics()
	}
	if d.Tracer == nil {
		d.Tracer = noop.NewTracerProvider()
	}
	if d.Operations == nil {
		d.Operations = telemetry.NewOperationNames()
	}
	if d.ActiveSubscriptions != nil {
		d.Metrics.WatchSubscriptions(d.ActiveSubscriptions)
	}
	if d.MaxUploadBytes <= 0 {
		d.MaxUploadBytes = documents.DefaultMaxBytes
		if d.Documents != nil {
			d.MaxUploadBytes = d.Documents.MaxBytes()
		}
	}
	if d.TransferTimeout <= 0 {
		d.TransferTimeout = DefaultTransferTimeout
	}
	if d.TransferStall <= 0 {
		d.TransferStall = DefaultTransferStall
	}
	if d.Downloads.Total <= 0 {
		d.Downloads.Total = DefaultDownloadLimits.Total
	}
	if d.Downloads.PerPrincipal <= 0 {
		d.Downloads.PerPrincipal = DefaultDownloadLimits.PerPrincipal
	}
	obs := &observer{log: d.Logger, metrics: d.Metrics, tracer: d.Tracer.Tracer(telemetry.TracerName), names: d.Operations, ws: newWSTracker()}
	principals := newLimiterSet(d.RateLimits.PerPrincipal, d.RateLimits.PrincipalBurst, d.RateLimits.MaxTrackedKeys, d.RateLimits.IdleForgetAfter)
	gql := newGraphQL(d, obs, newWSGuard(d.WSLimits, principals, d.RequestTimeout))
	mux := http.NewServeMux()
	authn := d.Verifier.MiddlewareWith(obs.authRefused)
	mux.Handle("/graphql", limitByAddress(d.RateLimits, authn(notePrincipal(limitByPrincipal(principals, guardTransport(gql))))))
	for pattern, h := range d.Routes {
		mux.Handle(pattern, limitByAddress(d.RateLimits, authn(notePrincipal(limitByPrincipal(principals, h)))))
	}
	for pattern, h := range d.PublicRoutes {
		mux.Handle(pattern, limitByAddress(d.RateLimits, h))
	}
	mux.Handle("GET "+documents.FilesPath+"{token}", limitByAddress(d.RateLimits, filesHandler(d)))
	if !d.Production && !d.MetricsApart {
		mux.Handle("GET /metrics", d.Metrics.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		dbErr := d.Ping(ctx)
		keys := d.Verifier.Ready()
		if dbErr != nil || !keys {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "database": dbErr == nil, "keys": keys})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "database": true, "keys": true})
	})
	if !d.Production {
		mux.Handle("GET /{$}", withGraphiQLPolicy(playground.Handler("Second Opinion Gateway", "/graphql")))
	}
	bodyLimit := func(r *http.Request) int64 {
		if isMultipart(r) {
			return d.MaxUploadBytes + multipartOverhead
		}
		return d.MaxBodyBytes
	}
	timeout := func(r *http.Request) time.Duration {
		if isMultipart(r) || isDownload(r) {
			return d.TransferTimeout
		}
		return d.RequestTimeout
	}
	h := withSecurityHeaders(withRequestID(obs.middleware(withTimeout(timeout, withBodyLimit(bodyLimit, mux)))))
	return &Handler{Handler: h, metrics: d.Metrics, ws: obs.ws}
}

func newGraphQL(d Deps, obs *observer, ws *wsGuard) http.Handler {
	srv := handler.New(d.Schema)
	readLimit := int64(64 << 10)
	srv.AddTransport(transport.Websocket{
		Implementation: trackingWS{inner: transport.CoderWebsocketImplementation{
			AcceptOptions: coderws.AcceptOptions{OriginPatterns: d.AllowedOrigins},
		}, tracker: obs.ws, limits: d.WSLimits},
		InitFunc:              wsInit(d.Verifier, obs),
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: 25 * time.Second,
		PayloadReadLimit:      &readLimit,
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(streamingUpload{maxFile: d.MaxUploadBytes, timeout: d.TransferTimeout, stall: d.TransferStall})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(d.Limits.MaxTokens)
	// Trusted documents first: a bound client's stray text is refused before
	// anything parses it, and its hash resolves before APQ sees it.
	srv.Use(trusted.Extension{Registry: d.Trusted})
	srv.Use(newDocGuard(d.Limits))
	srv.Use(subscriptionsOverWebsocket{})
	if d.Production {
		srv.SetDisableSuggestion(true)
		srv.SetValidationRulesFn(rulesWithoutSuggestions)
	} else {
		srv.Use(extension.Introspection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(extension.FixedComplexityLimit(d.Limits.MaxComplexity))
	for _, x := range d.Extensions {
		srv.Use(x)
	}
	srv.SetErrorPresenter(d.ErrorPresenter)
	srv.SetRecoverFunc(d.Recover)

	srv.AroundOperations(obs.aroundOperations)
	srv.AroundOperations(ws.aroundOperations)
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		p, ok := domain.PrincipalFrom(ctx)
		if !ok {
			return graphql.OneShot(graphql.ErrorResponse(ctx, "authentication required"))
		}
		oc := graphql.GetOperationContext(ctx)
		op := "anonymous"
		if oc.Operation != nil {
			op = string(oc.Operation.Operation)
			name := oc.Operation.Name
			if name == "" {
				name = oc.OperationName
			}
			if name != "" {
				op += " " + name
			}
		}
		ctx = audit.WithRecorder(ctx, audit.NewRecorder(p, RequestID(ctx), op, nil))
		ctx = d.WithLoaders(ctx, p, batchesEdges(oc.Operation))
		return next(ctx)
	})
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp == nil {
			return nil
		}
		if d.Production {
			dropSuggestions(resp)
		}
		normalizeErrors(resp, d.Limits.MaxErrors)
		// Fail closed: the response leaves only once its audit is stored.
		if err := audit.From(ctx).Flush(context.WithoutCancel(ctx), d.AuditSink); err != nil {
			rid := RequestID(ctx)
			d.Logger.ErrorContext(ctx, "audit write failed; response withheld", "request_id", rid, "error", err.Error())
			ext := map[string]any{"code": string(domain.CodeInternal), "requestId": rid}
			if tid := telemetry.TraceID(ctx); tid != "" {
				ext["traceId"] = tid
			}
			resp = &graphql.Response{Errors: gqlerror.List{{Message: "internal error (request " + rid + ")", Extensions: ext}}}
		}
		obs.observeResponse(ctx, resp)
		return resp
	})
	if _, off := d.Tracer.(noop.TracerProvider); !off {
		// Only with tracing on: an extra field layer shifts the loaders'
		// batching windows, which the command-count tests pin down.
		srv.AroundFields(obs.aroundFields)
	}
	srv.AroundFields(d.FieldMiddleware)
	return srv
}

// wsInit authenticates a graphql-transport-ws connection from its
// connection_init payload: a missing or bad token closes the socket with
// 4401, and the connection ends when the token expires.
func wsInit(v *auth.Verifier, obs *observer) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		p, exp, err := v.VerifyInitPayload(ctx, payload)
		if err != nil {
			obs.metrics.ObserveAuthFailure(auth.Reason(err), "websocket")
			telemetry.RecordFrom(ctx).SetAuthFailure(auth.Reason(err))
			ctx = transport.WithWebsocketCloseCode(ctx, 4401)
			ctx = transport.AppendCloseReason(ctx, "Unauthorized")
			return ctx, nil, errors.New("authentication required")
		}
		ctx = withConnState(domain.WithPrincipal(ctx, p))
		telemetry.RecordFrom(ctx).SetPrincipal(p.Subject, string(p.Role), p.Org)
		if !exp.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, exp)
			_ = cancel // released when the deadline passes or the connection closes
			ctx = transport.AppendCloseReason(ctx, "token expired")
		}
		// The org is checked again while the socket lives: a suspension
		// ends it within the registry cache's TTL plus this period.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		go watchOrg(ctx, cancel, v, p, orgRecheck)
		ctx = transport.AppendCloseReason(ctx, "organisation no longer accepted")
		return ctx, nil, nil
	}
}

// orgRecheck is how often a websocket's org is checked again.
var orgRecheck = 15 * time.Second

// watchOrg cancels a websocket's context once its principal's org is no
// longer accepted (suspended, unregistered); a registry that cannot be read
// is not taken as a refusal.
func watchOrg(ctx context.Context, cancel context.CancelFunc, v *auth.Verifier, p domain.Principal, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := v.CheckOrg(ctx, p); err != nil && auth.Reason(err) != "org_lookup" && ctx.Err() == nil {
			cancel()
			return
		}
	}
}

type requestIDKey struct{}

// RequestID returns the request's id.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func withTimeout(timeout func(*http.Request) time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Websocket connections live longer than one request.
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout(r))
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func withBodyLimit(limit func(*http.Request) int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := limit(r)
		// Refuse an announced oversize body without reading it.
		if r.ContentLength > n {
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody("request body too large", domain.CodeBadUserInput))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

func errorBody(msg string, code domain.Code) map[string]any {
	return map[string]any{"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": string(code)}}}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// gqlgenCodes maps gqlgen's own error codes onto the contract's.
var gqlgenCodes = map[string]domain.Code{
	"GRAPHQL_PARSE_FAILED":      domain.CodeBadUserInput,
	"GRAPHQL_VALIDATION_FAILED": domain.CodeBadUserInput,
	"COMPLEXITY_LIMIT_EXCEEDED": domain.CodeQueryTooComplex,
}

// normalizeErrors gives every error a contract code and caps the list: a
// document with thousands of mistakes gets a bounded answer.
func normalizeErrors(resp *graphql.Response, max int) {
	for _, e := range resp.Errors {
		if e.Extensions == nil {
			e.Extensions = map[string]any{}
		}
		code, _ := e.Extensions["code"].(string)
		switch {
		case code == "":
			e.Extensions["code"] = string(domain.CodeBadUserInput)
		case gqlgenCodes[code] != "":
			e.Extensions["code"] = string(gqlgenCodes[code])
		}
	}
	if max > 0 && len(resp.Errors) > max {
		resp.Errors = append(resp.Errors[:max:max], &gqlerror.Error{
			Message:    fmt.Sprintf("%d more errors not shown", len(resp.Errors)-max),
			Extensions: map[string]any{"code": string(domain.CodeBadUserInput)},
		})
	}
}
