// Package testenv starts the real gateway for tests: one embedded FerretDB
// per test binary, a fresh database per test, the demo data, the real HTTP
// handler with an HS256 verifier, and helpers to send GraphQL as a persona.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/trace"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/telemetry"
	"github.com/secondopinion/gateway/internal/trusted"
	"github.com/secondopinion/gateway/internal/workflow"
)

var (
	once    sync.Once
	shared  *embedded.Store
	initErr error
)

// URI returns the mongodb:// address tests use: MONGODB_URI when set (so
// `MONGODB_URI=… make test` checks a real MongoDB), else the test binary's
// embedded store, started on first use.
func URI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		return uri
	}
	once.Do(func() {
		dir, err := os.MkdirTemp("", "gateway-test-*")
		if err != nil {
			initErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shared, initErr = embedded.Start(ctx, embedded.Options{DataDir: dir})
	})
	require.NoError(t, initErr, "embedded store")
	return shared.URI()
}

// Prepare is the embedded store's index hook (nil on MongoDB).
func Prepare() func(context.Context, string) error {
	if shared == nil {
		return nil
	}
	return shared.IndexIDs
}

// Embedded reports whether tests run on the embedded store; tests that only
// make sense on one backend skip on the other.
func Embedded() bool { return os.Getenv("MONGODB_URI") == "" }

// Env is a running gateway over a fresh database.
type Env struct {
	Store   *store.Store
	Handler http.Handler
	Secret  []byte
	DB      string
	Now     time.Time
	Logs    *bytes.Buffer
	// Metrics are the handler's metrics (served at /metrics).
	Metrics *telemetry.Metrics
	// Gateway is Handler with its shutdown methods.
	Gateway *server.Handler
	// Documents is the documents service; BlobDir the directory its
	// encrypted files are stored in; Keys its master keys.
	Documents *documents.Service
	BlobDir   string
	Keys      *keys.Keyring
	// KeyText is the key file Keys was read from.
	KeyText string
	// Workflow is the gateway's use cases (with its signing key).
	Workflow *workflow.Service
}

// Options tune Start.
type Options struct {
	// NoSeed leaves the database empty.
	NoSeed bool
	// Seed sets the demo data's size (seed.DemoSize when zero).
	Seed seed.Size
	// AuditSink replaces the store as the audit writer (fault injection).
	AuditSink func(st *store.Store) audit.Sink
	// Monitor observes database commands.
	Monitor *event.CommandMonitor
	// Production turns on production mode.
	Production bool
	// RateLimits replaces the default rate limits.
	RateLimits server.RateLimits
	// WSLimits replace the websocket limits (the defaults, without a
	// message rate, when zero).
	WSLimits server.WSLimits
	// RequestTimeout replaces the request deadline (the server's default
	// when zero).
	RequestTimeout time.Duration
	// TransferTimeout and TransferStall replace the limits of a request
	// that carries a file (the server's defaults when zero).
	TransferTimeout time.Duration
	TransferStall   time.Duration
	// Downloads replace the bounds of the downloads under way.
	Downloads server.DownloadLimits
	// Trusted binds clients to trusted documents.
	Trusted *trusted.Registry
	// BatchByID overrides how the store reads a batch of known ids (see
	// store.Options.BatchByID).
	BatchByID *bool
	// Tracer records spans (tracing is off when nil); database commands get
	// spans too.
	Tracer trace.TracerProvider
	// MaxUploadBytes caps an uploaded file (the default 50 MiB when 0).
	MaxUploadBytes int64
	// Blobs replaces the directory blob store.
	Blobs blob.Store
}

// Start opens a fresh database, seeds the demo data and builds the handler.
func Start(t testing.TB, opts ...Options) *Env {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	uri := URI(t)
	db := fmt.Sprintf("t_%d_%s", time.Now().UnixNano(), randHex(4))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	metrics := telemetry.NewMetrics()
	monitor := telemetry.ChainMonitors(o.Monitor, telemetry.CommandMonitor(metrics, o.Tracer))
	keyText := mustGenerateKey(t)
	kr, err := keys.Parse(strings.NewReader(keyText))
	require.NoError(t, err)
	st, err := store.Open(ctx, store.Options{URI: uri, Database: db, Monitor: monitor, Prepare: Prepare(), BatchByID: o.BatchByID, Keys: kr})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = st.Drop(context.Background())
		_ = st.Close(context.Background())
	})
	// The registry is always there: every token's org is looked up in it.
	for _, org := range append(seed.Organizations(), domain.Organization{ID: seed.Operator, Name: "Operator", Kind: domain.OrgOperator, Country: "CA"}) {
		require.NoError(t, st.EnsureOrganization(ctx, org))
	}
	if !o.NoSeed {
		size := o.Seed
		if size == (seed.Size{}) {
			size = seed.DemoSize
		}
		require.NoError(t, st.InsertDemo(ctx, seed.Build(size, st.Now())))
	}
	secret := []byte(strings.Repeat("s", 16) + randHex(16))
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: secret}}, AllowHS256: true, Orgs: auth.NewOrgCache(st, time.Minute)})
	require.NoError(t, err)
	if o.RateLimits == (server.RateLimits{}) {
		// Tests fire requests far faster than any client may: limits have
		// their own test.
		o.RateLimits = server.RateLimits{PerAddress: 1e6, AddressBurst: 1e6, PerPrincipal: 1e6, PrincipalBurst: 1e6, MaxTrackedKeys: 1000, IdleForgetAfter: time.Hour}
	}
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.WSLimits == (server.WSLimits{}) {
		o.WSLimits = server.DefaultWSLimits
		o.WSLimits.MessagesPerSecond, o.WSLimits.MessageBurst = 1e6, 1e6
	}
	// The gateway is built as server.go builds it (app.Build); webhook
	// tests run their own dispatcher.
	blobDir := t.TempDir()
	blobs := o.Blobs
	if blobs == nil {
		d, err := blob.NewDir(blobDir)
		require.NoError(t, err)
		blobs = d
	}
	docs := documents.New(st, workflow.New(st), blobs, kr, documents.Options{MaxBytes: o.MaxUploadBytes, Logger: logger})
	deps := app.Deps{Documents: docs, MaxUploadBytes: o.MaxUploadBytes, Store: st, Verifier: v, Production: o.Production, Logger: logger, RateLimits: o.RateLimits, WSLimits: o.WSLimits, RequestTimeout: o.RequestTimeout, Trusted: o.Trusted,
		TransferTimeout: o.TransferTimeout, TransferStall: o.TransferStall, Downloads: o.Downloads,
		Metrics: metrics, Tracer: o.Tracer, HubInterval: 50 * time.Millisecond}
	if o.AuditSink != nil {
		deps.AuditSink = o.AuditSink(st)
	}
	built, err := app.Build(deps)
	require.NoError(t, err)
	built.Start(ctx)
	t.Cleanup(built.Stop)
	h := built.Handler
	return &Env{Store: st, Handler: h, Secret: secret, DB: db, Now: st.Now(), Logs: logs, Metrics: metrics, Gateway: h,
		Documents: docs, BlobDir: blobDir, Keys: kr, KeyText: keyText, Workflow: built.Workflow}
}

