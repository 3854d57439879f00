package store

import (
	"context"
	"errors"
	"fmt"
	"os"
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

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
)

// paths are the write paths a test runs: on the embedded store both the
// serialised one it uses and the filtered one MongoDB uses (single-threaded
// there, since FerretDB does not apply a filter atomically); on MongoDB only
// MongoDB's.
func paths(s *Store) []bool {
	if s.serialWrites {
		return []bool{true, false}
	}
	return []bool{false}
}

// onBothPaths runs f as a subtest on each write path the store can take
// (paths), restoring the store's own afterwards.
func onBothPaths(t *testing.T, s *Store, f func(t *testing.T, serial bool)) {
	t.Helper()
	own := s.serialWrites
	for _, serial := range paths(s) {
		t.Run(fmt.Sprintf("serialised %v", serial), func(t *testing.T) {
			s.serialWrites = serial
			defer func() { s.serialWrites = own }()
			f(t, serial)
		})
	}
}

func TestCompareAndSetOnBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "cas")
	embeddedStore := s.serialWrites
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		id := fmt.Sprintf("k-%v", serial)
		_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: id})
		require.NoError(t, err)
		set := func(n int64) bson.D { return bson.D{{Key: "seq", Value: n}} }

		ok, err := s.casUpdate(ctx, colCounters, id, 0, set(10))
		require.NoError(t, err)
		assert.True(t, ok, "the first writer at version 0 wins")
		ok, err = s.casUpdate(ctx, colCounters, id, 0, set(20))
		require.NoError(t, err)
		assert.False(t, ok, "a second writer from version 0 loses")
		ok, err = s.casUpdate(ctx, colCounters, "missing", 0, set(1))
		require.NoError(t, err)
		assert.False(t, ok, "no document, no write")

		if !serial && embeddedStore {
			return // FerretDB does not apply a filtered update atomically
		}
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

// A writer whose request is cancelled right after it took the document's
// lock, or right as its write is sent, finishes or drops its own write
// within its own call; the next writer goes through at once.
func TestACancelledWriterNeverBlocksTheNext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, mon := newHook(func(e *event.CommandStartedEvent) bool { return e.CommandName == "update" })
	s := openCAS(t, ctx, "cancelled", mon)
	_, err := s.c(colCounters).InsertOne(ctx, counterDoc{ID: "doc", Version: 1})
	require.NoError(t, err)

	t.Run("cancelled right after taking the lock", func(t *testing.T) {
		wctx, wcancel := context.WithCancel(ctx)
		s.beforeWrite = func(coll, id string) error { wcancel(); return nil }
		_, err := s.casUpdate(wctx, colCounters, "doc", 1, bson.D{{Key: "seq", Value: int64(1)}})
		s.beforeWrite = nil
		require.NoError(t, err, "a write that has its lock runs to its end")

		start := time.Now()
		ok, err := s.casUpdate(ctx, colCounters, "doc", 2, bson.D{{Key: "seq", Value: int64(2)}})
		require.NoError(t, err)
		assert.True(t, ok, "the next writer wins at once")
		assert.Less(t, time.Since(start), 2*time.Second)
	})

	t.Run("cancelled as its write is sent", func(t *testing.T) {
		wctx, wcancel := context.WithCancel(ctx)
		h.arm(wcancel)
		_, _ = s.casUpdate(wctx, colCounters, "doc", 3, bson.D{{Key: "seq", Value: int64(3)}})
		require.True(t, h.fired())
		got, err := findByID[counterDoc](ctx, s, colCounters, "doc", nil)
		require.NoError(t, err)
		ok, err := s.casUpdate(ctx, colCounters, "doc", got.Version, bson.D{{Key: "seq", Value: int64(4)}})
		require.NoError(t, err)
		assert.True(t, ok, "the next writer wins at once")
	})

	t.Run("a counter cancelled mid-increment strands nothing", func(t *testing.T) {
		first, err := s.increment(ctx, "refs", 1)
		require.NoError(t, err)
		wctx, wcancel := context.WithCancel(ctx)
		s.beforeWrite = func(coll, id string) error { wcancel(); return nil }
		_, err = s.increment(wctx, "refs", 1)
		s.beforeWrite = nil
		require.NoError(t, err)
		next, err := s.increment(ctx, "refs", 1)
		require.NoError(t, err)
		assert.Equal(t, first+2, next, "every increment counted once, none stranded")
	})

	t.Run("a writer waiting for the lock gives up with its context", func(t *testing.T) {
		if !s.serialWrites {
			t.Skip("MongoDB takes no lock")
		}
		unlock, err := s.locks.lock(ctx, colCounters+"/doc")
		require.NoError(t, err)
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer wcancel()
		_, err = s.casUpdate(wctx, colCounters, "doc", 5, bson.D{{Key: "seq", Value: int64(5)}})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		unlock()
		assert.Empty(t, s.locks.held, "no lock outlives its holders")
	})
}

