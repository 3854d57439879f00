package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// listedAsStored checks that the list document of id holds exactly the
// listed fields of its document, as stored now.
func listedAsStored(t *testing.T, ctx context.Context, s *Store, l listing, id, step string) {
	t.Helper()
	raw, err := s.c(l.coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(l.projection())).Raw()
	require.NoError(t, err, step)
	want, err := canonical(l.of(raw))
	require.NoError(t, err)
	got, err := listedRow(ctx, s, l, id)
	require.NoError(t, err, "%s: no list document", step)
	have, err := canonical(l.of(got))
	require.NoError(t, err)
	assert.Equal(t, bson.Raw(want).String(), bson.Raw(have).String(), step)
	els, err := got.Elements()
	require.NoError(t, err)
	assert.Len(t, els, len(l.of(got)), "%s: the list document holds only listed fields", step)
}

// listedRow is the list document of id, packed or not.
func listedRow(ctx context.Context, s *Store, l listing, id string) (bson.Raw, error) {
	if !s.packed() {
		return s.c(l.list).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	}
	rows, err := s.packRows(ctx, l)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if rowID(r) == id {
			return r, nil
		}
	}
	return nil, mongo.ErrNoDocuments
}

// dropListed removes the list document of id, packed or not.
func dropListed(t *testing.T, ctx context.Context, s *Store, l listing, id string) {
	t.Helper()
	if s.packed() {
		require.NoError(t, s.packDelete(ctx, l, id))
		return
	}
	_, err := s.c(l.list).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	require.NoError(t, err)
}

// caseAtHome stores a member in CA, a specialist of provider's in CA and
// the member's case (not yet assigned): where a move abroad starts.
func caseAtHome(t *testing.T, ctx context.Context, s *Store, serial bool, provider domain.Principal) (string, *domain.Specialist, *domain.Case) {
	t.Helper()
	member := fmt.Sprintf("ins:m-%v", serial)
	_, err := s.c(colPatients).InsertOne(ctx, bson.D{{Key: "_id", Value: member}, {Key: "country", Value: "CA"}})
	require.NoError(t, err)
	sp, err := s.UpsertSpecialist(ctx, provider, SpecialistInput{Name: "Dr A", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "CA", OrgID: provider.Org, OrgKind: domain.OrgProvider})
	require.NoError(t, err)
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: member, InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, PreferredLanguage: "fr", ActorRole: domain.RoleMember})
	require.NoError(t, err)
	return member, sp, c
}

// failListCopies makes every write of a case's list document fail: a stop
// between a case's write and its copy's.
func failListCopies(s *Store) {
	s.beforeWrite = func(coll, id string) error {
		if coll == colCaseList || coll == colListChunks && strings.HasPrefix(id, colCaseList) {
			return errors.New("stopped")
		}
		return nil
	}
}

