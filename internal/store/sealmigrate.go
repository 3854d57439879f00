package store

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sealPasses bounds how many times one start goes over the collections
// while documents keep changing under the sealing; what is left is sealed
// by the next start.
const sealPasses = 5

// sealBatch is how many documents the sealing reads from the database at a
// time: it never holds a whole collection.
const sealBatch = 200

// sealLegacyOnce seals, on the first start with field keys, the PHI fields
// that documents hold in clear (written before fields were sealed) or
// sealed without their place (version 1), and marks the keyring when
// nothing is left, so later starts skip it (one read by _id) and reads
// refuse from then on any clear or unbound value (errClearAfterSealing).
// A document whose version changes under the sealing is read again, pass
// after pass; the mark is only set after a pass that skipped none.
func (s *Store) sealLegacyOnce(ctx context.Context) error {
	d, err := findByID[fieldKeysDoc](ctx, s, colKeyring, fieldKeysID, nil)
	if err != nil {
		return fmt.Errorf("store: read field keys: %w", err)
	}
	if d.LegacySealed && d.FieldsBound {
		s.fields.strict.Store(true)
		return nil
	}
	for pass := 0; pass < sealPasses; pass++ {
		_, skipped, err := s.sealLegacy(ctx)
		if err != nil {
			return err
		}
		if skipped == 0 {
			cctx, cancel := s.op(ctx)
			defer cancel()
			_, err = s.c(colKeyring).UpdateOne(cctx, bson.D{{Key: "_id", Value: fieldKeysID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "legacySealed", Value: true}, {Key: "fieldsBound", Value: true}}}})
			if err != nil {
				return fmt.Errorf("store: mark PHI fields sealed: %w", err)
			}
			s.fields.strict.Store(true)
			return nil
		}
	}
	slog.Warn("store: PHI fields still in clear after the start-up sealing (documents kept changing); the next start seals them", "passes", sealPasses)
	return nil
}

// sealLegacy rewrites every document holding a PHI field in clear or
// unbound, sealing it bound, and returns how many it rewrote and how many
// it skipped because they changed meanwhile. Each rewrite sets only the
// top-level fields that hold such values, conditioned on the version read
// (without bumping it: the content is unchanged). Members not yet split per
// insurer are left to MigrateMembers, which reads them as they are and
// writes them sealed.
func (s *Store) sealLegacy(ctx context.Context) (sealedN, skipped int, err error) {
	for _, step := range []func(context.Context) (int, int, error){
		func(ctx context.Context) (int, int, error) {
			return sealLegacyIn[patientDoc](ctx, s, colPatients, bson.D{{Key: "insurerIds", Value: bson.D{{Key: "$exists", Value: false}}}})
		},
		func(ctx context.Context) (int, int, error) { return sealLegacyIn[caseDoc](ctx, s, colCases, nil) },
		func(ctx context.Context) (int, int, error) { return sealLegacyIn[opinionDoc](ctx, s, colOpinions, nil) },
		func(ctx context.Context) (int, int, error) {
			return sealLegacyIn[webhookSubDoc](ctx, s, colWebhookSubs, nil)
		},
	} {
		n, k, err := step(ctx)
		sealedN += n
		skipped += k
		if err != nil {
			return sealedN, skipped, fmt.Errorf("store: seal legacy PHI fields: %w", err)
		}
	}
	return sealedN, skipped, nil
}

// sealLegacyIn seals the documents of coll matching filter, reading them
// through a cursor, sealBatch at a time.
func sealLegacyIn[D any](ctx context.Context, s *Store, coll string, filter bson.D) (sealedN, skipped int, err error) {
	if filter == nil {
		filter = bson.D{}
	}
	cur, err := s.c(coll).Find(ctx, filter, options.Find().SetBatchSize(sealBatch))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return sealedN, skipped, err
		}
		v := reflect.ValueOf(&d).Elem()
		set := legacyFields(v)
		if len(set) == 0 {
			continue
		}
		id := v.FieldByName("ID").String()
		var cond bson.D
		if ver := v.FieldByName("Version"); ver.IsValid() {
			cond = versionCond(int(ver.Int()))
		}
		ok, err := s.conditional(ctx, coll, id, cond, func(ctx context.Context, filter bson.D) (int64, error) {
			res, err := s.c(coll).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bindSet(coll, id, set)}})
			if err != nil {
				return 0, err
			}
			return res.MatchedCount, nil
		})
		if err != nil {
			return sealedN, skipped, fmt.Errorf("%s %s: %w", coll, id, err)
		}
		if ok {
			sealedN++
		} else {
			skipped++
		}
	}
	return sealedN, skipped, cur.Err()
}

// legacyFields returns, for a decoded document, its top-level fields that
// hold a PHI value read from clear text or unbound, with their values
// (which encode sealed).
func legacyFields(v reflect.Value) bson.D {
	var out bson.D
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("bson"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		if holdsLegacy(v.Field(i)) {
			out = append(out, bson.E{Key: name, Value: v.Field(i).Interface()})
		}
	}
	return out
}

var (
	sealedType     = reflect.TypeOf(sealed{})
	sealedTimeType = reflect.TypeOf(sealedTime{})
)

// holdsLegacy reports whether v holds, anywhere inside, a sealed value read
// from clear text or unbound.
func holdsLegacy(v reflect.Value) bool {
	switch v.Type() {
	case sealedType:
		return v.Interface().(sealed).legacy
	case sealedTimeType:
		return v.Interface().(sealedTime).legacy
	}
	switch v.Kind() {
	case reflect.Pointer:
		return !v.IsNil() && holdsLegacy(v.Elem())
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if holdsLegacy(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if holdsLegacy(it.Value()) {
				return true
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && holdsLegacy(v.Field(i)) {
				return true
			}
		}
	}
	return false
}
