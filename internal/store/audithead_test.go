package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
)

// writes counts the write commands sent, by command and collection.
type writes struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *writes) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "insert", "update", "delete", "findAndModify":
			coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
			w.mu.Lock()
			if w.n != nil {
				w.n[e.CommandName+" "+coll]++
			}
			w.mu.Unlock()
		}
	}}
}

func (w *writes) run(f func()) map[string]int {
	w.mu.Lock()
	w.n = map[string]int{}
	w.mu.Unlock()
	f()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n
	w.n = nil
	return n
}

// providerReads are n reads of alice's case by a provider, as one request
// records them.
func providerReads(alice domain.Principal, n int) []domain.AuditEvent {
	var out []domain.AuditEvent
	for i := range n {
		out = append(out, domain.AuditEvent{At: time.Now(), Subject: "u-p", Role: domain.RoleProvider, Org: "prov-x",
			Operation: "CaseDetail", ResourceType: "Case", ResourceID: "c-1", CaseID: "c-1", RequestID: fmt.Sprint("r-", i),
			FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: alice.MemberKey()})
	}
	return out
}

var (
	coordinatorP = domain.Principal{Subject: "u-c", Role: domain.RoleCoordinator, Org: "operator"}
	aliceP       = domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
)

func verifyDay(t *testing.T, ctx context.Context, s *Store, day time.Time) audit.Report {
	t.Helper()
	heads, events, err := s.AuditChains(ctx, coordinatorP, day, day)
	require.NoError(t, err)
	return audit.Verify(toHeads(heads), events)
}

// A chained audit batch is one insert, its rows and its chain's head
// together: the one write a request waits for. Its access-log fragments
// and the chain's checkpoint are written later, here by the member's read
// of the log.
func TestAnAuditBatchIsOneInsertWithItsHead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &writes{}
	s := openCAS(t, ctx, "onewrite", w.monitor())
	s.tail.flushEvery = time.Hour // however slow the machine, no batch here is old enough to flush
	onBothPaths(t, s, func(t *testing.T, _ bool) {
		ch := audit.NewChainer(nil)
		link := func(ev []domain.AuditEvent) []domain.AuditEvent { ch.Link(ev); return ev }
		counts := w.run(func() { require.NoError(t, s.AppendAudit(ctx, link(providerReads(aliceP, 3)))) })
		// A pair's first read is claimed with one insert, once per store
		// (accessnotice.go): not what this counts.
		delete(counts, "insert access_orgs")
		assert.Equal(t, map[string]int{"insert audit_chains": 1, "insert audit_events": 1}, counts,
			"a new chain's first batch inserts its checkpoint first")
		var last domain.AuditEvent
		for range 3 {
			ev := link(providerReads(aliceP, 2))
			last = ev[len(ev)-1]
			counts = w.run(func() { require.NoError(t, s.AppendAudit(ctx, ev)) })
			assert.Equal(t, map[string]int{"insert audit_events": 1}, counts, "then each batch is one insert")
		}
		cp, err := findByID[chainHeadDoc](ctx, s, colAuditChains, last.Chain, nil)
		require.NoError(t, err)
		assert.Zero(t, cp.Seq, "the checkpoint has not moved yet")
		heads, events, err := s.AuditChains(ctx, coordinatorP, last.At, last.At)
		require.NoError(t, err)
		i := slices.IndexFunc(heads, func(h ChainHead) bool { return h.Chain == last.Chain })
		require.GreaterOrEqual(t, i, 0)
		assert.Equal(t, last.Seq, heads[i].Seq, "the head is found through the head records")
		assert.Equal(t, last.Hash, heads[i].Hash)
		assert.True(t, audit.Verify(toHeads(heads), events).OK())

		counts = w.run(func() {
			page, _, err := s.AccessLog(ctx, aliceP, AccessLogFilter{}, Page{First: 10})
			require.NoError(t, err)
			require.Len(t, page, 1)
			assert.Equal(t, 9, page[0].Count, "every read so far, in this process's own log")
		})
		assert.Equal(t, map[string]int{"insert access_log": 1, "update audit_chains": 1}, counts)
		cp, err = findByID[chainHeadDoc](ctx, s, colAuditChains, last.Chain, nil)
		require.NoError(t, err)
		assert.Equal(t, last.Seq, cp.Seq, "the checkpoint moved to the head")
		assert.Equal(t, last.Hash, cp.Hash)
		_, err = s.c(colAccessLog).DeleteMany(ctx, bson.D{})
		require.NoError(t, err)
	})
}

