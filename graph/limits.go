package graph

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/secondopinion/gateway/internal/domain"
)

// InputLimits is the handler extension that holds every argument of an
// operation to the @limit its definition declares, before any resolver
// runs: arguments of every field the operation selects (fragments
// included), with variables resolved, through input objects and lists. A
// violation fails the whole operation with BAD_USER_INPUT naming the
// input's path, so nothing of it is stored.
type InputLimits struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = InputLimits{}

// ExtensionName names the extension for gqlgen.
func (InputLimits) ExtensionName() string { return "InputLimits" }

// Validate accepts every schema: the schema test holds the declarations.
func (InputLimits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext checks the operation's arguments.
func (InputLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	w := argWalker{vars: oc.Variables, seen: map[string]bool{}}
	return w.selections(oc.Operation.SelectionSet)
}

// Defaults for an input that declares no @limit (the schema test refuses
// one; these keep a forgotten one bounded until it is declared).
const (
	defaultMaxLength  = 1000
	defaultMaxEntries = 100
)

// Limit is one input's declared cap: its @limit directive.
type Limit struct {
	// Max is the most characters of a String or ID, or entries of a list.
	Max int
	// Length is the most characters of each String or ID entry of a list.
	Length int
	// URL: the value is an absolute https URL.
	URL bool
	// Multiline: newlines are allowed.
	Multiline bool
	// Set: a list's entries may not repeat.
	Set bool
	// Declared: the input carries @limit.
	Declared bool
}

// LimitOf reads the @limit of an input field or argument.
func LimitOf(dirs ast.DirectiveList) Limit {
	d := dirs.ForName("limit")
	if d == nil {
		return Limit{}
	}
	l := Limit{Declared: true}
	for _, a := range d.Arguments {
		if a.Value == nil {
			continue
		}
		switch a.Name {
		case "max":
			l.Max, _ = strconv.Atoi(a.Value.Raw)
		case "length":
			l.Length, _ = strconv.Atoi(a.Value.Raw)
		case "url":
			l.URL = a.Value.Raw == "true"
		case "multiline":
			l.Multiline = a.Value.Raw == "true"
		case "set":
			l.Set = a.Value.Raw == "true"
		}
	}
	return l
}

// entry is the limit of each entry of a list limited by l.
func (l Limit) entry() Limit {
	return Limit{Max: l.Length, URL: l.URL, Multiline: l.Multiline, Declared: l.Declared && l.Length > 0}
}

type argWalker struct {
	vars map[string]any
	seen map[string]bool
}

func (w *argWalker) selections(set ast.SelectionSet) *gqlerror.Error {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Definition != nil {
				for _, a := range s.Arguments {
					def := s.Definition.Arguments.ForName(a.Name)
					if def == nil || a.Value == nil {
						continue
					}
					v, err := a.Value.Value(w.vars)
					if err != nil {
						continue // validation has refused it already
					}
					if e := CheckInput(a.Name, def.Type, LimitOf(def.Directives), v); e != nil {
						return e
					}
				}
			}
			if e := w.selections(s.SelectionSet); e != nil {
				return e
			}
		case *ast.InlineFragment:
			if e := w.selections(s.SelectionSet); e != nil {
				return e
			}
		case *ast.FragmentSpread:
			// A fragment's arguments are the same wherever it is spread.
			if s.Definition != nil && !w.seen[s.Name] {
				w.seen[s.Name] = true
				if e := w.selections(s.Definition.SelectionSet); e != nil {
					return e
				}
			}
		}
	}
	return nil
}

