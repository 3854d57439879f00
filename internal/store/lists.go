package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// List documents.
//
// On the embedded store any read that is not an exact {_id} decodes the
// whole collection, and what it costs is the fields it decodes. A case
// carries its clinical part, history and consents; an opinion its content;
// a specialist a profile a search never shows. So each of these collections
// has a list collection beside it: per document, only the fields that
// pages filter, sort and show, and its version. Pages and counts read the
// list collection; a page that shows more (a case's clinical fields, an
// opinion's content, a specialist's full profile) reads the rest of its
// rows by _id, which the embedded store answers from an index.
//
// The document is the truth and its list document a copy of some of its
// fields, written after it:
//
//   - A write to a document is followed by the write of its list document,
//     in the same call. The list document carries the version it copies,
//     and writeListed never lets an older copy replace a newer one, so
//     concurrent writers leave the newest.
//   - A case's list document is written with its events (publishOutbox):
//     until it is, the case keeps its outbox, and the sweeper that
//     publishes left-over outboxes (at start, and after any failed copy)
//     writes it again.
//   - RepairLists, at every start, compares every list document with its
//     document and rewrites the ones that differ (a process stopped between
//     the two writes, a migration that renamed a member), and builds them
//     all for a database that has none yet.
//
// A page therefore never disagrees with the detail beyond the next write of
// that document or the next start. Every write of a listed field moves the
// document's version (a specialist's move abroad included), so a write's
// copy, made from the document it read and its own $set, is exactly what it
// stored, and copies are ordered by version. The one exception is a
// member's migration (MigrateMembers renames without a new version); it
// runs at start, before RepairLists, which compares every field. Who
// may see a row is never left to a copy that may lag: members', insurers'
// and coordinators' scopes rest on fields a case keeps (its patient and
// insurer); a reviewer's page, whose scope follows the case's assignment
// and consents, reads its rows by _id and holds each to the scope again,
// and a reviewer's count and a specialist's move read the cases
// themselves. Policies have no list
// collection: every field of a policy document is shown by a page of
// policies.
//
// On the embedded store the list documents are not documents of the list
// collections but rows of packed lists (packed.go), read by _id; the rules
// above hold for them alike.

// listing names a collection's list collection and the fields it copies.
type listing struct {
	coll, list string
	fields     []string
}

var (
	caseListing = listing{coll: colCases, list: colCaseList, fields: []string{
		"_id", "reference", "status", "policyId", "patientId", "insurerId", "specialty", "urgency",
		"preferredLanguage", "intlConsent", "specialistId", "specialistOrgId", "specialistAbroad",
		"patientPseudonym", "decision", "dueAt", "recordsCompleteAt", "submittedAt", "updatedAt",
		"deliveredAt", "eventCount", "version",
	}}
	opinionListing = listing{coll: colOpinions, list: colOpinionList, fields: []string{
		"_id", "caseId", "specialistId", "orgId", "patientId", "insurerId", "status", "deliveredAt",
		"updatedAt", "version",
	}}
	specialistListing = listing{coll: colSpecialists, list: colSpecialistList, fields: []string{
		"_id", "name", "specialties", "languages", "country", "acceptingCases", "version",
	}}
	listings = []listing{caseListing, opinionListing, specialistListing}
)

// projection reads a document's listed fields.
func (l listing) projection() bson.D {
	p := make(bson.D, 0, len(l.fields))
	for _, f := range l.fields {
		p = append(p, bson.E{Key: f, Value: 1})
	}
	return p
}

// of returns the list document of a stored document: its listed fields, in
// the listing's order (so two copies of the same values are the same bytes).
// A document stored before it had a version gets version 0, so that the
// version filter of putListed always has a field to compare.
func (l listing) of(doc bson.Raw) bson.D {
	out := make(bson.D, 0, len(l.fields))
	for _, f := range l.fields {
		if v, err := doc.LookupErr(f); err == nil {
			out = append(out, bson.E{Key: f, Value: v})
		} else if f == "version" {
			out = append(out, bson.E{Key: f, Value: 0})
		}
	}
	return out
}

// ofValue is of for a document held as a Go value.
func (l listing) ofValue(d any) (bson.D, error) {
	raw, err := bson.Marshal(d)
	if err != nil {
		return nil, err
	}
	return l.of(raw), nil
}