// openTwice opens two stores on one database, as a gateway and the one
// started after it: what the first held in memory is lost with it.
func openTwice(t *testing.T, ctx context.Context, name string) (*Store, func() *Store) {
	o := Options{Database: fmt.Sprintf("%s_%d", name, time.Now().UnixNano()), Keys: testKeyring(t)}
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		o.URI = uri
	} else {
		db, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
		require.NoError(t, err)
		t.Cleanup(db.Stop)
		o.URI, o.Prepare = db.URI(), db.IndexIDs
	}
	open := func() *Store {
		s, err := Open(ctx, o)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	first := open()
	t.Cleanup(func() { _ = first.Drop(context.Background()) })
	return first, open
}

// A gateway that stops after storing audit batches and before writing
// their access-log fragments loses none of them, and leaves nothing that
// verification reports: the rows and heads are stored together, and the
// next start writes the fragments from the head records, once.
func TestACrashBeforeTheAccessLogLosesNoEntry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, restart := openTwice(t, ctx, "crash")
	s.beforeWrite = func(coll, _ string) error {
		if coll == colAccessLog {
			return errors.New("injected: access_log unavailable")
		}
		return nil
	}
	ch := audit.NewChainer(nil)
	var last domain.AuditEvent
	for range 3 {
		ev := providerReads(aliceP, 2)
		ch.Link(ev)
		last = ev[len(ev)-1]
		require.NoError(t, s.AppendAudit(ctx, ev), "the rows and their head are stored; the fragments wait")
	}
	require.Error(t, s.flushAudit(ctx), "the fragments could not be written")
	rep := verifyDay(t, ctx, s, last.At)
	assert.True(t, rep.OK(), "no false break: %+v", rep)
	assert.Equal(t, 6, rep.Events)

	// The process is gone with what it held; the next one starts.
	next := restart()
	page, _, err := next.AccessLog(ctx, aliceP, AccessLogFilter{}, Page{First: 10})
	require.NoError(t, err)
	assert.Empty(t, page, "not written before the crash")
	require.NoError(t, next.PublishPendingEvents(ctx))
	page, _, err = next.AccessLog(ctx, aliceP, AccessLogFilter{}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, 6, page[0].Count, "every read is in the log")
	assert.Equal(t, "prov-x", page[0].OrgID)

	require.NoError(t, next.recoverAuditTails(ctx))
	page, _, err = next.AccessLog(ctx, aliceP, AccessLogFilter{}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, 6, page[0].Count, "written again, counted once")
	cp, err := findByID[chainHeadDoc](ctx, next, colAuditChains, last.Chain, nil)
	require.NoError(t, err)
	assert.Equal(t, last.Seq, cp.Seq, "the checkpoint moved to the head")
	assert.True(t, verifyDay(t, ctx, next, last.At).OK())
}

// Head records live beside the audit rows but are not audit events: no
// read of events shows or counts them.
func TestHeadRecordsAreNotAuditEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "headrows")
	ch := audit.NewChainer(nil)
	var last domain.AuditEvent
	for range 3 {
		ev := providerReads(aliceP, 2)
		ch.Link(ev)
		last = ev[len(ev)-1]
		require.NoError(t, s.AppendAudit(ctx, ev))
	}
	n, err := s.c(colAudit).CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, 9, n, "six rows and three head records")

	page, _, err := s.AuditEvents(ctx, coordinatorP, AuditFilter{}, Page{First: 100})
	require.NoError(t, err)
	assert.Len(t, page, 6)
	count, err := s.CountAuditEvents(ctx, coordinatorP, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, 6, count)
	var heads []ChainHead
	var events int
	require.NoError(t, s.ExportAudit(ctx, coordinatorP, last.At, last.At,
		func(h ChainHead) error { heads = append(heads, h); return nil },
		func(domain.AuditEvent) error { events++; return nil }))
	assert.Equal(t, 6, events)
	require.Len(t, heads, 1)
	assert.Equal(t, last.Seq, heads[0].Seq)
}