// CheckInput holds value v of type t, found at path, to limit l and, through
// input objects and lists, every input inside it to its own.
func CheckInput(path string, t *ast.Type, l Limit, v any) *gqlerror.Error {
	if v == nil || t == nil {
		return nil
	}
	if t.Elem != nil {
		items, ok := v.([]any)
		if !ok {
			items = []any{v} // a single value where a list is expected
		}
		max := l.Max
		if !l.Declared {
			max = defaultMaxEntries
		}
		if len(items) > max {
			return inputError(path, "has %d entries; at most %d are accepted", len(items), max)
		}
		var seen map[string]int
		if l.Set {
			seen = make(map[string]int, len(items))
		}
		for i, it := range items {
			at := fmt.Sprintf("%s[%d]", path, i)
			if seen != nil {
				k := fmt.Sprint(it)
				if j, dup := seen[k]; dup {
					return inputError(at, "repeats %s[%d]; the list is a set", path, j)
				}
				seen[k] = i
			}
			if e := CheckInput(at, t.Elem, l.entry(), it); e != nil {
				return e
			}
		}
		return nil
	}
	switch t.NamedType {
	case "String", "ID":
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		return checkString(path, s, l)
	}
	def := parsedSchema.Types[t.NamedType]
	if def == nil || def.Kind != ast.InputObject {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, f := range def.Fields {
		if fv, ok := m[f.Name]; ok {
			if e := CheckInput(path+"."+f.Name, f.Type, LimitOf(f.Directives), fv); e != nil {
				return e
			}
		}
	}
	return nil
}

func checkString(path, s string, l Limit) *gqlerror.Error {
	max := l.Max
	if !l.Declared {
		max = defaultMaxLength
	}
	// Counting stops early: a 300,000-character value costs no more than
	// the cap.
	if len(s) > max {
		n := 0
		for range s {
			if n++; n > max {
				return inputError(path, "is longer than %d characters", max)
			}
		}
	}
	if problem := domain.TextProblem(s, l.Multiline); problem != "" {
		return inputError(path, "%s", problem)
	}
	if l.URL && s != "" {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.User != nil {
			return inputError(path, "must be an absolute https URL without credentials")
		}
	}
	return nil
}

func inputError(path, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{
		Message: path + " " + fmt.Sprintf(format, args...),
		Extensions: map[string]any{
			"code":  string(domain.CodeBadUserInput),
			"field": path,
		},
	}
}

// InputLimit is one row of the limits table: an input field or argument
// that takes a String, an ID or a list, and its declared cap.
type InputLimit struct {
	// Where: `Type.field` for an input field, `Type.field(argument)` for an
	// argument.
	Where string
	// Type is the GraphQL type, e.g. `[String!]`.
	Type string
	Limit
}

// limited reports whether an input of type t needs a @limit: every String,
// ID and list.
func limited(t *ast.Type) bool {
	return t.Elem != nil || t.NamedType == "String" || t.NamedType == "ID"
}

// InputLimitsOf lists every String, ID and list input field and argument of
// schema with its declared limit, sorted by where it is; introspection's
// own arguments are left out.
func InputLimitsOf(schema *ast.Schema) []InputLimit {
	var out []InputLimit
	for _, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(def.Name, "__") {
			continue
		}
		switch def.Kind {
		case ast.InputObject:
			for _, f := range def.Fields {
				if limited(f.Type) {
					out = append(out, InputLimit{Where: def.Name + "." + f.Name, Type: f.Type.String(), Limit: LimitOf(f.Directives)})
				}
			}
		case ast.Object, ast.Interface:
			for _, f := range def.Fields {
				if strings.HasPrefix(f.Name, "__") {
					continue
				}
				for _, a := range f.Arguments {
					if limited(a.Type) {
						out = append(out, InputLimit{Where: def.Name + "." + f.Name + "(" + a.Name + ")", Type: a.Type.String(), Limit: LimitOf(a.Directives)})
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Where < out[j].Where })
	return out
}

// InputLimitsMarkdown renders the limits of schema as the README's table.
func InputLimitsMarkdown(schema *ast.Schema) string {
	var b strings.Builder
	b.WriteString("| input | type | at most | also |\n| --- | --- | --- | --- |\n")
	for _, l := range InputLimitsOf(schema) {
		max := "(none declared)"
		if l.Declared {
			if strings.HasPrefix(l.Type, "[") {
				max = fmt.Sprintf("%d entries", l.Max)
				if l.Length > 0 {
					max += fmt.Sprintf(" of %d characters", l.Length)
				}
			} else {
				max = fmt.Sprintf("%d characters", l.Max)
			}
		}
		var also []string
		if l.URL {
			also = append(also, "https URL")
		}
		if l.Multiline {
			also = append(also, "line breaks allowed")
		}
		if l.Set {
			also = append(also, "no repeats")
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", l.Where, l.Type, max, strings.Join(also, ", "))
	}
	return b.String()
}
