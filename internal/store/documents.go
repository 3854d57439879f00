package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// RewrapFunc re-wraps one document's data key: given the master key id and
// the wrapped key, it returns the new ones and whether they changed.
type RewrapFunc func(keyID string, wrapped []byte) (newKeyID string, newWrapped []byte, changed bool, err error)

// RewrapDocumentKeys runs rewrap over the data key of every stored
// document (key rotation: cmd/rotate-keys) and writes back the cases whose
// keys changed, each with a compare-and-set on its version (a case that
// moved meanwhile is read again). The documents themselves are not touched.
// It returns how many keys were re-wrapped.
func (s *Store) RewrapDocumentKeys(ctx context.Context, rewrap RewrapFunc) (int, error) {
	ids, err := findAll[struct {
		ID string `bson:"_id"`
	}](ctx, s, colCases, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, translate(err, "cases")
	}
	total := 0
	for _, x := range ids {
		n, err := s.rewrapCase(ctx, x.ID, rewrap)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (s *Store) rewrapCase(ctx context.Context, id string, rewrap RewrapFunc) (int, error) {
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return 0, err
		}
		d, err := findByID[caseDoc](ctx, s, colCases, id, bson.D{{Key: "version", Value: 1}, {Key: "clinical.records", Value: 1}})
		if err != nil {
			return 0, translate(err, "case")
		}
		if d.Clinical == nil {
			return 0, nil
		}
		n := 0
		records := append([]recordDoc(nil), d.Clinical.Records...)
		for i := range records {
			doc := records[i].Document
			if doc == nil {
				continue
			}
			kid, wrapped, changed, err := rewrap(doc.KeyID, doc.WrappedKey)
			if err != nil {
				return 0, err
			}
			if changed {
				cp := *doc
				cp.KeyID, cp.WrappedKey = kid, wrapped
				records[i].Document = &cp
				n++
			}
		}
		if n == 0 {
			return 0, nil
		}
		ok, err := s.casUpdate(ctx, colCases, id, d.Version, bindSet(colCases, id, bson.D{{Key: "clinical.records", Value: records}}))
		if err != nil {
			return 0, translate(err, "case")
		}
		if ok {
			return n, s.relist(ctx, caseListing, id)
		}
	}
	return 0, errBusy("case")
}
