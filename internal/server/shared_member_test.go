package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
)

// A second insurer naming an existing member id must learn nothing of what
// the first insurer recorded about that member.
func TestAnInsurerNeverReadsAnotherInsurersRecordOfAMember(t *testing.T) {
	env := testenv.Start(t)
	const q = `mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id insured { id givenName familyName dateOfBirth email phone } } } }`
	policy := func(number, given string) map[string]any {
		return map[string]any{"in": map[string]any{
			"policyNumber": number, "product": "EXTENDED_HEALTH", "effectiveFrom": "2026-01-01",
			"secondOpinion": map[string]any{"covered": true, "casesPerYear": 1, "international": false},
			"insured": []any{map[string]any{"memberId": "m-shared-1", "givenName": given, "familyName": "Probe",
				"dateOfBirth": "2000-01-01", "email": given + "@example.org"}},
		}}
	}
	first := env.As(t, "insurer", q, policy("NS-SHARED", "Nora"))
	require.Empty(t, first.Errors, first.Raw)

	evil := env.Token(t, domain.Principal{Subject: "u-evil", Role: domain.RoleInsurer, Org: "ins-evil"})
	second := env.Do(t, evil, q, policy("EV-SHARED", "Xavier"))
	require.Empty(t, second.Errors, second.Raw)
	assert.NotContains(t, second.Raw, "Nora", "the second insurer sees only what it supplied")
	assert.Equal(t, "Xavier", testenv.Get(second.Data, "createPolicy", "policy", "insured", 0, "givenName"))

	patientID := testenv.Get(second.Data, "createPolicy", "policy", "insured", 0, "id")
	node := env.Do(t, evil, `query($id: ID!) { node(id: $id) { ... on Patient { givenName email } } }`, map[string]any{"id": patientID})
	assert.NotContains(t, node.Raw, "Nora")

	dup := env.Do(t, evil, q, policy("EV-SHARED", "Yves")) // refused: same number
	assert.Equal(t, []string{"CONFLICT"}, dup.Codes())

	again := env.As(t, "insurer", `query($id: ID!) { node(id: $id) { ... on Patient { givenName email } } }`, map[string]any{"id": patientID})
	assert.Equal(t, "Nora", testenv.Get(again.Data, "node", "givenName"), "the first insurer's record is untouched")
	assert.Equal(t, "Nora@example.org", testenv.Get(again.Data, "node", "email"))
}
