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

	t.Run("every field of every data object declares its group", func(t *testing.T) {
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
				if f.Directives.ForName("group") == nil {
					missing = append(missing, def.Name+"."+f.Name)
				}
			}
		}
		sort.Strings(missing)
		require.NotZero(t, checked, "the schema has no data objects: the walk is broken")
		assert.Empty(t, missing, "fields without @group are refused at run time")
	})

	t.Run("every group some role may read", func(t *testing.T) {
		// The coordinator reads every group; a group it cannot read would
		// silently refuse the field to everyone.
		var unknown []string
		for _, def := range schema.Types {
			for _, f := range def.Fields {
				if f.Directives.ForName("group") == nil {
					continue
				}
				g, ok := graph.FieldGroup(def.Name, f)
				if !ok || !domain.RoleCanRead(domain.RoleCoordinator, g) {
					unknown = append(unknown, def.Name+"."+f.Name+" → "+string(g))
				}
			}
		}
		sort.Strings(unknown)
		assert.Empty(t, unknown)
	})

	t.Run("a field of a data object without a group is not given one by default", func(t *testing.T) {
		_, ok := graph.FieldGroup("Case", &ast.FieldDefinition{Name: "notAField"})
		assert.False(t, ok, "an unknown field of a data object must fail closed")
		g, ok := graph.FieldGroup("CaseConnection", &ast.FieldDefinition{Name: "edges"})
		assert.True(t, ok)
		assert.Equal(t, domain.GroupPublic, g, "structure carries no data of its own")
	})

	t.Run("the SDL a partner reads names each field's group", func(t *testing.T) {
		f := schema.Types["Case"].Fields.ForName("diagnosis")
		require.NotNil(t, f)
		g, ok := graph.FieldGroup("Case", f)
		require.True(t, ok)
		assert.Equal(t, domain.GroupCaseClinical, g)
	})
}
