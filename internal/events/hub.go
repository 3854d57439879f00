// Package events fans persisted case events out to this replica's
// subscribers. Every replica tails the shared case_events collection by its
// increasing sequence, so an event written through any replica reaches
// subscribers of all of them; each event is checked against each
// subscriber's principal before it is handed over.
package events

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// gapWait is how long a hole in the sequence is awaited (a writer that took
// a number but has not inserted yet) before it is skipped.
const gapWait = 2 * store.DefaultOpTimeout

// Hub tails the case events and dispatches them.
type Hub struct {
	store    *store.Store
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	wake chan struct{}
	// latest is the newest event seen per case (guarded by mu).
	latest map[string]*store.CaseEventRecord
}

type subscriber struct {
	p      domain.Principal
	caseID string
	ch     chan *store.CaseEventRecord
}

// NewHub returns a hub polling every interval while anyone subscribes.
func NewHub(st *store.Store, interval time.Duration, log *slog.Logger) *Hub {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	return &Hub{store: st, interval: interval, log: log, subs: map[*subscriber]struct{}{}, wake: make(chan struct{}, 1), latest: map[string]*store.CaseEventRecord{}}
}

// Active returns the number of live subscriptions.
func (h *Hub) Active() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Subscribe returns a channel of the events p may see (of one case when
// caseID is set), until ctx ends. A subscriber that falls behind by more
// than the buffer is dropped: its channel closes and the client resubscribes.
func (h *Hub) Subscribe(ctx context.Context, p domain.Principal, caseID string) <-chan *store.CaseEventRecord {
	s := &subscriber{p: p, caseID: caseID, ch: make(chan *store.CaseEventRecord, 64)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	go func() {
		<-ctx.Done()
		h.drop(s)
	}()
	return s.ch
}

func (h *Hub) drop(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Run tails events until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	var (
		last     int64 = -1
		gapSince time.Time
	)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.wake:
		}
		if h.Active() == 0 {
			last = -1 // nobody listens: start from the head when someone does
			continue
		}
		if last < 0 {
			seq, err := h.store.LastCaseEventSeq(ctx)
			if err != nil {
				h.log.WarnContext(ctx, "case events: cannot read the head", "error", domain.Scrub(err.Error()))
				continue
			}
			last = seq
		}
		recs, err := h.store.CaseEventsAfter(ctx, last, 500)
		if err != nil {
			h.log.WarnContext(ctx, "case events: tail failed", "error", domain.Scrub(err.Error()))
			continue
		}
		for _, r := range recs {
			if r.Seq != last+1 {
				if gapSince.IsZero() {
					gapSince = time.Now()
				}
				if time.Since(gapSince) < gapWait {
					break // wait for the missing number to land
				}
			}
			gapSince = time.Time{}
			last = r.Seq
			h.dispatch(r)
		}
	}
}

func (h *Hub) dispatch(r *store.CaseEventRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Sequence numbers are taken after a case is written, so two racing
	// writes can arrive out of order. An older event is shown only to those
	// who may also see the case as the newest event left it: a partner whose
	// consent was revoked meanwhile gets nothing more.
	newest := h.latest[r.CaseID]
	stale := newest != nil && newest.Version > r.Version
	// A first-read notice does not move the case: it never stands for the
	// case's newest state (its audience is narrower than the case's).
	if !stale && r.Type != domain.EventDataAccessedByNewOrg {
		if len(h.latest) > 50_000 {
			clear(h.latest)
		}
		h.latest[r.CaseID] = r
	}
	for s := range h.subs {
		if s.caseID != "" && s.caseID != r.CaseID {
			continue
		}
		if !r.VisibleTo(s.p) || (stale && !newest.VisibleTo(s.p)) {
			continue
		}
		select {
		case s.ch <- r:
		default:
			delete(h.subs, s)
			close(s.ch)
		}
	}
}
