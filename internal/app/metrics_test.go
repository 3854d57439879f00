package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An anonymous scraper of the public listener learns nothing in
// production: /metrics lives on METRICS_ADDR, started and stopped with the
// gateway.
func TestProductionServesMetricsOnlyOnTheirOwnListener(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	authtest.WriteJWKS(t, jwks, authtest.NewRSAKey(t))
	metricsAddr := freeAddr(t)
	keyFile := filepath.Join(dir, "opinion-signing-key.pem")
	_, err := signing.LoadOrCreate(keyFile)
	require.NoError(t, err)
	env := map[string]string{
		"OPINION_SIGNING_KEY_FILE": keyFile,
		"APP_ENV":                  "production", "ADDR": "127.0.0.1:0", "METRICS_ADDR": metricsAddr,
		"MONGODB_URI": testenv.URI(t), "MONGODB_DATABASE": fmt.Sprintf("metrics_%d", time.Now().UnixNano()),
		"JWT_JWKS_FILE": jwks, "JWT_ISSUER": issuerEuro, "JWT_AUDIENCE": "second-opinion-gateway",
		"DATA_KEY_FILE": writeDataKey(t, dir), "DATA_DIR": dir,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- app.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, func(a string) { addrc <- a })
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("gateway stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not start")
	}

	status, _ := get(t, base+"/metrics")
	assert.Equal(t, http.StatusNotFound, status, "the public listener has no /metrics")
	status, body := get(t, "http://"+metricsAddr+"/metrics")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "gateway_")
	status, _ = get(t, "http://"+metricsAddr+"/graphql")
	assert.Equal(t, http.StatusNotFound, status, "the metrics listener serves metrics only")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop")
	}
	_, err = net.DialTimeout("tcp", metricsAddr, time.Second)
	assert.Error(t, err, "the metrics listener stops with the gateway")
}