// FreezeOpinion that loses every race returns CONFLICT, never the draft as
// if it were delivered.
func TestFreezeOpinionOutOfAttemptsIsAConflict(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "freeze")
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	c := &domain.Case{ID: "case-1", PatientID: "p", InsurerID: "ins", SpecialistID: "sp", SpecialistOrgID: "prov"}
	_, err := s.SaveOpinionDraft(ctx, coordinator, c, domain.OpinionContent{MemberSummary: "draft"})
	require.NoError(t, err)
	// Another writer moves the opinion on before each of its writes.
	s.beforeWrite = func(coll, id string) error {
		_, err := s.c(colOpinions).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
		return err
	}
	_, err = s.FreezeOpinion(ctx, coordinator, c, s.Now(), nil)
	s.beforeWrite = nil
	assert.Equal(t, domain.CodeConflict, domain.ErrorCode(err), "%v", err)
	got, err := findByID[opinionDoc](ctx, s, colOpinions, OpinionIDForCase(c.ID), nil)
	require.NoError(t, err)
	assert.Equal(t, string(domain.OpinionDraft), got.Status, "nothing was delivered")
}

// A case move whose events cannot be copied to case_events keeps them in
// the case's outbox, written with the change; the sweeper publishes them.
func TestACaseMoveWhoseEventWriteFailsKeepsItsEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "outbox")
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "p", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	head, err := s.LastCaseEventSeq(ctx)
	require.NoError(t, err)

	s.beforeWrite = func(coll, id string) error {
		if coll == colCaseEvents {
			return errors.New("injected: case_events unavailable")
		}
		return nil
	}
	cancelled := domain.StatusCancelled
	from := domain.StatusSubmitted
	moved, err := s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
		return CaseUpdate{Status: &cancelled, Events: []domain.CaseEvent{{Type: "STATUS_CHANGED", FromStatus: &from, ToStatus: &cancelled, ActorRole: domain.RoleCoordinator}}}, nil
	})
	s.beforeWrite = nil
	require.NoError(t, err, "the change and its event are stored together")
	assert.Equal(t, domain.StatusCancelled, moved.Status)
	assert.True(t, s.PendingEvents())
	d, err := findByID[caseDoc](ctx, s, colCases, c.ID, nil)
	require.NoError(t, err)
	require.Len(t, d.Outbox, 1, "the event waits in the case's outbox")
	assert.Equal(t, "STATUS_CHANGED", d.Outbox[0].Type)
	recs, err := s.CaseEventsAfter(ctx, head, 10)
	require.NoError(t, err)
	assert.Empty(t, recs)

	require.NoError(t, s.PublishPendingEvents(ctx))
	require.NoError(t, s.PublishPendingEvents(ctx), "publishing twice copies nothing twice")
	recs, err = s.CaseEventsAfter(ctx, head, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "STATUS_CHANGED", recs[0].Type)
	assert.Equal(t, string(domain.StatusCancelled), recs[0].Status)
	assert.Equal(t, 2, recs[0].Version)
	assert.False(t, s.PendingEvents())
	d, err = findByID[caseDoc](ctx, s, colCases, c.ID, nil)
	require.NoError(t, err)
	assert.Empty(t, d.Outbox)
}

