package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/domain"
)

// orgRegistry is an in-memory OrgDirectory: what the store's registry
// answers, without a database.
type orgRegistry struct {
	mu     sync.Mutex
	orgs   map[string]registered
	calls  int
	failed error
}

type registered struct {
	kind   domain.OrgKind
	active bool
}

func newOrgRegistry() *orgRegistry {
	return &orgRegistry{orgs: map[string]registered{
		"ins-maple":        {domain.OrgInsurer, true},
		"prov-toronto":     {domain.OrgProvider, true},
		"net-euro-experts": {domain.OrgNetwork, true},
		"operator":         {domain.OrgOperator, true},
		"ins-suspended":    {domain.OrgInsurer, false},
	}}
}

func (r *orgRegistry) Org(_ context.Context, id string) (domain.OrgKind, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failed != nil {
		return "", false, r.failed
	}
	o, ok := r.orgs[id]
	if !ok {
		return "", false, auth.ErrUnknownOrg
	}
	return o.kind, o.active, nil
}

func (r *orgRegistry) set(id string, o registered) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.orgs[id] = o
}

func (r *orgRegistry) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func TestTokensNameARegisteredOrgOfTheirRolesKind(t *testing.T) {
	key := authtest.NewRSAKey(t)
	v := fileVerifier(t, auth.Options{Orgs: newOrgRegistry()}, standardIssuer(), key)
	as := func(role, org string) string {
		return key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Role, c.Org = role, org }))
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"a member of a registered insurer is accepted", as("member", "ins-maple"), ""},
		{"an insurer of a registered insurer is accepted", as("insurer", "ins-maple"), ""},
		{"a provider of a provider org is accepted", as("provider", "prov-toronto"), ""},
		{"a partner of a network is accepted", as("partner", "net-euro-experts"), ""},
		{"a coordinator of the operator is accepted", as("coordinator", "operator"), ""},
		{"an unregistered org is refused", as("insurer", "ins-made-up"), "unknown_org"},
		{"a suspended org is refused", as("insurer", "ins-suspended"), "org_suspended"},
		// Finding 3: provider@network got provider field groups on the network's cases.
		{"a provider naming a network is refused", as("provider", "net-euro-experts"), "role_mismatch"},
		{"a partner naming a provider org is refused", as("partner", "prov-toronto"), "role_mismatch"},
		{"a member naming a network is refused", as("member", "net-euro-experts"), "role_mismatch"},
		{"a coordinator naming an insurer is refused", as("coordinator", "ins-maple"), "role_mismatch"},
		{"an insurer naming the operator is refused", as("insurer", "operator"), "role_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" over HTTP", func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			assert.Equal(t, tt.reason, auth.Reason(err))
			if tt.reason != "" {
				assert.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err))
				assert.Equal(t, domain.Principal{}, p)
			}
		})
		t.Run(tt.name+" on a websocket", func(t *testing.T) {
			_, _, err := v.VerifyInitPayload(context.Background(), map[string]any{"Authorization": "Bearer " + tt.token})
			assert.Equal(t, tt.reason, auth.Reason(err))
		})
	}

	t.Run("the middleware answers an unregistered org with 401 UNAUTHENTICATED", func(t *testing.T) {
		reached := false
		h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.Header.Set("Authorization", "Bearer "+as("provider", "net-euro-experts"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Contains(t, rec.Body.String(), `"UNAUTHENTICATED"`)
		assert.False(t, reached)
	})

	t.Run("a failed lookup refuses the token rather than trusting it", func(t *testing.T) {
		reg := newOrgRegistry()
		reg.failed = errors.New("database down")
		v := fileVerifier(t, auth.Options{Orgs: reg}, standardIssuer(), key)
		_, err := v.Verify(context.Background(), as("insurer", "ins-maple"))
		assert.Equal(t, "org_lookup", auth.Reason(err))
		assert.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err))
	})

	t.Run("a directory answering NOT_FOUND is read as unregistered", func(t *testing.T) {
		v := fileVerifier(t, auth.Options{Orgs: notFoundDirectory{}}, standardIssuer(), key)
		_, err := v.Verify(context.Background(), as("insurer", "ins-maple"))
		assert.Equal(t, "unknown_org", auth.Reason(err))
	})
}

