package store

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/secondopinion/gateway/internal/domain"
)

// caseHold is MutateCase's hold on a case for one attempt. On the embedded
// store it is the case's lock (the one locked takes), taken before the
// case is read and kept until its write and the outbox's copy are done:
// no other write of the case can come between, so the write needs no read
// of the version first, nor the outbox's clearing after it. On MongoDB it
// holds nothing: the write is conditional on the version instead.
type caseHold struct{ release func() }

// held reports whether h holds the case's lock.
func (h *caseHold) held() bool { return h != nil && h.release != nil }

// end lets the lock go (once; nil and MongoDB's hold do nothing).
func (h *caseHold) end() {
	if h.held() {
		h.release()
		h.release = nil
	}
}

// readCaseToWrite reads case id for a move, taking its lock first on the
// embedded store.
func (s *Store) readCaseToWrite(ctx context.Context, id string) (*caseDoc, bson.Raw, *caseHold, error) {
	h := &caseHold{}
	if s.serialWrites {
		unlock, err := s.locks.lock(ctx, colCases+"/"+id)
		if err != nil {
			return nil, nil, nil, err
		}
		h.release = unlock
	}
	d, raw, err := findByIDRaw[caseDoc](ctx, s, colCases, id)
	if err != nil {
		h.end()
		return nil, nil, nil, err
	}
	return d, raw, h, nil
}

// writeCase stores one move of case id (MutateCase's): update, which holds
// the move's outbox, applied only if the case is still at version, then
// the outbox's copy to case_events and the case's list document
// (publishOutbox). It returns the case document as the update left it, or
// nil when the case had moved on since it was read (nothing written). It
// ends hold.
//
// The update is a findAndModify returning the document it wrote, so the
// move's answer needs no read back (caseAsWritten). Under a held lock the
// version was read under it, and the update and the clearing of the
// outbox are writes by _id alone; without one, the update is conditional
// on the version (one filtered command on MongoDB; conditional's read of
// the version first on the embedded store), and so is the clearing.
func (s *Store) writeCase(ctx context.Context, hold *caseHold, id string, version int, update bson.D, after *caseDoc, outbox []CaseEventRecord, listed bson.D) (bson.Raw, error) {
	defer hold.end()
	update = append(update, bson.E{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}})
	var written bson.Raw
	write := func(ctx context.Context, filter bson.D) (int64, error) {
		raw, err := s.c(colCases).FindOneAndUpdate(ctx, filter, update,
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		written = raw
		return 1, nil
	}
	var err error
	if hold.held() {
		err = s.heldWrite(ctx, colCases, id, func(ctx context.Context) error {
			_, err := write(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		})
	} else {
		_, err = s.conditional(ctx, colCases, id, versionCond(version), write)
	}
	if err != nil || written == nil {
		return nil, err
	}
	// The change and its events are stored; a failed copy to case_events
	// (or of the list document) is retried by the sweeper, so it does not
	// fail the move.
	_ = s.publish(ctx, id, after.Version, outbox, after, listed, hold.held())
	return written, nil
}

// caseAsWritten is the case of the document raw, which a write of p's just
// returned, as CaseWith(p, id, FullCase) would read it: the same fields
// left out for p (caseProjectionFor, applied here), the same scope check,
// the clinical part fetched the same way for a reviewer.
func (s *Store) caseAsWritten(ctx context.Context, p domain.Principal, id string, raw bson.Raw) (*domain.Case, error) {
	sc := caseScope(p)
	proj := caseProjectionFor(p, FullCase)
	shown, ok := withoutFields(raw, proj)
	if !ok {
		return s.Case(ctx, p, id)
	}
	var d caseDoc
	if err := unmarshalWith(s.reg, shown, &d); err != nil {
		return nil, translate(err, "case")
	}
	s.lastCase.Store(&id)
	c := toCase(&d)
	if !sc.allow(c) {
		// The move took the case out of p's scope: as a read now would.
		return nil, s.caseNotFound(ctx, sc, proj, true)
	}
	if err := s.withClinical(ctx, p, FullCase, []*domain.Case{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// withoutFields is doc without the top-level fields that proj, a
// projection of exclusions only ({field: 0} each, no dotted path), leaves
// out; ok is false for any other projection.
func withoutFields(doc bson.Raw, proj bson.D) (bson.Raw, bool) {
	drop := make(map[string]bool, len(proj))
	for _, e := range proj {
		if v, isInt := e.Value.(int); !isInt || v != 0 || e.Key == "_id" || strings.Contains(e.Key, ".") {
			return nil, false
		}
		drop[e.Key] = true
	}
	elems, err := doc.Elements()
	if err != nil {
		return nil, false
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, el := range elems {
		if !drop[el.Key()] {
			out = append(out, el...)
		}
	}
	out, err = bsoncore.AppendDocumentEnd(out, idx)
	if err != nil {
		return nil, false
	}
	return out, true
}