// after returns the list document of the stored document before once set
// (a $set of top-level fields, as the write applies it) is applied and the
// version bumped to version: the copy a write makes without reading its
// document again.
func (l listing) after(before bson.Raw, set bson.D, version int) bson.D {
	vals := map[string]any{}
	for _, e := range l.of(before) {
		vals[e.Key] = e.Value
	}
	for _, e := range set {
		vals[e.Key] = e.Value
	}
	vals["version"] = version
	out := make(bson.D, 0, len(l.fields))
	for _, f := range l.fields {
		if v, ok := vals[f]; ok {
			out = append(out, bson.E{Key: f, Value: v})
		}
	}
	return out
}

// fullRows reads by _id the documents of a page read from list documents,
// in the page's order; a document gone meanwhile is left out.
func fullRows[D any](ctx context.Context, s *Store, coll string, page []*D, id func(*D) string, proj bson.D) ([]*D, error) {
	ids := make([]string, len(page))
	for i, d := range page {
		ids[i] = id(d)
	}
	docs, err := findByIDs[D](ctx, s, coll, ids, proj)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*D, len(docs))
	for _, d := range docs {
		byID[id(d)] = d
	}
	out := make([]*D, 0, len(ids))
	for _, x := range ids {
		if d, ok := byID[x]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// canonical is a list document's bytes with every integer as an int64, so
// that copies of one value compare equal whatever width a write gave it.
func canonical(doc bson.D) ([]byte, error) {
	out := make(bson.D, len(doc))
	for i, e := range doc {
		out[i] = e
		switch v := e.Value.(type) {
		case int:
			out[i].Value = int64(v)
		case int32:
			out[i].Value = int64(v)
		case bson.RawValue:
			if v.Type == bson.TypeInt32 || v.Type == bson.TypeInt64 {
				out[i].Value = v.AsInt64()
			}
		}
	}
	return bson.Marshal(out)
}

// versionOf is a list document's version.
func versionOf(doc bson.D) int {
	for _, e := range doc {
		if e.Key != "version" {
			continue
		}
		switch v := e.Value.(type) {
		case int:
			return v
		case int32:
			return int(v)
		case int64:
			return int(v)
		case bson.RawValue:
			if n, ok := v.AsInt64OK(); ok {
				return int(n)
			}
		}
	}
	return 0
}

// writeListed stores doc as the list document of id unless a newer copy
// is there.
// The copy follows a stored write: the caller's cancellation does not
// stop it.
func (s *Store) writeListed(ctx context.Context, l listing, id string, doc bson.D) error {
	err := s.locked(context.WithoutCancel(ctx), l.list, id, func(ctx context.Context) error { return s.putListed(ctx, l, id, doc) })
	if err != nil {
		return fmt.Errorf("store: list %s: %w", l.coll, err)
	}
	return nil
}

// putListed writes doc as the list document of id unless the stored copy
// has a later version (a copy of the same version is replaced: a migration
// changes fields without a new version). The caller holds the list
// document's lock. On MongoDB the condition is in the filter of one
// upsert, whose insert a newer copy refuses as a duplicate _id.
func (s *Store) putListed(ctx context.Context, l listing, id string, doc bson.D) error {
	if s.packed() {
		return s.packPut(ctx, l, id, doc)
	}
	v := versionOf(doc)
	filter := bson.D{{Key: "_id", Value: id}}
	if s.serialWrites {
		var cur struct {
			Version int `bson:"version"`
		}
		err := s.c(l.list).FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&cur)
		switch {
		case err == nil && cur.Version > v:
			return nil
		case err != nil && !errors.Is(err, mongo.ErrNoDocuments):
			return err
		}
	} else {
		filter = append(filter, bson.E{Key: "version", Value: bson.D{{Key: "$lte", Value: v}}})
	}
	var err error
	for range 2 {
		_, err = s.c(l.list).ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(true))
		if !isDuplicate(err) || s.serialWrites {
			return err
		}
		// The copy was missing, and another writer inserted one since:
		// once more, against it (a duplicate again means it is newer).
	}
	if isDuplicate(err) {
		return nil
	}
	return err
}

// relist copies document id to its list collection as it is stored now
// (or removes its list document when it is gone). The document is read
// under the list document's lock, so two relists of one document leave the
// later read. Like writeListed, it is not stopped by the caller's
// cancellation.
func (s *Store) relist(ctx context.Context, l listing, id string) error {
	err := s.locked(context.WithoutCancel(ctx), l.list, id, func(ctx context.Context) error {
		raw, err := s.c(l.coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(l.projection())).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			if s.packed() {
				return s.packDelete(ctx, l, id)
			}
			_, err := s.c(l.list).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		}
		if err != nil {
			return err
		}
		return s.putListed(ctx, l, id, l.of(raw))
	})
	if err != nil {
		return fmt.Errorf("store: list %s: %w", l.coll, err)
	}
	return nil
}

