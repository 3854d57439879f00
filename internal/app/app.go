// Package app wires configuration, the store, authentication and the HTTP
// server together; main only calls Run, and tests start the real thing.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/config"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/telemetry"
	"github.com/secondopinion/gateway/internal/trusted"
	"github.com/secondopinion/gateway/internal/webhooks"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Ready is told the listening address once the server accepts requests.
type Ready func(addr string)

// Run starts the gateway and blocks until ctx is done, then shuts down
// gracefully.
func Run(ctx context.Context, _ []string, getenv func(string) string, stdout, stderr io.Writer, ready Ready) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	level := cfg.LogLevel
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if cfg.Production() {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)

	uri := cfg.MongoURI
	var prepare func(context.Context, string) error
	if uri == "" {
		emb, err := embedded.Start(ctx, embedded.Options{DataDir: cfg.DataDir})
		if err != nil {
			return err
		}
		defer emb.Stop()
		uri = emb.URI()
		prepare = emb.IndexIDs
		defer embedded.TuneGC()()
		log.Info("embedded store started", "data_dir", cfg.DataDir)
	}
	tracing, err := telemetry.SetupTracing(ctx, getenv, "")
	if err != nil {
		return err
	}
	defer func() {
		// Flush the last spans, bounded: a dead collector must not hold the exit.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(fctx); err != nil {
			log.Warn("trace flush failed", "error", err.Error())
		}
	}()
	metrics := telemetry.NewMetrics()
	kr, err := loadKeyring(cfg, log)
	if err != nil {
		return err
	}
	// The keyring unwraps the PHI field key: a DATA_KEY_FILE that cannot
	// (another deployment's key) stops the start here.
	st, err := store.Open(ctx, store.Options{
		URI: uri, Database: cfg.MongoDatabase, OpTimeout: cfg.RequestTimeout,
		Monitor: telemetry.CommandMonitor(metrics, tracing.Provider), Prepare: prepare, Keys: kr,
	})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()

	secret := cfg.JWTHS256Secret
	devSecret := false
	if !cfg.Production() && len(secret) == 0 && !cfg.HasJWKS() {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		devSecret = true
	}
	issuers, err := trustedIssuers(cfg, secret)
	if err != nil {
		return err
	}
	// The operator's own organisation exists from the start; every token's
	// org is looked up in the registry (cached, a suspension within 60 s).
	if err := st.EnsureOrganization(ctx, domain.Organization{ID: cfg.OperatorOrg, Name: "Operator", Kind: domain.OrgOperator, Country: "CA"}); err != nil {
		return err
	}
	verifier, err := auth.NewVerifier(auth.Options{Orgs: auth.NewOrgCache(st, 30*time.Second),
		Issuers: issuers, AllowHS256: !cfg.Production() && len(secret) > 0, Logger: log,
		MaxLifetime: cfg.JWTMaxLifetime, RequireIssuerAndAudience: cfg.Production(),
	})
	if err != nil {
		return err
	}

	// Members recorded before they belonged to an insurer move into each
	// insurer's namespace (idempotent; one read when there is nothing to do).
	if err := st.MigrateMembers(ctx); err != nil {
		return err
	}
	// Cases stored before outcome facts existed get theirs (once).
	if err := st.MigrateOutcomeFacts(ctx); err != nil {
		return err
	}
	// The list documents pages read follow their documents: built for a
	// database that has none, repaired after a stop between the two writes
	// or a migration (one read of each listed collection).
	if n, err := st.RepairLists(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Info("list documents repaired", "count", n)
	}

	signer, err := opinionSigner(cfg)
	if err != nil {
		return err
	}
	if cfg.SeedDemo && !cfg.Production() {
		empty, err := st.IsEmpty(ctx)
		if err != nil {
			return err
		}
		if empty {
			demo := seed.Build(seed.RunSize, st.Now())
			// Its delivered opinions are signed as delivery would have.
			if err := workflow.New(st, workflow.WithSigner(signer)).SignDemo(&demo); err != nil {
				return fmt.Errorf("sign demo opinions: %w", err)
			}
			if err := st.InsertDemo(ctx, demo); err != nil {
				return fmt.Errorf("seed demo data: %w", err)
			}
			log.Info("demo data seeded")
		}
	}

	documentsSvc, err := openDocuments(ctx, cfg, st, kr, log)
	if err != nil {
		return err
	}

	var docs *trusted.Registry
	if cfg.TrustedDocumentsFile != "" {
		if docs, err = trusted.Load(cfg.TrustedDocumentsFile); err != nil {
			return err
		}
		if err := docs.CheckIssuers(verifier.ClientIssuer); err != nil {
			return err
		}
	}
	log.Info("opinion signing key", "kid", signer.KeyID(), "published_keys", len(signer.PublicKeys()))
	built, err := Build(Deps{
		Store: st, Verifier: verifier, Signer: signer, Logger: log, Production: cfg.Production(), Trusted: docs,
		RequestTimeout: cfg.RequestTimeout, MaxBodyBytes: cfg.MaxBodyBytes, AllowedOrigins: cfg.WSAllowedOrigins,
		Metrics: metrics, MetricsApart: cfg.MetricsAddr != "", Tracer: tracing.Provider, RateLimits: rateLimits(cfg), WSLimits: wsLimits(cfg),
		Documents: documentsSvc, MaxUploadBytes: cfg.MaxUploadBytes,
		AuditRetention: time.Duration(cfg.AuditRetentionDays) * 24 * time.Hour,
		Dispatcher: &webhooks.Options{
			Production: cfg.Production(), Timeout: cfg.WebhookTimeout, BackoffBase: cfg.WebhookBackoff, MaxAttempts: cfg.WebhookMaxAttempts,
		},
	})
	if err != nil {
		return err
	}
	// Every background goroutine is awaited before Run returns and before
	// the store closes (deferred above).
	built.Start(ctx)
	defer built.Stop()
	h := built.Handler

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	// Shutdown neither closes nor waits for hijacked (websocket) connections:
	// the handler closes them with 1001, ending their subscriptions.
	srv.RegisterOnShutdown(h.CloseWebsockets)
	addr := ln.Addr().String()
	if !cfg.Production() {
		printDevInfo(stdout, addr, cfg.JWTIssuer, cfg.JWTAudiences, secret, devSecret || len(cfg.JWTHS256Secret) > 0, cfg.OperatorOrg)
	}
	log.Info("listening", "addr", addr, "env", cfg.Env)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" {
		msrv, err := serveMetrics(cfg.MetricsAddr, h.MetricsHandler(), handler, errc)
		if err != nil {
			_ = srv.Close()
			return err
		}
		log.Info("metrics listening", "addr", msrv.addr)
		defer msrv.stop()
	}
	if ready != nil {
		ready(addr)
	}
	select {
	case err := <-errc:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	// SIGTERM: stop accepting, let requests in flight finish, close the
	// websockets, then flush traces (deferred above); all within
	// ShutdownTimeout, after which the remaining connections are cut.
	log.Info("shutting down", "timeout", ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if werr := h.WaitWebsockets(shutdownCtx); err == nil {
		err = werr
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
		log.Warn("shutdown deadline passed; connections cut", "error", err.Error())
		return nil
	}
	log.Info("stopped")
	return nil
}

// loadKeyring reads the master key from DATA_KEY_FILE (development
// generates one under DATA_DIR on first start; production has refused to
// start without the variable). It encrypts documents and PHI fields.
func loadKeyring(cfg config.Config, log *slog.Logger) (*keys.Keyring, error) {
	var kr *keys.Keyring
	var err error
	if cfg.DataKeyFile != "" {
		kr, err = keys.Load(cfg.DataKeyFile)
	} else {
		var created bool
		path := filepath.Join(cfg.DataDir, config.DevDataKeyFile)
		kr, created, err = keys.LoadOrCreate(path)
		if created {
			log.Warn("development: generated a master data key; keep it, or the documents it encrypts are lost", "path", path)
		}
	}
	return kr, err
}

// openDocuments builds the documents service: the master keys and the blob
// store BLOB_URL names.
func openDocuments(ctx context.Context, cfg config.Config, st *store.Store, kr *keys.Keyring, log *slog.Logger) (*documents.Service, error) {
	blobs, err := blob.Open(ctx, cfg.BlobURL, cfg.DataDir, blob.S3Options{
		Endpoint: cfg.S3.Endpoint, Region: cfg.S3.Region, PathStyle: cfg.S3.PathStyle,
		AccessKeyID: cfg.S3.AccessKeyID, SecretAccessKey: cfg.S3.SecretAccessKey, SessionToken: cfg.S3.SessionToken,
	})
	if err != nil {
		return nil, err
	}
	return documents.New(st, workflow.New(st), blobs, kr, documents.Options{MaxBytes: cfg.MaxUploadBytes, Logger: log}), nil
}

// sweepOutboxes publishes the events left in cases' outboxes whenever a copy
// to case_events has failed, checking every few seconds.
func sweepOutboxes(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !st.PendingEvents() {
			continue
		}
		if err := st.PublishPendingEvents(ctx); err != nil && ctx.Err() == nil {
			log.Warn("case events: publishing pending events failed", "error", domain.Scrub(err.Error()))
		}
	}
}

