package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/embedded"
)

// TestCompareAndSetOnBothPaths runs casUpdate with the compound filter
// MongoDB gets and with the read-then-update-by-_id FerretDB gets (both work
// on the embedded store, the first only slower), so the MongoDB path stays
// tested too.
func TestCompareAndSetOnBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "cas")
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

// TestAStalledWriterNeverOverwritesTheWriterThatTookOver holds writer A's
// update on its way to the database past the claim takeover; writer B takes
// the claim over and writes. A must not then write over B, on either path.
func TestAStalledWriterNeverOverwritesTheWriterThatTookOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hold atomic.Pointer[chan struct{}]
	held := make(chan struct{}, 1)
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "update" {
			return
		}
		if ch := hold.Swap(nil); ch != nil {
			held <- struct{}{}
			<-*ch
		}
	}}
	s := openCAS(t, ctx, "stall", mon)
	s.claimTakeover = time.Second

	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact _id filters %v", exact), func(t *testing.T) {
			s.exactIDFilters = exact
			id := fmt.Sprintf("stall-%v", exact)
			_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id})
			require.NoError(t, err)

			release := make(chan struct{})
			hold.Store(&release)
			type result struct {
				ok  bool
				err error
			}
			a := make(chan result, 1)
			go func() {
				ok, err := s.casUpdate(ctx, colCounters, id, 0, bson.D{{Key: "seq", Value: int64(1)}})
				a <- result{ok, err}
			}()
			<-held // A has its claim and its update is on the way, stalled
			time.Sleep(s.claimTakeover + 50*time.Millisecond)
			ok, err := s.casUpdate(ctx, colCounters, id, 0, bson.D{{Key: "seq", Value: int64(2)}})
			require.NoError(t, err)
			assert.True(t, ok, "B takes the stale claim over and writes")
			close(release)
			ra := <-a
			assert.False(t, ra.ok && ra.err == nil, "A must not report a write")

			got, err := findByID[counterDoc](ctx, s, colCounters, id, nil)
			require.NoError(t, err)
			assert.EqualValues(t, 2, got.Seq, "B's write stands")
			assert.Equal(t, 1, got.Version, "one write happened")
		})
	}
}

func TestOneOfSeveralWritersTakingOverAClaimWins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "takeover")
	// A writer claimed version 0 -> 1 long ago and died.
	_, err := s.c(colClaims).InsertOne(ctx, claimDoc{ID: claimID(colCounters, "k", 0), At: s.Now().Add(-time.Hour)})
	require.NoError(t, err)

	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won, _, err := s.claim(ctx, colCounters, "k", 0)
			assert.NoError(t, err)
			if won {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load(), "of 8 writers taking the dead claim over, one wins")
	won, _, err := s.claim(ctx, colCounters, "k", 0)
	require.NoError(t, err)
	assert.False(t, won, "a later writer finds the fresh takeover and loses")
}

// openCAS opens a store on its own embedded FerretDB, watched by mon when
// given.
func openCAS(t *testing.T, ctx context.Context, name string, mon ...*event.CommandMonitor) *Store {
	t.Helper()
	db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(db.Stop)
	o := Options{URI: db.URI(), Database: name, Prepare: db.IndexIDs}
	if len(mon) > 0 {
		o.Monitor = mon[0]
	}
	s, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// manualClock makes the store's clock one the test moves (Add nanoseconds).
func manualClock(s *Store) *atomic.Int64 {
	c := new(atomic.Int64)
	c.Store(time.Now().UnixNano())
	s.now = func() time.Time { return time.Unix(0, c.Load()) }
	return c
}

// hook runs a function, once armed, just before the first command that its
// match accepts is sent: the place to interleave another writer.
type hook struct{ f atomic.Pointer[func()] }

func newHook(match func(*event.CommandStartedEvent) bool) (*hook, *event.CommandMonitor) {
	h := &hook{}
	return h, &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if match(e) {
			if f := h.f.Swap(nil); f != nil {
				(*f)()
			}
		}
	}}
}

func (h *hook) arm(f func()) { h.f.Store(&f) }
func (h *hook) fired() bool  { return h.f.Load() == nil }

