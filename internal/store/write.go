package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// The one write path.
//
// Every change to a stored document goes through conditional (and so
// casUpdate and casDelete) or through locked. The two backends get the
// implementation each is honest about:
//
//   - On MongoDB a conditional write is one filtered command ({_id, version}
//     and the like), atomic by itself; counters and loads are $inc. Any
//     number of gateway replicas may write.
//   - On the embedded FerretDB a filtered write is a read and a whole-document
//     write back, not atomic, and any filter but exactly {_id} decodes the
//     whole collection. There exactly one process writes the store
//     (embedded.Start locks the data directory), and it serialises its own
//     writes to each document: under a per-document lock it reads the
//     document by _id, checks the condition in Go and writes by _id.
//
// Once a write has its lock it runs to the end on a context that the caller's
// cancellation does not stop (bounded by the store's operation timeout), so
// a request that gives up never leaves a half-applied change, a lock held
// past its own call, or a write landing after another writer's.

// docLocks serialises this process's writes per document (FerretDB only).
// The Stores of the process on one database share one (sharedDocLocks): a
// lock per Store would let two of them write one document at once.
type docLocks struct {
	mu   sync.Mutex
	held map[string]*docLock
}

type docLock struct {
	ch   chan struct{}
	refs int
}

var docLocksFor sync.Map // database key → *docLocks

// sharedDocLocks is the document locks of database dbKey, shared by the
// process's Stores on it.
func sharedDocLocks(dbKey string) *docLocks {
	l, _ := docLocksFor.LoadOrStore(dbKey, &docLocks{})
	return l.(*docLocks)
}

