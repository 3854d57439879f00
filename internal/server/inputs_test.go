package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// refusedAt asserts that res failed as a whole with one BAD_USER_INPUT
// naming field.
func refusedAt(t *testing.T, res testenv.Response, field string) {
	t.Helper()
	require.Len(t, res.Errors, 1, res.Raw)
	assert.Equal(t, "BAD_USER_INPUT", res.Errors[0].Code(), res.Raw)
	assert.Equal(t, field, res.Errors[0].Extensions["field"], res.Raw)
	assert.Nil(t, res.Data, "nothing ran: %s", res.Raw)
}

// The attacks of issue 14, finding 4: each refused before anything runs,
// and nothing stored.
func TestInputsPastTheirCapsAreRefusedAndNothingIsStored(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 5)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	provider := env.Token(t, testenv.Persona("provider"))
	require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil).Errors)
	res := caseMutation(env, t, provider, "startReview", lc.caseID, nil)
	require.Empty(t, res.Errors, res.Raw)

	noDraft := func(t *testing.T) {
		t.Helper()
		res := env.Do(t, coordinator, `query($id: ID!) { case(id: $id) { opinion { id } } }`, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		assert.Nil(t, testenv.Get(res.Data, "case", "opinion"), "a draft was stored")
	}

	t.Run("a 300,000-character answer is refused", func(t *testing.T) {
		in := draftInput(lc.caseID)
		in["in"].(map[string]any)["answers"] = []any{
			map[string]any{"question": "Is surgery needed?", "answer": "A smaller one."},
			map[string]any{"question": "How soon?", "answer": strings.Repeat("a", 300_000)},
		}
		refusedAt(t, env.Do(t, provider, draftDoc, in), "input.answers[1].answer")
		noDraft(t)
	})
	t.Run("a javascript: trial URL is refused", func(t *testing.T) {
		in := draftInput(lc.caseID)
		in["in"].(map[string]any)["clinicalTrials"] = []any{map[string]any{
			"registryId": "NCT01234567", "title": "A trial", "url": "javascript:alert(document.cookie)"}}
		refusedAt(t, env.Do(t, provider, draftDoc, in), "input.clinicalTrials[0].url")
		noDraft(t)
	})
	t.Run("a plain http trial URL is refused too", func(t *testing.T) {
		in := draftInput(lc.caseID)
		in["in"].(map[string]any)["clinicalTrials"] = []any{map[string]any{
			"registryId": "NCT01234567", "title": "A trial", "url": "http://clinicaltrials.gov/study/NCT01234567"}}
		refusedAt(t, env.Do(t, provider, draftDoc, in), "input.clinicalTrials[0].url")
		noDraft(t)
	})
	t.Run("an over-long value written inline in the document is refused like a variable", func(t *testing.T) {
		res := env.Do(t, provider, `mutation { saveOpinionDraft(input: {caseId: "`+lc.caseID+`", diagnosisAssessment: CONFIRMED,
		  treatmentAssessment: AGREE, memberSummary: "ok", report: "ok", questionsForYourDoctor: ["`+strings.Repeat("q", 1001)+`"]}) { opinion { id } } }`, nil)
		refusedAt(t, res, "input.questionsForYourDoctor[0]")
		noDraft(t)
	})
	t.Run("a draft within every cap, with line breaks in the report, is stored", func(t *testing.T) {
		in := draftInput(lc.caseID)
		in["in"].(map[string]any)["report"] = "Findings:\r\n- smaller operation\n\t- margins clear"
		in["in"].(map[string]any)["clinicalTrials"] = []any{map[string]any{
			"registryId": "NCT01234567", "title": "A trial", "url": "https://clinicaltrials.gov/study/NCT01234567"}}
		res := env.Do(t, provider, draftDoc, in)
		require.Empty(t, res.Errors, res.Raw)
	})

	t.Run("an 80,000-entry status list is refused", func(t *testing.T) {
		status := make([]any, 80_000)
		for i := range status {
			status[i] = "TRIAGE"
		}
		res := env.Do(t, coordinator, `query($s: [CaseStatus!]) { cases(first: 5, filter: {status: $s}) { totalCount } }`, map[string]any{"s": status})
		refusedAt(t, res, "filter.status")
	})
	t.Run("a status repeated in the filter is refused: the list is a set", func(t *testing.T) {
		res := env.Do(t, coordinator, `{ cases(first: 5, filter: {status: [TRIAGE, SUBMITTED, TRIAGE]}) { totalCount } }`, nil)
		refusedAt(t, res, "filter.status[2]")
	})

	orgs := func(t *testing.T) []string {
		t.Helper()
		res := env.As(t, "coordinator", `{ organizations(first: 100) { edges { node { orgId } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		var ids []string
		for _, e := range testenv.Get(res.Data, "organizations", "edges").([]any) {
			ids = append(ids, testenv.Get(e, "node", "orgId").(string))
		}
		return ids
	}
	const register = `mutation($in: RegisterOrganizationInput!) { registerOrganization(input: $in) { organization { id } } }`
	t.Run("a NUL in a name is refused", func(t *testing.T) {
		res := env.As(t, "coordinator", register, map[string]any{"in": map[string]any{
			"id": "net-nul", "name": "Evil\x00Network", "kind": "NETWORK", "country": "FR"}})
		refusedAt(t, res, "input.name")
		assert.NotContains(t, orgs(t), "net-nul")
	})
	t.Run("a line break in a one-line name is refused", func(t *testing.T) {
		res := env.As(t, "coordinator", register, map[string]any{"in": map[string]any{
			"id": "net-newline", "name": "Two\nLines", "kind": "NETWORK", "country": "FR"}})
		refusedAt(t, res, "input.name")
		assert.NotContains(t, orgs(t), "net-newline")
	})
	t.Run("a bidirectional override in a name is refused (it would display other than it reads)", func(t *testing.T) {
		for i, name := range []string{"Clinic \u202Egnp.exe", "Clinic \u2066x\u2069", "Line\u2028Separator"} {
			id := fmt.Sprintf("net-bidi-%d", i)
			res := env.As(t, "coordinator", register, map[string]any{"in": map[string]any{
				"id": id, "name": name, "kind": "NETWORK", "country": "FR"}})
			refusedAt(t, res, "input.name")
			assert.NotContains(t, orgs(t), id)
		}
	})
	t.Run("a name of 200 characters in any script is stored", func(t *testing.T) {
		res := env.As(t, "coordinator", register, map[string]any{"in": map[string]any{
			"id": "net-long", "name": strings.Repeat("網", 200), "kind": "NETWORK", "country": "FR"}})
		require.Empty(t, res.Errors, res.Raw)
		assert.Contains(t, orgs(t), "net-long")
	})
	t.Run("an over-long argument inside a fragment is refused", func(t *testing.T) {
		res := env.As(t, "coordinator", `query { ...F } fragment F on Query { case(id: "`+strings.Repeat("x", 129)+`") { id } }`, nil)
		refusedAt(t, res, "id")
	})
}
