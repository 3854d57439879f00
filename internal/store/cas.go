package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Compare-and-set.
//
// On MongoDB an update filtered on {_id, version} is atomic by itself. On
// the embedded FerretDB it is not: its SQLite backend reads the matching
// document in Go and writes it back, so two racing updates on one version can
// both match. What both backends do enforce atomically is a unique key on
// insert. So a writer first claims the next version of the document by
// inserting "<collection>/<id>@<version+1>" into the claims collection; only
// the one whose insert succeeds goes on to update. A claim whose writer died
// before updating is taken over after Store.claimTakeover, by inserting the next
// generation of the claim ("…#1", "…#2"): again a unique insert, so of
// several writers taking over at once exactly one wins, and nothing is
// deleted on the way (FerretDB would apply a filtered delete by _id alone).

const (
	// defaultClaimTakeover is Store.claimTakeover.
	defaultClaimTakeover = 30 * time.Second
	// claimGenerations bounds takeovers of one claim.
	claimGenerations = 8
)

// errClaimExpired: the write could not be sent while its claim was still
// exclusive.
var errClaimExpired = errors.New("store: the write took too long to be sent while it held its claim; retry")

type claimDoc struct {
	ID string    `bson:"_id"`
	At time.Time `bson:"at"`
}

func claimID(coll, id string, version int) string {
	return fmt.Sprintf("%s/%s@%d", coll, id, version+1)
}

// claim reports whether this writer won the move from version to version+1,
// and when (on the store's clock) it claimed it.
func (s *Store) claim(ctx context.Context, coll, id string, version int) (won bool, at time.Time, err error) {
	base := claimID(coll, id, version)
	for gen, attempts := 0, 0; gen < claimGenerations && attempts < 2*claimGenerations; attempts++ {
		cid := base
		if gen > 0 {
			cid = fmt.Sprintf("%s#%d", base, gen)
		}
		now := s.Now()
		cctx, cancel := s.op(ctx)
		_, err := s.c(colClaims).InsertOne(cctx, claimDoc{ID: cid, At: now})
		cancel()
		if err == nil {
			return true, now, nil
		}
		if !isDuplicate(err) {
			return false, time.Time{}, err
		}
		old, err := findByID[claimDoc](ctx, s, colClaims, cid, nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // pruned meanwhile: try this generation again
		}
		if err != nil {
			return false, time.Time{}, err
		}
		if s.Now().Sub(old.At) < s.claimTakeover {
			return false, time.Time{}, nil
		}
		// Its writer died before writing (or the document has moved on,
		// which the version check below catches): take over.
		gen++
	}
	return false, time.Time{}, nil
}

// casUpdate applies set and bumps version only if the document is still at
// version and this writer won the claim; it reports whether it did.
func (s *Store) casUpdate(ctx context.Context, coll, id string, version int, set bson.D) (bool, error) {
	won, claimedAt, err := s.claim(ctx, coll, id, version)
	if err != nil || !won {
		return false, err
	}
	filter := bson.D{{Key: "_id", Value: id}, {Key: "version", Value: version}}
	if s.exactIDFilters {
		// FerretDB would decode the whole collection to apply {_id,
		// version} (measured: a case write at 2,000 cases spent ~300 ms
		// there), and its filtered update is a read then a write anyway, not
		// atomic: the claim is what lets one writer through. So read the
		// version by _id and update by _id, both answered from an index.
		//
		// Nothing re-checks the version when that update lands, so it must
		// land while the claim is exclusive: both calls are bounded to half
		// the takeover time after the claim, and a writer that cannot make
		// it fails instead of writing late over a writer that took over.
		budget := claimedAt.Add(s.claimTakeover / 2).Sub(s.Now())
		if budget <= 0 {
			return false, errClaimExpired
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
		cur, err := findByID[versionDoc](ctx, s, coll, id, bson.D{{Key: "version", Value: 1}})
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if cur.Version != version {
			return false, nil
		}
		if claimedAt.Add(s.claimTakeover/2).Sub(s.Now()) <= 0 {
			return false, errClaimExpired
		}
		filter = bson.D{{Key: "_id", Value: id}}
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.c(coll).UpdateOne(cctx, filter,
		bson.D{{Key: "$set", Value: set}, {Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

type versionDoc struct {
	Version int `bson:"version"`
}

type counterDoc struct {
	ID      string `bson:"_id"`
	Seq     int64  `bson:"seq"`
	Version int    `bson:"version"`
}

// increment returns the next value of a named counter, atomically on both
// backends (a compare-and-set loop over the counter's version).
func (s *Store) increment(ctx context.Context, name string) (int64, error) {
	for attempt := 0; attempt < 100; attempt++ {
		d, err := findByID[counterDoc](ctx, s, colCounters, name, nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			cctx, cancel := s.op(ctx)
			_, err = s.c(colCounters).InsertOne(cctx, counterDoc{ID: name})
			cancel()
			if err != nil && !isDuplicate(err) {
				return 0, translate(err, "counter")
			}
			continue
		}
		if err != nil {
			return 0, translate(err, "counter")
		}
		ok, err := s.casUpdate(ctx, colCounters, name, d.Version, bson.D{{Key: "seq", Value: d.Seq + 1}})
		if err != nil {
			return 0, translate(err, "counter")
		}
		if ok {
			return d.Seq + 1, nil
		}
	}
	return 0, fmt.Errorf("store: counter %s: too much contention", name)
}

// PruneClaims deletes claims older than age; they matter only while their
// write is in flight.
func (s *Store) PruneClaims(ctx context.Context, age time.Duration) error {
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colClaims).DeleteMany(cctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: s.Now().Add(-age)}}}})
	return translate(err, "claims")
}
