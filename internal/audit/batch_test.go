package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// slowSink records each insert and takes a while, as a database does; it
// fails while fail is set, and waits for gate when one is set.
type slowSink struct {
	mu      sync.Mutex
	inserts [][]domain.AuditEvent
	calls   int
	fail    error
	delay   time.Duration
	gate    chan struct{}
	panics  bool
}

func (s *slowSink) AppendAudit(_ context.Context, events []domain.AuditEvent) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	gate := s.gate
	s.calls++
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.panics {
		panic("driver bug")
	}
	if s.fail != nil {
		return s.fail
	}
	s.inserts = append(s.inserts, append([]domain.AuditEvent(nil), events...))
	return nil
}

func events(caller, n int) []domain.AuditEvent {
	out := make([]domain.AuditEvent, n)
	for i := range out {
		out[i] = domain.AuditEvent{ResourceID: fmt.Sprintf("r-%d-%d", caller, i)}
	}
	return out
}

func TestBatcherCommitsConcurrentCallersTogetherAndEachOnce(t *testing.T) {
	sink := &slowSink{delay: 5 * time.Millisecond}
	b := audit.NewBatcher(sink, 0, 0)
	const callers = 64
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = b.AppendAudit(context.Background(), events(c, 3))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	seen := map[string]int{}
	for _, ins := range sink.inserts {
		for _, e := range ins {
			seen[e.ResourceID]++
		}
	}
	assert.Len(t, seen, callers*3, "every event is stored")
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s stored once", id)
	}
	assert.Less(t, len(sink.inserts), callers/4, "callers that arrive during an insert share the next one")

	// Once everyone has returned, a caller alone still gets its own insert.
	require.NoError(t, b.AppendAudit(context.Background(), events(999, 1)))
	assert.Equal(t, "r-999-0", sink.inserts[len(sink.inserts)-1][0].ResourceID)
}

func TestBatcherFailsEveryCallerOfAFailedInsert(t *testing.T) {
	boom := errors.New("write failed")
	sink := &slowSink{delay: 5 * time.Millisecond, fail: boom}
	b := audit.NewBatcher(sink, 0, 0)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for c := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = b.AppendAudit(context.Background(), events(c, 1))
		}()
	}
	wg.Wait()
	for c, err := range errs {
		assert.ErrorIs(t, err, boom, "caller %d must not be told its audit is stored", c)
	}

	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	require.NoError(t, b.AppendAudit(context.Background(), events(100, 1)), "the batcher recovers with the sink")
}

func TestBatcherBoundsAnInsertWithoutSplittingACaller(t *testing.T) {
	sink := &slowSink{delay: 10 * time.Millisecond}
	b := audit.NewBatcher(sink, 10, 0)
	var wg sync.WaitGroup
	for c := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, b.AppendAudit(context.Background(), events(c, 4)))
		}()
	}
	wg.Wait()
	total := 0
	for _, ins := range sink.inserts {
		assert.LessOrEqual(t, len(ins), 10)
		assert.Zero(t, len(ins)%4, "a caller's 4 events travel together")
		total += len(ins)
	}
	assert.Equal(t, 48, total)

	// One caller over the bound still goes, alone.
	require.NoError(t, b.AppendAudit(context.Background(), events(50, 25)))
	assert.Len(t, sink.inserts[len(sink.inserts)-1], 25)
}

func TestBatcherCallerGivesUpWithItsContext(t *testing.T) {
	sink := &slowSink{delay: 200 * time.Millisecond}
	b := audit.NewBatcher(sink, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.AppendAudit(ctx, events(1, 1)), context.DeadlineExceeded)
}

func TestBatcherDropsCallersThatGaveUp(t *testing.T) {
	gate := make(chan struct{})
	sink := &slowSink{gate: gate}
	b := audit.NewBatcher(sink, 0, 0)
	first := make(chan error, 1)
	go func() { first <- b.AppendAudit(context.Background(), events(1, 1)) }()
	require.Eventually(t, func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.calls == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.AppendAudit(ctx, events(2, 1)), context.DeadlineExceeded, "a caller waits no longer than its context")
	last := make(chan error, 1)
	go func() { last <- b.AppendAudit(context.Background(), events(3, 1)) }()
	time.Sleep(20 * time.Millisecond)
	sink.mu.Lock()
	sink.gate = nil
	sink.mu.Unlock()
	close(gate)
	require.NoError(t, <-first)
	require.NoError(t, <-last)
	var ids []string
	for _, ins := range sink.inserts {
		for _, e := range ins {
			ids = append(ids, e.ResourceID)
		}
	}
	assert.Equal(t, []string{"r-1-0", "r-3-0"}, ids, "the caller that gave up was not written on its behalf")
}

func TestBatcherBoundsTheWaitAndFailsTheQueueWithTheDatabase(t *testing.T) {
	boom := errors.New("database unavailable")
	sink := &slowSink{delay: 50 * time.Millisecond, fail: boom}
	b := audit.NewBatcher(sink, 5, 0)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for c := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = b.AppendAudit(context.Background(), events(c, 5))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.ErrorIs(t, err, boom)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.LessOrEqual(t, sink.calls, 3, "callers queued behind a failed insert fail with it, not one insert each")

	slow := audit.NewBatcher(&slowSink{delay: time.Second}, 0, 30*time.Millisecond)
	err := slow.AppendAudit(context.Background(), events(1, 1))
	assert.ErrorIs(t, err, context.DeadlineExceeded, "maxWait bounds a caller without a deadline")
}

func TestBatcherTurnsASinkPanicIntoAnError(t *testing.T) {
	sink := &slowSink{panics: true}
	b := audit.NewBatcher(sink, 0, 0)
	assert.ErrorContains(t, b.AppendAudit(context.Background(), events(1, 1)), "panicked")
	sink.mu.Lock()
	sink.panics = false
	sink.mu.Unlock()
	require.NoError(t, b.AppendAudit(context.Background(), events(2, 1)), "the batcher goes on")
}
