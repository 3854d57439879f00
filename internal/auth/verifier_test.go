package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/domain"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "secondopinion-gateway"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// insurerClaims returns valid claims of an insurer token, changed by edits.
func insurerClaims(edits ...func(*auth.Claims)) *auth.Claims {
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "user-42",
			Audience:  jwt.ClaimStrings{testAudience},
			IssuedAt:  jwt.NewNumericDate(t0.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
		},
		Role: string(domain.RoleInsurer),
		Org:  "ins-1",
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

// fileVerifier returns a verifier trusting keys through a JWKS file.
func fileVerifier(t *testing.T, opts auth.Options, ic auth.IssuerConfig, keys ...*authtest.Key) *auth.Verifier {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, path, keys...)
	ic.JWKSFile = path
	opts.Issuers = []auth.IssuerConfig{ic}
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	v, err := auth.NewVerifier(opts)
	require.NoError(t, err)
	return v
}

func standardIssuer() auth.IssuerConfig {
	return auth.IssuerConfig{Issuer: testIssuer, Audiences: []string{"other-audience", testAudience}}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	key := authtest.NewRSAKey(t)
	impostor := authtest.NewRSAKey(t).WithKid(key.Kid)
	stranger := authtest.NewRSAKey(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), key)

	noneToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, insurerClaims())
		tok.Header["kid"] = key.Kid
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		return s
	}
	hsWithPublicKey := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, insurerClaims())
		tok.Header["kid"] = key.Kid
		s, err := tok.SignedString(key.PublicPEM(t))
		require.NoError(t, err)
		return s
	}

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"an empty token is missing", "", "missing_token"},
		{"garbage is malformed", "not.a.jwt", "malformed"},
		{"alg none is refused", noneToken(), "bad_algorithm"},
		{"an HS256 token signed with the RSA public key is refused", hsWithPublicKey(), "bad_algorithm"},
		{"a token signed by another key under a known kid has a bad signature", impostor.Sign(t, insurerClaims()), "bad_signature"},
		{"a token with an unknown kid is refused", stranger.Sign(t, insurerClaims()), "unknown_key"},
		{"an expired token is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(t0.Add(-time.Minute))
		})), "expired"},
		{"a token without exp is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.ExpiresAt = nil })), "bad_claims"},
		{"a token not valid yet is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) {
			c.NotBefore = jwt.NewNumericDate(t0.Add(time.Hour))
		})), "not_yet_valid"},
		{"a token for another audience is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"someone-else"}
		})), "bad_audience"},
		{"a token from another issuer is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Issuer = "https://evil.test" })), "bad_issuer"},
		{"a token without sub is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Subject = "" })), "bad_claims"},
		{"an unknown role is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Role = "admin" })), "unknown_role"},
		{"a missing role is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Role = "" })), "unknown_role"},
		{"an insurer without org is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Org = "" })), "bad_claims"},
		{"a member without org (its insurer) is refused", key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Role, c.Org, c.Subject = "member", "", "m-1003" })), "bad_claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			require.Error(t, err)
			assert.Equal(t, tt.reason, auth.Reason(err))
			assert.Equal(t, domain.Principal{}, p)
			assert.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err), "clients only ever see UNAUTHENTICATED")
			assert.NotContains(t, domain.ErrorMessage(err), tt.reason)
		})
	}
}

func TestVerifyAcceptsGoodTokens(t *testing.T) {
	rsaKey, ecKey, edKey := authtest.NewRSAKey(t), authtest.NewECKey(t), authtest.NewEd25519Key(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), rsaKey, ecKey, edKey)

	tests := []struct {
		name  string
		token string
		want  domain.Principal
	}{
		{"an RS256 insurer token yields its principal", rsaKey.Sign(t, insurerClaims()),
			domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}},
		{"an ES256 token is accepted", ecKey.Sign(t, insurerClaims()),
			domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}},
		{"an EdDSA token is accepted", edKey.Sign(t, insurerClaims()),
			domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}},
		{"a member names its insurer", rsaKey.Sign(t, insurerClaims(func(c *auth.Claims) { c.Role, c.Org, c.Subject = "member", "ins-1", "mem-7" })),
			domain.Principal{Subject: "mem-7", Role: domain.RoleMember, Org: "ins-1"}},
		{"a token expired within the leeway is accepted", rsaKey.Sign(t, insurerClaims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(t0.Add(-10 * time.Second))
		})), domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}},
		{"a provider specialist token carries its specialist and azp", rsaKey.Sign(t, insurerClaims(func(c *auth.Claims) {
			c.Role, c.Org, c.SpecialistID, c.AZP, c.ClientID = "provider", "prov-1", "spec-9", "portal", "ignored"
		})), domain.Principal{Subject: "user-42", Role: domain.RoleProvider, Org: "prov-1", SpecialistID: "spec-9", ClientID: "portal"}},
		{"client_id is used when azp is absent", rsaKey.Sign(t, insurerClaims(func(c *auth.Claims) { c.ClientID = "batch" })),
			domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1", ClientID: "batch"}},
		{"a token without kid is verified by the only key of its algorithm", rsaKey.WithKid("").Sign(t, insurerClaims()),
			domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p)
		})
	}
}

