package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// The attack of issue 14, finding 8: a partner reads a referred case's
// patient (whose id it sees as a pseudonym); the coordinator, filtering the
// audit by that case, must find the read.
func TestAPartnersPatientReadIsFoundByTheCase(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	res := lc.assign(t, coordinator, specialistIn(t, env, seed.NetworkEuro, "DE"), nil)
	require.Empty(t, res.Errors, res.Raw)

	partner := env.Token(t, testenv.Persona("partner"))
	read := env.Do(t, partner, `query($id: ID!) { case(id: $id) { reference patient { id birthYear sex country } } }`,
		map[string]any{"id": lc.caseID})
	require.Empty(t, read.Errors, read.Raw)
	pseudonym := testenv.Get(read.Data, "case", "patient", "id")
	require.NotNil(t, pseudonym)

	type row struct{ resourceType, role, fieldGroup string }
	audit := func(t *testing.T) []row {
		t.Helper()
		res := env.Do(t, coordinator, `query($c: ID!) { auditEvents(first: 100, filter: {caseId: $c}) {
		  edges { node { resourceType resourceId role fieldGroup outcome } } } }`, map[string]any{"c": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		var rows []row
		for _, e := range testenv.Get(res.Data, "auditEvents", "edges").([]any) {
			n := e.(map[string]any)["node"].(map[string]any)
			rows = append(rows, row{n["resourceType"].(string), n["role"].(string), n["fieldGroup"].(string)})
		}
		return rows
	}

	t.Run("the coordinator filtering by the case finds the partner's read of its patient", func(t *testing.T) {
		assert.Contains(t, audit(t), row{"Patient", "PARTNER", "patient.demographic"})
	})

	t.Run("the member's own identity read through the case is found by the case too", func(t *testing.T) {
		res := env.Do(t, lc.member, `query($id: ID!) { case(id: $id) { patient { givenName } } }`, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		assert.Contains(t, audit(t), row{"Patient", "MEMBER", "patient.identity"})
	})
}