// lock waits for the document's lock (or for ctx to end) and returns its
// release.
func (l *docLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]*docLock{}
	}
	d := l.held[key]
	if d == nil {
		d = &docLock{ch: make(chan struct{}, 1)}
		l.held[key] = d
	}
	d.refs++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if d.refs--; d.refs == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}
	select {
	case d.ch <- struct{}{}:
		return func() { <-d.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// locked runs write on the document coll/id as one uninterruptible step: on
// FerretDB under the document's lock (waiting for it respects ctx), on both
// backends with a context the caller's cancellation does not stop.
func (s *Store) locked(ctx context.Context, coll, id string, write func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.serialWrites {
		unlock, err := s.locks.lock(ctx, coll+"/"+id)
		if err != nil {
			return err
		}
		defer unlock()
	}
	wctx, cancel := s.op(context.WithoutCancel(ctx))
	defer cancel()
	if s.beforeWrite != nil {
		if err := s.beforeWrite(coll, id); err != nil {
			return err
		}
	}
	return write(wctx)
}

// heldWrite runs write on the document coll/id for a caller that holds
// its lock already (within locked or conditional): as locked does, but
// without taking the lock again.
func (s *Store) heldWrite(ctx context.Context, coll, id string, write func(ctx context.Context) error) error {
	wctx, cancel := s.op(context.WithoutCancel(ctx))
	defer cancel()
	if s.beforeWrite != nil {
		if err := s.beforeWrite(coll, id); err != nil {
			return err
		}
	}
	return write(wctx)
}

// conditional applies op to the document coll/id only while its fields
// equal cond, and reports whether it did. op receives the filter to use. On
// MongoDB that filter is {_id} plus cond, one atomic command; on FerretDB
// the document is read by _id under its lock, cond is compared in Go, and
// the filter is {_id} alone.
func (s *Store) conditional(ctx context.Context, coll, id string, cond bson.D, op func(ctx context.Context, filter bson.D) (int64, error)) (bool, error) {
	var n int64
	err := s.locked(ctx, coll, id, func(ctx context.Context) error {
		filter := bson.D{{Key: "_id", Value: id}}
		if !s.serialWrites {
			filter = append(filter, cond...)
		} else {
			proj := bson.D{}
			for _, e := range cond {
				proj = append(proj, bson.E{Key: e.Key, Value: 1})
			}
			raw, err := s.c(coll).FindOne(ctx, filter, options.FindOne().SetProjection(proj)).Raw()
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, e := range cond {
				if !matches(raw, e) {
					return nil
				}
			}
		}
		var err error
		n, err = op(ctx, filter)
		return err
	})
	return n == 1, err
}

// matches reports whether the stored document's field equals e's value:
// numbers by value whatever their BSON width, a missing version as 0,
// anything else byte for byte.
func matches(doc bson.Raw, e bson.E) bool {
	want := e.Value
	if in, ok := want.(bson.D); ok && len(in) == 1 && in[0].Key == "$in" {
		for _, v := range in[0].Value.(bson.A) {
			if matches(doc, bson.E{Key: e.Key, Value: v}) {
				return true
			}
		}
		return false
	}
	got, err := doc.LookupErr(e.Key)
	if err != nil {
		return want == nil
	}
	if want == nil {
		return got.Type == bson.TypeNull
	}
	t, b, err := bson.MarshalValue(want)
	if err != nil {
		return false
	}
	exp := bson.RawValue{Type: t, Value: b}
	if gi, ok := got.AsInt64OK(); ok {
		ei, ok := exp.AsInt64OK()
		return ok && gi == ei
	}
	return got.Type == exp.Type && bytes.Equal(got.Value, exp.Value)
}

// versionCond is the condition "still at version"; version 0 also matches a
// document written before the field existed.
func versionCond(version int) bson.D {
	if version == 0 {
		return bson.D{{Key: "version", Value: bson.D{{Key: "$in", Value: bson.A{0, nil}}}}}
	}
	return bson.D{{Key: "version", Value: version}}
}

// casUpdate applies set (and bumps version) only if the document is still at
// version; it reports whether it did.
func (s *Store) casUpdate(ctx context.Context, coll, id string, version int, set bson.D) (bool, error) {
	return s.casApply(ctx, coll, id, version, bson.D{{Key: "$set", Value: set}})
}

// casApply applies update (and bumps version) only if the document is still
// at version; it reports whether it did.
func (s *Store) casApply(ctx context.Context, coll, id string, version int, update bson.D) (bool, error) {
	update = append(update, bson.E{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}})
	return s.conditional(ctx, coll, id, versionCond(version), func(ctx context.Context, filter bson.D) (int64, error) {
		res, err := s.c(coll).UpdateOne(ctx, filter, update)
		if err != nil {
			return 0, err
		}
		return res.MatchedCount, nil
	})
}

// casDelete deletes the document only if it is still at version; it reports
// whether it did.
func (s *Store) casDelete(ctx context.Context, coll, id string, version int) (bool, error) {
	return s.conditional(ctx, coll, id, versionCond(version), s.deleteOne(coll))
}

// deleteOne is a conditional operation deleting the document.
func (s *Store) deleteOne(coll string) func(ctx context.Context, filter bson.D) (int64, error) {
	return func(ctx context.Context, filter bson.D) (int64, error) {
		res, err := s.c(coll).DeleteOne(ctx, filter)
		if err != nil {
			return 0, err
		}
		return res.DeletedCount, nil
	}
}

// inc adds delta to numeric fields of the document coll/id (no version
// change): one $inc on MongoDB, serialised with every other write of the
// document on FerretDB, where an $inc is a read and a write back.
func (s *Store) inc(ctx context.Context, coll, id string, fields bson.D) error {
	return s.locked(ctx, coll, id, func(ctx context.Context) error {
		_, err := s.c(coll).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: fields}})
		return err
	})
}

// errBusy ends a compare-and-set loop that ran out of attempts: nothing was
// written, and the client may read again and retry.
func errBusy(what string) error {
	return domain.Errorf(domain.CodeConflict, "the %s is changing too often; read it again and retry", what)
}

