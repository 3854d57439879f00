package graph_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/secondopinion/gateway/graph"

	"github.com/secondopinion/gateway/internal/domain"
)

// loadFieldsSchema parses the schema the server is generated from, so the test
// judges the same fields a client can ask for.
func loadFieldsSchema(t *testing.T) *ast.Schema {
	t.Helper()
	return graph.NewExecutableSchema(graph.Config{}).Schema()
}

// isDataObject reports whether an object type carries data of its own: root
// types, connections, edges and payloads are structure, and introspection
// types belong to GraphQL itself.
func isDataObject(def *ast.Definition) bool {
	if def.Kind != ast.Object || strings.HasPrefix(def.Name, "__") {
		return false
	}
	switch def.Name {
	case "Query", "Mutation", "Subscription":
		return false
	}
	for _, suffix := range []string{"Connection", "Edge", "Payload"} {
		if strings.HasSuffix(def.Name, suffix) {
			return false
		}
	}
	return true
}

func TestFieldGroupsCoverTheSchema(t *testing.T) {
	schema := loadFieldsSchema(t)

	t.Run("every field of every data object has a visibility rule", func(t *testing.T) {
		var missing []string
		checked := 0
		for _, def := range schema.Types {
			if !isDataObject(def) {
				continue
			}
			for _, f := range def.Fields {
				if strings.HasPrefix(f.Name, "__") {
					continue
				}
				checked++
				if _, ok := domain.FieldGroup(def.Name, f.Name); !ok {
					missing = append(missing, def.Name+"."+f.Name)
				}
			}
		}
		sort.Strings(missing)
		require.NotZero(t, checked, "the schema has no data objects: the walk is broken")
		assert.Empty(t, missing, "fields without a rule in domain.FieldGroups are refused at run time")
	})

	t.Run("every rule names a field that exists in the schema", func(t *testing.T) {
		var stale []string
		for key := range domain.FieldGroups {
			object, field, ok := strings.Cut(key, ".")
			if !ok {
				stale = append(stale, key+" (not Type.field)")
				continue
			}
			def := schema.Types[object]
			if def == nil || def.Kind != ast.Object || def.Fields.ForName(field) == nil {
				stale = append(stale, key)
			}
		}
		sort.Strings(stale)
		assert.Empty(t, stale, "rules for fields the schema no longer has")
	})

	t.Run("every rule names a group that some role may read", func(t *testing.T) {
		// The coordinator reads every group; a group it cannot read is a
		// typo that would silently refuse the field to everyone.
		var unknown []string
		for key, g := range domain.FieldGroups {
			if !domain.CanRead(domain.RoleCoordinator, g) {
				unknown = append(unknown, key+" → "+string(g))
			}
		}
		sort.Strings(unknown)
		assert.Empty(t, unknown)
	})

	t.Run("a field the table does not name is not given a rule by default", func(t *testing.T) {
		_, ok := domain.FieldGroup("Case", "notAField")
		assert.False(t, ok, "an unknown field of a data object must fail closed")
	})
}
