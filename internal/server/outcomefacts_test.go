package server_test

import (
	"context"
	"sort"
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

func statsRowOf(t *testing.T, env *testenv.Env, submitted time.Time) store.StatsRow {
	t.Helper()
	rows, err := env.Store.StatsRows(context.Background(), store.StatsFilter{From: submitted.Add(-time.Hour), To: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	for _, r := range rows {
		if r.SubmittedAt.Equal(submitted) {
			return r
		}
	}
	t.Fatalf("no statistics row for the case submitted at %s", submitted)
	return store.StatsRow{}
}

// The facts statistics count are written by the workflow's own moves:
// submission, records complete, delivery with its assessment, outcome.
func TestOutcomeFactsFollowTheCase(t *testing.T) {
	env := testenv.Start(t)
	lc, _ := deliveredAfterCase(t, env)
	res := env.As(t, "coordinator", `query($id: ID!) { case(id: $id) { submittedAt recordsCompleteAt deliveredAt } }`, map[string]any{"id": lc.caseID})
	require.Empty(t, res.Errors, res.Raw)
	submitted := apiTime(t, testenv.Get(res.Data, "case", "submittedAt")).Truncate(time.Millisecond)

	row := statsRowOf(t, env, submitted)
	assert.Equal(t, "ins-northstar", row.InsurerID)
	assert.Equal(t, "oncology", row.Specialty)
	require.NotNil(t, row.RecordsCompleteAt, "written when the case entered TRIAGE")
	assert.Equal(t, apiTime(t, testenv.Get(res.Data, "case", "recordsCompleteAt")).Truncate(time.Millisecond), *row.RecordsCompleteAt)
	require.NotNil(t, row.DeliveredAt, "written at delivery")
	assert.Equal(t, apiTime(t, testenv.Get(res.Data, "case", "deliveredAt")).Truncate(time.Millisecond), *row.DeliveredAt)
	assert.Equal(t, domain.DiagnosisModified, row.Assessment, "the delivered opinion's assessment")
	assert.Nil(t, row.Satisfaction)

	doc := `mutation($in: RecordOutcomeInput!) { recordOutcome(input: $in) { case { status } } }`
	res = env.Do(t, lc.member, doc, map[string]any{"in": map[string]any{"caseId": lc.caseID, "decision": "FOLLOW_OPINION", "treatmentChanged": true, "satisfaction": 4}})
	require.Empty(t, res.Errors, res.Raw)
	row = statsRowOf(t, env, submitted)
	require.NotNil(t, row.Satisfaction)
	assert.Equal(t, 4, *row.Satisfaction)
	require.NotNil(t, row.TreatmentChanged)
	assert.True(t, *row.TreatmentChanged)
	assert.Equal(t, domain.DiagnosisModified, row.Assessment)

	t.Run("a lost assessment is completed from the delivered opinion", func(t *testing.T) {
		raw := apiRaw(t, lc.caseID)
		month := row.DeliveredAt.Format("2006-01")
		facts := rawCollection(t, env, "outcome_facts")
		_, err := facts.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: month}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "assess." + raw, Value: ""}}}})
		require.NoError(t, err)
		assert.Equal(t, domain.DiagnosisModified, statsRowOf(t, env, submitted).Assessment)
		var m struct {
			Assess map[string]string `bson:"assess"`
		}
		require.NoError(t, facts.FindOne(context.Background(), bson.D{{Key: "_id", Value: month}}).Decode(&m))
		assert.Equal(t, string(domain.DiagnosisModified), m.Assess[raw], "and written back")
	})
}

// A database from before outcome facts gets them from its cases and
// opinions, the same as the workflow's writes would have left them.
func TestOutcomeFactsMigration(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	facts := rawCollection(t, env, "outcome_facts")
	read := func() []store.StatsRow {
		rows, err := env.Store.StatsRows(ctx, store.StatsFilter{From: env.Now.AddDate(-4, 0, 0), To: env.Now.AddDate(0, 1, 0)})
		require.NoError(t, err)
		sort.Slice(rows, func(i, j int) bool { return rows[i].SubmittedAt.Before(rows[j].SubmittedAt) })
		return rows
	}
	seeded := read()
	require.NotEmpty(t, seeded)
	delivered := 0
	for _, r := range seeded {
		if r.Assessment != "" {
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