// A claim of generation 0 died over an hour ago; writer B takes it over
// (generation 1) and, before B writes, the hourly prune deletes generation 0
// but keeps B's. Writer C then finds generation 0 free: it must not win too.
func TestAPruneBelowALiveClaimDoesNotLetASecondWriterIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "hole")
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact _id filters %v", exact), func(t *testing.T) {
			s.exactIDFilters = exact
			id := fmt.Sprintf("hole-%v", exact)
			_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id})
			require.NoError(t, err)
			_, err = s.c(colClaims).InsertOne(ctx, claimDoc{ID: claimID(colCounters, id, 0), At: s.Now().Add(-90 * time.Minute)})
			require.NoError(t, err)

			wonB, _, err := s.claim(ctx, colCounters, id, 0)
			require.NoError(t, err)
			require.True(t, wonB, "B takes the dead claim over")
			require.NoError(t, s.PruneClaims(ctx, time.Hour))

			okC, err := s.casUpdate(ctx, colCounters, id, 0, bson.D{{Key: "seq", Value: int64(7)}})
			require.NoError(t, err)
			assert.False(t, okC, "C must not write while B holds generation 1")
			got, err := findByID[counterDoc](ctx, s, colCounters, id, nil)
			require.NoError(t, err)
			assert.Equal(t, 0, got.Version, "nothing was written")
		})
	}
}

// Writer B finds generation 0 stale and, just before B's insert of
// generation 1 reaches the store, the prune deletes generation 0 and (in one
// case) writer C claims it afresh. C may have won, so B must lose.
func TestAClaimWhoseStaleGenerationWasPrunedUnderItLoses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	underB, mon := newHook(func(e *event.CommandStartedEvent) bool {
		return e.CommandName == "insert" && strings.Contains(e.Command.String(), "#1")
	})
	s := openCAS(t, ctx, "refill", mon)

	for _, refill := range []bool{false, true} {
		t.Run(fmt.Sprintf("refilled %v", refill), func(t *testing.T) {
			id := fmt.Sprintf("k-%v", refill)
			base := claimID(colCounters, id, 0)
			_, err := s.c(colClaims).InsertOne(ctx, claimDoc{ID: base, At: s.Now().Add(-90 * time.Minute)})
			require.NoError(t, err)
			f := func() {
				_, err := s.c(colClaims).DeleteOne(ctx, bson.D{{Key: "_id", Value: base}})
				assert.NoError(t, err)
				if refill {
					_, err = s.c(colClaims).InsertOne(ctx, claimDoc{ID: base, At: s.Now()})
					assert.NoError(t, err)
				}
			}
			underB.arm(f)
			won, _, err := s.claim(ctx, colCounters, id, 0)
			require.NoError(t, err)
			require.True(t, underB.fired(), "the prune ran under B")
			assert.False(t, won, "B loses")
			if refill {
				// C, having claimed generation 0, now finds B's generation 1
				// above it, fresh: C loses too, and the document is free
				// again once B's claim is stale.
				won, _, err = s.claim(ctx, colCounters, id, 0)
				require.NoError(t, err)
				assert.False(t, won)
			}
		})
	}
}

// Claims whose writers all died (crashed, cancelled, or too slow to send
// their update) do not lock the document out: the next live writer takes
// over however many generations there are.
func TestManyDeadClaimsDoNotLockADocumentOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "dead")
	s.exactIDFilters = true
	// The store's clock moves past the takeover after each writer dies.
	clock := manualClock(s)
	_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: "c"})
	require.NoError(t, err)
	for i := range 12 {
		won, _, err := s.claim(ctx, colCounters, "c", 0)
		require.NoError(t, err)
		require.True(t, won, "generation %d is taken over", i)
		clock.Add(int64(s.claimTakeover + time.Second)) // its writer dies
	}
	n, err := s.increment(ctx, "c")
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	d, err := findByID[claimDoc](ctx, s, colClaims, claimID(colCounters, "c", 0)+"#12", nil)
	require.NoError(t, err, "the live writer won the 13th generation")
	assert.False(t, d.At.IsZero())
}

