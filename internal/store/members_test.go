package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// Two insurers naming one member id name two people: neither reads,
// creates or changes the other's record.
func TestEachInsurersMemberIDsAreItsOwnNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "namespace")
	north := domain.Principal{Subject: "u-n", Role: domain.RoleInsurer, Org: "ins-northstar"}
	maple := domain.Principal{Subject: "u-m", Role: domain.RoleInsurer, Org: "ins-maple"}
	dob := time.Date(1970, 5, 1, 0, 0, 0, 0, time.UTC)
	_, err := s.CreatePolicy(ctx, north, NewPolicy{PolicyNumber: "N-1", Product: domain.ProductCriticalIllness, EffectiveFrom: s.Now(),
		Benefit: domain.Benefit{Covered: true, CasesPerYear: 2}, Insured: []NewInsured{{MemberID: "m-1001", GivenName: "Alice", DateOfBirth: dob, Country: "CA"}}})
	require.NoError(t, err)
	mp, err := s.CreatePolicy(ctx, maple, NewPolicy{PolicyNumber: "M-1", Product: domain.ProductCriticalIllness, EffectiveFrom: s.Now(),
		Benefit: domain.Benefit{Covered: true, CasesPerYear: 2}, Insured: []NewInsured{{MemberID: "m-1001", GivenName: "Mallory", DateOfBirth: dob.AddDate(10, 0, 0), Country: "FR"}}})
	require.NoError(t, err)

	insured, err := s.PatientsOfPolicies(ctx, maple, []*domain.Policy{mp})
	require.NoError(t, err)
	require.Len(t, insured[0], 1)
	assert.Equal(t, "Mallory", insured[0][0].Identity.GivenName, "maple reads only what it recorded")
	assert.Equal(t, "FR", insured[0][0].Country)

	_, err = s.Patient(ctx, maple, domain.MemberKey("ins-northstar", "m-1001"))
	assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err), "northstar's member is out of maple's reach")

	member := domain.Principal{Subject: "m-1001", Role: domain.RoleMember, Org: "ins-northstar"}
	own, err := s.Patient(ctx, member, domain.MemberKey("ins-northstar", "m-1001"))
	require.NoError(t, err)
	assert.Equal(t, "Alice", own.Identity.GivenName, "the first insurer's record is untouched")
	assert.Equal(t, "CA", own.Country)
	pols, _, err := s.Policies(ctx, member, PolicyFilter{}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, pols, 1, "the member sees only its own insurer's policy")
	assert.Equal(t, "N-1", pols[0].PolicyNumber)

	noOrg := domain.Principal{Subject: "m-1001", Role: domain.RoleMember}
	pols, _, err = s.Policies(ctx, noOrg, PolicyFilter{}, Page{First: 10})
	require.NoError(t, err)
	assert.Empty(t, pols, "a member token without its insurer names nobody")
}

// Members stored before they belonged to an insurer are split per insurer,
// each keeping the identity it recorded; policies, cases and opinions follow.
// Running it twice changes nothing more.
func TestMigrateMembersSplitsLegacyMembersPerInsurer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "migrate")
	dob := time.Date(1960, 1, 2, 0, 0, 0, 0, time.UTC)
	_, err := s.c(colPatients).InsertOne(ctx, bson.D{
		{Key: "_id", Value: "m-7"}, {Key: "givenName", Value: "Primary"}, {Key: "dateOfBirth", Value: dob},
		{Key: "birthYear", Value: 1960}, {Key: "sex", Value: "FEMALE"}, {Key: "country", Value: "CA"},
		{Key: "insurerIds", Value: bson.A{"ins-a", "ins-b"}}, {Key: "primaryInsurer", Value: "ins-a"},
		{Key: "identityBy", Value: bson.D{{Key: "ins-b", Value: bson.D{{Key: "givenName", Value: "Copy"}, {Key: "dateOfBirth", Value: dob.AddDate(1, 0, 0)}}}}},
		{Key: "version", Value: 1},
	})
	require.NoError(t, err)
	for _, d := range []policyDoc{
		{ID: "pol-a", PolicyNumber: "A", InsurerID: "ins-a", InsuredIDs: []string{"m-7", "ins-a:m-8"}, Version: 1},
		{ID: "pol-b", PolicyNumber: "B", InsurerID: "ins-b", InsuredIDs: []string{"m-7"}, Version: 1},
	} {
		_, err := s.c(colPolicies).InsertOne(ctx, d)
		require.NoError(t, err)
	}
	_, err = s.c(colCases).InsertOne(ctx, caseDoc{ID: "case-b", Reference: "R-B", PatientID: "m-7", InsurerID: "ins-b", Version: 3})
	require.NoError(t, err)
	_, err = s.c(colOpinions).InsertOne(ctx, opinionDoc{ID: "op-case-b", CaseID: "case-b", PatientID: "m-7", InsurerID: "ins-b", Version: 1})
	require.NoError(t, err)

	require.NoError(t, s.MigrateMembers(ctx))
	require.NoError(t, s.MigrateMembers(ctx), "a second run is a no-op")

	a, err := findByID[patientDoc](ctx, s, colPatients, "ins-a:m-7", nil)
	require.NoError(t, err)
	assert.Equal(t, "Primary", a.GivenName.String())
	b, err := findByID[patientDoc](ctx, s, colPatients, "ins-b:m-7", nil)
	require.NoError(t, err)
	assert.Equal(t, "Copy", b.GivenName.String(), "the second insurer keeps what it recorded")
	assert.Equal(t, 1961, b.BirthYear)
	_, err = findByID[patientDoc](ctx, s, colPatients, "m-7", nil)
	assert.Error(t, err, "the shared record is gone")

	pa, err := findByID[policyDoc](ctx, s, colPolicies, "pol-a", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"ins-a:m-7", "ins-a:m-8"}, pa.InsuredIDs)
	pb, err := findByID[policyDoc](ctx, s, colPolicies, "pol-b", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"ins-b:m-7"}, pb.InsuredIDs)
	c, err := findByID[caseDoc](ctx, s, colCases, "case-b", nil)
	require.NoError(t, err)
	assert.Equal(t, "ins-b:m-7", c.PatientID)
	assert.Equal(t, 3, c.Version, "a rename is not a move of the case")
	o, err := findByID[opinionDoc](ctx, s, colOpinions, "op-case-b", nil)
	require.NoError(t, err)
	assert.Equal(t, "ins-b:m-7", o.PatientID)
}