// Every kind of write to a case, an opinion and a specialist leaves each
// list document equal to what its document holds: every field a list
// shows, after each write, on both write paths.
func TestEveryWriteLeavesTheListDocumentsAsTheirDocuments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "lists")
	coord := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	provider := domain.Principal{Subject: "p", Role: domain.RoleProvider, Org: "prov-x"}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		member, sp, c := caseAtHome(t, ctx, s, serial, provider)
		listedAsStored(t, ctx, s, specialistListing, sp.ID, "specialist created")
		listedAsStored(t, ctx, s, caseListing, c.ID, "case created")

		at := s.Now().Add(time.Hour).Truncate(time.Millisecond)
		st := func(x domain.CaseStatus) *domain.CaseStatus { return &x }
		str := func(x string) *string { return &x }
		ev := func(to domain.CaseStatus) []domain.CaseEvent {
			return []domain.CaseEvent{{Type: "STATUS_CHANGED", ToStatus: &to, ActorRole: domain.RoleCoordinator}}
		}
		abroad := false
		decision := domain.DecisionFollowOpinion
		steps := []struct {
			name string
			up   CaseUpdate
		}{
			{"records complete", CaseUpdate{Status: st(domain.StatusTriage), RecordsCompleteAt: &at, DueAt: &at, Events: ev(domain.StatusTriage)}},
			{"assigned", CaseUpdate{Status: st(domain.StatusAssigned), SpecialistID: &sp.ID, SpecialistOrgID: str("prov-x"), SpecialistAbroad: &abroad, PatientPseudonym: str("pz-1"), Events: ev(domain.StatusAssigned)}},
			{"consents", CaseUpdate{Consents: []domain.Consent{{Kind: domain.ConsentInternationalSharing, Active: true, GrantedAt: &at}, {Kind: domain.ConsentRecordsRelease, Active: true, GrantedAt: &at}}}},
			{"records, no event", CaseUpdate{Records: []domain.Record{{ID: "r-1", Title: "Biopsy", Kind: "PATHOLOGY", Document: &domain.Document{ContentType: "application/pdf", SizeBytes: 3, SHA256: "ab", UploadedAt: at, BlobKey: "b", KeyID: "k-1", WrappedKey: []byte{1, 2}}}}}},
			{"in review", CaseUpdate{Status: st(domain.StatusInReview), Events: ev(domain.StatusInReview)}},
			{"delivered", CaseUpdate{Status: st(domain.StatusOpinionDelivered), DeliveredAt: &at, Events: ev(domain.StatusOpinionDelivered)}},
			{"decision", CaseUpdate{Decision: &decision, DecisionNote: str("going ahead"), Events: []domain.CaseEvent{{Type: "DECISION_RECORDED", ActorRole: domain.RoleMember}}}},
			{"follow-up", CaseUpdate{FollowUps: []domain.FollowUp{{ID: "f-1", Question: "And after?", AskedAt: at, DueAt: at}}}},
			{"outcome", CaseUpdate{Outcome: &domain.Outcome{Decision: decision, Note: "fine", RecordedAt: at}, Events: []domain.CaseEvent{{Type: "OUTCOME_RECORDED", ActorRole: domain.RoleMember}}}},
			{"closed", CaseUpdate{Status: st(domain.StatusClosed), Events: ev(domain.StatusClosed)}},
		}
		for _, step := range steps {
			_, err := s.MutateCase(ctx, coord, c.ID, nil, func(*domain.Case) (CaseUpdate, error) { return step.up, nil })
			require.NoError(t, err, step.name)
			listedAsStored(t, ctx, s, caseListing, c.ID, step.name)
		}
		// The page shows what the case holds.
		page, _, err := s.Cases(ctx, coord, CaseFilter{PatientID: &member}, Page{First: 5}, CaseView{})
		require.NoError(t, err)
		require.Len(t, page, 1)
		full, err := s.Case(ctx, coord, c.ID)
		require.NoError(t, err)
		assert.Equal(t, full.Status, page[0].Status)
		assert.Equal(t, full.Version, page[0].Version)
		assert.Equal(t, full.Decision, page[0].Decision)
		assert.Equal(t, full.UpdatedAt, page[0].UpdatedAt)

		// A cancelled case.
		c2, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: member, InsurerID: "ins", Specialty: "cardiology", Urgency: domain.UrgencyUrgent, ActorRole: domain.RoleMember})
		require.NoError(t, err)
		_, err = s.MutateCase(ctx, coord, c2.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{Status: st(domain.StatusCancelled), CancelReason: str("no longer needed"), Events: ev(domain.StatusCancelled)}, nil
		})
		require.NoError(t, err)
		listedAsStored(t, ctx, s, caseListing, c2.ID, "cancelled")

		// A specialist's move abroad refreshes the case (a new version:
		// who may read it changes).
		_, err = s.UpsertSpecialist(ctx, provider, SpecialistInput{ID: sp.ID, Name: "Dr A", Specialties: []string{"oncology", "hematology"}, Languages: []string{"en", "de"}, Country: "DE", OrgID: "prov-x", OrgKind: domain.OrgProvider})
		require.NoError(t, err)
		listedAsStored(t, ctx, s, specialistListing, sp.ID, "specialist moved")
		listedAsStored(t, ctx, s, caseListing, c.ID, "specialist abroad")
		got, err := s.Case(ctx, coord, c.ID)
		require.NoError(t, err)
		require.True(t, got.SpecialistAbroad)

		// Key rotation re-wraps a record's key: a new version.
		n, err := s.RewrapDocumentKeys(ctx, func(kid string, w []byte) (string, []byte, bool, error) {
			return "k-2", append([]byte{9}, w...), kid != "k-2", nil
		})
		require.NoError(t, err)
		require.Positive(t, n)
		listedAsStored(t, ctx, s, caseListing, c.ID, "keys re-wrapped")

		// The opinion: drafted, drafted again, delivered, signed again.
		full, err = s.Case(ctx, coord, c.ID)
		require.NoError(t, err)
		op, err := s.SaveOpinionDraft(ctx, coord, full, domain.OpinionContent{DiagnosisAssessment: "CONFIRMED", MemberSummary: "one"})
		require.NoError(t, err)
		listedAsStored(t, ctx, s, opinionListing, op.ID, "opinion drafted")
		_, err = s.SaveOpinionDraft(ctx, coord, full, domain.OpinionContent{DiagnosisAssessment: "REVISED", MemberSummary: "two"})
		require.NoError(t, err)
		listedAsStored(t, ctx, s, opinionListing, op.ID, "opinion redrafted")
		sign := func(o *domain.Opinion) (*domain.Signature, error) {
			return &domain.Signature{JWS: "x.y.z", KeyID: "sig-1", SignedAt: at, Payload: "p"}, nil
		}
		_, err = s.FreezeOpinion(ctx, coord, full, at, sign)
		require.NoError(t, err)
		listedAsStored(t, ctx, s, opinionListing, op.ID, "opinion delivered")
		require.NoError(t, s.ResignOpinion(ctx, coord, full, sign))
		listedAsStored(t, ctx, s, opinionListing, op.ID, "opinion signed again")
		ops, _, err := s.Opinions(ctx, coord, OpinionFilter{CaseID: &c.ID}, Page{First: 5}, View{})
		require.NoError(t, err)
		require.Len(t, ops, 1)
		assert.Equal(t, domain.OpinionDelivered, ops[0].Status)
		assert.Nil(t, ops[0].Content, "a list-only page reads no content")
		ops, _, err = s.Opinions(ctx, coord, OpinionFilter{CaseID: &c.ID}, Page{First: 5}, View{Full: true})
		require.NoError(t, err)
		require.Len(t, ops, 1)
		require.NotNil(t, ops[0].Content)
		assert.Equal(t, "two", ops[0].Content.MemberSummary)

		// The specialist stops accepting cases.
		no := false
		_, err = s.UpsertSpecialist(ctx, provider, SpecialistInput{ID: sp.ID, Name: "Dr A.", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "DE", AcceptingCases: &no, OrgID: "prov-x", OrgKind: domain.OrgProvider})
		require.NoError(t, err)
		listedAsStored(t, ctx, s, specialistListing, sp.ID, "specialist not accepting")
	})
}