// retryPause waits before attempt n > 0 of a compare-and-set loop: a
// jittered pause that doubles from 1 ms up to 64 ms.
func retryPause(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	d := time.Duration(1<<min(attempt-1, 6)) * time.Millisecond
	t := time.NewTimer(d/2 + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type counterDoc struct {
	ID      string `bson:"_id"`
	Seq     int64  `bson:"seq"`
	Version int    `bson:"version"`
}

// caseEventsCounter numbers case events (their seq, which tailers follow).
const caseEventsCounter = "case-events"

// increment reserves n values of a named counter and returns the last. On
// the embedded store case-event numbers come from the process's block of
// them (takeEventSeqs); otherwise it is one counter write.
func (s *Store) increment(ctx context.Context, name string, n int) (int64, error) {
	if b := s.eventSeqs.Load(); s.serialWrites && b != nil && name == caseEventsCounter {
		return s.takeEventSeqs(ctx, b, n)
	}
	return s.reserve(ctx, name, n)
}

// eventSeqBlock is how many case-event numbers the embedded store reserves
// in one counter write.
const eventSeqBlock = 64

// eventSeqs are the case-event numbers this process reserved and has not
// handed out: left of them, from next.
//
// On the embedded store the process is the store's one writer, so it
// reserves the numbers eventSeqBlock at a time, one counter write per
// block instead of one per publish, and hands them out in order, as the
// counter would (a number is still taken before its events are written).
// The Stores of the process on one database share one eventSeqs
// (sharedEventSeqs): two blocks handed out side by side would put a later
// event below a number a tailer already passed. The last Store's Close
// gives back the numbers not handed out; a process that stops without it
// leaves them unused: a gap in the sequence, which tailers wait out once,
// as after a publish that failed between its number and its events.
type eventSeqs struct {
	mu         sync.Mutex
	next, left int64
	users      int // the open Stores sharing it; guarded by eventSeqsMu
}

var (
	eventSeqsMu  sync.Mutex
	eventSeqsFor = map[string]*eventSeqs{} // database key → its numbers
)

// sharedEventSeqs is the eventSeqs of database dbKey, shared with the
// process's other open Stores on it.
func sharedEventSeqs(dbKey string) *eventSeqs {
	eventSeqsMu.Lock()
	defer eventSeqsMu.Unlock()
	b := eventSeqsFor[dbKey]
	if b == nil {
		b = &eventSeqs{}
		eventSeqsFor[dbKey] = b
	}
	b.users++
	return b
}

// takeEventSeqs hands out n consecutive case-event numbers and returns the
// last, reserving more when fewer are left.
func (s *Store) takeEventSeqs(ctx context.Context, b *eventSeqs, n int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left < int64(n) {
		k := int64(n) - b.left + eventSeqBlock
		hi, err := s.reserve(ctx, caseEventsCounter, int(k))
		if err != nil {
			return 0, err
		}
		if b.left > 0 && hi-k == b.next+b.left-1 {
			b.left += k // right after the numbers left
		} else {
			b.next, b.left = hi-k+1, k
		}
	}
	last := b.next + int64(n) - 1
	b.next, b.left = last+1, b.left-int64(n)
	return last, nil
}

// giveBackEventSeqs ends s's share of its database's case-event numbers.
// The last Store to end it gives the numbers reserved and not handed out
// back to the counter, unless another writer reserved numbers since.
func (s *Store) giveBackEventSeqs(ctx context.Context) error {
	b := s.eventSeqs.Swap(nil)
	if b == nil {
		return nil
	}
	eventSeqsMu.Lock()
	b.users--
	last := b.users == 0
	if last {
		delete(eventSeqsFor, s.dbKey)
	}
	eventSeqsMu.Unlock()
	if !last {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left == 0 {
		return nil
	}
	_, err := s.conditional(ctx, colCounters, caseEventsCounter, bson.D{{Key: "seq", Value: b.next + b.left - 1}},
		func(ctx context.Context, filter bson.D) (int64, error) {
			res, err := s.c(colCounters).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: b.next - 1}}}})
			if err != nil {
				return 0, err
			}
			return res.MatchedCount, nil
		})
	if err != nil {
		return fmt.Errorf("store: counter %s: %w", caseEventsCounter, err)
	}
	b.left = 0
	return nil
}

// reserve reserves n values of a named counter and returns the last: one
// findAndModify with $inc and upsert, never abandoned halfway.
func (s *Store) reserve(ctx context.Context, name string, n int) (int64, error) {
	var d counterDoc
	err := s.locked(ctx, colCounters, name, func(ctx context.Context) error {
		return s.c(colCounters).FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: name}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(n)}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&d)
	})
	if err != nil {
		return 0, fmt.Errorf("store: counter %s: %w", name, err)
	}
	return d.Seq, nil
}
