package embedded_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/embedded"
)

func TestStartServesTheWireProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Stop()

	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	require.NoError(t, err)
	defer func() { _ = c.Disconnect(ctx) }()
	coll := c.Database("t").Collection("c")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "a", "n": 1})
	require.NoError(t, err)
	var got struct {
		N int `bson:"n"`
	}
	require.NoError(t, coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got))
	assert.Equal(t, 1, got.N)
}

// TestIndexIDsServesReadsByIDFromAnIndex checks the plan SQLite picks for the
// exact query FerretDB sends for {_id: X}, and that the extra index changes
// nothing FerretDB decides: reads, duplicate detection, dropping.
func TestIndexIDsServesReadsByIDFromAnIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	s, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
	require.NoError(t, err)
	defer s.Stop()
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	require.NoError(t, err)
	defer func() { _ = c.Disconnect(ctx) }()
	coll := c.Database("ix").Collection("cases")
	docs := make([]any, 0, 300)
	for i := range 300 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("c-%03d", i)}, {Key: "n", Value: i}})
	}
	_, err = coll.InsertMany(ctx, docs)
	require.NoError(t, err)

	plan := func() string {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ix.sqlite")+"?mode=ro")
		require.NoError(t, err)
		defer db.Close()
		var table string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = 'cases'`).Scan(&table))
		// The statement FerretDB v1 builds for a filter that is exactly {_id: X}.
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"c-007"`)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	assert.Contains(t, plan(), "SCAN", "without the index SQLite scans the table")

	require.NoError(t, s.IndexIDs(ctx, "ix"))
	require.NoError(t, s.IndexIDs(ctx, "ix"), "idempotent")
	assert.Contains(t, plan(), "USING INDEX")
	assert.NotContains(t, plan(), "SCAN")

	var got struct {
		N int `bson:"n"`
	}
	require.NoError(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "c-007"}}).Decode(&got))
	assert.Equal(t, 7, got.N)
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "c-007"}, {Key: "n", Value: -1}})
	assert.True(t, mongo.IsDuplicateKeyError(err), "FerretDB still reports a duplicate _id as E11000: %v", err)
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "c-008"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 80}}}})
	require.NoError(t, err)
	require.NoError(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "c-008"}}).Decode(&got))
	assert.Equal(t, 80, got.N)
	n, err := coll.CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.EqualValues(t, 300, n)
	require.NoError(t, coll.Drop(ctx), "dropping the collection drops its table and the index with it")

	assert.Error(t, s.IndexIDs(ctx, "no_such_database"))
}

func TestTuneGCLeavesTheOperatorsSetting(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	t.Setenv("GOGC", "")
	restore := embedded.TuneGC()
	assert.Equal(t, embedded.GCPercent, debug.SetGCPercent(embedded.GCPercent), "applied")
	restore()
	assert.Equal(t, 100, debug.SetGCPercent(100), "restored")

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	restore = embedded.TuneGC()
	assert.Equal(t, 150, debug.SetGCPercent(150), "GOGC set: untouched")
	restore()
	assert.Equal(t, 150, debug.SetGCPercent(150))
}

// A second gateway on the same data directory refuses to start: the
// embedded store has one writer.
func TestASecondProcessOnTheSameStoreRefusesToStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	if os.Getenv("EMBEDDED_SECOND_PROCESS") != "" {
		// The child: the parent holds the store in EMBEDDED_DIR.
		_, err := embedded.Start(ctx, embedded.Options{DataDir: os.Getenv("EMBEDDED_DIR")})
		require.ErrorIs(t, err, embedded.ErrLocked)
		fmt.Println("REFUSED:", err)
		return
	}
	s, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
	require.NoError(t, err)

	_, err = embedded.Start(ctx, embedded.Options{DataDir: dir})
	require.ErrorIs(t, err, embedded.ErrLocked, "a second Start in this process")
	assert.Contains(t, err.Error(), "one writer")

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestASecondProcessOnTheSameStoreRefusesToStart$", "-test.v")
	cmd.Env = append(os.Environ(), "EMBEDDED_SECOND_PROCESS=1", "EMBEDDED_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "REFUSED:", "another process is refused")

	s.Stop()
	again, err := embedded.Start(ctx, embedded.Options{DataDir: dir})
	require.NoError(t, err, "once the first stops, the store opens again")
	again.Stop()
}
