package server_test

import (
	"time"

	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

const reviewerCaseDoc = `query($id: ID!) { case(id: $id) { id status diagnosis { code } records { id } patient { givenName birthYear } } }`

// gateRead is what a reviewer reads of a case: whether it is in scope at
// all, and whether its clinical fields are.
func gateRead(t *testing.T, env *testenv.Env, token, caseID string) (inScope, clinical bool, res testenv.Response) {
	t.Helper()
	res = env.Do(t, token, reviewerCaseDoc, map[string]any{"id": caseID})
	if testenv.Get(res.Data, "case") == nil {
		return false, false, res
	}
	return true, testenv.Get(res.Data, "case", "diagnosis", "code") == "C50.9", res
}

// Issue 13, finding 5: consents gate every reviewer. Without
// RECORDS_RELEASE a reviewer reads admin fields only (clinical fields are
// FORBIDDEN); without INTERNATIONAL_SHARING a case assigned abroad leaves the
// scope of the specialist's org, partner network or provider alike.
func TestConsentsGateEveryReviewer(t *testing.T) {
	env := testenv.Start(t)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	provider := env.Token(t, testenv.Persona("provider"))
	partner := env.Token(t, testenv.Persona("partner"))

	ready := func(t *testing.T, intl bool) *lifecycle {
		lc := newLifecycle(t, env, true, 5)
		lc.open(t)
		require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
		if intl {
			require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
		}
		require.Empty(t, lc.addRecord(t, lc.member).Errors)
		return lc
	}

	for _, reviewer := range []struct {
		name, org, country string
		token              string
	}{
		{"a provider", seed.ProviderToronto, "CA", provider},
		{"a partner network", seed.NetworkEuro, "DE", partner},
	} {
		t.Run(reviewer.name+" reads no clinical field once RECORDS_RELEASE is revoked", func(t *testing.T) {
			lc := ready(t, true)
			require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, reviewer.org, reviewer.country), nil).Errors)
			in, clinical, res := gateRead(t, env, reviewer.token, lc.caseID)
			require.True(t, in && clinical, res.Raw)

			require.Empty(t, lc.consent(t, "revokeConsent", "RECORDS_RELEASE").Errors)
			in, clinical, res = gateRead(t, env, reviewer.token, lc.caseID)
			assert.True(t, in, "admin fields stay readable: %s", res.Raw)
			assert.False(t, clinical, res.Raw)
			assert.NotContains(t, res.Raw, "C50.9")
			assert.NotContains(t, res.Raw, "Malignant")
			assert.Contains(t, res.Codes(), "FORBIDDEN")
			list := env.Do(t, reviewer.token, `{ cases(first: 100) { edges { node { id diagnosis { code } } } } }`, nil)
			assert.NotContains(t, list.Raw, "Malignant", "nor through a list")

			require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
			_, clinical, res = gateRead(t, env, reviewer.token, lc.caseID)
			assert.True(t, clinical, "granted again, readable again: %s", res.Raw)
		})
	}

	t.Run("a partner loses the case when INTERNATIONAL_SHARING is revoked", func(t *testing.T) {
		lc := ready(t, true)
		require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, seed.NetworkEuro, "DE"), nil).Errors)
		require.Empty(t, lc.consent(t, "revokeConsent", "INTERNATIONAL_SHARING").Errors)
		in, _, res := gateRead(t, env, partner, lc.caseID)
		assert.False(t, in, res.Raw)
		assert.NotContains(t, res.Raw, "Malignant")
	})

	// Finding 5b: a provider gives one of its specialists a foreign country.
	abroad := func(t *testing.T) string {
		res := env.Do(t, provider, `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { id } } }`,
			map[string]any{"in": map[string]any{"name": "Dr Far Away", "specialties": []any{"oncology"}, "languages": []any{"en"}, "country": "US"}})
		require.Empty(t, res.Errors, res.Raw)
		return testenv.Get(res.Data, "upsertSpecialist", "specialist", "id").(string)
	}
	t.Run("a provider's specialist abroad loses the case, identity included, when INTERNATIONAL_SHARING is revoked", func(t *testing.T) {
		lc := ready(t, true)
		require.Empty(t, lc.assign(t, coordinator, abroad(t), nil).Errors)
		in, clinical, res := gateRead(t, env, provider, lc.caseID)
		require.True(t, in && clinical, res.Raw)
		require.Empty(t, lc.consent(t, "revokeConsent", "INTERNATIONAL_SHARING").Errors)
		in, _, res = gateRead(t, env, provider, lc.caseID)
		assert.False(t, in, res.Raw)
		assert.NotContains(t, res.Raw, "Zoe", "no identity either")
		list := env.Do(t, provider, `{ cases(first: 100) { edges { node { id } } } }`, nil)
		assert.NotContains(t, list.Raw, lc.caseID)
	})
	t.Run("moving a provider's specialist abroad takes the case out of scope without consent", func(t *testing.T) {
		lc := ready(t, false)
		id := specialistIn(t, env, seed.ProviderToronto, "CA")
		require.Empty(t, lc.assign(t, coordinator, id, nil).Errors)
		in, _, res := gateRead(t, env, provider, lc.caseID)
		require.True(t, in, res.Raw)
		moved := env.Do(t, provider, `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { country } } }`,
			map[string]any{"in": map[string]any{"id": id, "name": "Dr Moved", "specialties": []any{"oncology"}, "languages": []any{"en"}, "country": "FR"}})
		require.Empty(t, moved.Errors, moved.Raw)
		in, _, res = gateRead(t, env, provider, lc.caseID)
		assert.False(t, in, "abroad without INTERNATIONAL_SHARING: %s", res.Raw)
		back := env.Do(t, provider, `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { country } } }`,
			map[string]any{"in": map[string]any{"id": id, "name": "Dr Moved", "specialties": []any{"oncology"}, "languages": []any{"en"}, "country": "CA"}})
		require.Empty(t, back.Errors, back.Raw)
		in, _, _ = gateRead(t, env, provider, lc.caseID)
		assert.True(t, in, "home again, in scope again")
	})
}

