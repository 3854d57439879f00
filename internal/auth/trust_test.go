package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/domain"
)

const (
	issProviderNet = "https://idp.prov-a.test"
	issMapleApp    = "https://login.ins-maple.test"
)

// trustVerifier loads a trust file holding entries (each given its own
// JWKS file for key) plus, when operator is set, the operator's own issuer.
func trustVerifier(t *testing.T, opts auth.Options, operator *authtest.Key, entries map[*authtest.Key]map[string]any) *auth.Verifier {
	t.Helper()
	dir := t.TempDir()
	var list []any
	for key, e := range entries {
		path := filepath.Join(dir, key.Kid+".json")
		authtest.WriteJWKS(t, path, key)
		e["jwksFile"] = path
		list = append(list, e)
	}
	trust := filepath.Join(dir, "trust.json")
	require.NoError(t, os.WriteFile(trust, mustJSON(t, map[string]any{"issuers": list}), 0o600))
	issuers, err := auth.LoadTrustFile(trust)
	require.NoError(t, err)
	if operator != nil {
		path := filepath.Join(dir, "operator.json")
		authtest.WriteJWKS(t, path, operator)
		issuers = append(issuers, auth.IssuerConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSFile: path})
	}
	opts.Issuers = issuers
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	v, err := auth.NewVerifier(opts)
	require.NoError(t, err)
	return v
}

func grant(role, org string) map[string]string { return map[string]string{"role": role, "org": org} }

func TestTrustIsGrantedPerRoleAndOrgPair(t *testing.T) {
	provIdP, mapleApp, operator := authtest.NewRSAKey(t), authtest.NewECKey(t), authtest.NewRSAKey(t)
	v := trustVerifier(t, auth.Options{}, operator, map[*authtest.Key]map[string]any{
		provIdP: {"issuer": issProviderNet, "audiences": []string{testAudience},
			"grants": []map[string]string{grant("provider", "prov-a"), grant("partner", "net-b")}},
		mapleApp: {"issuer": issMapleApp, "audiences": []string{testAudience},
			"grants": []map[string]string{grant("member", "ins-maple")}},
	})
	as := func(iss, role, org, sub string) func(*auth.Claims) {
		return func(c *auth.Claims) { c.Issuer, c.Role, c.Org, c.Subject = iss, role, org, sub }
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"the first granted pair provider@prov-a passes", provIdP.Sign(t, insurerClaims(as(issProviderNet, "provider", "prov-a", "u-1"))), ""},
		{"the second granted pair partner@net-b passes", provIdP.Sign(t, insurerClaims(as(issProviderNet, "partner", "net-b", "u-1"))), ""},
		// Finding 3: roles and orgs checked apart let this issuer mint the cross pair.
		{"the cross pair provider@net-b is refused", provIdP.Sign(t, insurerClaims(as(issProviderNet, "provider", "net-b", "u-1"))), "not_allowed"},
		{"the cross pair partner@prov-a is refused", provIdP.Sign(t, insurerClaims(as(issProviderNet, "partner", "prov-a", "u-1"))), "not_allowed"},
		{"the member app mints a member of its own insurer", mapleApp.Sign(t, insurerClaims(as(issMapleApp, "member", "ins-maple", "m-1003"))), ""},
		// Finding 2: a member-only issuer impersonated members of every insurer.
		{"the member app cannot mint a member of another insurer", mapleApp.Sign(t, insurerClaims(as(issMapleApp, "member", "ins-northstar", "m-1003"))), "not_allowed"},
		{"the member app cannot mint a member without org", mapleApp.Sign(t, insurerClaims(as(issMapleApp, "member", "", "m-1003"))), "bad_claims"},
		{"the member app cannot mint an insurer of its own insurer", mapleApp.Sign(t, insurerClaims(as(issMapleApp, "insurer", "ins-maple", "u-1"))), "not_allowed"},
		{"the operator's issuer asserts any pair", operator.Sign(t, insurerClaims(as(testIssuer, "partner", "net-b", "u-1"))), ""},
		{"the operator's issuer asserts a coordinator", operator.Sign(t, insurerClaims(as(testIssuer, "coordinator", "operator", "u-1"))), ""},
		{"a partner key cannot borrow the operator's iss", provIdP.Sign(t, insurerClaims(as(testIssuer, "provider", "net-b", "u-1"))), "unknown_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			assert.Equal(t, tt.reason, auth.Reason(err))
			if tt.reason != "" {
				assert.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err))
				assert.Equal(t, domain.Principal{}, p)
			}
		})
	}
}