// Generations 0 and 1 of a claim died over an hour ago. Writer B walks the
// chain, wins generation 2 and sends its update; just before that update
// reaches the store the hourly prune runs and writer C, entering at
// generation 0, tries the same move. Only one of them may write version
// 0 -> 1. (Found in review: a prune by age alone deleted generations 0 and 1,
// and C, seeing no generation 1 above a free generation 0, won too.)
func TestAPruneOfTwoGenerationsBelowALiveClaimDoesNotLetASecondWriterIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	underB, mon := newHook(func(e *event.CommandStartedEvent) bool { return e.CommandName == "update" })
	s := openCAS(t, ctx, "hole2", mon)
	require.True(t, s.exactIDFilters)

	_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: "k"})
	require.NoError(t, err)
	base := claimID(colCounters, "k", 0)
	_, err = s.c(colClaims).InsertOne(ctx, claimDoc{ID: base, At: s.Now().Add(-90 * time.Minute)})
	require.NoError(t, err)
	_, err = s.c(colClaims).InsertOne(ctx, claimDoc{ID: base + "#1", At: s.Now().Add(-80 * time.Minute)})
	require.NoError(t, err)

	var okC bool
	f := func() {
		assert.NoError(t, s.PruneClaims(ctx, time.Hour))
		var err error
		okC, err = s.casUpdate(ctx, colCounters, "k", 0, bson.D{{Key: "seq", Value: int64(2)}})
		assert.NoError(t, err)
	}
	underB.arm(f)
	okB, err := s.casUpdate(ctx, colCounters, "k", 0, bson.D{{Key: "seq", Value: int64(1)}})
	require.NoError(t, err)
	require.True(t, underB.fired(), "the prune and C ran under B's update")
	got, err := findByID[counterDoc](ctx, s, colCounters, "k", nil)
	require.NoError(t, err)
	assert.True(t, okB, "B won generation 2 and wrote")
	assert.False(t, okC, "C must not write too")
	assert.Equal(t, 1, got.Version, "one write happened")
	assert.EqualValues(t, 1, got.Seq)
}

// The prune deletes old claims of versions their document has moved past,
// and of documents that are gone; it keeps, however old, the claims of the
// version a document is still at, and every recent claim.
func TestPruneClaimsKeepsTheClaimsOfCurrentVersions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "prune")
	for id, version := range map[string]int{"a/b@c": 3, "plain": 0} {
		_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id, Version: version})
		require.NoError(t, err)
	}
	old, recent := s.Now().Add(-2*time.Hour), s.Now().Add(-time.Minute)
	claims := map[string]time.Time{
		claimID(colCounters, "a/b@c", 1):        old,    // moved past: deleted
		claimID(colCounters, "a/b@c", 2) + "#3": old,    // moved past: deleted
		claimID(colCounters, "a/b@c", 3):        old,    // current: kept
		claimID(colCounters, "a/b@c", 3) + "#1": old,    // current: kept
		claimID(colCounters, "plain", 0):        old,    // current: kept
		claimID(colCounters, "gone", 4):         old,    // document gone: deleted
		claimID(colCounters, "gone", 5):         recent, // recent: kept
		claimID(colSpecialists, "s1", 2):        old,    // rev 3 is current: kept
		claimID(colSpecialists, "s1", 1):        old,    // moved past: deleted
		colSpecialists + "/s1@9":                old,    // a claim on version, not rev: deleted
		colIdempotency + "/k#1700000000000@0":   old,    // an idempotency takeover: deleted
	}
	_, err := s.c(colSpecialists).InsertOne(ctx, specialistDoc{ID: "s1", Version: 9, Rev: 2})
	require.NoError(t, err)
	for cid, at := range claims {
		_, err := s.c(colClaims).InsertOne(ctx, claimDoc{ID: cid, At: at})
		require.NoError(t, err)
	}
	require.NoError(t, s.PruneClaims(ctx, time.Hour))
	left, err := findAll[claimDoc](ctx, s, colClaims, nil, nil)
	require.NoError(t, err)
	var ids []string
	for _, c := range left {
		ids = append(ids, c.ID)
	}
	assert.ElementsMatch(t, []string{
		claimID(colCounters, "a/b@c", 3), claimID(colCounters, "a/b@c", 3) + "#1",
		claimID(colCounters, "plain", 0), claimID(colCounters, "gone", 5),
		colSpecialists + "/s1@rev3",
	}, ids)
}

func TestCompareAndDeleteOnlyDeletesTheVersionItNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "casdelete")
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact _id filters %v", exact), func(t *testing.T) {
			s.exactIDFilters = exact
			id := fmt.Sprintf("d-%v", exact)
			_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id, Version: 1})
			require.NoError(t, err)
			ok, err := s.casUpdate(ctx, colCounters, id, 1, bson.D{{Key: "seq", Value: int64(1)}})
			require.NoError(t, err)
			require.True(t, ok) // used meanwhile: now at version 2

			ok, err = s.casDelete(ctx, colCounters, id, 1)
			require.NoError(t, err)
			assert.False(t, ok, "a document that moved on is not deleted")
			_, err = findByID[counterDoc](ctx, s, colCounters, id, nil)
			require.NoError(t, err)

			ok, err = s.casDelete(ctx, colCounters, id, 2)
			require.NoError(t, err)
			assert.True(t, ok)
			_, err = findByID[counterDoc](ctx, s, colCounters, id, nil)
			assert.ErrorIs(t, err, mongo.ErrNoDocuments)
		})
	}
}
