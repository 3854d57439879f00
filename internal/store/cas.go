package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Compare-and-set.
//
// On MongoDB an update filtered on {_id, version} is atomic by itself. On
// the embedded FerretDB it is not: its SQLite backend reads the matching
// document in Go and writes it back, so two racing updates on one version can
// both match. What both backends do enforce atomically is a unique key on
// insert. So a writer first claims the next version of the document by
// inserting "<collection>/<id>@<version+1>" into the claims collection; only
// the one whose insert succeeds goes on to update.
//
// A claim whose writer died before updating is taken over after
// Store.claimTakeover by inserting the next generation of the claim ("…#1",
// "…#2", …): again a unique insert, so of several writers taking over at once
// exactly one wins. Claims are never updated, and deleted only by
// PruneClaims once older than an hour and of a version the document has
// moved past. As a second line, a writer that wins generation g also checks,
// by _id, that generation g-1 is still the one it found stale and that no
// generation g+1 exists; if one does, it has filled a hole and goes on up the
// chain.
//
// Limits: the writer that holds a claim must send its update within half the
// takeover time (measured on its own monotonic clock), and staleness is judged
// on the clocks of the gateway instances, so their clocks must agree to well
// within that margin (15 s by default).

const (
	// defaultClaimTakeover is Store.claimTakeover.
	defaultClaimTakeover = 30 * time.Second
	// maxClaimSteps bounds the inserts of one claim: past it the write fails
	// (to be retried) rather than loop. A chain grows by one generation per
	// writer that died holding it, at least claimTakeover apart, and is
	// pruned once the document moves on.
	maxClaimSteps = 4096
)

// errClaimExpired: the write could not be sent while its claim was still
// exclusive. Nothing was written; the client may read again and retry.
var errClaimExpired = domain.Errorf(domain.CodeConflict, "the object is being changed by another request; read it again and retry")

// errClaimChain: a claim could not be settled within maxClaimSteps.
var errClaimChain = domain.Errorf(domain.CodeConflict, "the object is being changed by too many requests at once; read it again and retry")

type claimDoc struct {
	ID string    `bson:"_id"`
	At time.Time `bson:"at"`
}

func claimID(coll, id string, version int) string {
	if f := casField(coll); f != "version" {
		// Named apart from claims on "version" (an older gateway's, say),
		// so the two never stand for each other.
		return fmt.Sprintf("%s/%s@%s%d", coll, id, f, version+1)
	}
	return fmt.Sprintf("%s/%s@%d", coll, id, version+1)
}

// claim reports whether this writer won the move from version to version+1,
// and the deadline (on this process's monotonic clock) by which its update
// must be sent.
func (s *Store) claim(ctx context.Context, coll, id string, version int) (won bool, deadline time.Time, err error) {
	base := claimID(coll, id, version)
	name := func(gen int) string {
		if gen == 0 {
			return base
		}
		return fmt.Sprintf("%s#%d", base, gen)
	}
	var stale time.Time // the At of generation gen-1, as found stale
	for gen, step := 0, 0; step < maxClaimSteps; step++ {
		cid := name(gen)
		start := time.Now()
		at := s.Now().Truncate(time.Millisecond) // BSON dates hold milliseconds
		cctx, cancel := s.op(ctx)
		_, err := s.c(colClaims).InsertOne(cctx, claimDoc{ID: cid, At: at})
		cancel()
		if err == nil {
			if gen > 0 {
				prev, err := findByID[claimDoc](ctx, s, colClaims, name(gen-1), nil)
				if errors.Is(err, mongo.ErrNoDocuments) {
					return false, time.Time{}, nil // pruned under us: be safe
				}
				if err != nil {
					return false, time.Time{}, err
				}
				if !prev.At.Equal(stale) {
					// Pruned and claimed afresh by another writer, which
					// may have won: lose.
					return false, time.Time{}, nil
				}
			}
			_, err := findByID[claimDoc](ctx, s, colClaims, name(gen+1), nil)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return true, start.Add(s.claimTakeover / 2), nil
			}
			if err != nil {
				return false, time.Time{}, err
			}
			// This filled a hole a prune left below a later generation:
			// that one decides.
			stale, gen = at, gen+1
			continue
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
		// which the version check catches): take over.
		stale, gen = old.At, gen+1
	}
	return false, time.Time{}, errClaimChain
}