// A segment whose first insert failed before anything of it was stored
// (the database down) is recorded empty when the next segment starts, so
// verification does not report it missing.
func TestASegmentThatStoredNothingIsNotReportedMissing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "emptyseg")
	ch := audit.NewChainer(nil)
	s.beforeWrite = func(string, string) error { return errors.New("injected: database down") }
	ev := providerReads(aliceP, 2)
	ch.Link(ev)
	require.Error(t, s.AppendAudit(ctx, ev))
	ch.Broken()
	s.beforeWrite = nil
	ev = providerReads(aliceP, 2)
	ch.Link(ev)
	require.NoError(t, s.AppendAudit(ctx, ev))
	rep := verifyDay(t, ctx, s, ev[0].At)
	assert.True(t, rep.OK(), "%+v", rep)
	assert.Equal(t, 2, rep.Chains, "segment 0, empty, and segment 1")
}

// Once the checkpoint has moved, deleting the chain's last batch with its
// head record is still a missing link.
func TestADeletedTailWithItsHeadRecordIsFoundPastTheCheckpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "tail")
	ch := audit.NewChainer(nil)
	var batches [][]domain.AuditEvent
	for range 3 {
		ev := providerReads(aliceP, 2)
		ch.Link(ev)
		batches = append(batches, ev)
		require.NoError(t, s.AppendAudit(ctx, ev))
	}
	require.NoError(t, s.flushAudit(ctx))
	tail := batches[2]
	for _, e := range tail {
		_, err := s.c(colAudit).DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}})
		require.NoError(t, err)
	}
	_, err := s.c(colAudit).DeleteOne(ctx, bson.D{{Key: "_id", Value: headRecordID(tail[0].Chain, tail[0].Seq)}})
	require.NoError(t, err)
	rep := verifyDay(t, ctx, s, tail[0].At)
	require.Len(t, rep.Breaks, 1, "%+v", rep)
	assert.Equal(t, audit.BreakMissing, rep.Breaks[0].Reason)
	assert.EqualValues(t, 5, rep.Breaks[0].Position)
}

// Another gateway sees the access log within a sweep: the sweeper's call
// writes what waits, and a batch writes it once auditFlushMax wait.
func TestWaitingFragmentsReachOtherGatewaysWithTheSweeperOrABatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, open := openTwice(t, ctx, "sweep")
	s.tail.flushEvery = time.Hour
	require.NoError(t, s.PublishPendingEvents(ctx), "the start's call")
	other := open()
	count := func() int {
		page, _, err := other.AccessLog(ctx, aliceP, AccessLogFilter{}, Page{First: 100})
		require.NoError(t, err)
		n := 0
		for _, e := range page {
			n += e.Count
		}
		return n
	}
	ch := audit.NewChainer(nil)
	ev := providerReads(aliceP, 2)
	ch.Link(ev)
	require.NoError(t, s.AppendAudit(ctx, ev))
	assert.True(t, s.PendingEvents(), "the sweeper is told")
	assert.Zero(t, count(), "not yet written")
	require.NoError(t, s.PublishPendingEvents(ctx))
	assert.False(t, s.PendingEvents())
	assert.Equal(t, 2, count(), "written by the sweeper's call")

	// Reads of distinct cases: one fragment each.
	for i := range auditFlushMax {
		ev := providerReads(aliceP, 1)
		ev[0].CaseID, ev[0].ResourceID = fmt.Sprint("c-", i), fmt.Sprint("c-", i)
		ch.Link(ev)
		require.NoError(t, s.AppendAudit(ctx, ev))
		if i < auditFlushMax-1 {
			assert.Equal(t, 2, count(), "waiting (%d)", i)
		}
	}
	assert.Equal(t, 2+auditFlushMax, count(), "the batch that made them auditFlushMax wrote them")
}