// metricsServer is the separate /metrics listener (METRICS_ADDR).
type metricsServer struct {
	srv  *http.Server
	addr string
}

// serveMetrics listens on addr and serves h there until stop; a Serve
// failure is sent to errc, ending Run as a failure of the main listener would.
func serveMetrics(addr string, h http.Handler, logs slog.Handler, errc chan<- error) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen METRICS_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logs, slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics listener: %w", err)
		}
	}()
	return &metricsServer{srv: srv, addr: ln.Addr().String()}, nil
}

// stop closes the metrics listener; a scrape in flight gets a short grace.
func (m *metricsServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		_ = m.srv.Close()
	}
}

// ShutdownTimeout bounds a graceful shutdown: requests in flight get this
// long to finish (each is itself bounded by REQUEST_TIMEOUT).
var ShutdownTimeout = 15 * time.Second

// trustedIssuers lists the issuers the verifier trusts: those of
// JWT_TRUST_FILE, each limited to its granted (role, org) pairs, plus the
// single issuer of the JWT_* variables (the operator's own, any pair) when it
// has a key source.
func trustedIssuers(cfg config.Config, devSecret []byte) ([]auth.IssuerConfig, error) {
	var out []auth.IssuerConfig
	if cfg.JWTTrustFile != "" {
		fromFile, err := auth.LoadTrustFile(cfg.JWTTrustFile)
		if err != nil {
			return nil, err
		}
		out = append(out, fromFile...)
	}
	single := auth.IssuerConfig{
		Issuer: cfg.JWTIssuer, Audiences: cfg.JWTAudiences, JWKSURL: cfg.JWTJWKSURL, JWKSFile: cfg.JWTJWKSFile,
	}
	if !cfg.Production() && len(devSecret) > 0 {
		single.HS256Secret = devSecret
	}
	if single.JWKSURL != "" || single.JWKSFile != "" || len(single.HS256Secret) > 0 {
		out = append(out, single)
	}
	if len(out) == 0 {
		return nil, errors.New("no token issuer configured: set JWT_JWKS_URL, JWT_JWKS_FILE or JWT_TRUST_FILE")
	}
	return out, nil
}