// Writers racing on one case, with copies of its list document made
// between their writes, leave the list document of the last write: an
// older copy never replaces a newer one. The embedded store's MongoDB path
// is not run here (FerretDB does not apply its filters atomically); on
// MongoDB it is the path.
func TestConcurrentWritersLeaveTheNewestListDocument(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "listrace")
	coord := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	decisions := []domain.Decision{domain.DecisionFollowOpinion, domain.DecisionKeepOriginalPlan, domain.DecisionUndecided}
	var wg sync.WaitGroup
	var landed atomic.Int64
	for w := range 6 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 5 {
				d := decisions[(w+i)%len(decisions)]
				_, err := s.MutateCase(ctx, coord, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
					return CaseUpdate{Decision: &d, Events: []domain.CaseEvent{{Type: "DECISION_RECORDED", ActorRole: domain.RoleMember}}}, nil
				})
				if err == nil {
					landed.Add(1)
				} else {
					// A writer that lost every retry gives up: nothing written.
					assert.Equal(t, domain.CodeConflict, domain.ErrorCode(err), err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 5 {
				assert.NoError(t, s.relist(ctx, caseListing, c.ID))
			}
		}()
	}
	wg.Wait()
	listedAsStored(t, ctx, s, caseListing, c.ID, "after the race")
	got, err := s.Case(ctx, coord, c.ID)
	require.NoError(t, err)
	assert.Equal(t, 1+int(landed.Load()), got.Version)
	assert.Greater(t, landed.Load(), int64(10))
}

