package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

const integrityPrunedDoc = `query($from: DateTime!, $to: DateTime!) { auditIntegrity(from: $from, to: $to) { ok chains events prunedChains breaks { chain position reason } } }`

// oldDay writes n chained audit events on a past UTC day, as a gateway
// running that day did, and returns the day's chain.
func oldDay(t *testing.T, env *testenv.Env, day string, n int) string {
	t.Helper()
	at, err := time.Parse(time.DateOnly, day)
	require.NoError(t, err)
	at = at.Add(12 * time.Hour)
	ch := audit.NewChainer(func() time.Time { return at })
	events := make([]domain.AuditEvent, n)
	for i := range events {
		events[i] = domain.AuditEvent{At: at.Add(time.Duration(i) * time.Second), Subject: "prov-1", Role: domain.RoleProvider, Org: "prov-toronto",
			Operation: "CaseDetail", ResourceType: "Case", ResourceID: fmt.Sprintf("case-%d", i), FieldGroup: "case.clinical",
			RequestID: fmt.Sprintf("req-%s-%d", day, i), Outcome: "ALLOWED"}
	}
	ch.Link(events)
	require.NoError(t, env.Store.AppendAudit(context.Background(), events))
	return events[0].Chain
}

func rawDB(t *testing.T, env *testenv.Env) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(env.DB)
}

func count(t *testing.T, db *mongo.Database, coll string, filter bson.D) int64 {
	t.Helper()
	n, err := db.Collection(coll).CountDocuments(context.Background(), filter)
	require.NoError(t, err)
	return n
}

