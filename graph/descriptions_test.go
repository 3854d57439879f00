package graph_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/graph"
)

func TestEveryTypeFieldArgumentAndEnumValueIsDescribed(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	var missing []string
	for name, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		if strings.TrimSpace(def.Description) == "" {
			missing = append(missing, name)
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if strings.TrimSpace(f.Description) == "" {
				missing = append(missing, name+"."+f.Name)
			}
			for _, a := range f.Arguments {
				if strings.TrimSpace(a.Description) == "" {
					missing = append(missing, name+"."+f.Name+"("+a.Name+")")
				}
			}
		}
		for _, v := range def.EnumValues {
			if strings.TrimSpace(v.Description) == "" {
				missing = append(missing, name+"."+v.Name)
			}
		}
	}
	assert.Empty(t, missing, "add a description to each of these in schema.graphqls")
}