// A stop between a case's write and its list document's leaves the outbox,
// and the sweeper that publishes it writes the list document; at start,
// RepairLists writes what is missing or differs and removes what has no
// document, and then finds nothing more to do.
func TestAStopBetweenTheTwoWritesIsRepaired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "listcrash")
	coord := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		member := fmt.Sprintf("ins:m-%v", serial)
		c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: member, InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
		require.NoError(t, err)

		failListCopies(s)
		triage := domain.StatusTriage
		_, err = s.MutateCase(ctx, coord, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{Status: &triage, Events: []domain.CaseEvent{{Type: "STATUS_CHANGED", ToStatus: &triage, ActorRole: domain.RoleCoordinator}}}, nil
		})
		s.beforeWrite = nil
		require.NoError(t, err, "the move is stored; its copies follow")
		page, _, err := s.Cases(ctx, coord, CaseFilter{PatientID: &member}, Page{First: 5}, CaseView{})
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.Equal(t, domain.StatusSubmitted, page[0].Status, "the list is one write behind")
		assert.True(t, s.PendingEvents())

		require.NoError(t, s.PublishPendingEvents(ctx))
		listedAsStored(t, ctx, s, caseListing, c.ID, "after the sweeper")
		page, _, err = s.Cases(ctx, coord, CaseFilter{PatientID: &member}, Page{First: 5}, CaseView{})
		require.NoError(t, err)
		assert.Equal(t, domain.StatusTriage, page[0].Status)
	})

	// At start: a list document lost, one that differs at the same version
	// (a migration renamed a member), one whose document is gone. (First
	// a repair that settles what the other write path left: on the
	// embedded store the two paths keep their lists apart, see packed.go.)
	_, err := s.RepairLists(ctx)
	require.NoError(t, err)
	var ids []string
	for i := range 3 {
		c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: fmt.Sprintf("ins:r-%d", i), InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
		require.NoError(t, err)
		ids = append(ids, c.ID)
	}
	dropListed(t, ctx, s, caseListing, ids[0])
	_, err = s.c(colCases).UpdateOne(ctx, bson.D{{Key: "_id", Value: ids[1]}}, bson.D{{Key: "$set", Value: bson.D{{Key: "patientId", Value: "ins2:r-1"}}}})
	require.NoError(t, err)
	_, err = s.c(colCases).DeleteOne(ctx, bson.D{{Key: "_id", Value: ids[2]}})
	require.NoError(t, err)
	n, err := s.RepairLists(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	listedAsStored(t, ctx, s, caseListing, ids[0], "lost list document")
	listedAsStored(t, ctx, s, caseListing, ids[1], "renamed member")
	_, err = listedRow(ctx, s, caseListing, ids[2])
	assert.Error(t, err, "the list document of a case gone is removed")
	n, err = s.RepairLists(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "a second start finds every list document as its document")
}

// Who may read a case is never decided on a list document that lags: a
// case whose assignment has not reached its list document yet (the copy
// failed, the sweeper has not run) still follows its specialist abroad, and
// the provider, without the member's consent to international sharing,
// reads it no more: not by id, not in a page, not in a count.
func TestAProviderLosesACaseAbroadEvenWhileItsListDocumentLags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "listabroad")
	coord := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	provider := domain.Principal{Subject: "p", Role: domain.RoleProvider, Org: "prov-x"}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		member, sp, c := caseAtHome(t, ctx, s, serial, provider)
		failListCopies(s)
		assigned, abroad, org := domain.StatusAssigned, false, "prov-x"
		_, err := s.MutateCase(ctx, coord, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{Status: &assigned, SpecialistID: &sp.ID, SpecialistOrgID: &org, SpecialistAbroad: &abroad,
				Events: []domain.CaseEvent{{Type: "STATUS_CHANGED", ToStatus: &assigned, ActorRole: domain.RoleCoordinator}}}, nil
		})
		s.beforeWrite = nil
		require.NoError(t, err)
		_, err = s.Case(ctx, provider, c.ID)
		require.NoError(t, err, "assigned to the provider's specialist at home: readable")

		_, err = s.UpsertSpecialist(ctx, provider, SpecialistInput{ID: sp.ID, Name: "Dr A", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "FR", OrgID: "prov-x", OrgKind: domain.OrgProvider})
		require.NoError(t, err)
		hidden := func(when string) {
			t.Helper()
			_, err := s.Case(ctx, provider, c.ID)
			assert.Equal(t, domain.CodeNotFound, domain.ErrorCode(err), "%s, abroad without consent: %v", when, err)
			page, _, err := s.Cases(ctx, provider, CaseFilter{PatientID: &member}, Page{First: 5}, CaseView{})
			require.NoError(t, err)
			assert.Empty(t, page, when)
			n, err := s.CountCases(ctx, provider, CaseFilter{PatientID: &member})
			require.NoError(t, err)
			assert.Zero(t, n, when)
		}
		hidden("before the sweeper")
		require.NoError(t, s.PublishPendingEvents(ctx))
		_, err = s.RepairLists(ctx)
		require.NoError(t, err)
		hidden("after the sweeper and the repair")
		listedAsStored(t, ctx, s, caseListing, c.ID, "after the sweeper and the repair")
	})
}
