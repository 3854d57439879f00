package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/trace"

	"github.com/secondopinion/gateway/docs"
	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/auditexport"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/events"
	"github.com/secondopinion/gateway/internal/fhir"
	"github.com/secondopinion/gateway/internal/loader"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/telemetry"
	"github.com/secondopinion/gateway/internal/trusted"
	"github.com/secondopinion/gateway/internal/webhooks"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Deps are what Build takes from outside: the opened store, the token
// verifier and the settings. Run fills them from the configuration; the test
// harness fills them for a test.
type Deps struct {
	Store          *store.Store
	Verifier       *auth.Verifier
	Logger         *slog.Logger
	Production     bool
	RequestTimeout time.Duration
	MaxBodyBytes   int64
	RateLimits     server.RateLimits
	WSLimits       server.WSLimits
	Trusted        *trusted.Registry
	AllowedOrigins []string
	Metrics        *telemetry.Metrics
	MetricsApart   bool
	Tracer         trace.TracerProvider
	// AuditSink stores audit events (nil: the store, group-committed by an
	// audit.Batcher).
	AuditSink audit.Sink
	// HubInterval is how often the event hub tails case events (0: its
	// default).
	HubInterval time.Duration
	// Signer signs delivered opinions (a key generated for this process
	// when nil: tests); its public keys are served at /.well-known/jwks.json.
	Signer *signing.Signer
	// Documents stores and serves records' files (nil disables uploads and
	// downloads); MaxUploadBytes caps one file.
	Documents      *documents.Service
	MaxUploadBytes int64
	// TransferTimeout and TransferStall bound a request that carries a
	// file (server.Deps; their defaults when 0).
	TransferTimeout time.Duration
	TransferStall   time.Duration
	// Downloads bound the downloads under way (server.Deps).
	Downloads server.DownloadLimits
	// Dispatcher, when set, runs the webhook dispatcher with these options
	// (tests that exercise webhooks run their own).
	Dispatcher *webhooks.Options
	// AuditRetention, when set, runs audit retention once a day: days
	// older than this are pruned whole once verified (tests call
	// Workflow.PruneAudit themselves).
	AuditRetention time.Duration
}