// NewKeyring returns a fresh master keyring, as a new DATA_KEY_FILE holds.
func NewKeyring(t testing.TB) *keys.Keyring {
	t.Helper()
	kr, err := keys.Parse(strings.NewReader(mustGenerateKey(t)))
	require.NoError(t, err)
	return kr
}

func mustGenerateKey(t testing.TB) string {
	t.Helper()
	text, err := keys.Generate()
	require.NoError(t, err)
	return text
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// Persona returns the demo persona's principal by name ("member", "insurer",
// "provider", "partner", "coordinator").
func Persona(name string) domain.Principal {
	for _, p := range seed.Personas {
		if p.Name == name {
			return domain.Principal{Subject: p.Subject, Role: p.Role, Org: p.Org}
		}
	}
	panic("testenv: no persona " + name)
}

// Token mints a token for a principal; scope, when not nil, becomes the
// scope claim.
func (e *Env) Token(t testing.TB, p domain.Principal, scope ...string) string {
	t.Helper()
	c := auth.Claims{Role: string(p.Role), Org: p.Org, SpecialistID: p.SpecialistID, AZP: p.ClientID}
	c.Subject = p.Subject
	if len(scope) > 0 {
		c.Scope = strings.Join(scope, " ")
	}
	tok, err := auth.MintHS256(e.Secret, c, time.Hour, time.Now())
	require.NoError(t, err)
	return tok
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Data   map[string]any
	Errors []Error
	Raw    string
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the error's extensions.code.
func (e Error) Code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// Codes lists the codes of all errors.
func (r Response) Codes() []string {
	out := make([]string, 0, len(r.Errors))
	for _, e := range r.Errors {
		out = append(out, e.Code())
	}
	return out
}

// PathCodes maps "a.b.0.c" paths to their error codes.
func (r Response) PathCodes() map[string]string {
	out := map[string]string{}
	for _, e := range r.Errors {
		parts := make([]string, len(e.Path))
		for i, p := range e.Path {
			parts[i] = fmt.Sprint(p)
		}
		out[strings.Join(parts, ".")] = e.Code()
	}
	return out
}

// Do sends one GraphQL POST with the token (empty: none).
func (e *Env) Do(t testing.TB, token, query string, vars map[string]any) Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.Handler.ServeHTTP(rec, req)
	return decode(t, rec.Code, rec.Body.Bytes())
}

func decode(t testing.TB, status int, b []byte) Response {
	t.Helper()
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []Error        `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(b, &out), "body: %s", b)
	return Response{Status: status, Data: out.Data, Errors: out.Errors, Raw: string(b)}
}

// As sends a query as a persona.
func (e *Env) As(t testing.TB, persona, query string, vars map[string]any) Response {
	t.Helper()
	return e.Do(t, e.Token(t, Persona(persona)), query, vars)
}

// Get walks a decoded JSON value by keys and indexes: Get(data, "cases", "edges", 0, "node").
func Get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// Replica builds a second gateway over the same database, as another
// replica behind a load balancer would be: its own connection pool, its own
// event hub, the same token secret.
func (e *Env) Replica(t testing.TB) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URI: URI(t), Database: e.DB, Prepare: Prepare(), Keys: e.Keys})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: e.Secret}}, AllowHS256: true, Orgs: auth.NewOrgCache(st, time.Minute)})
	require.NoError(t, err)
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	built, err := app.Build(app.Deps{Store: st, Verifier: v, Logger: logger, HubInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	built.Start(ctx)
	t.Cleanup(built.Stop)
	h := built.Handler
	return &Env{Store: st, Handler: h, Secret: e.Secret, DB: e.DB, Now: e.Now, Logs: logs, Keys: e.Keys, KeyText: e.KeyText}
}

// Serve starts a real HTTP server on 127.0.0.1 for the handler and returns
// its base URL.
func (e *Env) Serve(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(e.Handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

// DoRaw sends a GraphQL POST with an arbitrary JSON body (APQ hashes,
// extensions).
func (e *Env) DoRaw(t testing.TB, token string, body map[string]any) Response {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.Handler.ServeHTTP(rec, req)
	return decode(t, rec.Code, rec.Body.Bytes())
}