// Issue 13, finding 3: a role is checked against the kind of its org, so a
// network's org is only ever read with partner rules, whatever a token says.
func TestARoleThatDoesNotFitItsOrgsKindIsRefused(t *testing.T) {
	env := testenv.Start(t)
	for _, c := range []struct{ role, org string }{
		{"provider", seed.NetworkEuro},
		{"insurer", seed.ProviderToronto},
		{"coordinator", seed.InsurerNorthstar},
		{"member", seed.NetworkEuro},
		{"partner", "net-not-registered"},
	} {
		t.Run(c.role+" at "+c.org, func(t *testing.T) {
			claims := auth.Claims{Role: c.role, Org: c.org}
			claims.Subject = "u-probe"
			tok, err := auth.MintHS256(env.Secret, claims, time.Hour, time.Now())
			require.NoError(t, err)
			res := env.Do(t, tok, `{ cases(first: 100) { edges { node { patient { givenName dateOfBirth email } diagnosis { code } } } } }`, nil)
			assert.Equal(t, 401, res.Status, res.Raw)
			assert.Equal(t, []string{"UNAUTHENTICATED"}, res.Codes())
		})
	}
	t.Run("a suspended organisation's tokens are refused", func(t *testing.T) {
		res := env.As(t, "coordinator", `mutation { registerOrganization(input: {id: "net-short-lived", name: "Short Lived", kind: NETWORK, country: "FR"}) { organization { id status } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		id := testenv.Get(res.Data, "registerOrganization", "organization", "id")
		res = env.As(t, "coordinator", `mutation($id: ID!) { updateOrganization(input: {id: $id, status: SUSPENDED}) { organization { status } } }`, map[string]any{"id": id})
		require.Empty(t, res.Errors, res.Raw)
		claims := auth.Claims{Role: "partner", Org: "net-short-lived"}
		claims.Subject = "u-probe"
		tok, err := auth.MintHS256(env.Secret, claims, time.Hour, time.Now())
		require.NoError(t, err)
		assert.Equal(t, 401, env.Do(t, tok, `{ viewer { org } }`, nil).Status)
	})
}

// The control for the test above: a fitting role at a registered org is
// accepted, so the refusals are the org check's and nothing else's.
func TestAFittingRoleAtARegisteredOrgIsAccepted(t *testing.T) {
	env := testenv.Start(t)
	claims := auth.Claims{Role: "partner", Org: seed.NetworkEuro}
	claims.Subject = "u-probe"
	tok, err := auth.MintHS256(env.Secret, claims, time.Hour, time.Now())
	require.NoError(t, err)
	res := env.Do(t, tok, `{ viewer { org } }`, nil)
	assert.Equal(t, 200, res.Status, res.Raw)
	assert.Equal(t, seed.NetworkEuro, testenv.Get(res.Data, "viewer", "org"))
}

// A write that cannot find its case (missing or out of scope) is audited
// like a read that found nothing: who tried, on which case.
func TestAWriteToACaseOutOfScopeIsAuditedAsNotFound(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 5)
	lc.open(t)
	claims := auth.Claims{Role: "member", Org: seed.InsurerNorthstar}
	claims.Subject = "m-intruder"
	tok, err := auth.MintHS256(env.Secret, claims, time.Hour, time.Now())
	require.NoError(t, err)
	res := env.Do(t, tok, `mutation($in: ConsentInput!) { grantConsent(input: $in) { case { id } } }`,
		map[string]any{"in": map[string]any{"caseId": lc.caseID, "kind": "RECORDS_RELEASE"}})
	assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
	events := apiFind(apiAuditOf(t, env, "m-intruder"), map[string]any{"outcome": "NOT_FOUND", "resourceType": "Case"})
	assert.NotEmpty(t, events, "the failed write is in the audit")
}

// Granting or revoking a consent already in that state changes nothing:
// no event, no version move (so no webhook either).
func TestANoOpConsentChangeRecordsNothing(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 5)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	v := lc.version(t)
	events := func() int {
		res := env.As(t, "coordinator", caseDoc, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		return len(testenv.Get(res.Data, "case", "events").([]any))
	}
	n := events()
	for _, c := range []struct{ op, kind string }{
		{"grantConsent", "RECORDS_RELEASE"},
		{"revokeConsent", "INTERNATIONAL_SHARING"},
	} {
		res := lc.consent(t, c.op, c.kind)
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, v, lc.version(t), "%s %s moved the version", c.op, c.kind)
		assert.Equal(t, n, events(), "%s %s recorded an event", c.op, c.kind)
	}
	require.Empty(t, lc.consent(t, "revokeConsent", "RECORDS_RELEASE").Errors)
	assert.Equal(t, v+1, lc.version(t), "a real change still moves it")
}