// A case move costs at most 6 commands: read, write (which returns the
// case written, so nothing is read back), counter, event, list document
// (lists.go), outbox cleared. The embedded store holds the case's lock from
// the read to the clearing, so neither write reads the version first, and
// takes event numbers from a block it reserved (one counter write per 64);
// its list document costs a read of the copy's version more.
func TestACaseMoveCostsAtMostSixCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var cmds []string
	counting := atomic.Bool{}
	s := openCAS(t, ctx, "commands", &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if counting.Load() {
			mu.Lock()
			cmds = append(cmds, e.CommandName+":"+collectionOf(e))
			mu.Unlock()
		}
	}})
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "p", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
		require.NoError(t, err)
		triage, from := domain.StatusTriage, domain.StatusSubmitted
		mu.Lock()
		cmds = nil
		mu.Unlock()
		counting.Store(true)
		_, err = s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{Status: &triage, Events: []domain.CaseEvent{{Type: "STATUS_CHANGED", FromStatus: &from, ToStatus: &triage, ActorRole: domain.RoleCoordinator}}}, nil
		})
		counting.Store(false)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		t.Logf("commands: %s", strings.Join(cmds, " "))
		limit := 6
		if serial {
			// The case's row in its packed list is a read of the list's
			// directory and of its chunk, then the chunk's write (all by
			// _id).
			limit = 9
		}
		// Entering TRIAGE adds an outcome fact (records complete): one
		// more write to the case's outcome_facts document, only if its
		// row there is older: on MongoDB one filtered update, serialised
		// a read of the row versions and a write (both by _id).
		facts := 1
		if serial {
			facts = 2
		}
		assert.LessOrEqual(t, len(cmds), limit+facts, strings.Join(cmds, " "))
		assert.Equal(t, facts, strings.Count(strings.Join(cmds, " "), "outcome_facts"), strings.Join(cmds, " "))
		assert.NotContains(t, strings.Join(cmds, " "), "claims")
		listWrite := "update:case_list"
		if serial {
			listWrite = "update:list_chunks"
		}
		assert.Equal(t, 1, strings.Count(strings.Join(cmds, " "), listWrite), strings.Join(cmds, " "))

		// A move that adds no fact costs what it did.
		assigned := domain.StatusAssigned
		cmds = nil
		mu.Unlock()
		counting.Store(true)
		_, err = s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
			return CaseUpdate{Status: &assigned, Events: []domain.CaseEvent{{Type: "STATUS_CHANGED", FromStatus: &triage, ToStatus: &assigned, ActorRole: domain.RoleCoordinator}}}, nil
		})
		counting.Store(false)
		mu.Lock()
		require.NoError(t, err)
		assert.LessOrEqual(t, len(cmds), limit, strings.Join(cmds, " "))
		assert.NotContains(t, strings.Join(cmds, " "), "outcome_facts")
	})
}

func collectionOf(e *event.CommandStartedEvent) string {
	if v, err := e.Command.LookupErr(e.CommandName); err == nil {
		if s, ok := v.StringValueOK(); ok {
			return s
		}
	}
	return ""
}

func TestCompareAndDeleteOnlyDeletesTheVersionItNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "casdelete")
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		id := fmt.Sprintf("d-%v", serial)
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

// openCAS opens a store in a fresh database, watched by mon when given: on
// the MongoDB named by MONGODB_URI when set (the database is dropped
// afterwards), else on an embedded FerretDB of its own.
func openCAS(t *testing.T, ctx context.Context, name string, mon ...*event.CommandMonitor) *Store {
	t.Helper()
	o := Options{Database: fmt.Sprintf("%s_%d", name, time.Now().UnixNano()), Keys: testKeyring(t)}
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		o.URI = uri
	} else {
		db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
		require.NoError(t, err)
		t.Cleanup(db.Stop)
		o.URI, o.Prepare = db.URI(), db.IndexIDs
	}
	if len(mon) > 0 {
		o.Monitor = mon[0]
	}
	s, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.db.Drop(context.Background())
		_ = s.Close(context.Background())
	})
	return s
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

// Case events stored before events had a seq (their _id was the number) get
// it at start, so the unique index on seq builds and tailing finds them.
func TestOldCaseEventsAreNumberedAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "oldevents")
	_, err := s.c(colCaseEvents).InsertOne(ctx, bson.D{{Key: "_id", Value: int64(41)}, {Key: "caseId", Value: "c"}, {Key: "type", Value: "SUBMITTED"}})
	require.NoError(t, err)
	require.NoError(t, s.numberOldEvents(ctx))
	require.NoError(t, s.numberOldEvents(ctx), "idempotent")
	recs, err := s.CaseEventsAfter(ctx, 40, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.EqualValues(t, 41, recs[0].Seq)
}

