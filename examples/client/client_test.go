package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/secondopinion/gateway/examples/client"
	"github.com/secondopinion/gateway/internal/testenv"
)

func ptr[T any](v T) *T { return &v }

// TestTypedClientAgainstTheGateway drives a case from request to assignment
// with the generated client over real HTTP, as a partner's code would.
func TestTypedClientAgainstTheGateway(t *testing.T) {
	env := testenv.Start(t)
	url := env.Serve(t) + "/graphql"
	member := client.New(url, env.Token(t, testenv.Persona("member")), nil)
	provider := client.New(url, env.Token(t, testenv.Persona("provider")), nil)
	coordinator := client.New(url, env.Token(t, testenv.Persona("coordinator")), nil)
	partner := client.New(url, env.Token(t, testenv.Persona("partner")), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	who, err := client.Viewer(ctx, member)
	require.NoError(t, err)
	assert.Equal(t, client.RoleMember, who.Viewer.Role)

	pols, err := client.MyPolicies(ctx, member, ptr(5))
	require.NoError(t, err)
	require.NotEmpty(t, pols.Policies.Edges)

	req, err := client.RequestSecondOpinion(ctx, member, client.RequestSecondOpinionInput{
		PolicyId:       pols.Policies.Edges[0].Node.Id,
		Specialty:      "oncology",
		Diagnosis:      client.DiagnosisInput{Code: "C50.9", Description: "Malignant neoplasm of breast"},
		Questions:      []string{"Is surgery needed?"},
		IdempotencyKey: ptr("client-example-1"),
	})
	require.NoError(t, err)
	c := req.RequestSecondOpinion.Case
	assert.Equal(t, client.CaseStatusSubmitted, c.Status)
	assert.False(t, c.DueAt.IsZero(), "DateTime decodes to time.Time")

	_, err = client.GrantConsent(ctx, member, c.Id, client.ConsentKindRecordsRelease)
	require.NoError(t, err)
	rec, err := client.AddMedicalRecord(ctx, member, client.AddMedicalRecordInput{CaseId: c.Id, Title: "Biopsy", Kind: client.RecordKindPathology})
	require.NoError(t, err)
	assert.Equal(t, client.CaseStatusTriage, rec.AddMedicalRecord.Case.Status)

	sp, err := client.RegisterSpecialist(ctx, provider, client.UpsertSpecialistInput{
		Name: "Dr. Client Example", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "CA", AcceptingCases: ptr(true),
	})
	require.NoError(t, err)
	as2, err := client.AssignSpecialist(ctx, coordinator, c.Id, sp.UpsertSpecialist.Specialist.Id, nil)
	require.NoError(t, err)
	assert.Equal(t, client.CaseStatusAssigned, as2.AssignSpecialist.Case.Status)

	started, err := client.StartReview(ctx, provider, c.Id, ptr(as2.AssignSpecialist.Case.Version))
	require.NoError(t, err)
	assert.Equal(t, client.CaseStatusInReview, started.StartReview.Case.Status)

	// A partner sees only referred cases; this one went to a domestic provider.
	ref, err := client.ReferredCases(ctx, partner, ptr(100))
	require.NoError(t, err)
	for _, e := range ref.Cases.Edges {
		assert.NotEqual(t, c.Id, e.Node.Id)
	}

	// Errors arrive as a gqlerror.List carrying the contract's codes.
	_, err = client.CaseAudit(ctx, member, c.Id, nil)
	var list gqlerror.List
	require.True(t, errors.As(err, &list), "error: %v", err)
	assert.Equal(t, "FORBIDDEN", list[0].Extensions["code"])
}
