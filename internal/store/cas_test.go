package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/embedded"
)

// TestCompareAndSetOnBothPaths runs casUpdate with the compound filter
// MongoDB gets and with the read-then-update-by-_id FerretDB gets (both work
// on the embedded store, the first only slower), so the MongoDB path stays
// tested too.
func TestCompareAndSetOnBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer db.Stop()
	s, err := Open(ctx, Options{URI: db.URI(), Database: "cas", Prepare: db.IndexIDs})
	require.NoError(t, err)
	defer func() { _ = s.Close(context.Background()) }()
	assert.True(t, s.exactIDFilters, "the embedded store is recognised as FerretDB")

	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact _id filters %v", exact), func(t *testing.T) {
			s.exactIDFilters = exact
			id := fmt.Sprintf("k-%v", exact)
			_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id})
			require.NoError(t, err)
			set := func(n int64) bson.D { return bson.D{{Key: "seq", Value: n}} }

			ok, err := s.casUpdate(ctx, colCounters, id, 0, set(10))
			require.NoError(t, err)
			assert.True(t, ok, "the first writer at version 0 wins")
			ok, err = s.casUpdate(ctx, colCounters, id, 0, set(20))
			require.NoError(t, err)
			assert.False(t, ok, "a second writer from version 0 loses on the claim")

			// A writer so stale that its claim was pruned wins the claim
			// and must still lose on the version.
			require.NoError(t, s.PruneClaims(ctx, -time.Hour))
			ok, err = s.casUpdate(ctx, colCounters, id, 0, set(30))
			require.NoError(t, err)
			assert.False(t, ok, "a stale version never overwrites")

			ok, err = s.casUpdate(ctx, colCounters, "missing", 0, set(1))
			require.NoError(t, err)
			assert.False(t, ok, "no document, no write")

			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.casUpdate(ctx, colCounters, id, 1, set(int64(100+i)))
					assert.NoError(t, err)
					if ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			assert.EqualValues(t, 1, wins.Load(), "of 8 racing writers from version 1, one wins")

			got, err := findByID[counterDoc](ctx, s, colCounters, id, nil)
			require.NoError(t, err)
			assert.Equal(t, 2, got.Version)
			assert.GreaterOrEqual(t, got.Seq, int64(100))
		})
	}
}

func TestScansAreAdmittedPerCollection(t *testing.T) {
	s := &Store{scanSlots: map[string]chan struct{}{colCases: make(chan struct{}, 1), colSpecialists: make(chan struct{}, 1)}}
	release, err := s.admitScan(context.Background(), colCases)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.admitScan(ctx, colCases)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a second scan of cases waits for the first")

	other, err := s.admitScan(context.Background(), colSpecialists)
	require.NoError(t, err, "a scan of another collection does not wait")
	other()
	free, err := s.admitScan(context.Background(), "not-limited")
	require.NoError(t, err)
	free()

	release()
	again, err := s.admitScan(context.Background(), colCases)
	require.NoError(t, err, "a released slot admits the next scan")
	again()

	mongo := &Store{}
	for range 10 {
		_, err := mongo.admitScan(context.Background(), colCases)
		require.NoError(t, err, "no slots on MongoDB")
	}
}