// App is the built gateway: the HTTP handler and everything behind it, and
// the background work Start runs and Stop awaits.
type App struct {
	Handler  *server.Handler
	Store    *store.Store
	Workflow *workflow.Service
	Hub      *events.Hub
	Webhooks *webhooks.Service

	log        *slog.Logger
	dispatcher *webhooks.Dispatcher
	retention  time.Duration
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// Build is the one place that builds the gateway: use cases, audit, event
// hub, webhooks, loaders and the HTTP handler, handed to a server package
// that only speaks HTTP.
func Build(d Deps) (*App, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 10 * time.Second
	}
	if d.Metrics == nil {
		d.Metrics = telemetry.NewMetrics()
	}
	if d.AuditSink == nil {
		d.AuditSink = audit.NewBatcher(d.Store, 0, d.RequestTimeout)
	}
	a := &App{
		Store: d.Store, Workflow: workflow.New(d.Store, workflow.WithSigner(d.Signer)), Hub: events.NewHub(d.Store, d.HubInterval, d.Logger),
		Webhooks: webhooks.NewService(d.Store, d.Production), log: d.Logger, retention: d.AuditRetention,
	}
	if d.Dispatcher != nil {
		o := *d.Dispatcher
		if o.Logger == nil {
			o.Logger = d.Logger
		}
		if o.GlobalID == nil {
			o.GlobalID = graph.GlobalID
		}
		dispatcher, err := webhooks.NewDispatcher(d.Store, o)
		if err != nil {
			return nil, err
		}
		a.dispatcher = dispatcher
	}
	st := d.Store
	// The FHIR door: the same use cases, scopes and audit as GraphQL, behind
	// the same authentication, limits and deadline; its CapabilityStatement
	// is public, as FHIR clients read it before they hold a token.
	var fhirLinks fhir.DocumentLinks
	if d.Documents != nil {
		fhirLinks = d.Documents
	}
	fhirDoor := fhir.New(fhir.Config{Workflow: a.Workflow, Documents: fhirLinks, Audit: d.AuditSink, RequestID: server.RequestID, Logger: d.Logger})
	// The auditors' export: coordinators only, streamed, audited itself.
	export := &auditexport.Handler{Workflow: a.Workflow, Audit: d.AuditSink, RequestID: server.RequestID, Logger: d.Logger, Signer: a.Workflow.Signer()}
	a.Handler = server.New(server.Deps{
		Routes: map[string]http.Handler{fhir.Prefix + "/": fhirDoor, fhir.Prefix: fhirDoor, "GET " + auditexport.Path: export},
		PublicRoutes: map[string]http.Handler{
			"GET " + fhir.Prefix + "/metadata": fhirDoor,
			"GET /.well-known/jwks.json":       signing.JWKSHandler(a.Workflow.Signer()),
		},
		Schema: graph.NewExecutableSchema(graph.Config{
			Resolvers:  &graph.Resolver{Workflow: a.Workflow, Events: a.Hub, Webhooks: a.Webhooks, Documents: d.Documents},
			Complexity: graph.Complexity(),
		}),
		FieldMiddleware: graph.FieldGuard,
		Extensions:      []graphql.HandlerExtension{graph.InputLimits{}},
		ErrorPresenter:  graph.ErrorPresenter(d.Logger, server.RequestID),
		Recover:         graph.Recover(d.Logger),
		WithLoaders: func(ctx context.Context, p domain.Principal, batch bool) context.Context {
			return loader.With(ctx, loader.New(st, p, batch))
		},
		AuditSink: d.AuditSink,
		Documents: d.Documents, MaxUploadBytes: d.MaxUploadBytes, TransferTimeout: d.TransferTimeout, TransferStall: d.TransferStall,
		Downloads:           d.Downloads,
		Ping:                st.Ping,
		ActiveSubscriptions: a.Hub.Active,
		Operations:          telemetry.NewOperationNames(docs.OperationNames()...),
		Verifier:            d.Verifier, Logger: d.Logger, Production: d.Production,
		RequestTimeout: d.RequestTimeout, MaxBodyBytes: d.MaxBodyBytes, RateLimits: d.RateLimits, WSLimits: d.WSLimits,
		Trusted: d.Trusted, AllowedOrigins: d.AllowedOrigins, Metrics: d.Metrics, MetricsApart: d.MetricsApart,
		Tracer: d.Tracer,
	})
	return a, nil
}

// Start runs the background work under one owner: the sweeper of cases'
// outboxes, the event hub and, when built, the webhook dispatcher. Events a
// crash or a failed copy left in outboxes are published first.
func (a *App) Start(ctx context.Context) {
	if err := a.Store.PublishPendingEvents(ctx); err != nil {
		a.log.Warn("case events: publishing pending events failed; retrying in the background", "error", domain.Scrub(err.Error()))
	}
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	run := func(f func(context.Context)) {
		a.wg.Add(1)
		go func() { defer a.wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) { sweepOutboxes(ctx, a.Store, a.log) })
	run(a.Hub.Run)
	if a.dispatcher != nil {
		run(a.dispatcher.Run)
	}
	if a.retention > 0 {
		run(func(ctx context.Context) { pruneAuditDaily(ctx, a.Workflow, a.retention, a.log) })
	}
}

// pruneAuditDaily runs audit retention a minute after start, then every
// day. A day it cannot prune (a chain that does not verify, a checkpoint
// that does not, rows its checkpoint does not vouch for) is logged as an
// error each time: evidence of tampering, for a person to look at.
func pruneAuditDaily(ctx context.Context, wf *workflow.Service, retention time.Duration, log *slog.Logger) {
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = 24 * time.Hour
		rep, err := wf.PruneAudit(ctx, time.Now(), retention)
		if err != nil && ctx.Err() == nil {
			log.Error("audit retention failed; retrying tomorrow", "error", domain.Scrub(err.Error()))
		}
		if len(rep.Pruned) > 0 {
			log.Info("audit retention", "days_pruned", len(rep.Pruned), "first", rep.Pruned[0], "last", rep.Pruned[len(rep.Pruned)-1], "events_deleted", rep.Events)
		}
		for day, b := range rep.Kept {
			log.Error("audit retention: a day past retention is kept", "day", day, "why", rep.Why[day], "chain", b.Chain, "position", b.Position, "reason", b.Reason)
		}
	}
}

// Stop ends the background work and waits for all of it.
func (a *App) Stop() {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
}
