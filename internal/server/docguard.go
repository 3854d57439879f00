package server

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/secondopinion/gateway/internal/domain"
)

// Limits bound what one GraphQL document may ask for. They are checked on
// the parsed document before validation and complexity, whose cost hostile
// documents are built to blow up (a chain of fragments each spreading the
// next twice expands 2^n times, and gqlgen's complexity walk re-visits every
// fragment).
type Limits struct {
	// MaxTokens bounds the lexer (gqlparser's token limit).
	MaxTokens int
	// MaxDepth bounds selection nesting, fragments expanded.
	MaxDepth int
	// MaxFields bounds the number of fields once every fragment is expanded.
	MaxFields int
	// MaxAliases bounds aliased fields, fragments expanded.
	MaxAliases int
	// MaxRootFields bounds the fields of the operation's root selection.
	MaxRootFields int
	// MaxDirectives bounds directives in the document.
	MaxDirectives int
	// MaxSelection bounds fields in one selection set (repeated fields make
	// validation's field merging quadratic).
	MaxSelection int
	// MaxFragments bounds fragment definitions.
	MaxFragments int
	// MaxComplexity bounds gqlgen's complexity, where list fields multiply
	// their children by `first`.
	MaxComplexity int
	// MaxErrors caps the errors of one response.
	MaxErrors int
}

// DefaultLimits are generous for partner queries and cheap to enforce.
var DefaultLimits = Limits{
	MaxTokens: 15000, MaxDepth: 12, MaxFields: 2500, MaxAliases: 40, MaxRootFields: 20,
	MaxDirectives: 40, MaxSelection: 150, MaxFragments: 60, MaxComplexity: 25000, MaxErrors: 50,
}

// docGuard is the gqlgen extension that applies Limits before parsing is
// cached, validation or complexity run.
type docGuard struct {
	limits Limits
	// accepted remembers documents that passed, so a cached document is not
	// walked again.
	accepted *lru.LRU[struct{}]
}

var (
	_ graphql.HandlerExtension          = (*docGuard)(nil)
	_ graphql.OperationParameterMutator = (*docGuard)(nil)
)

func newDocGuard(l Limits) *docGuard {
	return &docGuard{limits: l, accepted: lru.New[struct{}](2000)}
}

// ExtensionName implements graphql.HandlerExtension.
func (g *docGuard) ExtensionName() string { return "DocumentGuard" }

// Validate implements graphql.HandlerExtension.
func (g *docGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses a hostile document before anything else
// looks at it.
func (g *docGuard) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	if raw.Query == "" {
		return nil // APQ hash-only requests are resolved after this; their text was checked when registered
	}
	if _, ok := g.accepted.Get(ctx, raw.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: raw.Query}, g.limits.MaxTokens)
	if err != nil {
		return nil // gqlgen reports the syntax error itself, with its position
	}
	if msg := g.check(doc); msg != "" {
		e := gqlerror.Errorf("%s", msg)
		errcode.Set(e, string(domain.CodeQueryTooComplex))
		return e
	}
	g.accepted.Add(ctx, raw.Query, struct{}{})
	return nil
}

// CheckDocument applies the limits to a query text; "" means it passes.
func CheckDocument(l Limits, query string) string {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, l.MaxTokens)
	if err != nil {
		return "the document does not parse"
	}
	return (&docGuard{limits: l}).check(doc)
}

type fragStats struct {
	fields, aliases, depth int
}

type walker struct {
	l         Limits
	frags     map[string]*ast.FragmentDefinition
	memo      map[string]fragStats
	visiting  map[string]bool
	exceeded  string
	directive int
}

func (g *docGuard) check(doc *ast.QueryDocument) string {
	l := g.limits
	if len(doc.Fragments) > l.MaxFragments {
		return fmt.Sprintf("the document defines %d fragments; the limit is %d", len(doc.Fragments), l.MaxFragments)
	}
	w := &walker{l: l, frags: map[string]*ast.FragmentDefinition{}, memo: map[string]fragStats{}, visiting: map[string]bool{}}
	for _, f := range doc.Fragments {
		w.frags[f.Name] = f
		w.directive += len(f.Directives)
	}
	for _, op := range doc.Operations {
		w.directive += len(op.Directives)
		roots := w.rootFields(op.SelectionSet, map[string]bool{})
		if roots > l.MaxRootFields {
			return fmt.Sprintf("the operation selects %d root fields; the limit is %d", roots, l.MaxRootFields)
		}
		st := w.selection(op.SelectionSet)
		if w.exceeded != "" {
			return w.exceeded
		}
		switch {
		case st.depth > l.MaxDepth:
			return fmt.Sprintf("the operation is %d levels deep; the limit is %d", st.depth, l.MaxDepth)
		case st.fields > l.MaxFields:
			return fmt.Sprintf("the operation expands to more than %d fields", l.MaxFields)
		case st.aliases > l.MaxAliases:
			return fmt.Sprintf("the operation uses %d aliases; the limit is %d", st.aliases, l.MaxAliases)
		}
	}
	if w.directive > l.MaxDirectives {
		return fmt.Sprintf("the document uses %d directives; the limit is %d", w.directive, l.MaxDirectives)
	}
	return ""
}

// rootFields counts the root selection with fragments expanded once.
func (w *walker) rootFields(set ast.SelectionSet, seen map[string]bool) int {
	n := 0
	for _, s := range set {
		switch x := s.(type) {
		case *ast.Field:
			n++
		case *ast.InlineFragment:
			n += w.rootFields(x.SelectionSet, seen)
		case *ast.FragmentSpread:
			if f, ok := w.frags[x.Name]; ok && !seen[x.Name] {
				seen[x.Name] = true
				n += w.rootFields(f.SelectionSet, seen)
			}
		}
	}
	return n
}

// selection returns the expanded size of a selection set, memoised per
// fragment so the walk itself stays linear in the document.
func (w *walker) selection(set ast.SelectionSet) fragStats {
	var st fragStats
	if len(set) > w.l.MaxSelection && w.exceeded == "" {
		w.exceeded = fmt.Sprintf("a selection holds %d fields; the limit is %d", len(set), w.l.MaxSelection)
	}
	for _, s := range set {
		if w.exceeded != "" {
			return st
		}
		var child fragStats
		switch x := s.(type) {
		case *ast.Field:
			w.directive += len(x.Directives)
			child = w.selection(x.SelectionSet)
			child.fields++
			child.depth++
			if x.Alias != "" && x.Alias != x.Name {
				child.aliases++
			}
		case *ast.InlineFragment:
			w.directive += len(x.Directives)
			child = w.selection(x.SelectionSet)
		case *ast.FragmentSpread:
			w.directive += len(x.Directives)
			child = w.fragment(x.Name)
		}
		st.fields = capAdd(st.fields, child.fields)
		st.aliases = capAdd(st.aliases, child.aliases)
		st.depth = max(st.depth, child.depth)
	}
	return st
}

func (w *walker) fragment(name string) fragStats {
	if st, ok := w.memo[name]; ok {
		return st
	}
	f, ok := w.frags[name]
	if !ok {
		return fragStats{} // validation reports the unknown fragment
	}
	if w.visiting[name] {
		w.exceeded = fmt.Sprintf("fragment %s spreads itself", name)
		return fragStats{}
	}
	w.visiting[name] = true
	st := w.selection(f.SelectionSet)
	w.visiting[name] = false
	w.memo[name] = st
	return st
}

// capAdd adds without overflowing: expanded sizes can be astronomically large.
func capAdd(a, b int) int {
	const ceiling = 1 << 40
	if a+b > ceiling {
		return ceiling
	}
	return a + b
}
