package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// Issue 13, finding 1: an insurer naming another insurer's member id in
// createPolicy and requestSecondOpinion. Each insurer's member ids are its
// own namespace: the hostile insurer creates and reads only a member of its
// own, and the other insurer's member never sees what it wrote.
func TestAnInsurerNamingAnotherInsurersMemberIDTouchesOnlyItsOwnMember(t *testing.T) {
	env := testenv.Start(t)
	const create = `mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id insured { id givenName birthYear sex country language } } } }`
	policy := func(number, memberID, given, country string) map[string]any {
		return map[string]any{"in": map[string]any{
			"policyNumber": number, "product": "CRITICAL_ILLNESS", "effectiveFrom": "2026-01-01",
			"secondOpinion": map[string]any{"covered": true, "casesPerYear": 3, "international": false},
			"insured": []any{map[string]any{"memberId": memberID, "givenName": given, "familyName": "Probe",
				"dateOfBirth": "1999-09-09", "sex": "OTHER", "country": country, "language": "es", "email": given + "@example.org"}},
		}}
	}
	maple := env.Token(t, domain.Principal{Subject: "u-maple", Role: domain.RoleInsurer, Org: seed.InsurerMaple})

	t.Run("naming an existing member of another insurer reveals nothing of them", func(t *testing.T) {
		mine := env.As(t, "member", `{ policies(first: 5) { edges { node { insured { birthYear sex country language } } } } }`, nil)
		require.Empty(t, mine.Errors, mine.Raw)
		res := env.Do(t, maple, create, policy("MP-HOSTILE-1", seed.DemoMember, "Mallory", "MX"))
		require.Empty(t, res.Errors, res.Raw)
		insured := testenv.Get(res.Data, "createPolicy", "policy", "insured", 0)
		assert.Equal(t, "Mallory", testenv.Get(insured, "givenName"))
		assert.Equal(t, float64(1999), testenv.Get(insured, "birthYear"), "maple's own record, not northstar's")
		assert.Equal(t, "MX", testenv.Get(insured, "country"))
		assert.Equal(t, "OTHER", testenv.Get(insured, "sex"))

		node := env.Do(t, maple, `query($id: ID!) { node(id: $id) { ... on Patient { givenName country } } }`,
			map[string]any{"id": testenv.Get(insured, "id")})
		assert.Equal(t, "MX", testenv.Get(node.Data, "node", "country"))
		after := env.As(t, "member", `{ policies(first: 5) { edges { node { insured { birthYear sex country language } } } } }`, nil)
		assert.JSONEq(t, mine.Raw, after.Raw, "northstar's member is unchanged")
	})

	t.Run("a case maple requests for that id never reaches northstar's member", func(t *testing.T) {
		pol := env.Do(t, maple, create, policy("MP-HOSTILE-2", seed.DemoMember, "Mallory", "MX"))
		require.Empty(t, pol.Errors, pol.Raw)
		req := env.Do(t, maple, `mutation($in: RequestSecondOpinionInput!) { requestSecondOpinion(input: $in) { case { id } } }`,
			map[string]any{"in": map[string]any{"policyId": testenv.Get(pol.Data, "createPolicy", "policy", "id"),
				"patientMemberId": seed.DemoMember, "specialty": "oncology",
				"diagnosis": map[string]any{"code": "Z99.9", "description": "Planted by another insurer"}}})
		require.Empty(t, req.Errors, req.Raw)
		mine := env.As(t, "member", `{ cases(first: 100) { edges { node { id diagnosis { description } } } } }`, nil)
		require.Empty(t, mine.Errors, mine.Raw)
		assert.NotContains(t, mine.Raw, "Planted")
		assert.NotContains(t, mine.Raw, testenv.Get(req.Data, "requestSecondOpinion", "case", "id"))
	})

	t.Run("two insurers registering one fresh id each keep their own person", func(t *testing.T) {
		a := env.As(t, "insurer", create, policy("NS-FRESH", "m-fresh-1", "Nora", "CA"))
		require.Empty(t, a.Errors, a.Raw)
		b := env.Do(t, maple, create, policy("MP-FRESH", "m-fresh-1", "Xavier", "FR"))
		require.Empty(t, b.Errors, b.Raw)
		assert.NotContains(t, b.Raw, "Nora")
		assert.Equal(t, "Xavier", testenv.Get(b.Data, "createPolicy", "policy", "insured", 0, "givenName"))
		assert.Equal(t, "FR", testenv.Get(b.Data, "createPolicy", "policy", "insured", 0, "country"))

		northstarID := testenv.Get(a.Data, "createPolicy", "policy", "insured", 0, "id")
		mapleID := testenv.Get(b.Data, "createPolicy", "policy", "insured", 0, "id")
		assert.NotEqual(t, northstarID, mapleID, "two people, two ids")
		cross := env.Do(t, maple, `query($id: ID!) { node(id: $id) { ... on Patient { givenName } } }`, map[string]any{"id": northstarID})
		assert.Nil(t, testenv.Get(cross.Data, "node"), "maple cannot open northstar's member")
		assert.NotContains(t, cross.Raw, "Nora")
		own := env.As(t, "coordinator", `query($id: ID!) { node(id: $id) { ... on Patient { givenName country } } }`, map[string]any{"id": northstarID})
		assert.Equal(t, "Nora", testenv.Get(own.Data, "node", "givenName"))
		assert.Equal(t, "CA", testenv.Get(own.Data, "node", "country"), "the country that decides 'abroad' is the insurer's own")
	})
}