// RepairLists makes every list document equal to its document's listed
// fields: it writes the missing and the differing ones and removes those
// whose document is gone. It runs at start (after the migrations, which may
// rename fields a list shows); it reads each collection and its list once.
// It returns how many list documents it wrote or removed.
func (s *Store) RepairLists(ctx context.Context) (int, error) {
	total := 0
	for _, l := range listings {
		n, err := s.repairList(ctx, l)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Store) repairList(ctx context.Context, l listing) (int, error) {
	docs, err := findAll[bson.Raw](ctx, s, l.coll, bson.D{}, options.Find().SetProjection(l.projection()))
	if err != nil {
		return 0, translate(err, l.coll)
	}
	if s.packed() {
		return s.repairPacked(ctx, l, docs)
	}
	listed, err := findAll[bson.Raw](ctx, s, l.list, bson.D{}, options.Find())
	if err != nil {
		return 0, translate(err, l.list)
	}
	have := make(map[string][]byte, len(listed))
	for _, d := range listed {
		if id, ok := (*d).Lookup("_id").StringValueOK(); ok {
			b, err := canonical(l.of(*d))
			if err != nil {
				return 0, err
			}
			have[id] = b
		}
	}
	n := 0
	for _, d := range docs {
		id, ok := (*d).Lookup("_id").StringValueOK()
		if !ok {
			continue
		}
		want := l.of(*d)
		b, err := canonical(want)
		if err != nil {
			return n, err
		}
		old, found := have[id]
		delete(have, id)
		if found && bytes.Equal(old, b) {
			continue
		}
		if err := s.writeListed(ctx, l, id, want); err != nil {
			return n, err
		}
		n++
	}
	for id := range have {
		// A list document whose document is gone, unless the document
		// was written since this repair read its collection.
		if err := s.relist(ctx, l, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// repairPacked is repairList for a packed list (packed.go): when any row
// differs from its document, the list is written anew, each row the newer
// of the one it holds and its document's, without the rows whose document
// is gone.
func (s *Store) repairPacked(ctx context.Context, l listing, docs []*bson.Raw) (int, error) {
	want := make(map[string]bson.Raw, len(docs))
	for _, d := range docs {
		id, ok := (*d).Lookup("_id").StringValueOK()
		if !ok {
			continue
		}
		b, err := canonical(l.of(*d))
		if err != nil {
			return 0, err
		}
		want[id] = b
	}
	// The list documents of the list collection, from before lists were
	// packed, are nobody's copy any more.
	if _, err := s.c(l.list).DeleteMany(ctx, bson.D{}); err != nil {
		return 0, translate(err, l.list)
	}
	rows, err := s.packRows(ctx, l)
	damaged := errors.Is(err, errListDamaged)
	if err != nil && !damaged {
		return 0, translate(err, l.list)
	}
	n := 0
	if damaged {
		// Rebuilt from the documents: of the rows it can still read, only
		// those whose documents were read are kept (the newer version).
		rows, n = nil, 1
	}
	seen := make(map[string]bool, len(rows))
	gone := map[string]bool{}
	for _, r := range rows {
		id := rowID(r)
		seen[id] = true
		w, ok := want[id]
		switch {
		case ok && bytes.Equal(w, r):
		case ok:
			n++
		default:
			// Its document was not read: gone, unless written since.
			raw, err := s.c(l.coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(l.projection())).Raw()
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				gone[id] = true
			case err != nil:
				return n, translate(err, l.coll)
			default:
				if want[id], err = canonical(l.of(raw)); err != nil {
					return n, err
				}
			}
			n++
		}
	}
	for id := range want {
		if !seen[id] {
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	add := make([]bson.Raw, 0, len(want))
	for _, w := range want {
		add = append(add, w)
	}
	err = s.packRebuild(ctx, l, func(cur []bson.Raw) []bson.Raw {
		if damaged {
			cur = slices.DeleteFunc(cur, func(r bson.Raw) bool { _, ok := want[rowID(r)]; return !ok })
		}
		return mergeRows(l, cur, add, gone)
	})
	if err != nil {
		return n, fmt.Errorf("store: list %s: %w", l.coll, err)
	}
	return n, nil
}
