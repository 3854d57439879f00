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

// A move answers the case from the document its write returned, with no
// read back: exactly as a read of the case right after it answers, for
// every role (the fields its projection leaves out, a reviewer's clinical
// part only under RECORDS_RELEASE), and NOT_FOUND when the move took the
// case out of the caller's scope.
func TestAMoveAnswersTheCaseAsAReadAfterIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "answer")
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	member := domain.Principal{Subject: "m1", Role: domain.RoleMember, Org: "ins"}
	principals := map[string]domain.Principal{
		"coordinator": coordinator,
		"member":      member,
		"member whose token may write cases but not read them": {Subject: "m1", Role: domain.RoleMember, Org: "ins",
			TokenScopes: []domain.Scope{domain.ScopeCasesWrite}},
		"insurer":  {Subject: "i", Role: domain.RoleInsurer, Org: "ins"},
		"provider": {Subject: "p", Role: domain.RoleProvider, Org: "prov", SpecialistID: "sp1"},
	}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: member.MemberKey(), InsurerID: "ins", Specialty: "oncology",
			Diagnosis: domain.Diagnosis{Code: "C50.9", Description: "answer-marker diagnosis"}, ProposedTreatment: "answer-marker treatment",
			Questions: []string{"answer-marker question"}, Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
		require.NoError(t, err)
		sp, org := "sp1", "prov"
		_, err = s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{SpecialistID: &sp, SpecialistOrgID: &org}, nil
		})
		require.NoError(t, err)

		for _, released := range []bool{false, true} {
			at := time.Now().UTC().Truncate(time.Millisecond)
			_, err = s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
				return CaseUpdate{Consents: []domain.Consent{{Kind: domain.ConsentRecordsRelease, Active: released, GrantedAt: &at}}}, nil
			})
			require.NoError(t, err)
			for name, p := range principals {
				moved, err := s.MutateCase(ctx, p, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
					return CaseUpdate{Events: []domain.CaseEvent{{Type: "NOTE_ADDED", ActorRole: p.Role}}}, nil
				})
				require.NoError(t, err, name)
				read, err := s.Case(ctx, p, c.ID)
				require.NoError(t, err, name)
				assert.Equal(t, read, moved, "%s, records released %v", name, released)
			}
		}

		// The provider gives the case back: its move is written, and
		// answers NOT_FOUND as a read would.
		none := ""
		_, err = s.MutateCase(ctx, principals["provider"], c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{SpecialistID: &none, SpecialistOrgID: &none}, nil
		})
		assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err))
		after, err := s.Case(ctx, coordinator, c.ID)
		require.NoError(t, err)
		assert.Empty(t, after.SpecialistOrgID)
	})
}

func TestWithoutFieldsTakesOnlyTopLevelExclusions(t *testing.T) {
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: "x"}, {Key: "a", Value: 1}, {Key: "b", Value: bson.D{{Key: "c", Value: 2}}}, {Key: "d", Value: 3}})
	require.NoError(t, err)

	got, ok := withoutFields(doc, bson.D{{Key: "b", Value: 0}, {Key: "d", Value: 0}})
	require.True(t, ok)
	_, err = got.LookupErr("b")
	assert.Error(t, err, "b is left out")
	_, err = got.LookupErr("d")
	assert.Error(t, err, "d is left out")
	assert.Equal(t, "x", got.Lookup("_id").StringValue())
	assert.EqualValues(t, 1, got.Lookup("a").Int32())

	for name, proj := range map[string]bson.D{
		"an inclusion":  {{Key: "a", Value: 1}},
		"a dotted path": {{Key: "b.c", Value: 0}},
		"the _id":       {{Key: "_id", Value: 0}},
	} {
		_, ok := withoutFields(doc, proj)
		assert.False(t, ok, "%s is not taken", name)
	}
}
