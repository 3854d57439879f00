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
// fails while fail is set.
type slowSink struct {
	mu      sync.Mutex
	inserts [][]domain.AuditEvent
	fail    error
	delay   time.Duration
}

func (s *slowSink) AppendAudit(_ context.Context, events []domain.AuditEvent) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
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
	b := audit.NewBatcher(sink, 0)
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
	b := audit.NewBatcher(sink, 0)
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
	b := audit.NewBatcher(sink, 10)
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
	b := audit.NewBatcher(sink, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, b.AppendAudit(ctx, events(1, 1)), context.DeadlineExceeded)
}
