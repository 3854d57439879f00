package store

import (
	"cmp"
	"fmt"
	"math"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// A matcher applies a query filter to a document in Go: the rows of a
// packed list (packed.go) are filtered here, not by the database. It knows
// the operators the store's filters use (equality, $eq, $ne, $in, $nin,
// $lt, $lte, $gt, $gte, $and, $or) on top-level fields, with the database's
// meaning: an array field matches when one of its elements does, a missing
// field equals only null, and $lt and its kin compare values of one type
// only. Anything else is refused when the filter is compiled, so a filter
// it does not know cannot let every row through. A test runs every filter
// the store builds both here and in the database and compares.
type matcher func(doc bson.Raw) bool

// compileFilter returns the matcher of filter (nil or empty: every row).
func compileFilter(filter bson.D) (matcher, error) {
	parts := make([]matcher, 0, len(filter))
	for _, e := range filter {
		m, err := compileElem(e)
		if err != nil {
			return nil, err
		}
		parts = append(parts, m)
	}
	return func(doc bson.Raw) bool {
		for _, m := range parts {
			if !m(doc) {
				return false
			}
		}
		return true
	}, nil
}

func compileElem(e bson.E) (matcher, error) {
	switch e.Key {
	case "$and", "$or":
		subs, err := compileList(e.Key, e.Value)
		if err != nil {
			return nil, err
		}
		if e.Key == "$and" {
			return func(doc bson.Raw) bool {
				for _, m := range subs {
					if !m(doc) {
						return false
					}
				}
				return true
			}, nil
		}
		return func(doc bson.Raw) bool {
			for _, m := range subs {
				if m(doc) {
					return true
				}
			}
			return false
		}, nil
	}
	if e.Key == "" || strings.HasPrefix(e.Key, "$") || strings.Contains(e.Key, ".") {
		return nil, fmt.Errorf("store: filter: %q is not a field the matcher knows", e.Key)
	}
	field := e.Key
	switch e.Value.(type) {
	case bson.M, map[string]any, bson.Regex:
		return nil, fmt.Errorf("store: filter on %s: a %T is not a value the matcher knows (operators go in a bson.D)", field, e.Value)
	}
	ops, isOps := e.Value.(bson.D)
	if !isOps || len(ops) == 0 || !strings.HasPrefix(ops[0].Key, "$") {
		v, err := scalarOf(e.Value)
		if err != nil {
			return nil, fmt.Errorf("store: filter on %s: %w", field, err)
		}
		return func(doc bson.Raw) bool { return equals(lookup(doc, field), v) }, nil
	}
	tests := make([]func(bson.RawValue) bool, 0, len(ops))
	for _, op := range ops {
		t, err := compileOp(op)
		if err != nil {
			return nil, fmt.Errorf("store: filter on %s: %w", field, err)
		}
		tests = append(tests, t)
	}
	return func(doc bson.Raw) bool {
		v := lookup(doc, field)
		for _, t := range tests {
			if !t(v) {
				return false
			}
		}
		return true
	}, nil
}

func compileList(op string, v any) ([]matcher, error) {
	var items []bson.D
	switch x := v.(type) {
	case bson.A:
		for _, it := range x {
			d, ok := it.(bson.D)
			if !ok {
				return nil, fmt.Errorf("store: filter: %s takes documents", op)
			}
			items = append(items, d)
		}
	case []bson.D:
		items = x
	default:
		return nil, fmt.Errorf("store: filter: %s takes an array", op)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("store: filter: %s takes a non-empty array", op)
	}
	out := make([]matcher, len(items))
	for i, d := range items {
		m, err := compileFilter(d)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

func compileOp(op bson.E) (func(bson.RawValue) bool, error) {
	switch op.Key {
	case "$eq", "$ne":
		v, err := scalarOf(op.Value)
		if err != nil {
			return nil, err
		}
		if op.Key == "$eq" {
			return func(f bson.RawValue) bool { return equals(f, v) }, nil
		}
		return func(f bson.RawValue) bool { return !equals(f, v) }, nil
	case "$in", "$nin":
		arr, err := rawOf(op.Value)
		if err != nil {
			return nil, err
		}
		a, ok := arr.ArrayOK()
		if !ok {
			return nil, fmt.Errorf("%s takes an array", op.Key)
		}
		vals, err := a.Values()
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if !scalar(v) {
				return nil, fmt.Errorf("%s takes values the matcher knows, not a %s", op.Key, v.Type)
			}
		}
		in := func(f bson.RawValue) bool {
			for _, v := range vals {
				if equals(f, v) {
					return true
				}
			}
			return false
		}
		if op.Key == "$in" {
			return in, nil
		}
		return func(f bson.RawValue) bool { return !in(f) }, nil
	case "$lt", "$lte", "$gt", "$gte":
		v, err := scalarOf(op.Value)
		if err != nil {
			return nil, err
		}
		if v.Type == bson.TypeNull {
			return nil, fmt.Errorf("%s null is not a bound the matcher knows", op.Key)
		}
		want := map[string]func(int) bool{
			"$lt": func(c int) bool { return c < 0 }, "$lte": func(c int) bool { return c <= 0 },
			"$gt": func(c int) bool { return c > 0 }, "$gte": func(c int) bool { return c >= 0 },
		}[op.Key]
		return func(f bson.RawValue) bool {
			return anyElement(f, func(x bson.RawValue) bool {
				c, ok := compareRaw(x, v)
				return ok && want(c)
			})
		}, nil
	}
	return nil, fmt.Errorf("the operator %s is not one the matcher knows", op.Key)
}

// scalarOf is a filter value as the database would receive it, if it is
// one the matcher compares as the database does: a string, a boolean, a
// date, a number (not NaN) or null.
func scalarOf(v any) (bson.RawValue, error) {
	r, err := rawOf(v)
	if err != nil {
		return r, err
	}
	if !scalar(r) {
		return r, fmt.Errorf("a %s is not a value the matcher knows", r.Type)
	}
	return r, nil
}

func scalar(v bson.RawValue) bool {
	switch v.Type {
	case bson.TypeString, bson.TypeBoolean, bson.TypeDateTime, bson.TypeInt32, bson.TypeInt64, bson.TypeNull:
		return true
	case bson.TypeDouble:
		return !math.IsNaN(v.Double())
	}
	return false
}

// rawOf is a filter value as the database would receive it.
func rawOf(v any) (bson.RawValue, error) {
	if v == nil {
		return bson.RawValue{Type: bson.TypeNull}, nil
	}
	t, b, err := bson.MarshalValue(v)
	if err != nil {
		return bson.RawValue{}, err
	}
	return bson.RawValue{Type: t, Value: b}, nil
}

// lookup is a top-level field of doc (the zero value when it is missing).
func lookup(doc bson.Raw, field string) bson.RawValue {
	v, err := doc.LookupErr(field)
	if err != nil {
		return bson.RawValue{}
	}
	return v
}

// equals is the database's equality of a field's value with a filter's: an
// array field also equals a value one of its elements equals; a missing
// field equals null only.
func equals(f, v bson.RawValue) bool {
	if f.Type == 0 {
		return v.Type == bson.TypeNull
	}
	if sameValue(f, v) {
		return true
	}
	if f.Type == bson.TypeArray && v.Type != bson.TypeArray {
		return anyElement(f, func(x bson.RawValue) bool { return sameValue(x, v) })
	}
	return false
}

// anyElement applies t to each element of an array value, or to the value.
func anyElement(f bson.RawValue, t func(bson.RawValue) bool) bool {
	if f.Type != bson.TypeArray {
		return f.Type != 0 && t(f)
	}
	vals, err := f.Array().Values()
	if err != nil {
		return false
	}
	for _, x := range vals {
		if t(x) {
			return true
		}
	}
	return false
}

func sameValue(a, b bson.RawValue) bool {
	c, ok := compareRaw(a, b)
	return ok && c == 0
}

// compareRaw orders two values of one kind (numbers, strings, dates,
// booleans, nulls); ok is false for values the database does not order
// together (and for NaN, which equals nothing the matcher is given).
func compareRaw(a, b bson.RawValue) (int, bool) {
	if ai, ok := integer(a); ok {
		if bi, ok := integer(b); ok {
			return cmp.Compare(ai, bi), true
		}
	}
	if an, ok := number(a); ok {
		if bn, ok := number(b); ok && !math.IsNaN(an) && !math.IsNaN(bn) {
			return cmp.Compare(an, bn), true
		}
		return 0, false
	}
	if a.Type != b.Type {
		return 0, false
	}
	switch a.Type {
	case bson.TypeString:
		return strings.Compare(a.StringValue(), b.StringValue()), true
	case bson.TypeDateTime:
		return cmp.Compare(a.DateTime(), b.DateTime()), true
	case bson.TypeBoolean:
		x, y := a.Boolean(), b.Boolean()
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		}
		return 1, true
	case bson.TypeNull:
		return 0, true
	}
	return 0, false
}

func integer(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	}
	return 0, false
}

func number(v bson.RawValue) (float64, bool) {
	if i, ok := integer(v); ok {
		return float64(i), true
	}
	if v.Type == bson.TypeDouble {
		return v.Double(), true
	}
	return 0, false
}
