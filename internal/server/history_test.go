package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
)

// The attack of issue 14, finding 9: a member flips a consent 200 times.
// Every flip is a real change with its event; the case document keeps the
// latest 50, the event log keeps all 201 (with the submission), paged.
func TestACaseDocumentKeepsItsLatestEventsAndTheLogKeepsAll(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	const flips = 200
	for i := range flips {
		op := "grantConsent"
		if i%2 == 1 {
			op = "revokeConsent"
		}
		res := lc.consent(t, op, "INTERNATIONAL_SHARING")
		require.Empty(t, res.Errors, "flip %d: %s", i, res.Raw)
	}
	const all = flips + 1

	t.Run("the case document embeds the latest 50 events and counts all", func(t *testing.T) {
		var doc struct {
			Events     []bson.Raw `bson:"events"`
			EventCount int        `bson:"eventCount"`
		}
		require.NoError(t, rawCases(t, env).FindOne(context.Background(), bson.D{{Key: "_id", Value: rawID(t, lc.caseID)}}).Decode(&doc))
		assert.Len(t, doc.Events, domain.MaxEmbeddedEvents)
		assert.Equal(t, all, doc.EventCount)
	})
	t.Run("the event log keeps every event", func(t *testing.T) {
		n, err := rawCases(t, env).Database().Collection("case_events").CountDocuments(context.Background(), bson.D{{Key: "caseId", Value: rawID(t, lc.caseID)}})
		require.NoError(t, err)
		assert.EqualValues(t, all, n)
	})

	const doc = `query($id: ID!, $after: String) { case(id: $id) { events { type }
	  history(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { type actorRole } } } } }`
	t.Run("Case.events shows the latest 50, the last flip last", func(t *testing.T) {
		res := env.Do(t, lc.member, doc, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		events := testenv.Get(res.Data, "case", "events").([]any)
		require.Len(t, events, domain.MaxEmbeddedEvents)
		assert.Equal(t, "CONSENT_REVOKED:INTERNATIONAL_SHARING", testenv.Get(events[len(events)-1], "type"))
	})
	t.Run("Case.history pages through all of them, oldest first", func(t *testing.T) {
		var types []string
		var after any
		for page := 0; page < 5; page++ {
			res := env.Do(t, lc.member, doc, map[string]any{"id": lc.caseID, "after": after})
			require.Empty(t, res.Errors, res.Raw)
			h := testenv.Get(res.Data, "case", "history")
			assert.EqualValues(t, all, testenv.Get(h, "totalCount"))
			for _, e := range testenv.Get(h, "edges").([]any) {
				types = append(types, testenv.Get(e, "node", "type").(string))
			}
			if testenv.Get(h, "pageInfo", "hasNextPage") != true {
				break
			}
			after = testenv.Get(h, "pageInfo", "endCursor")
		}
		require.Len(t, types, all)
		assert.Equal(t, "SUBMITTED", types[0])
		for i, ty := range types[1:] {
			want := "CONSENT_GRANTED:INTERNATIONAL_SHARING"
			if i%2 == 1 {
				want = "CONSENT_REVOKED:INTERNATIONAL_SHARING"
			}
			require.Equal(t, want, ty, "event %d", i+1)
		}
	})
	t.Run("another member cannot page the history", func(t *testing.T) {
		other := newLifecycle(t, env, true, 3)
		res := env.Do(t, other.member, doc, map[string]any{"id": lc.caseID})
		assert.Nil(t, testenv.Get(res.Data, "case"))
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
}