// On the embedded store case events are numbered from blocks the process
// reserves in the counter: consecutive numbers, one counter write per
// block; Close gives back what was not used, so the next process goes on
// without a gap.
func TestCaseEventNumbersComeInBlocksOnTheEmbeddedStore(t *testing.T) {
	if os.Getenv("MONGODB_URI") != "" {
		t.Skip("MongoDB's path takes one counter write per publish")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var counterWrites atomic.Int32
	db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(db.Stop)
	o := Options{URI: db.URI(), Prepare: db.IndexIDs, Database: "blocks", Keys: testKeyring(t),
		Monitor: &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if collectionOf(e) == colCounters {
				counterWrites.Add(1)
			}
		}}}
	s, err := Open(ctx, o)
	require.NoError(t, err)
	require.True(t, s.serialWrites)
	counterWrites.Store(0)

	var got []int64
	for i := range eventSeqBlock + 3 {
		n := 1 + i%2 // publishes of one and of two events
		last, err := s.increment(ctx, caseEventsCounter, n)
		require.NoError(t, err)
		for j := n - 1; j >= 0; j-- {
			got = append(got, last-int64(j))
		}
	}
	for i := 1; i < len(got); i++ {
		require.Equal(t, got[i-1]+1, got[i], "numbers are consecutive")
	}
	assert.EqualValues(t, 1, got[0])
	blocks := (len(got) + eventSeqBlock - 1) / eventSeqBlock
	assert.EqualValues(t, blocks, counterWrites.Load(), "%d publishes took %d numbers: one counter write per block of %d", eventSeqBlock+3, len(got), eventSeqBlock)

	require.NoError(t, s.Close(ctx))
	again, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Close(context.Background()) })
	next, err := again.increment(ctx, caseEventsCounter, 1)
	require.NoError(t, err)
	assert.Equal(t, got[len(got)-1]+1, next, "the next process goes on where this one stopped")
}

// Two Stores of one process on one embedded database (the replica in
// testenv, a command run beside the server) share their block of
// case-event numbers: publishes through either get one increasing
// sequence, and the first Close gives nothing back while the other still
// hands numbers out.
func TestStoresOnOneDatabaseShareTheirEventNumbers(t *testing.T) {
	if os.Getenv("MONGODB_URI") != "" {
		t.Skip("the blocks are the embedded store's")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(db.Stop)
	o := Options{URI: db.URI(), Prepare: db.IndexIDs, Database: "shared", Keys: testKeyring(t)}
	a, err := Open(ctx, o)
	require.NoError(t, err)
	b, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	var got []int64
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		last, err := s.increment(ctx, caseEventsCounter, 1)
		require.NoError(t, err)
		got = append(got, last)
	}
	for i := 1; i < len(got); i++ {
		require.Equal(t, got[i-1]+1, got[i], "one sequence across both Stores: %v", got)
	}

	require.NoError(t, a.Close(ctx))
	next, err := b.increment(ctx, caseEventsCounter, 1)
	require.NoError(t, err)
	assert.Equal(t, got[len(got)-1]+1, next, "the open Store goes on")
	c, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	after, err := c.increment(ctx, caseEventsCounter, 1)
	require.NoError(t, err)
	assert.Equal(t, next+1, after, "a Store opened later shares the block too")
}

// Two Stores of one process on one embedded database (testenv's replica)
// move the same case at once: every move is kept. Each Store writes the
// case under its lock and by _id alone, so a lock per Store would let both
// read one version and the second write undo the first.
func TestStoresOnOneDatabaseLoseNoMoveOfACase(t *testing.T) {
	if os.Getenv("MONGODB_URI") != "" {
		t.Skip("the locks are the embedded store's; MongoDB's writes are conditional")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(db.Stop)
	o := Options{URI: db.URI(), Prepare: db.IndexIDs, Database: "moves", Keys: testKeyring(t)}
	a, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	b, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	c, err := a.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "p", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	coordinator := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	const moves = 16
	var wg sync.WaitGroup
	errs := make(chan error, moves)
	for i := range moves {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (CaseUpdate, error) {
				return CaseUpdate{Events: []domain.CaseEvent{{Type: "NOTE_ADDED", ActorRole: domain.RoleCoordinator}}}, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := a.Case(ctx, coordinator, c.ID)
	require.NoError(t, err)
	assert.Equal(t, c.Version+moves, got.Version, "every move wrote a version of its own")
	assert.Equal(t, len(c.Events)+moves, got.EventCount, "every move's event is kept")
}
