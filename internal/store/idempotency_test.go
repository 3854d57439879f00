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

	"github.com/secondopinion/gateway/internal/domain"
)

var idemCaller = domain.Principal{Subject: "u1", Role: domain.RoleInsurer, Org: "ins-1"}

// putIdem stores the record of key "k" (input "h") as a request left it,
// created age ago.
func putIdem(t *testing.T, ctx context.Context, s *Store, state, result string, age time.Duration) idemDoc {
	t.Helper()
	d := idemDoc{ID: idempotencyID(idemCaller, "submitCase", "k"), InputHash: "h", State: state, ResultID: result,
		CreatedAt: s.Now().Add(-age).Truncate(time.Millisecond)}
	_, err := s.c(colIdempotency).InsertOne(ctx, d)
	require.NoError(t, err)
	return d
}

// idempotentAtOnce sends n requests of idemCaller with one key at once and
// returns what each got.
func idempotentAtOnce(t *testing.T, ctx context.Context, s *Store, n int, key, hash string, fn func() (string, error)) []string {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Idempotent(ctx, idemCaller, "submitCase", key, hash, fn)
			assert.NoError(t, err)
			results[i] = r
		}()
	}
	wg.Wait()
	return results
}

func TestAnIdempotentOperationRunsOnceAndReplaysItsResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "idem")
	var runs atomic.Int32
	fn := func() (string, error) {
		n := runs.Add(1)
		time.Sleep(50 * time.Millisecond)
		return fmt.Sprintf("result-%d", n), nil
	}
	results := idempotentAtOnce(t, ctx, s, 6, "k1", "h1", fn)
	assert.EqualValues(t, 1, runs.Load(), "six concurrent requests with one key run once")
	for _, r := range results {
		assert.Equal(t, "result-1", r)
	}

	_, err := s.Idempotent(ctx, idemCaller, "submitCase", "k1", "another input", fn)
	assert.Equal(t, domain.CodeIdempotencyKeyReused, domain.ErrorCode(err))
	other := domain.Principal{Subject: "u2", Role: domain.RoleInsurer, Org: "ins-1"}
	r, err := s.Idempotent(ctx, other, "submitCase", "k1", "h1", fn)
	require.NoError(t, err)
	assert.Equal(t, "result-2", r, "keys are per caller")

	// A failed run releases the key: a retry runs again.
	_, err = s.Idempotent(ctx, idemCaller, "submitCase", "k2", "h", func() (string, error) { return "", domain.Errorf(domain.CodeNotEligible, "no") })
	assert.Equal(t, domain.CodeNotEligible, domain.ErrorCode(err))
	r, err = s.Idempotent(ctx, idemCaller, "submitCase", "k2", "h", fn)
	require.NoError(t, err)
	assert.Equal(t, "result-3", r)
}

// The first request with a key died while pending. Two retries find its
// claim stale at once; the first takes it over, claims the key afresh and
// runs. The second, acting on the dead claim it saw, must lose the takeover
// and leave the fresh claim alone.
func TestTwoRequestsTakingOverADeadKeyRunOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "idem-takeover")
	dead := putIdem(t, ctx, s, "pending", "", time.Minute)
	id := dead.ID

	var runs atomic.Int32
	r, err := s.Idempotent(ctx, idemCaller, "submitCase", "k", "h", func() (string, error) {
		runs.Add(1)
		// The second retry acts on the dead claim it read before.
		won, err := s.takeOver(ctx, id, dead.CreatedAt, false)
		assert.NoError(t, err)
		assert.False(t, won, "one request takes a dead claim over")
		claimed, _, err := s.claimKey(ctx, id, "h")
		assert.NoError(t, err)
		assert.False(t, claimed, "the fresh claim survives a takeover of the dead one")
		return "result", nil
	})
	require.NoError(t, err)
	assert.Equal(t, "result", r)
	assert.EqualValues(t, 1, runs.Load())
	got, err := findByID[idemDoc](ctx, s, colIdempotency, id, nil)
	require.NoError(t, err)
	assert.Equal(t, "done", got.State)
	assert.Equal(t, "result", got.ResultID)
}

// Requests that find a dead claim at once: exactly one of them runs, and the
// others replay its result.
func TestConcurrentRetriesOfADeadKeyRunOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "idem-retries")
	putIdem(t, ctx, s, "pending", "", time.Minute)
	var runs atomic.Int32
	results := idempotentAtOnce(t, ctx, s, 6, "k", "h", func() (string, error) {
		runs.Add(1)
		time.Sleep(50 * time.Millisecond)
		return "result", nil
	})
	assert.EqualValues(t, 1, runs.Load())
	for _, r := range results {
		assert.Equal(t, "result", r)
	}
}

// A retry found the key pending and stale, but its request finished before
// the retry's takeover: the finished record stays, and the retry replays it.
func TestATakeoverLeavesARecordThatFinishedMeanwhile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "idem-finished")
	done := putIdem(t, ctx, s, "done", "first", time.Minute)
	won, err := s.takeOver(ctx, done.ID, done.CreatedAt, false) // it saw the record pending a moment ago
	require.NoError(t, err)
	assert.False(t, won)
	r, err := s.Idempotent(ctx, idemCaller, "submitCase", "k", "h", func() (string, error) { return "second", nil })
	require.NoError(t, err)
	assert.Equal(t, "first", r, "the first result is replayed, the operation not run again")
}
