package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

func rawCollection(t *testing.T, env *testenv.Env, name string) *mongo.Collection {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cl.Database(env.DB).Collection(name)
}

func factsOf(t *testing.T, env *testenv.Env, rawID string) bson.M {
	t.Helper()
	var m bson.M
	require.NoError(t, rawCollection(t, env, "outcome_facts").FindOne(context.Background(), bson.D{{Key: "_id", Value: rawID}}).Decode(&m))
	return m
}

func statsRowOf(t *testing.T, env *testenv.Env, rawID string, submitted time.Time) store.StatsRow {
	t.Helper()
	rows, err := env.Store.StatsRows(context.Background(), store.StatsFilter{From: submitted.Add(-time.Hour), To: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	for _, r := range rows {
		if r.SubmittedAt.Equal(submitted) {
			return r
		}
	}
	t.Fatalf("no statistics row for case %s", rawID)
	return store.StatsRow{}
}

// The facts statistics count are written by the workflow's own moves:
// submission, records complete, delivery with its assessment, outcome.
func TestOutcomeFactsFollowTheCase(t *testing.T) {
	env := testenv.Start(t)
	lc, _ := deliveredAfterCase(t, env)
	raw := apiRaw(t, lc.caseID)

	f := factsOf(t, env, raw)
	assert.Equal(t, "ins-northstar", f["insurerId"])
	assert.NotEmpty(t, f["specialty"])
	assert.NotNil(t, f["submittedAt"])
	assert.NotNil(t, f["recordsCompleteAt"], "written when the case entered TRIAGE")
	assert.NotNil(t, f["deliveredAt"], "written at delivery")
	assert.Equal(t, string(domain.DiagnosisModified), f["assessment"], "the delivered opinion's assessment")
	assert.NotContains(t, f, "satisfaction")

	doc := `mutation($in: RecordOutcomeInput!) { recordOutcome(input: $in) { case { status } } }`
	res := env.Do(t, lc.member, doc, map[string]any{"in": map[string]any{"caseId": lc.caseID, "decision": "FOLLOW_OPINION", "treatmentChanged": true, "satisfaction": 4}})
	require.Empty(t, res.Errors, res.Raw)
	f = factsOf(t, env, raw)
	assert.Equal(t, true, f["treatmentChanged"])
	assert.EqualValues(t, 4, f["satisfaction"])

	submitted := f["submittedAt"].(bson.DateTime).Time().UTC()
	row := statsRowOf(t, env, raw, submitted)
	assert.Equal(t, domain.DiagnosisModified, row.Assessment)
	require.NotNil(t, row.Satisfaction)
	assert.Equal(t, 4, *row.Satisfaction)
	require.NotNil(t, row.DeliveredAt)
	require.NotNil(t, row.RecordsCompleteAt)

	t.Run("a lost assessment is completed from the delivered opinion", func(t *testing.T) {
		_, err := rawCollection(t, env, "outcome_facts").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: raw}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "assessment", Value: ""}}}})
		require.NoError(t, err)
		assert.Equal(t, domain.DiagnosisModified, statsRowOf(t, env, raw, submitted).Assessment)
		assert.Equal(t, string(domain.DiagnosisModified), factsOf(t, env, raw)["assessment"], "and written back")
	})
}

// A database from before outcome facts gets them from its cases and
// opinions, the same as the workflow's writes would have left them.
func TestOutcomeFactsMigration(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	facts := rawCollection(t, env, "outcome_facts")
	read := func() []bson.M {
		cur, err := facts.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		require.NoError(t, err)
		var out []bson.M
		require.NoError(t, cur.All(ctx, &out))
		return out
	}
	seeded := read()
	require.NotEmpty(t, seeded)
	delivered := 0
	for _, f := range seeded {
		if f["assessment"] != nil {
			delivered++
		}
	}
	require.NotZero(t, delivered, "the seed has delivered opinions")

	_, err := facts.DeleteMany(ctx, bson.D{})
	require.NoError(t, err)
	require.NoError(t, env.Store.MigrateOutcomeFacts(ctx))
	assert.Equal(t, seeded, read())

	_, err = facts.DeleteMany(ctx, bson.D{})
	require.NoError(t, err)
	require.NoError(t, env.Store.MigrateOutcomeFacts(ctx))
	assert.Empty(t, read(), "it runs once")
}