func TestScopeClaim(t *testing.T) {
	key := authtest.NewRSAKey(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), key)
	verify := func(t *testing.T, edit func(*auth.Claims)) domain.Principal {
		t.Helper()
		p, err := v.Verify(context.Background(), key.Sign(t, insurerClaims(edit)))
		require.NoError(t, err)
		return p
	}

	t.Run("an absent scope claim leaves the role's full rights", func(t *testing.T) {
		p := verify(t, func(*auth.Claims) {})
		assert.Nil(t, p.TokenScopes)
		assert.True(t, p.Has(domain.ScopePoliciesWrite))
	})
	t.Run("a scope claim narrows the role's rights", func(t *testing.T) {
		p := verify(t, func(c *auth.Claims) { c.Scope = "policies:read cases:read" })
		assert.Equal(t, []domain.Scope{domain.ScopePoliciesRead, domain.ScopeCasesRead}, p.TokenScopes)
		assert.True(t, p.Has(domain.ScopePoliciesRead))
		assert.False(t, p.Has(domain.ScopePoliciesWrite))
		assert.False(t, p.Has(domain.ScopeCasesWrite))
	})
	t.Run("a scope claim never widens: a member claiming audit:read still lacks it", func(t *testing.T) {
		p := verify(t, func(c *auth.Claims) { c.Role, c.Org, c.Scope = "member", "ins-1", "audit:read cases:read" })
		assert.False(t, p.Has(domain.ScopeAuditRead))
		assert.True(t, p.Has(domain.ScopeCasesRead))
	})
}

func TestHS256(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	clk := newClock()

	t.Run("a minted dev token verifies when HS256 is allowed", func(t *testing.T) {
		v, err := auth.NewVerifier(auth.Options{
			AllowHS256: true,
			Now:        clk.Now,
			Issuers:    []auth.IssuerConfig{{HS256Secret: secret}},
		})
		require.NoError(t, err)
		tok, err := auth.MintHS256(secret, auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: "coord-1"},
			Role:             "coordinator", Org: "op-1",
		}, time.Hour, clk.Now())
		require.NoError(t, err)

		p, exp, err := v.VerifyInitPayload(context.Background(), map[string]any{"Authorization": "Bearer " + tok})
		require.NoError(t, err)
		assert.Equal(t, domain.Principal{Subject: "coord-1", Role: domain.RoleCoordinator, Org: "op-1"}, p)
		assert.True(t, exp.Equal(t0.Add(time.Hour)))
		assert.True(t, v.Ready(), "an HS256 secret counts as a key")
	})

	t.Run("an HS256 token signed with the RSA public key fails even next to a configured secret", func(t *testing.T) {
		key := authtest.NewRSAKey(t)
		path := filepath.Join(t.TempDir(), "jwks.json")
		authtest.WriteJWKS(t, path, key)
		v, err := auth.NewVerifier(auth.Options{
			AllowHS256: true,
			Now:        clk.Now,
			Issuers:    []auth.IssuerConfig{{JWKSFile: path, HS256Secret: secret}},
		})
		require.NoError(t, err)
		tok, err := auth.MintHS256(key.PublicPEM(t), *insurerClaims(), time.Hour, clk.Now())
		require.NoError(t, err)

		_, err = v.Verify(context.Background(), tok)
		assert.Equal(t, "bad_signature", auth.Reason(err))
	})

	t.Run("an HS256 token is refused when HS256 is not allowed", func(t *testing.T) {
		key := authtest.NewRSAKey(t)
		v := fileVerifier(t, auth.Options{AllowHS256: false}, auth.IssuerConfig{}, key)
		tok, err := auth.MintHS256(secret, *insurerClaims(), time.Hour, clk.Now())
		require.NoError(t, err)

		_, err = v.Verify(context.Background(), tok)
		assert.Equal(t, "bad_algorithm", auth.Reason(err))
	})

	t.Run("a secret is a configuration error when HS256 is not allowed", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{HS256Secret: secret}}})
		assert.Error(t, err)
	})

	t.Run("a short secret is a configuration error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{AllowHS256: true, Issuers: []auth.IssuerConfig{{HS256Secret: []byte("dev")}}})
		assert.Error(t, err)
	})

	t.Run("an issuer without any key source is a configuration error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{Issuer: testIssuer}}})
		assert.Error(t, err)
	})
}

