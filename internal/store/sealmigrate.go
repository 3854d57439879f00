package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// sealLegacyOnce seals, on the first start with field keys, the PHI fields
// that documents written before fields were sealed hold in clear; it then
// marks the keyring so later starts skip it (one read by _id).
func (s *Store) sealLegacyOnce(ctx context.Context) error {
	d, err := findByID[fieldKeysDoc](ctx, s, colKeyring, fieldKeysID, nil)
	if err != nil {
		return fmt.Errorf("store: read field keys: %w", err)
	}
	if d.LegacySealed {
		return nil
	}
	if _, err := s.sealLegacy(ctx); err != nil {
		return err
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err = s.c(colKeyring).UpdateOne(cctx, bson.D{{Key: "_id", Value: fieldKeysID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "legacySealed", Value: true}}}})
	return err
}

// sealLegacy rewrites every document holding a PHI field in clear, sealing
// it, and returns how many it rewrote. Each rewrite sets only the top-level
// fields that hold clear values, conditioned on the version read (without
// bumping it: the content is unchanged), so a concurrent write wins and is
// sealed by its own writer. Members not yet split per insurer are left to
// MigrateMembers, which reads them as they are and writes them sealed.
func (s *Store) sealLegacy(ctx context.Context) (int, error) {
	total := 0
	for _, step := range []func(context.Context) (int, error){
		func(ctx context.Context) (int, error) {
			return sealLegacyIn[patientDoc](ctx, s, colPatients, bson.D{{Key: "insurerIds", Value: bson.D{{Key: "$exists", Value: false}}}})
		},
		func(ctx context.Context) (int, error) { return sealLegacyIn[caseDoc](ctx, s, colCases, nil) },
		func(ctx context.Context) (int, error) { return sealLegacyIn[opinionDoc](ctx, s, colOpinions, nil) },
		func(ctx context.Context) (int, error) {
			return sealLegacyIn[webhookSubDoc](ctx, s, colWebhookSubs, nil)
		},
	} {
		n, err := step(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("store: seal legacy PHI fields: %w", err)
		}
	}
	return total, nil
}

func sealLegacyIn[D any](ctx context.Context, s *Store, coll string, filter bson.D) (int, error) {
	docs, err := findAll[D](ctx, s, coll, filter, options.Find())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range docs {
		v := reflect.ValueOf(d).Elem()
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
			res, err := s.c(coll).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
			if err != nil {
				return 0, err
			}
			return res.MatchedCount, nil
		})
		if err != nil {
			return n, fmt.Errorf("%s %s: %w", coll, id, err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// legacyFields returns, for a decoded document, its top-level fields that
// hold a PHI value read from clear text, with their values (which encode
// sealed).
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
// from clear text.
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
