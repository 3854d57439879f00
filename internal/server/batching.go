package server

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// loaderTypes are the object types whose edges go through the loaders.
var loaderTypes = map[string]bool{
	"Case": true, "Policy": true, "Patient": true, "Specialist": true, "Opinion": true, "SpecialistMatch": true,
}

// batchesEdges reports whether an operation reads lists of objects whose
// edges the loaders batch (a connection, or a list of cases, policies,
// patients, specialists or opinions, anywhere in it, fragments included).
// An operation that reads single objects only gains nothing from the
// loaders' wait, which would only delay each level of its response.
func batchesEdges(op *ast.OperationDefinition) bool {
	if op == nil {
		return true
	}
	seen := map[string]bool{}
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if d := s.Definition; d != nil && d.Type != nil {
					named := d.Type.Name()
					if strings.HasSuffix(named, "Connection") || (isList(d.Type) && loaderTypes[named]) {
						return true
					}
				}
				if walk(s.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if walk(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if s.Definition == nil {
					return true // not resolved: assume the worst
				}
				if seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				if walk(s.Definition.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	return walk(op.SelectionSet)
}

func isList(t *ast.Type) bool { return t != nil && t.Elem != nil }
