// Package docs holds the partner documentation's operations: for each role,
// the .graphql documents it sends, the variables (NAME.variables.json) and
// the expected shape of the answer (NAME.response.json). flow.json orders
// them into one story that a test runs against the seeded gateway, so the
// docs cannot rot; the typed client under examples/ is generated from the
// same documents; and their operation names are the allow-list that keeps
// its own label in the gateway's metrics.
//
// Shapes: a string "<string>", "<id>", "<int>", "<number>", "<bool>",
// "<date>", "<datetime>" or "<any>" stands for any value of that kind (a
// "?" before the ">" also allows null: "<string?>"); an array of one element means a non-empty
// array whose every element has that shape; objects must have exactly the
// listed keys; anything else must be equal.
package docs

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

//go:embed flow.json */*.graphql */*.json */uploads/*
var files embed.FS

// Operation is one documented operation.
type Operation struct {
	Role     string // the folder: the role that sends it
	Dir      string // the folder its files are in (<role> or <role>/uploads)
	Name     string // the operation's name (and the file's base name)
	Type     string // query, mutation or subscription
	Document string
	// Variables is the variables file, with {{Step.path}} references to
	// earlier answers still in it (nil when there is none).
	Variables json.RawMessage
	// Response is the expected shape of the answer.
	Response json.RawMessage
	// File is, for an upload, the file sent as the variables' input.file
	// (a GraphQL multipart request); nil for every other operation.
	File []byte
}