// chainRows reads a chain's events, by position, and its head, as they are
// stored.
func chainRows(t *testing.T, db *mongo.Database, chain string) ([]bson.M, bson.M) {
	t.Helper()
	ctx := context.Background()
	var rows []bson.M
	cur, err := db.Collection("audit_events").Find(ctx, bson.D{{Key: "chain", Value: chain}}, options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	require.NoError(t, err)
	require.NoError(t, cur.All(ctx, &rows))
	var head bson.M
	require.NoError(t, db.Collection("audit_chains").FindOne(ctx, bson.D{{Key: "_id", Value: chain}}).Decode(&head))
	return rows, head
}

func integrity(t *testing.T, env *testenv.Env, from, to string) map[string]any {
	t.Helper()
	res := env.As(t, "coordinator", integrityPrunedDoc, map[string]any{"from": from + "T00:00:00Z", "to": to + "T00:00:00Z"})
	require.Empty(t, res.Errors, res.Raw)
	return testenv.Get(res.Data, "auditIntegrity").(map[string]any)
}

// Retention drops whole days older than six years, and only days that
// verify: each leaves a checkpoint signed by the service's key, and the
// period still verifies afterwards (its pruned chains vouched for by their
// checkpoints). A day with an edited event is kept as evidence. The days
// within retention are untouched.
func TestAuditRetentionPrunesOnlyWholeVerifiedDays(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	db := rawDB(t, env)
	chainA := oldDay(t, env, "2019-03-01", 3)
	chainB := oldDay(t, env, "2019-03-02", 4)
	chainC := oldDay(t, env, "2019-03-03", 3)
	_, err := db.Collection("audit_events").UpdateOne(ctx, bson.D{{Key: "chain", Value: chainC}, {Key: "seq", Value: 2}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "operation", Value: "Edited"}}}})
	require.NoError(t, err)
	// Today's reads, within retention.
	res := env.As(t, "provider", `{ cases(first: 3) { edges { node { diagnosis { code } } } } }`, nil)
	require.Empty(t, res.Errors, res.Raw)
	today := env.Now.UTC().Format(time.DateOnly)
	todayEvents := count(t, db, "audit_events", bson.D{{Key: "chain", Value: bson.D{{Key: "$regex", Value: "/" + today + "/"}}}})
	require.Positive(t, todayEvents)

	before := integrity(t, env, "2019-03-01", "2019-03-02")
	assert.Equal(t, true, before["ok"])
	assert.EqualValues(t, 2, before["chains"])
	assert.EqualValues(t, 0, before["prunedChains"])

	retention := audit.MinRetentionDays * 24 * time.Hour
	_, err = env.Workflow.PruneAudit(ctx, time.Now(), 365*24*time.Hour)
	require.Error(t, err, "a retention under six years is refused")

	// As if it were six years and a week after those days.
	now := time.Date(2019, 3, 10, 3, 0, 0, 0, time.UTC).Add(retention)
	rep, err := env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	assert.Equal(t, []string{"2019-03-01", "2019-03-02"}, rep.Pruned)
	assert.EqualValues(t, 7, rep.Events)
	require.Contains(t, rep.Kept, "2019-03-03")
	assert.Equal(t, audit.Break{Chain: chainC, Position: 2, EventID: rep.Kept["2019-03-03"].EventID, Reason: audit.BreakEdited}, rep.Kept["2019-03-03"])

	for _, chain := range []string{chainA, chainB} {
		assert.Zero(t, count(t, db, "audit_events", bson.D{{Key: "chain", Value: chain}}), chain)
		assert.Zero(t, count(t, db, "audit_chains", bson.D{{Key: "_id", Value: chain}}), chain)
	}
	assert.EqualValues(t, 3, count(t, db, "audit_events", bson.D{{Key: "chain", Value: chainC}}), "the edited day is kept whole")
	assert.EqualValues(t, 2, count(t, db, "audit_checkpoints", bson.D{}))
	assert.Equal(t, todayEvents, count(t, db, "audit_events", bson.D{{Key: "chain", Value: bson.D{{Key: "$regex", Value: "/" + today + "/"}}}}),
		"days within retention are untouched")

	after := integrity(t, env, "2019-03-01", "2019-03-02")
	assert.Equal(t, true, after["ok"], after)
	assert.EqualValues(t, 0, after["chains"])
	assert.EqualValues(t, 2, after["prunedChains"])
	withC := integrity(t, env, "2019-03-01", "2019-03-03")
	assert.Equal(t, false, withC["ok"])
	assert.Equal(t, []any{map[string]any{"chain": chainC, "position": float64(2), "reason": "EDITED"}}, withC["breaks"])
	assert.Equal(t, true, integrity(t, env, today, today)["ok"])

	// Run again: nothing more to do, the edited day still kept.
	rep, err = env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	assert.Empty(t, rep.Pruned)
	assert.Contains(t, rep.Kept, "2019-03-03")
}