func TestJWKSURL(t *testing.T) {
	t.Run("an unknown kid refetches once, then is rate limited", func(t *testing.T) {
		oldKey, newKey := authtest.NewRSAKey(t), authtest.NewRSAKey(t)
		srv := authtest.NewJWKSServer(t, oldKey)
		clk := newClock()
		v, err := auth.NewVerifier(auth.Options{
			Now:             clk.Now,
			RefetchInterval: time.Minute,
			Issuers:         []auth.IssuerConfig{{Issuer: testIssuer, JWKSURL: srv.URL}},
		})
		require.NoError(t, err)
		require.True(t, v.Ready())
		require.EqualValues(t, 1, srv.Hits())

		_, err = v.Verify(context.Background(), oldKey.Sign(t, insurerClaims()))
		require.NoError(t, err)
		assert.EqualValues(t, 1, srv.Hits(), "a known kid is served from the cache")

		stranger := authtest.NewRSAKey(t)
		_, err = v.Verify(context.Background(), stranger.Sign(t, insurerClaims()))
		assert.Equal(t, "unknown_key", auth.Reason(err))
		assert.EqualValues(t, 2, srv.Hits(), "an unknown kid refetches")

		srv.SetKeys(oldKey, newKey)
		for range 5 {
			_, err = v.Verify(context.Background(), newKey.Sign(t, insurerClaims()))
			assert.Equal(t, "unknown_key", auth.Reason(err))
		}
		assert.EqualValues(t, 2, srv.Hits(), "refetches are rate limited")

		clk.Advance(time.Minute)
		p, err := v.Verify(context.Background(), newKey.Sign(t, insurerClaims()))
		require.NoError(t, err)
		assert.Equal(t, "user-42", p.Subject)
		assert.EqualValues(t, 3, srv.Hits())
	})

	t.Run("a JWKS URL down at start is not fatal and is retried", func(t *testing.T) {
		key := authtest.NewECKey(t)
		srv := authtest.NewJWKSServer(t, key)
		srv.SetFailing(true)
		clk := newClock()
		v, err := auth.NewVerifier(auth.Options{
			Now:             clk.Now,
			RefetchInterval: 5 * time.Second,
			Issuers:         []auth.IssuerConfig{{Issuer: testIssuer, JWKSURL: srv.URL}},
		})
		require.NoError(t, err)
		assert.False(t, v.Ready(), "Ready retries once, in vain")
		assert.EqualValues(t, 2, srv.Hits())

		srv.SetFailing(false)
		_, err = v.Verify(context.Background(), key.Sign(t, insurerClaims()))
		assert.Equal(t, "unknown_key", auth.Reason(err), "the retry is rate limited")
		assert.EqualValues(t, 2, srv.Hits())

		clk.Advance(5 * time.Second)
		p, err := v.Verify(context.Background(), key.Sign(t, insurerClaims()))
		require.NoError(t, err)
		assert.EqualValues(t, 3, srv.Hits())
		assert.Equal(t, domain.RoleInsurer, p.Role)
		assert.True(t, v.Ready())
	})
}

