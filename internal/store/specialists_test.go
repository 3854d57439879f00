package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/internal/domain"
)

// A specialist's profile write refreshes its cases' specialistAbroad only
// when the country changes (on the embedded store that read scans every
// case: it made each profile write cost the whole collection), or when an
// earlier change's refresh did not finish.
func TestAProfileWriteRefreshesTheCasesOnlyWhenTheCountryMoves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var cmds []string
	var counting atomic.Bool
	s := openCAS(t, ctx, "abroad", &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if counting.Load() {
			mu.Lock()
			cmds = append(cmds, e.CommandName+":"+collectionOf(e))
			mu.Unlock()
		}
	}})
	provider := domain.Principal{Subject: "p", Role: domain.RoleProvider, Org: "prov-x"}
	_, err := s.c(colPatients).InsertOne(ctx, bson.D{{Key: "_id", Value: "ins:m-1"}, {Key: "country", Value: "CA"}})
	require.NoError(t, err)
	sp, err := s.UpsertSpecialist(ctx, provider, SpecialistInput{Name: "Dr A", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "CA", OrgID: "prov-x", OrgKind: domain.OrgProvider})
	require.NoError(t, err)
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	_, err = s.c(colCases).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "specialistId", Value: sp.ID}}}})
	require.NoError(t, err)
	require.NoError(t, s.relist(ctx, caseListing, c.ID)) // as the store's own writes do
	abroad := func() bool {
		var d caseDoc
		require.NoError(t, s.c(colCases).FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Decode(&d))
		return d.SpecialistAbroad
	}
	write := func(country string) string {
		mu.Lock()
		cmds = nil
		mu.Unlock()
		counting.Store(true)
		_, err := s.UpsertSpecialist(ctx, provider, SpecialistInput{ID: sp.ID, Name: "Dr A", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: country, OrgID: "prov-x", OrgKind: domain.OrgProvider})
		counting.Store(false)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(cmds, " ")
	}

	assert.NotContains(t, write("CA"), ":cases", "the same country: no case is read")
	assert.False(t, abroad())
	assert.Contains(t, write("FR"), "find:cases", "a new country refreshes the cases")
	assert.True(t, abroad(), "the case follows the specialist abroad")

	// A refresh that stopped halfway leaves the mark; the next write,
	// whatever its country, finishes it.
	_, err = s.c(colCases).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "specialistAbroad", Value: false}}}})
	require.NoError(t, err)
	require.NoError(t, s.relist(ctx, caseListing, c.ID))
	var d specialistDoc
	require.NoError(t, s.c(colSpecialists).FindOne(ctx, bson.D{{Key: "_id", Value: sp.ID}}).Decode(&d))
	_, err = s.c(colSpecialists).UpdateOne(ctx, bson.D{{Key: "_id", Value: sp.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "abroadPending", Value: d.Version}}}})
	require.NoError(t, err)
	assert.Contains(t, write("FR"), "find:cases")
	assert.True(t, abroad())
	require.NoError(t, s.c(colSpecialists).FindOne(ctx, bson.D{{Key: "_id", Value: sp.ID}}).Decode(&d))
	assert.Zero(t, d.AbroadPending, "the mark is cleared once the refresh is done")
	assert.NotContains(t, write("FR"), ":cases")
}

// Two changes of country in flight: the older refresh finishes last, and
// the cases must still follow the newer country (review: a stale refresh
// had been left in place with no mark to repair it).
func TestTheCasesFollowTheLastOfTwoChangesOfCountry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var s *Store
	var once sync.Once
	var inject atomic.Bool
	s = openCAS(t, ctx, "abroadrace", &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if !inject.Load() || e.CommandName != "find" || collectionOf(e) != colCases {
			return
		}
		// While the first change (to FR) refreshes its cases, a second
		// change (back to CA) lands on the profile.
		once.Do(func() {
			var d specialistDoc
			require.NoError(t, s.c(colSpecialists).FindOne(ctx, bson.D{{Key: "_id", Value: "sp-race"}}).Decode(&d))
			_, err := s.c(colSpecialists).UpdateOne(ctx, bson.D{{Key: "_id", Value: "sp-race"}}, bson.D{{Key: "$set", Value: bson.D{
				{Key: "country", Value: "CA"}, {Key: "version", Value: d.Version + 1}, {Key: "abroadPending", Value: d.Version + 1}}}})
			require.NoError(t, err)
		})
	}})
	provider := domain.Principal{Subject: "p", Role: domain.RoleProvider, Org: "prov-x"}
	_, err := s.c(colPatients).InsertOne(ctx, bson.D{{Key: "_id", Value: "ins:m-1"}, {Key: "country", Value: "CA"}})
	require.NoError(t, err)
	_, err = s.c(colSpecialists).InsertOne(ctx, specialistDoc{ID: "sp-race", Name: "Dr B", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "CA", OrgID: "prov-x", OrgKind: string(domain.OrgProvider), Version: 1})
	require.NoError(t, err)
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	_, err = s.c(colCases).UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "specialistId", Value: "sp-race"}}}})
	require.NoError(t, err)
	require.NoError(t, s.relist(ctx, caseListing, c.ID))

	inject.Store(true)
	_, err = s.UpsertSpecialist(ctx, provider, SpecialistInput{ID: "sp-race", Name: "Dr B", Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "FR", OrgID: "prov-x", OrgKind: domain.OrgProvider})
	inject.Store(false)
	require.NoError(t, err)

	var d caseDoc
	require.NoError(t, s.c(colCases).FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Decode(&d))
	assert.False(t, d.SpecialistAbroad, "the profile says CA, as the patient: the case is not abroad")
	var sp specialistDoc
	require.NoError(t, s.c(colSpecialists).FindOne(ctx, bson.D{{Key: "_id", Value: "sp-race"}}).Decode(&sp))
	assert.Equal(t, "CA", sp.Country)
	assert.Zero(t, sp.AbroadPending)
}