// Operations returns every documented operation, by role then name.
func Operations() ([]Operation, error) {
	paths, err := fs.Glob(files, "*/*.graphql")
	if err != nil {
		return nil, err
	}
	// Uploads (GraphQL multipart requests) live apart, under
	// <role>/uploads/, beside the file the docs test sends: the typed
	// client, generated from <role>/*.graphql, cannot send a file.
	uploads, err := fs.Glob(files, "*/uploads/*.graphql")
	if err != nil {
		return nil, err
	}
	paths = append(paths, uploads...)
	slices.Sort(paths)
	var ops []Operation
	for _, p := range paths {
		src, err := files.ReadFile(p)
		if err != nil {
			return nil, err
		}
		doc, gerr := parser.ParseQuery(&ast.Source{Name: p, Input: string(src)})
		if gerr != nil {
			return nil, fmt.Errorf("docs: %s: %w", p, gerr)
		}
		if len(doc.Operations) != 1 || doc.Operations[0].Name == "" {
			return nil, fmt.Errorf("docs: %s: want exactly one named operation", p)
		}
		op := Operation{
			Role: strings.Split(p, "/")[0], Dir: path.Dir(p), Name: doc.Operations[0].Name, Type: string(doc.Operations[0].Operation),
			Document: string(src),
		}
		if base := strings.TrimSuffix(path.Base(p), ".graphql"); base != op.Name {
			return nil, fmt.Errorf("docs: %s: operation is named %s", p, op.Name)
		}
		stem := strings.TrimSuffix(p, ".graphql")
		if b, err := files.ReadFile(stem + ".variables.json"); err == nil {
			op.Variables = b
		}
		if b, err := files.ReadFile(stem + ".response.json"); err == nil {
			op.Response = b
		}
		if path.Base(path.Dir(p)) == "uploads" {
			matches, _ := fs.Glob(files, stem+".*")
			for _, m := range matches {
				if !strings.HasSuffix(m, ".graphql") && !strings.HasSuffix(m, ".json") {
					if op.File != nil {
						return nil, fmt.Errorf("docs: %s: an upload sends one file; %s is a second", p, m)
					}
					if op.File, err = files.ReadFile(m); err != nil {
						return nil, err
					}
				}
			}
			if op.File == nil {
				return nil, fmt.Errorf("docs: %s: an upload needs its file beside it", p)
			}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// OperationNames returns the documented operations' names: the metrics'
// allow-list.
func OperationNames() []string {
	ops, err := Operations()
	if err != nil {
		panic(err) // the embedded files are checked by the docs test
	}
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.Name
	}
	return names
}

// Step is one entry of flow.json: who sends which operation.
type Step struct {
	Role      string `json:"role"`
	Operation string `json:"operation"`
	// As overrides the persona that sends it (default: Role).
	As string `json:"as,omitempty"`
}

// Flow returns the documented story in order.
func Flow() ([]Step, error) {
	b, err := files.ReadFile("flow.json")
	if err != nil {
		return nil, err
	}
	var steps []Step
	if err := json.Unmarshal(b, &steps); err != nil {
		return nil, fmt.Errorf("docs: flow.json: %w", err)
	}
	return steps, nil
}

var ref = regexp.MustCompile(`"\{\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+)*)\}\}"`)

// ResolveVariables replaces every "{{Step.a.b.0.c}}" in vars with that value
// of an earlier step's answer (answers maps operation names to the decoded
// response).
func ResolveVariables(vars json.RawMessage, answers map[string]any) (map[string]any, error) {
	if len(vars) == 0 {
		return nil, nil
	}
	var ferr error
	out := ref.ReplaceAllFunc(vars, func(m []byte) []byte {
		sub := ref.FindSubmatch(m)
		v, ok := answers[string(sub[1])]
		if !ok {
			ferr = fmt.Errorf("docs: %s: no earlier answer", sub[1])
			return m
		}
		for _, k := range strings.Split(strings.TrimPrefix(string(sub[2]), "."), ".") {
			if k == "" {
				continue
			}
			v = walk(v, k)
		}
		if v == nil {
			ferr = fmt.Errorf("docs: %s%s: nothing there", sub[1], sub[2])
			return m
		}
		b, _ := json.Marshal(v)
		return b
	})
	if ferr != nil {
		return nil, ferr
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func walk(v any, k string) any {
	switch x := v.(type) {
	case map[string]any:
		return x[k]
	case []any:
		var i int
		if _, err := fmt.Sscanf(k, "%d", &i); err != nil || i < 0 || i >= len(x) {
			return nil
		}
		return x[i]
	}
	return nil
}

// MatchShape reports every place where got differs from the shape want.
func MatchShape(want, got any) []string {
	var diffs []string
	matchShape("$", want, got, &diffs)
	return diffs
}

func matchShape(at string, want, got any, diffs *[]string) {
	fail := func(format string, args ...any) {
		*diffs = append(*diffs, at+": "+fmt.Sprintf(format, args...))
	}
	switch w := want.(type) {
	case string:
		if !strings.HasPrefix(w, "<") || !strings.HasSuffix(w, ">") {
			if got != w {
				fail("want %q, got %v", w, got)
			}
			return
		}
		nullable := strings.HasSuffix(w, "?>")
		kind := strings.Replace(w, "?>", ">", 1)
		if got == nil {
			if !nullable {
				fail("want %s, got null", w)
			}
			return
		}
		s, isString := got.(string)
		n, isNumber := got.(float64)
		_, isBool := got.(bool)
		ok := false
		switch kind {
		case "<any>":
			ok = true
		case "<string>":
			ok = isString
		case "<id>":
			ok = isString && s != ""
		case "<int>":
			ok = isNumber && n == float64(int64(n))
		case "<number>":
			ok = isNumber
		case "<bool>":
			ok = isBool
		case "<date>":
			_, err := time.Parse(time.DateOnly, s)
			ok = isString && err == nil
		case "<datetime>":
			_, err := time.Parse(time.RFC3339, s)
			ok = isString && err == nil
		default:
			fail("unknown placeholder %s", w)
			return
		}
		if !ok {
			fail("want %s, got %v", w, got)
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			fail("want an object, got %v", got)
			return
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				fail("missing key %q", k)
				continue
			}
			matchShape(at+"."+k, wv, gv, diffs)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				fail("unexpected key %q", k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			fail("want an array, got %v", got)
			return
		}
		if len(w) == 0 {
			if len(g) != 0 {
				fail("want an empty array, got %d elements", len(g))
			}
			return
		}
		if len(g) == 0 {
			fail("want a non-empty array")
			return
		}
		for i, gv := range g {
			matchShape(fmt.Sprintf("%s[%d]", at, i), w[0], gv, diffs)
		}
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			fail("want %v, got %v", want, got)
		}
	}
}

// DeriveShape turns an answer into a shape: upper-case strings (enum
// values) and booleans stay literal, other scalars become placeholders,
// arrays keep their first element's shape. Used to write new
// NAME.response.json files (go test ./docs -update), which are then reviewed.
func DeriveShape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = DeriveShape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		shape := DeriveShape(x[0])
		for _, e := range x[1:] {
			shape = mergeShapes(shape, DeriveShape(e))
		}
		return []any{shape}
	case string:
		switch {
		case enumValue.MatchString(x):
			return x
		case isTime(time.RFC3339, x):
			return "<datetime>"
		case isTime(time.DateOnly, x):
			return "<date>"
		}
		return "<string>"
	case float64:
		if x == float64(int64(x)) {
			return "<int>"
		}
		return "<number>"
	}
	return v
}

// mergeShapes widens two elements' shapes into one both match: differing
// literals become a placeholder, a null makes it nullable.
func mergeShapes(a, b any) any {
	if fmt.Sprint(a) == fmt.Sprint(b) {
		return a
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		out := map[string]any{}
		for k, v := range am {
			out[k] = mergeShapes(v, bm[k])
		}
		for k, v := range bm {
			if _, ok := am[k]; !ok {
				out[k] = mergeShapes(nil, v)
			}
		}
		return out
	}
	aa, aok := a.([]any)
	ba, bok := b.([]any)
	if aok && bok {
		switch {
		case len(aa) == 0:
			return b
		case len(ba) == 0:
			return a
		}
		return []any{mergeShapes(aa[0], ba[0])}
	}
	if a == nil || b == nil {
		other := a
		if a == nil {
			other = b
		}
		p := placeholder(other)
		if p == "" {
			return other // an object or array that may be null: keep its shape
		}
		return nullablePlaceholder(p)
	}
	pa, pb := placeholder(a), placeholder(b)
	if pa == pb && pa != "" {
		return pa
	}
	if strings.Replace(pa, "?>", ">", 1) == strings.Replace(pb, "?>", ">", 1) {
		return nullablePlaceholder(pa)
	}
	return "<any>"
}

func nullablePlaceholder(p string) string {
	return strings.Replace(strings.Replace(p, "?>", ">", 1), ">", "?>", 1)
}

// placeholder names the kind of a shape's scalar ("" for objects, arrays).
func placeholder(v any) string {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "<") {
			return x
		}
		return "<string>"
	case bool:
		return "<bool>"
	case float64:
		return "<number>"
	}
	return ""
}

var enumValue = regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`)

func isTime(layout, s string) bool {
	_, err := time.Parse(layout, s)
	return err == nil
}