func TestJWKSFile(t *testing.T) {
	t.Run("rewriting the file rotates keys without a restart", func(t *testing.T) {
		oldKey, newKey := authtest.NewRSAKey(t), authtest.NewEd25519Key(t)
		path := filepath.Join(t.TempDir(), "jwks.json")
		authtest.WriteJWKS(t, path, oldKey)
		v, err := auth.NewVerifier(auth.Options{
			Now:     newClock().Now,
			Issuers: []auth.IssuerConfig{{Issuer: testIssuer, JWKSFile: path}},
		})
		require.NoError(t, err)
		_, err = v.Verify(context.Background(), oldKey.Sign(t, insurerClaims()))
		require.NoError(t, err)
		_, err = v.Verify(context.Background(), newKey.Sign(t, insurerClaims()))
		require.Equal(t, "unknown_key", auth.Reason(err))

		authtest.WriteJWKS(t, path, newKey)
		later := time.Now().Add(time.Hour)
		require.NoError(t, os.Chtimes(path, later, later))

		_, err = v.Verify(context.Background(), newKey.Sign(t, insurerClaims()))
		assert.NoError(t, err)
		_, err = v.Verify(context.Background(), oldKey.Sign(t, insurerClaims()))
		assert.Equal(t, "unknown_key", auth.Reason(err), "the retired key is gone")
	})

	t.Run("encryption and unsupported keys are skipped", func(t *testing.T) {
		sig, enc := authtest.NewRSAKey(t), authtest.NewRSAKey(t)
		encJWK := enc.JWK()
		encJWK["use"] = "enc"
		doc := `{"keys":[` + string(mustJSON(t, encJWK)) + `,{"kty":"oct","kid":"sym","k":"c2VjcmV0"},` +
			`{"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},` + string(mustJSON(t, sig.JWK())) + `]}`
		path := filepath.Join(t.TempDir(), "jwks.json")
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
		v, err := auth.NewVerifier(auth.Options{Now: newClock().Now, Issuers: []auth.IssuerConfig{{JWKSFile: path}}})
		require.NoError(t, err)
		require.True(t, v.Ready())

		_, err = v.Verify(context.Background(), sig.Sign(t, insurerClaims()))
		assert.NoError(t, err)
		_, err = v.Verify(context.Background(), enc.Sign(t, insurerClaims()))
		assert.Equal(t, "unknown_key", auth.Reason(err))
	})

	t.Run("a missing file is a configuration error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{JWKSFile: filepath.Join(t.TempDir(), "nope.json")}}})
		assert.Error(t, err)
	})
}

func TestMultipleIssuers(t *testing.T) {
	keyA, keyB := authtest.NewRSAKey(t), authtest.NewECKey(t)
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	authtest.WriteJWKS(t, pathA, keyA)
	authtest.WriteJWKS(t, pathB, keyB)
	const issA, issB = "https://insurer-idp.test", "https://partner-idp.test"
	v, err := auth.NewVerifier(auth.Options{
		Now: newClock().Now,
		Issuers: []auth.IssuerConfig{
			{Issuer: issA, JWKSFile: pathA, Grants: []auth.Grant{{Role: domain.RoleInsurer, Org: "ins-1"}}},
			{Issuer: issB, JWKSFile: pathB, Grants: []auth.Grant{{Role: domain.RolePartner, Org: "net-1"}}},
		},
	})
	require.NoError(t, err)
	require.True(t, v.Ready())
	assert.Len(t, v.Issuers(), 2)

	partner := func(iss string) func(*auth.Claims) {
		return func(c *auth.Claims) { c.Issuer, c.Role, c.Org = iss, "partner", "net-1" }
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"issuer A's insurer token is accepted", keyA.Sign(t, insurerClaims(func(c *auth.Claims) { c.Issuer = issA })), ""},
		{"issuer B's partner token is accepted", keyB.Sign(t, insurerClaims(partner(issB))), ""},
		{"a token signed with A's key but claiming B is refused", keyA.Sign(t, insurerClaims(partner(issB))), "unknown_key"},
		{"a token signed with A's key under B's kid is refused", keyA.WithKid(keyB.Kid).Sign(t, insurerClaims(partner(issB))), "bad_signature"},
		{"a role outside the issuer's grants is refused", keyB.Sign(t, insurerClaims(func(c *auth.Claims) { c.Issuer = issB })), "not_allowed"},
		{"an org outside the issuer's grants is refused", keyA.Sign(t, insurerClaims(func(c *auth.Claims) { c.Issuer, c.Org = issA, "ins-2" })), "not_allowed"},
		{"an unknown issuer is refused", keyA.Sign(t, insurerClaims(func(c *auth.Claims) { c.Issuer = "https://other.test" })), "bad_issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.token)
			assert.Equal(t, tt.reason, auth.Reason(err))
		})
	}

	t.Run("several issuers each need an iss value", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{{JWKSFile: pathA}, {Issuer: issB, JWKSFile: pathB}}})
		assert.Error(t, err)
	})
}