func printDevInfo(w io.Writer, addr, issuer string, audiences []string, secret []byte, hs bool, operator string) {
	host := addr
	if strings.HasPrefix(host, "[::]") || strings.HasPrefix(host, "0.0.0.0") {
		_, port, _ := net.SplitHostPort(addr)
		host = "localhost:" + port
	}
	fmt.Fprintf(w, "\nSecond Opinion Gateway (development)\n  GraphiQL:  http://%s/\n  GraphQL:   http://%s/graphql\n", host, host)
	if !hs {
		return
	}
	fmt.Fprintf(w, "\nDev tokens (HS256, valid 12 hours); send as  Authorization: Bearer <token>\n")
	now := time.Now()
	for _, p := range seed.Personas {
		c := auth.Claims{Role: string(p.Role), Org: p.Org}
		if p.Role == domain.RoleCoordinator {
			c.Org = operator
		}
		c.Subject = p.Subject
		c.Issuer = issuer
		if len(audiences) > 0 {
			c.Audience = audiences[:1]
		}
		tok, err := auth.MintHS256(secret, c, 12*time.Hour, now)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "  %-12s %s\n", p.Name+":", tok)
	}
	fmt.Fprintln(w)
}

// wsLimits are the server's websocket defaults with the configured caps.
func wsLimits(cfg config.Config) server.WSLimits {
	l := server.DefaultWSLimits
	if n := cfg.WSMaxSubscriptionsPerConnection; n > 0 {
		l.MaxSubscriptionsPerConnection = n
	}
	if n := cfg.WSMaxSubscriptionsPerPrincipal; n > 0 {
		l.MaxSubscriptionsPerPrincipal = n
	}
	return l
}

// rateLimits are the server's defaults with the configured rates, each with a
// burst of twice its rate.
func rateLimits(cfg config.Config) server.RateLimits {
	l := server.DefaultRateLimits
	if r := cfg.RateLimitPerAddress; r > 0 {
		l.PerAddress, l.AddressBurst = rate.Limit(r), max(1, int(2*r))
	}
	if r := cfg.RateLimitPerPrincipal; r > 0 {
		l.PerPrincipal, l.PrincipalBurst = rate.Limit(r), max(1, int(2*r))
	}
	return l
}

// opinionSigner loads OPINION_SIGNING_KEY_FILE; in development without it,
// the key under DATA_DIR (created on first start).
func opinionSigner(cfg config.Config) (*signing.Signer, error) {
	if cfg.OpinionSigningKeyFile != "" {
		return signing.Load(cfg.OpinionSigningKeyFile)
	}
	if cfg.Production() {
		return nil, errors.New("production needs OPINION_SIGNING_KEY_FILE")
	}
	return signing.LoadOrCreate(filepath.Join(cfg.DataDir, "opinion-signing-key.pem"))
}
