package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestDatabaseDownFailsFastAndRecoversWithoutRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	ctx := context.Background()
	db, err := embedded.Start(ctx, embedded.Options{DataDir: dir, Addr: addr})
	require.NoError(t, err)
	stopped := false
	defer func() {
		if !stopped {
			db.Stop()
		}
	}()
	st, err := store.Open(ctx, store.Options{URI: db.URI(), Database: "fault", OpTimeout: 500 * time.Millisecond, Prepare: db.IndexIDs, Keys: testenv.NewKeyring(t)})
	require.NoError(t, err)
	defer func() { _ = st.Close(context.Background()) }()
	secret := []byte(strings.Repeat("k", 40))
	v, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: secret}}, AllowHS256: true})
	require.NoError(t, err)
	built, err := app.Build(app.Deps{Store: st, Verifier: v, Logger: slog.New(slog.DiscardHandler), RequestTimeout: 2 * time.Second})
	require.NoError(t, err)
	h := built.Handler
	c := auth.Claims{Role: string(domain.RoleCoordinator), Org: "op"}
	c.Subject = "u-1"
	tok, err := auth.MintHS256(secret, c, time.Hour, time.Now())
	require.NoError(t, err)

	query := func() (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ specialists(first: 5) { edges { node { id } } } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	ready := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}

	_, body := query()
	require.Contains(t, body, `"edges":[]`)
	require.Equal(t, http.StatusOK, ready())

	db.Stop()
	stopped = true
	start := time.Now()
	_, body = query()
	assert.Less(t, time.Since(start), 3*time.Second, "fails within the request deadline")
	assert.Contains(t, body, `"code":"INTERNAL"`)
	assert.NotContains(t, body, "connection refused")
	assert.NotContains(t, body, "server selection")
	assert.Equal(t, http.StatusServiceUnavailable, ready())

	db, err = embedded.Start(ctx, embedded.Options{DataDir: dir, Addr: addr})
	require.NoError(t, err)
	stopped = false
	deadline := time.Now().Add(30 * time.Second)
	for ready() != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling a recovering dependency, bounded by the deadline
	}
	require.Equal(t, http.StatusOK, ready(), "ready again without a restart")
	_, body = query()
	assert.Contains(t, body, `"edges":[]`)
}
