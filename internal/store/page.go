package store

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Page asks for one page of a list: at most First items after the cursor.
type Page struct {
	First int
	After string
}

// Pagination limits.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// NewPage validates first/after as the API receives them.
func NewPage(first *int, after *string) (Page, error) {
	pg := Page{First: DefaultPageSize}
	if first != nil {
		if *first < 1 || *first > MaxPageSize {
			return Page{}, domain.Errorf(domain.CodeBadUserInput, "first must be between 1 and %d", MaxPageSize)
		}
		pg.First = *first
	}
	if after != nil && *after != "" {
		id, ok := DecodeCursor(*after)
		if !ok {
			return Page{}, domain.Errorf(domain.CodeBadUserInput, "after is not a cursor this API issued")
		}
		pg.After = id
	}
	return pg, nil
}

const cursorPrefix = "c1:"

// EncodeCursor makes an opaque cursor from an _id. Lists are ordered by _id,
// which is time-ordered, so a cursor stays correct when rows are inserted
// between two pages: the next page starts strictly after it.
func EncodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + id))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return "", false
	}
	id := strings.TrimPrefix(string(b), cursorPrefix)
	if id == "" || len(id) > 64 {
		return "", false
	}
	return id, true
}

// findPage runs one keyset page query: scope ∧ filter ∧ (_id beyond the
// cursor), sorted by _id, limited to First+1 to learn whether more follow.
func findPage[D any](ctx context.Context, s *Store, coll string, filter bson.D, pg Page, newestFirst bool, proj bson.D) ([]*D, bool, error) {
	dir, op := 1, "$gt"
	if newestFirst {
		dir, op = -1, "$lt"
	}
	if pg.After != "" {
		filter = and(filter, bson.D{{Key: "_id", Value: bson.D{{Key: op, Value: pg.After}}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: dir}}).SetLimit(int64(pg.First + 1))
	if len(proj) > 0 {
		opts.SetProjection(proj)
	}
	docs, err := findAll[D](ctx, s, coll, filter, opts)
	if err != nil {
		return nil, false, err
	}
	more := len(docs) > pg.First
	if more {
		docs = docs[:pg.First]
	}
	return docs, more, nil
}

func findAll[D any](ctx context.Context, s *Store, coll string, filter bson.D, opts *options.FindOptionsBuilder) ([]*D, error) {
	if filter == nil {
		filter = bson.D{} // a nil document does not marshal
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	release, err := s.admitScan(ctx, coll)
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := s.c(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var out []*D
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// stored is a document decoded, with its bytes as stored.
type stored[D any] struct {
	doc *D
	raw bson.Raw
}

// findAllStored is findAll also returning each document as stored.
func findAllStored[D any](ctx context.Context, s *Store, coll string, filter bson.D, opts *options.FindOptionsBuilder) ([]stored[D], error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	release, err := s.admitScan(ctx, coll)
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := s.c(coll).Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var out []stored[D]
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		out = append(out, stored[D]{doc: &d, raw: append(bson.Raw(nil), cur.Current...)})
	}
	return out, cur.Err()
}

// findByID reads one document by _id only: the one filter every backend
// answers from an index. The caller checks the scope on what comes back.
func findByID[D any](ctx context.Context, s *Store, coll, id string, proj bson.D) (*D, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	opts := options.FindOne()
	if len(proj) > 0 {
		opts.SetProjection(proj)
	}
	var d D
	if err := s.c(coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}, opts).Decode(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

// findByIDRaw is findByID also returning the document as stored.
func findByIDRaw[D any](ctx context.Context, s *Store, coll, id string) (*D, bson.Raw, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res := s.c(coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}})
	raw, err := res.Raw()
	if err != nil {
		return nil, nil, err
	}
	var d D
	if err := res.Decode(&d); err != nil {
		return nil, nil, err
	}
	return &d, raw, nil
}

// findByIDs reads documents by a list of _id.
func findByIDs[D any](ctx context.Context, s *Store, coll string, ids []string, proj bson.D) ([]*D, error) {
	ids = distinct(ids)
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) == 1 {
		// Exactly {_id: X} is the one filter the embedded store pushes down
		// to SQLite; a one-element $in would decode the whole collection.
		d, err := findByID[D](ctx, s, coll, ids[0], proj)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*D{d}, nil
	}
	if s.batchByID {
		return findEachByID[D](ctx, s, coll, ids, proj)
	}
	opts := options.Find()
	if len(proj) > 0 {
		opts.SetProjection(proj)
	}
	return findAll[D](ctx, s, coll, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, opts)
}

// byIDConcurrency bounds the reads by _id one batch runs at once on the
// embedded store.
const byIDConcurrency = 8

// findEachByID reads a batch of known ids as reads by exactly {_id}, a few
// at once: on FerretDB an {_id: {$in: …}} filter is not pushed down, so it
// decodes the whole collection however few ids it names, while each read by
// _id is an index lookup. Missing ids are skipped; the order is the ids'.
func findEachByID[D any](ctx context.Context, s *Store, coll string, ids []string, proj bson.D) ([]*D, error) {
	out := make([]*D, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, byIDConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := findByID[D](ctx, s, coll, id, proj)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return
			}
			out[i], errs[i] = d, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	found := out[:0]
	for _, d := range out {
		if d != nil {
			found = append(found, d)
		}
	}
	return found, nil
}

func count(ctx context.Context, s *Store, coll string, filter bson.D) (int, error) {
	if filter == nil {
		filter = bson.D{}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	release, err := s.admitScan(ctx, coll)
	if err != nil {
		return 0, err
	}
	defer release()
	n, err := s.c(coll).CountDocuments(ctx, filter)
	return int(n), err
}

// distinct returns ids without repeats, in their first order.
func distinct(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
