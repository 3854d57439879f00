package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/app"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/testenv"
)

const (
	issuerEuro = "https://idp.euro-experts.example/"
	issuerNS   = "https://idp.northstar.example/"
)

// startGateway runs the real app.Run on port 0 with env and waits until it
// serves.
func startGateway(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, func(a string) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	select {
	case a := <-addrc:
		return "http://" + a
	case err := <-done:
		t.Fatalf("gateway stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not start")
	}
	return ""
}

func viewer(t *testing.T, base, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(`{"query":"{ viewer { role org } }"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func claims(iss, role, org string) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "sub": "u-1", "role": role, "aud": "second-opinion-gateway", "exp": time.Now().Add(time.Hour).Unix()}
	if org != "" {
		c["org"] = org
	}
	return c
}

func TestEachIssuerMayAssertOnlyItsOwnGrant(t *testing.T) {
	dir := t.TempDir()
	euro, ns := authtest.NewRSAKey(t), authtest.NewECKey(t)
	euroJWKS, nsJWKS := filepath.Join(dir, "euro.json"), filepath.Join(dir, "ns.json")
	authtest.WriteJWKS(t, euroJWKS, euro)
	authtest.WriteJWKS(t, nsJWKS, ns)
	trust, err := json.Marshal(map[string]any{"issuers": []any{
		map[string]any{"issuer": issuerEuro, "audiences": []string{"second-opinion-gateway"}, "jwksFile": euroJWKS, "grants": []map[string]string{{"role": "partner", "org": "net-euro-experts"}}},
		map[string]any{"issuer": issuerNS, "audiences": []string{"second-opinion-gateway"}, "jwksFile": nsJWKS, "grants": []map[string]string{{"role": "insurer", "org": "ins-northstar"}}},
	}})
	require.NoError(t, err)
	trustFile := filepath.Join(dir, "trust.json")
	require.NoError(t, os.WriteFile(trustFile, trust, 0o600))

	base := startGateway(t, map[string]string{
		"ADDR": "127.0.0.1:0", "MONGODB_URI": testenv.URI(t), "MONGODB_DATABASE": fmt.Sprintf("trust_%d", time.Now().UnixNano()),
		"JWT_TRUST_FILE": trustFile, "SEED_DEMO": "true", // the demo registers the orgs the tokens name
	})

	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"the network's IdP mints a partner token for its own network", euro.Sign(t, claims(issuerEuro, "partner", "net-euro-experts")), http.StatusOK},
		{"the insurer's IdP mints an insurer token for its own insurer", ns.Sign(t, claims(issuerNS, "insurer", "ins-northstar")), http.StatusOK},
		{"the network's IdP cannot mint an insurer token", euro.Sign(t, claims(issuerEuro, "insurer", "net-euro-experts")), http.StatusUnauthorized},
		{"the network's IdP cannot mint a token for another network", euro.Sign(t, claims(issuerEuro, "partner", "net-us-specialists")), http.StatusUnauthorized},
		{"the network's key under the insurer's iss is refused", euro.Sign(t, claims(issuerNS, "insurer", "ins-northstar")), http.StatusUnauthorized},
		{"the insurer's key under the network's iss is refused", ns.Sign(t, claims(issuerEuro, "partner", "net-euro-experts")), http.StatusUnauthorized},
		{"an issuer nobody trusts is refused", euro.Sign(t, claims("https://evil.example/", "partner", "net-euro-experts")), http.StatusUnauthorized},
		{"a coordinator token from any partner IdP is refused", euro.Sign(t, claims(issuerEuro, "coordinator", "net-euro-experts")), http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := viewer(t, base, c.token)
			assert.Equal(t, c.status, status, body)
			if c.status == http.StatusUnauthorized {
				assert.Contains(t, body, "UNAUTHENTICATED")
			}
		})
	}

	t.Run("one issuer's keys rotate without a restart and the other's are untouched", func(t *testing.T) {
		rotated := authtest.NewRSAKey(t)
		authtest.WriteJWKS(t, euroJWKS, rotated)
		later := time.Now().Add(2 * time.Second)
		require.NoError(t, os.Chtimes(euroJWKS, later, later))
		status, body := viewer(t, base, rotated.Sign(t, claims(issuerEuro, "partner", "net-euro-experts")))
		assert.Equal(t, http.StatusOK, status, body)
		status, _ = viewer(t, base, euro.Sign(t, claims(issuerEuro, "partner", "net-euro-experts")))
		assert.Equal(t, http.StatusUnauthorized, status, "the retired key no longer works")
		status, _ = viewer(t, base, ns.Sign(t, claims(issuerNS, "insurer", "ins-northstar")))
		assert.Equal(t, http.StatusOK, status)
	})
}

func TestTrustFilesWithoutAGrantAreRefused(t *testing.T) {
	dir := t.TempDir()
	k := authtest.NewRSAKey(t)
	jwks := filepath.Join(dir, "k.json")
	authtest.WriteJWKS(t, jwks, k)
	aud := []string{"second-opinion-gateway"}
	for name, entry := range map[string]map[string]any{
		"no grants":                {"issuer": issuerEuro, "audiences": aud, "jwksFile": jwks},
		"a grant without an org":   {"issuer": issuerEuro, "audiences": aud, "jwksFile": jwks, "grants": []map[string]string{{"role": "partner"}}},
		"no key source":            {"issuer": issuerEuro, "audiences": aud, "grants": []map[string]string{{"role": "partner", "org": "x"}}},
		"an unknown role":          {"issuer": issuerEuro, "audiences": aud, "jwksFile": jwks, "grants": []map[string]string{{"role": "admin", "org": "x"}}},
		"no audiences":             {"issuer": issuerEuro, "jwksFile": jwks, "grants": []map[string]string{{"role": "partner", "org": "x"}}},
		"the old roles/orgs lists": {"issuer": issuerEuro, "audiences": aud, "jwksFile": jwks, "roles": []string{"partner"}, "orgs": []string{"x"}},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"issuers": []any{entry}})
			path := filepath.Join(dir, "trust.json")
			require.NoError(t, os.WriteFile(path, b, 0o600))
			err := app.Run(context.Background(), nil, func(k string) string {
				return map[string]string{"ADDR": "127.0.0.1:0", "MONGODB_URI": testenv.URI(t), "JWT_TRUST_FILE": path, "SEED_DEMO": "false"}[k]
			}, io.Discard, io.Discard, nil)
			assert.ErrorContains(t, err, "trust file")
		})
	}
}

func TestConfiguredRateLimitsAreEnforced(t *testing.T) {
	secret := strings.Repeat("r", 40)
	base := startGateway(t, map[string]string{
		"ADDR": "127.0.0.1:0", "MONGODB_URI": testenv.URI(t), "MONGODB_DATABASE": fmt.Sprintf("rate_%d", time.Now().UnixNano()),
		"JWT_HS256_SECRET": secret, "SEED_DEMO": "false", "RATE_LIMIT_PER_PRINCIPAL": "0.01",
	})
	token := func(sub string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "role": "coordinator", "org": "operator", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		require.NoError(t, err)
		return tok
	}
	a := token("u-a")
	// A rate of one per 100 s allows a burst of one, then refuses.
	codes := []int{}
	for range 3 {
		status, _ := viewer(t, base, a)
		codes = append(codes, status)
	}
	assert.Equal(t, []int{http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests}, codes)
	status, body := viewer(t, base, token("u-b"))
	assert.Equal(t, http.StatusOK, status, "another principal has its own bucket: %s", body)
}