type notFoundDirectory struct{}

func (notFoundDirectory) Org(context.Context, string) (domain.OrgKind, bool, error) {
	return "", false, domain.ErrNotFound("organization")
}

func TestOrgCache(t *testing.T) {
	key := authtest.NewRSAKey(t)
	token := key.Sign(t, insurerClaims(func(c *auth.Claims) { c.Org = "ins-maple" }))

	t.Run("a suspension takes effect once the TTL has passed", func(t *testing.T) {
		reg, clk := newOrgRegistry(), newClock()
		cache := auth.NewOrgCache(reg, 30*time.Second).WithClock(clk.Now)
		v := fileVerifier(t, auth.Options{Orgs: cache, Now: clk.Now}, standardIssuer(), key)

		_, err := v.Verify(context.Background(), token)
		require.NoError(t, err)
		reg.set("ins-maple", registered{domain.OrgInsurer, false})

		clk.Advance(29 * time.Second)
		_, err = v.Verify(context.Background(), token)
		assert.NoError(t, err, "within the TTL the cached answer stands")
		assert.Equal(t, 1, reg.Calls(), "one lookup serves the TTL")

		clk.Advance(time.Second)
		_, err = v.Verify(context.Background(), token)
		assert.Equal(t, "org_suspended", auth.Reason(err))
	})

	t.Run("a TTL above 60 s is held to 60 s", func(t *testing.T) {
		reg, clk := newOrgRegistry(), newClock()
		cache := auth.NewOrgCache(reg, time.Hour).WithClock(clk.Now)
		v := fileVerifier(t, auth.Options{Orgs: cache, Now: clk.Now}, standardIssuer(), key)
		_, err := v.Verify(context.Background(), token)
		require.NoError(t, err)
		reg.set("ins-maple", registered{domain.OrgInsurer, false})
		clk.Advance(auth.MaxOrgCacheTTL)
		_, err = v.Verify(context.Background(), token)
		assert.Equal(t, "org_suspended", auth.Reason(err))
	})

	t.Run("an unknown org is remembered briefly, then registered orgs work", func(t *testing.T) {
		reg, clk := newOrgRegistry(), newClock()
		cache := auth.NewOrgCache(reg, time.Minute).WithClock(clk.Now)
		ctx := context.Background()
		_, _, err := cache.Org(ctx, "ins-new")
		require.ErrorIs(t, err, auth.ErrUnknownOrg)
		reg.set("ins-new", registered{domain.OrgInsurer, true})
		_, _, err = cache.Org(ctx, "ins-new")
		assert.ErrorIs(t, err, auth.ErrUnknownOrg, "the negative answer is cached")
		assert.Equal(t, 1, reg.Calls())
		clk.Advance(5 * time.Second)
		kind, active, err := cache.Org(ctx, "ins-new")
		require.NoError(t, err)
		assert.Equal(t, domain.OrgInsurer, kind)
		assert.True(t, active)
	})

	t.Run("a failed lookup is not remembered", func(t *testing.T) {
		reg := newOrgRegistry()
		reg.failed = errors.New("database down")
		cache := auth.NewOrgCache(reg, time.Minute).WithClock(newClock().Now)
		_, _, err := cache.Org(context.Background(), "ins-maple")
		require.Error(t, err)
		reg.mu.Lock()
		reg.failed = nil
		reg.mu.Unlock()
		_, active, err := cache.Org(context.Background(), "ins-maple")
		require.NoError(t, err)
		assert.True(t, active)
	})
}