// casField is the field a collection's compare-and-set runs on: "version",
// except for specialists, whose "rev" moves with every write, load changes
// included, while their "version" (the one upsertSpecialist's
// expectedVersion names) moves only when the profile changes.
func casField(coll string) string {
	if coll == colSpecialists {
		return "rev"
	}
	return "version"
}

// casUpdate applies set and bumps the collection's compare-and-set field
// (casField) only if the document is still at version and this writer won
// the claim; it reports whether it did.
func (s *Store) casUpdate(ctx context.Context, coll, id string, version int, set bson.D) (bool, error) {
	wctx, filter, release, ok, err := s.claimWrite(ctx, coll, id, version)
	if err != nil || !ok {
		return false, err
	}
	defer release()
	cctx, cancel := s.op(wctx)
	defer cancel()
	res, err := s.c(coll).UpdateOne(cctx, filter,
		bson.D{{Key: "$set", Value: set}, {Key: "$inc", Value: bson.D{{Key: casField(coll), Value: 1}}}})
	if err != nil {
		// A deadline passing here may have stopped the update before it
		// was sent or after: its outcome is unknown, so it is not reported
		// as "nothing written" (CONFLICT) but as an error.
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// casDelete deletes the document only if it is still at version, under the
// same claim as casUpdate (on FerretDB a filtered delete is a read and then a
// delete by _id); it reports whether it did.
func (s *Store) casDelete(ctx context.Context, coll, id string, version int) (bool, error) {
	wctx, filter, release, ok, err := s.claimWrite(ctx, coll, id, version)
	if err != nil || !ok {
		return false, err
	}
	defer release()
	cctx, cancel := s.op(wctx)
	defer cancel()
	res, err := s.c(coll).DeleteOne(cctx, filter)
	if err != nil {
		return false, err
	}
	return res.DeletedCount == 1, nil
}

// claimWrite prepares a compare-and-set write of the document at version:
// it wins the claim, and returns the context and filter the write must use
// (release frees the context); ok is false when another writer won or the
// document is no longer at version.
//
// On MongoDB the filter is {_id, field: version}, atomic by itself. FerretDB
// would decode the whole collection to apply it (measured: a case write at
// 2,000 cases spent ~300 ms there), and its filtered write is a read then a
// write anyway, not atomic: the claim is what lets one writer through. So
// there the version is read by _id and the write goes by _id, both answered
// from an index. Nothing re-checks the version when that write is applied,
// so it is sent only while the claim is exclusive: the read and the write
// are bounded by the claim's deadline (half the takeover time), and a writer
// that cannot make it fails rather than write late over a writer that took
// over (with CONFLICT, nothing written, when it had not yet sent the write).
// What this cannot bound is a write the database itself holds for more than
// the other half.
func (s *Store) claimWrite(ctx context.Context, coll, id string, version int) (context.Context, bson.D, context.CancelFunc, bool, error) {
	field := casField(coll)
	won, deadline, err := s.claim(ctx, coll, id, version)
	if err != nil || !won {
		return nil, nil, nil, false, err
	}
	if !s.exactIDFilters {
		var current any = version
		if version == 0 {
			current = bson.D{{Key: "$in", Value: bson.A{0, nil}}} // a document written before the field existed
		}
		return ctx, bson.D{{Key: "_id", Value: id}, {Key: field, Value: current}}, func() {}, true, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, false, err
	}
	if !time.Now().Before(deadline) {
		return nil, nil, nil, false, errClaimExpired
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	cur, err := findByID[versionDoc](wctx, s, coll, id, bson.D{{Key: field, Value: 1}})
	switch {
	case err == nil && cur.at(field) == version && time.Now().Before(deadline):
		return wctx, bson.D{{Key: "_id", Value: id}}, cancel, true, nil
	case errors.Is(err, mongo.ErrNoDocuments), err == nil && cur.at(field) != version:
		err = nil // moved on, or gone
	case err != nil && ctx.Err() != nil:
		err = ctx.Err() // the caller gave up
	case err != nil && wctx.Err() != nil, err == nil:
		err = errClaimExpired
	}
	cancel()
	return nil, nil, nil, false, err
}

// retryPause waits before attempt n > 0 of a compare-and-set loop: a
// jittered pause that doubles from 1 ms up to 64 ms, so writers that lost to
// a live claim read again after its writer has written instead of spending
// their attempts on the version it is replacing.
func retryPause(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
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

type versionDoc struct {
	Version int `bson:"version"`
	Rev     int `bson:"rev"`
}

// at returns the value of the compare-and-set field.
func (d *versionDoc) at(field string) int {
	if field == "rev" {
		return d.Rev
	}
	return d.Version
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
		if err := retryPause(ctx, attempt); err != nil {
			return 0, translate(err, "counter")
		}
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

// PruneClaims deletes claims older than age that can no longer matter: those
// of a version the document has moved past, or of a document that is gone.
// A claim of the version a document is still at stays, however old, so a
// prune never opens a hole in a chain that a writer entering at generation 0
// could not see past (a writer deleting or re-inserting one of the deleted
// claims meanwhile read a version that is no longer current, which the
// version check turns away).
func (s *Store) PruneClaims(ctx context.Context, age time.Duration) error {
	old, err := findAll[claimDoc](ctx, s, colClaims,
		bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: s.Now().Add(-age)}}}}, options.Find())
	if err != nil {
		return translate(err, "claims")
	}
	versions := map[string]int{} // coll/id -> current version, -1 when gone
	var done []string
	for _, c := range old {
		coll, id, field, next, ok := parseClaimID(c.ID)
		if !ok {
			continue
		}
		if field != casField(coll) {
			done = append(done, c.ID) // a claim on a field this collection no longer uses
			continue
		}
		key := coll + "/" + id
		v, seen := versions[key]
		if !seen {
			d, err := findByID[versionDoc](ctx, s, coll, id, bson.D{{Key: field, Value: 1}})
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				v = -1
			case err != nil:
				return translate(err, "claims")
			default:
				v = d.at(field)
			}
			versions[key] = v
		}
		if v < 0 || v >= next {
			done = append(done, c.ID)
		}
	}
	for chunk := range slices.Chunk(done, 500) {
		cctx, cancel := s.op(ctx)
		_, err := s.c(colClaims).DeleteMany(cctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: chunk}}}})
		cancel()
		if err != nil {
			return translate(err, "claims")
		}
	}
	return nil
}

// parseClaimID splits "<coll>/<id>@[<field>]<next>[#<gen>]" (see claimID;
// field is "version" when not named); ids may hold "/" or "@", the suffix
// after the last "@" never does.
func parseClaimID(cid string) (coll, id, field string, next int, ok bool) {
	slash := strings.IndexByte(cid, '/')
	at := strings.LastIndexByte(cid, '@')
	if slash < 0 || at < slash {
		return "", "", "", 0, false
	}
	rest := cid[at+1:]
	if h := strings.IndexByte(rest, '#'); h >= 0 {
		rest = rest[:h]
	}
	digits := strings.IndexAny(rest, "0123456789")
	if digits < 0 {
		return "", "", "", 0, false
	}
	field = rest[:digits]
	if field == "" {
		field = "version"
	}
	n, err := strconv.Atoi(rest[digits:])
	if err != nil {
		return "", "", "", 0, false
	}
	return cid[:slash], cid[slash+1 : at], field, n, true
}