// A checkpoint edited in the database no longer verifies: the period shows
// a CHECKPOINT break, and retention deletes nothing on its word. A prune cut
// short (rows left after the checkpoint was stored) is finished by the
// next run; the rows left meanwhile are not vouched for (PRUNED_LEFTOVER).
// A chain head filed under an old day it is not of keeps that day, and is
// never deleted with it.
func TestAuditCheckpointsAreTrustedOnlySigned(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	db := rawDB(t, env)
	chain := oldDay(t, env, "2019-05-01", 3)
	stored, head := chainRows(t, db, chain)
	rows := make([]any, len(stored))
	for i, r := range stored {
		rows[i] = r
	}

	retention := audit.MinRetentionDays * 24 * time.Hour
	now := time.Date(2019, 5, 10, 0, 0, 0, 0, time.UTC).Add(retention)
	rep, err := env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	require.Equal(t, []string{"2019-05-01"}, rep.Pruned)

	t.Run("a prune cut short is finished", func(t *testing.T) {
		_, err := db.Collection("audit_events").InsertMany(ctx, rows[1:])
		require.NoError(t, err)
		_, err = db.Collection("audit_chains").InsertOne(ctx, head)
		require.NoError(t, err)
		got := integrity(t, env, "2019-05-01", "2019-05-01")
		assert.Equal(t, false, got["ok"], "rows in a pruned chain are not vouched for")
		assert.EqualValues(t, 1, got["prunedChains"])
		assert.Equal(t, "PRUNED_LEFTOVER", testenv.Get(got, "breaks", 0, "reason"))
		assert.Equal(t, chain, testenv.Get(got, "breaks", 0, "chain"))

		rep, err := env.Workflow.PruneAudit(ctx, now, retention)
		require.NoError(t, err)
		assert.Equal(t, []string{"2019-05-01"}, rep.Pruned)
		assert.EqualValues(t, 2, rep.Events)
		assert.Zero(t, count(t, db, "audit_events", bson.D{{Key: "chain", Value: chain}}))
		assert.Zero(t, count(t, db, "audit_chains", bson.D{{Key: "_id", Value: chain}}))
		assert.Equal(t, true, integrity(t, env, "2019-05-01", "2019-05-01")["ok"])
	})

	t.Run("an edited checkpoint is a break and deletes nothing", func(t *testing.T) {
		_, err := db.Collection("audit_checkpoints").UpdateOne(ctx, bson.D{{Key: "_id", Value: "2019-05-01"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "events", Value: 2}}}})
		require.NoError(t, err)
		got := integrity(t, env, "2019-05-01", "2019-05-01")
		assert.Equal(t, false, got["ok"])
		assert.EqualValues(t, 0, got["prunedChains"])
		assert.Equal(t, []any{map[string]any{"chain": "checkpoint/2019-05-01", "position": float64(0), "reason": "CHECKPOINT"}}, got["breaks"])

		_, err = db.Collection("audit_events").InsertMany(ctx, rows)
		require.NoError(t, err)
		_, err = db.Collection("audit_chains").InsertOne(ctx, head)
		require.NoError(t, err)
		later := oldDay(t, env, "2019-06-01", 2)
		rep, err := env.Workflow.PruneAudit(ctx, now.AddDate(0, 1, 0), retention)
		require.NoError(t, err)
		assert.Equal(t, audit.Break{Chain: "checkpoint/2019-05-01", Reason: audit.BreakCheckpoint}, rep.Kept["2019-05-01"])
		assert.EqualValues(t, 3, count(t, db, "audit_events", bson.D{{Key: "chain", Value: chain}}), "nothing deleted on an unsigned word")
		assert.Equal(t, []string{"2019-06-01"}, rep.Pruned, "the days after it are pruned still")
		assert.Zero(t, count(t, db, "audit_events", bson.D{{Key: "chain", Value: later}}))
	})

	t.Run("a head filed under a day not its chain's", func(t *testing.T) {
		res := env.As(t, "provider", `{ cases(first: 2) { edges { node { diagnosis { code } } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		today := env.Now.UTC().Format(time.DateOnly)
		var todays bson.M
		require.NoError(t, db.Collection("audit_chains").FindOne(ctx, bson.D{{Key: "day", Value: today}}).Decode(&todays))
		_, err := db.Collection("audit_chains").UpdateOne(ctx, bson.D{{Key: "_id", Value: todays["_id"]}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "day", Value: "2019-07-01"}}}})
		require.NoError(t, err)
		before := count(t, db, "audit_events", bson.D{{Key: "chain", Value: todays["_id"]}})
		require.Positive(t, before)
		rep, err := env.Workflow.PruneAudit(ctx, now.AddDate(0, 2, 0), retention)
		require.NoError(t, err)
		assert.Equal(t, audit.BreakHead, rep.Kept["2019-07-01"].Reason)
		assert.Equal(t, todays["_id"], rep.Kept["2019-07-01"].Chain)
		assert.Equal(t, before, count(t, db, "audit_events", bson.D{{Key: "chain", Value: todays["_id"]}}), "today's rows stay")
		assert.EqualValues(t, 1, count(t, db, "audit_chains", bson.D{{Key: "_id", Value: todays["_id"]}}))
	})
}

// Rows put into a day after it was pruned are never vouched for: a row
// alone is a PRUNED_LEFTOVER break; with a head, retention finds the day
// again and keeps it, the rows staying as evidence, since they are not
// what its checkpoint says was there. A head of today's chain filed under
// the pruned day keeps it too, and deletion never reaches a chain of
// another day.
func TestRowsPutIntoAPrunedDayAreKept(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	db := rawDB(t, env)
	chain := oldDay(t, env, "2019-08-01", 3)
	rows, head := chainRows(t, db, chain)
	retention := audit.MinRetentionDays * 24 * time.Hour
	now := time.Date(2019, 8, 10, 0, 0, 0, 0, time.UTC).Add(retention)
	rep, err := env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	require.Equal(t, []string{"2019-08-01"}, rep.Pruned)

	forged := rows[1]
	forged["operation"] = "Forged"
	_, err = db.Collection("audit_events").InsertOne(ctx, forged)
	require.NoError(t, err)
	got := integrity(t, env, "2019-08-01", "2019-08-01")
	assert.Equal(t, false, got["ok"])
	assert.Equal(t, "PRUNED_LEFTOVER", testenv.Get(got, "breaks", 0, "reason"))

	_, err = db.Collection("audit_chains").InsertOne(ctx, head)
	require.NoError(t, err)
	rep, err = env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	assert.Empty(t, rep.Pruned)
	assert.Equal(t, audit.BreakEdited, rep.Kept["2019-08-01"].Reason, rep.Why["2019-08-01"])
	assert.EqualValues(t, 2, rep.Kept["2019-08-01"].Position)
	assert.EqualValues(t, 1, count(t, db, "audit_events", bson.D{{Key: "chain", Value: chain}}), "the forged row stays, as evidence")

	// Today's chain head filed under the pruned day.
	_, err = db.Collection("audit_events").DeleteMany(ctx, bson.D{{Key: "chain", Value: chain}})
	require.NoError(t, err)
	res := env.As(t, "provider", `{ cases(first: 2) { edges { node { diagnosis { code } } } } }`, nil)
	require.Empty(t, res.Errors, res.Raw)
	var todays bson.M
	require.NoError(t, db.Collection("audit_chains").FindOne(ctx, bson.D{{Key: "day", Value: env.Now.UTC().Format(time.DateOnly)}}).Decode(&todays))
	_, err = db.Collection("audit_chains").UpdateOne(ctx, bson.D{{Key: "_id", Value: todays["_id"]}}, bson.D{{Key: "$set", Value: bson.D{{Key: "day", Value: "2019-08-01"}}}})
	require.NoError(t, err)
	todayRows := count(t, db, "audit_events", bson.D{{Key: "chain", Value: todays["_id"]}})
	rep, err = env.Workflow.PruneAudit(ctx, now, retention)
	require.NoError(t, err)
	assert.Empty(t, rep.Pruned)
	assert.Equal(t, todays["_id"], rep.Kept["2019-08-01"].Chain)
	assert.Equal(t, audit.BreakHead, rep.Kept["2019-08-01"].Reason)
	assert.Equal(t, todayRows, count(t, db, "audit_events", bson.D{{Key: "chain", Value: todays["_id"]}}))

	// Deletion, even asked for another day's chain, keeps to its own day.
	n, err := env.Store.DeleteAuditChains(ctx, store.AuditCheckpoint{Day: "2019-08-01", Chains: []store.ChainHead{{Chain: todays["_id"].(string)}}})
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, todayRows, count(t, db, "audit_events", bson.D{{Key: "chain", Value: todays["_id"]}}))
	assert.EqualValues(t, 1, count(t, db, "audit_chains", bson.D{{Key: "_id", Value: todays["_id"]}}))
}
