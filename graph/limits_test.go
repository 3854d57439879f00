package graph_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/secondopinion/gateway/graph"
)

func TestEveryInputDeclaresItsLimit(t *testing.T) {
	limits := graph.InputLimitsOf(loadFieldsSchema(t))
	require.Greater(t, len(limits), 50, "the walk over the schema found too few inputs: it is broken")
	var missing []string
	for _, l := range limits {
		switch {
		case !l.Declared:
			missing = append(missing, l.Where+" "+l.Type+": no @limit")
		case l.Max < 1:
			missing = append(missing, l.Where+" "+l.Type+": @limit(max:) must be at least 1")
		case strings.HasPrefix(l.Type, "[") && (strings.HasPrefix(l.Type, "[String") || strings.HasPrefix(l.Type, "[ID")) && l.Length < 1:
			missing = append(missing, l.Where+" "+l.Type+": a list of strings needs @limit(length:) for its entries")
		}
	}
	assert.Empty(t, missing, "every String, ID and list input field and argument declares @limit (schema.graphqls, directive @limit):\n%s",
		strings.Join(missing, "\n"))
}

// overLong returns, for an input of type typ limited by l, a value just past
// its limit and the path (below at) the refusal must name, and a value just
// at it.
func overLong(typ *ast.Type, l graph.Limit, at string) (over, atMax any, path string) {
	if typ.Elem != nil {
		if l.Length > 0 {
			return []any{word(l.Length+1, l.URL)}, []any{word(l.Length, l.URL)}, at + "[0]"
		}
		entry := func(i int) any {
			switch typ.Elem.NamedType {
			case "String", "ID":
				return fmt.Sprintf("e%d", i)
			}
			if def := parsedTypes[typ.Elem.NamedType]; def != nil && def.Kind == ast.Enum {
				return def.EnumValues[i%len(def.EnumValues)].Name
			}
			return map[string]any{}
		}
		var o, m []any
		for i := 0; i <= l.Max; i++ {
			o = append(o, entry(i))
		}
		m = o[:l.Max]
		return o, m, at
	}
	return word(l.Max+1, l.URL), word(l.Max, l.URL), at
}

var parsedTypes map[string]*ast.Definition

// word is n characters, each two bytes in UTF-8 (so a byte count would
// refuse the value at the cap), shaped as an https URL when url.
func word(n int, url bool) string {
	if url {
		p := "https://e.org/"
		return p + strings.Repeat("é", n-len(p))
	}
	return strings.Repeat("é", n)
}

func TestEveryCappedInputRefusesOneCharacterOrEntryMore(t *testing.T) {
	schema := loadFieldsSchema(t)
	parsedTypes = schema.Types
	for _, l := range graph.InputLimitsOf(schema) {
		if !l.Declared {
			continue
		}
		l := l
		t.Run(l.Where+" refuses one more than "+fmt.Sprint(l.Max), func(t *testing.T) {
			typ, at, check := inputAt(t, schema, l.Where)
			over, atMax, path := overLong(typ, l.Limit, at)
			err := check(over)
			require.NotNil(t, err, "a value past the cap passed")
			assert.Equal(t, "BAD_USER_INPUT", err.Extensions["code"])
			assert.Equal(t, path, err.Extensions["field"], err.Message)
			assert.Nil(t, check(atMax), "a value at the cap is refused")
		})
	}
}

// inputAt returns the type of the input named by where (`Input.field` or
// `Type.field(arg)`), the path at which the server's walk reaches it (the
// argument, or the field through its input object `in`) and a check of a
// value in it, made as the walk makes it.
func inputAt(t *testing.T, schema *ast.Schema, where string) (*ast.Type, string, func(any) *gqlerror.Error) {
	t.Helper()
	typeName, rest, _ := strings.Cut(where, ".")
	def := schema.Types[typeName]
	require.NotNil(t, def, where)
	if field, arg, ok := strings.Cut(rest, "("); ok {
		name := strings.TrimSuffix(arg, ")")
		a := def.Fields.ForName(field).Arguments.ForName(name)
		require.NotNil(t, a, where)
		return a.Type, name, func(v any) *gqlerror.Error {
			return graph.CheckInput(name, a.Type, graph.LimitOf(a.Directives), v)
		}
	}
	f := def.Fields.ForName(rest)
	require.NotNil(t, f, where)
	return f.Type, "in." + rest, func(v any) *gqlerror.Error {
		return graph.CheckInput("in", &ast.Type{NamedType: typeName, NonNull: true}, graph.Limit{}, map[string]any{rest: v})
	}
}

func TestREADMEListsEveryInputLimit(t *testing.T) {
	const begin, end = "<!-- input-limits:begin -->\n", "<!-- input-limits:end -->"
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	require.True(t, i >= 0 && j > i, "README.md has no %q … %q section", begin, end)
	want := graph.InputLimitsMarkdown(loadFieldsSchema(t))
	got := readme[i+len(begin) : j]
	if got != want && os.Getenv("UPDATE_README") != "" {
		require.NoError(t, os.WriteFile("../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644))
		return
	}
	assert.Equal(t, want, got, "README.md's input limits differ from the schema; run UPDATE_README=1 go test ./graph -run TestREADMEListsEveryInputLimit")
}
