package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
)

// IdempotencyTTL is how long a key and its first result are kept at least.
const IdempotencyTTL = 48 * time.Hour

// pendingTakeover is how long a claim may stay pending before another
// request assumes its owner died and takes it over.
const pendingTakeover = 30 * time.Second

type idemDoc struct {
	ID        string    `bson:"_id"`
	InputHash string    `bson:"inputHash"`
	State     string    `bson:"state"`
	ResultID  string    `bson:"resultId,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
}

// Idempotent runs fn at most once per (caller, operation, key): the first
// request claims the key with an insert (the unique _id decides races), runs
// fn and stores its result id; a retry with the same input gets that id; the
// same key with another input is IDEMPOTENCY_KEY_REUSED. Keys are scoped to
// the caller's sub and org, so two callers never share one.
func (s *Store) Idempotent(ctx context.Context, p domain.Principal, op, key, inputHash string, fn func() (string, error)) (string, error) {
	id := idempotencyID(p, op, key)
	deadline := time.Now().Add(15 * time.Second)
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		claimed, doc, err := s.claimKey(ctx, id, inputHash)
		if err != nil {
			return "", err
		}
		if claimed {
			result, err := fn()
			if err != nil {
				s.dropClaim(context.WithoutCancel(ctx), id, doc.CreatedAt)
				return "", err
			}
			// Only this request's own claim is marked done (one taken over
			// meanwhile belongs to the request that took it).
			_, uerr := s.conditional(context.WithoutCancel(ctx), colIdempotency, id, bson.D{{Key: "createdAt", Value: doc.CreatedAt}},
				func(ctx context.Context, filter bson.D) (int64, error) {
					res, err := s.c(colIdempotency).UpdateOne(ctx, filter,
						bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "done"}, {Key: "resultId", Value: result}}}})
					if err != nil {
						return 0, err
					}
					return res.MatchedCount, nil
				})
			if uerr != nil {
				return "", translate(uerr, "idempotency key")
			}
			return result, nil
		}
		if doc.InputHash != inputHash {
			return "", domain.Errorf(domain.CodeIdempotencyKeyReused, "this idempotency key was used with a different input")
		}
		if doc.State == "done" {
			return doc.ResultID, nil
		}
		if s.Now().Sub(doc.CreatedAt) > pendingTakeover {
			won, err := s.takeOver(ctx, id, doc.CreatedAt, false)
			if err != nil {
				return "", err
			}
			if won {
				continue // claim the key afresh
			}
			// Another request is taking it over, or this one finished after
			// all: read again after a pause.
		}
		if time.Now().After(deadline) {
			return "", domain.Errorf(domain.CodeConflict, "the first request with this idempotency key is still running; retry")
		}
		select {
		case <-ctx.Done():
			return "", translate(ctx.Err(), "idempotency key")
		case <-time.After(wait):
		}
	}
}

// claimKey inserts the key and returns true with what it inserted; when the
// key exists already it returns false with the stored one (dropping it first
// if it outlived IdempotencyTTL).
func (s *Store) claimKey(ctx context.Context, id, inputHash string) (bool, *idemDoc, error) {
	for attempt := 0; attempt < 3; attempt++ {
		cctx, cancel := s.op(ctx)
		mine := idemDoc{ID: id, InputHash: inputHash, State: "pending", CreatedAt: s.Now().Truncate(time.Millisecond)}
		_, err := s.c(colIdempotency).InsertOne(cctx, mine)
		cancel()
		if err == nil {
			return true, &mine, nil
		}
		if !isDuplicate(err) {
			return false, nil, translate(err, "idempotency key")
		}
		doc, err := findByID[idemDoc](ctx, s, colIdempotency, id, nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // dropped between our insert and read: claim again
		}
		if err != nil {
			return false, nil, translate(err, "idempotency key")
		}
		if s.Now().Sub(doc.CreatedAt) > IdempotencyTTL {
			if _, err := s.takeOver(ctx, id, doc.CreatedAt, true); err != nil {
				return false, nil, err
			}
			continue
		}
		return false, doc, nil
	}
	return false, nil, domain.Errorf(domain.CodeConflict, "idempotency key is contended; retry")
}

// takeOver deletes the key's record created at createdAt, found dead (a
// pending claim whose request died, or, with expired, a record past
// IdempotencyTTL), so that a request can claim the key afresh. It reports
// whether it did: not when the record changed meanwhile (its request
// finished after all, or another request took it over first).
func (s *Store) takeOver(ctx context.Context, id string, createdAt time.Time, expired bool) (bool, error) {
	cond := bson.D{{Key: "createdAt", Value: createdAt}}
	if !expired {
		cond = append(cond, bson.E{Key: "state", Value: "pending"})
	}
	ok, err := s.conditional(ctx, colIdempotency, id, cond, s.deleteOne(colIdempotency))
	return ok, translate(err, "idempotency key")
}

// dropClaim deletes this request's own pending claim, created at createdAt,
// after its operation failed, so a retry runs it again.
func (s *Store) dropClaim(ctx context.Context, id string, createdAt time.Time) {
	_, _ = s.conditional(ctx, colIdempotency, id,
		bson.D{{Key: "createdAt", Value: createdAt}, {Key: "state", Value: "pending"}}, s.deleteOne(colIdempotency))
}

// idempotencyID is the key's _id, scoped to the caller's sub and org.
func idempotencyID(p domain.Principal, op, key string) string {
	sum := sha256.Sum256([]byte(p.Subject + "\x00" + p.Org + "\x00" + op + "\x00" + key))
	return hex.EncodeToString(sum[:])
}