func TestLoadTrustFileRefusesAmbiguousEntries(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "k.json")
	authtest.WriteJWKS(t, jwks, authtest.NewRSAKey(t))
	aud := []string{testAudience}
	tests := []struct {
		name, wants string
		entry       map[string]any
	}{
		{"the old roles and orgs lists are refused, naming grants", `"grants"`,
			map[string]any{"issuer": issProviderNet, "audiences": aud, "jwksFile": jwks, "roles": []string{"provider", "partner"}, "orgs": []string{"prov-a", "net-b"}}},
		{"orgs alone (old format) is refused, naming grants", `"grants"`,
			map[string]any{"issuer": issProviderNet, "audiences": aud, "jwksFile": jwks, "orgs": []string{"prov-a"}, "grants": []map[string]string{grant("provider", "prov-a")}}},
		{"an entry without grants is refused", "grants is required",
			map[string]any{"issuer": issProviderNet, "audiences": aud, "jwksFile": jwks}},
		{"a grant without org is refused", "names no org",
			map[string]any{"issuer": issProviderNet, "audiences": aud, "jwksFile": jwks, "grants": []map[string]string{{"role": "member"}}}},
		{"a grant of an unknown role is refused", "unknown role",
			map[string]any{"issuer": issProviderNet, "audiences": aud, "jwksFile": jwks, "grants": []map[string]string{grant("admin", "prov-a")}}},
		// Finding 7: an issuer without audience accepts tokens minted for anyone.
		{"an entry without audiences is refused", "audiences is required",
			map[string]any{"issuer": issProviderNet, "jwksFile": jwks, "grants": []map[string]string{grant("provider", "prov-a")}}},
		{"an entry without issuer is refused", "issuer is required",
			map[string]any{"audiences": aud, "jwksFile": jwks, "grants": []map[string]string{grant("provider", "prov-a")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "trust.json")
			require.NoError(t, os.WriteFile(path, mustJSON(t, map[string]any{"issuers": []any{tt.entry}}), 0o600))
			_, err := auth.LoadTrustFile(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wants)
		})
	}
}

func TestNewVerifierRefusesUncheckedIssuers(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	authtest.WriteJWKS(t, a, authtest.NewRSAKey(t))
	authtest.WriteJWKS(t, b, authtest.NewRSAKey(t))

	t.Run("in production an issuer without audience is a start-up error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{RequireIssuerAndAudience: true, Issuers: []auth.IssuerConfig{{Issuer: testIssuer, JWKSFile: a}}})
		assert.ErrorContains(t, err, "audience")
	})
	t.Run("in production an issuer without iss is a start-up error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{RequireIssuerAndAudience: true, Issuers: []auth.IssuerConfig{{Audiences: []string{testAudience}, JWKSFile: a}}})
		assert.ErrorContains(t, err, "issuer")
	})
	t.Run("in production an issuer with both starts", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{RequireIssuerAndAudience: true, Issuers: []auth.IssuerConfig{{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSFile: a}}})
		assert.NoError(t, err)
	})
	t.Run("two issuers that may assert any pair are a start-up error", func(t *testing.T) {
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{
			{Issuer: testIssuer, JWKSFile: a}, {Issuer: issProviderNet, JWKSFile: b},
		}})
		assert.ErrorContains(t, err, "without grants")
	})
}

func TestAnIssuerWithBoundClientsMustNameOne(t *testing.T) {
	euro, other := authtest.NewRSAKey(t), authtest.NewECKey(t)
	const issEuro, issOther = "https://idp.euro-experts.test", "https://idp.other.test"
	v := trustVerifier(t, auth.Options{}, nil, map[*authtest.Key]map[string]any{
		euro: {"issuer": issEuro, "audiences": []string{testAudience},
			"grants": []map[string]string{grant("partner", "net-euro-experts")}, "clients": []string{"euro-backoffice", "euro-portal"}},
		other: {"issuer": issOther, "audiences": []string{testAudience},
			"grants": []map[string]string{grant("partner", "net-other")}},
	})
	partner := func(iss, org, azp, clientID string) func(*auth.Claims) {
		return func(c *auth.Claims) { c.Issuer, c.Role, c.Org, c.AZP, c.ClientID = iss, "partner", org, azp, clientID }
	}
	tests := []struct {
		name   string
		token  string
		reason string
		client string
	}{
		{"a bound client in azp is accepted", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "euro-backoffice", ""))), "", "euro-backoffice"},
		{"a bound client in client_id is accepted", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "", "euro-portal"))), "", "euro-portal"},
		// Finding 6: each of these escaped the client's trusted documents.
		{"the same issuer leaving out azp and client_id is refused", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "", ""))), "unknown_client", ""},
		{"the same issuer naming another client is refused", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "euro-analytics", ""))), "unknown_client", ""},
		{"the same issuer naming the client in another case is refused", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "Euro-Backoffice", ""))), "unknown_client", ""},
		{"azp decides when both are present: an unbound azp is refused", euro.Sign(t, insurerClaims(partner(issEuro, "net-euro-experts", "euro-analytics", "euro-backoffice"))), "unknown_client", ""},
		{"another issuer naming the bound client is refused", other.Sign(t, insurerClaims(partner(issOther, "net-other", "euro-backoffice", ""))), "unknown_client", ""},
		{"an issuer without bound clients names any client", other.Sign(t, insurerClaims(partner(issOther, "net-other", "other-app", ""))), "", "other-app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			assert.Equal(t, tt.reason, auth.Reason(err))
			assert.Equal(t, tt.client, p.ClientID)
		})
	}

	t.Run("one client bound to two issuers is a start-up error", func(t *testing.T) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
		authtest.WriteJWKS(t, a, euro)
		authtest.WriteJWKS(t, b, other)
		_, err := auth.NewVerifier(auth.Options{Issuers: []auth.IssuerConfig{
			{Issuer: issEuro, JWKSFile: a, Grants: []auth.Grant{{Role: domain.RolePartner, Org: "n-1"}}, Clients: []string{"shared"}},
			{Issuer: issOther, JWKSFile: b, Grants: []auth.Grant{{Role: domain.RolePartner, Org: "n-2"}}, Clients: []string{"shared"}},
		}})
		assert.ErrorContains(t, err, "shared")
	})
}
