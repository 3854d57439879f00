package graph

import (
	"context"
	"errors"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// FieldGuard is the field middleware that applies each field's @group (its
// definition in the schema) to every field of every response: a field whose
// group the caller's role may not read resolves to null with FORBIDDEN and
// is never resolved; a field of a data object without a group is refused
// (fail closed); every read of a PHI group is recorded for the audit,
// allowed or denied.
func FieldGuard(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || strings.HasPrefix(fc.Field.Name, "__") || strings.HasPrefix(fc.Object, "__") {
		return next(ctx)
	}
	group, ok := FieldGroup(fc.Object, objectField(fc.Object, fc.Field.Definition))
	if !ok {
		return nil, errors.New("graph: field " + fc.Object + "." + fc.Field.Name + " has no visibility rule")
	}
	p, err := domain.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !domain.CanRead(p.Role, group) {
		recordField(ctx, fc, group, audit.OutcomeDenied)
		return nil, domain.ErrFieldForbidden
	}
	res, err := next(ctx)
	switch {
	case errors.Is(err, domain.ErrFieldForbidden):
		recordField(ctx, fc, group, audit.OutcomeDenied)
	case err == nil && domain.PHI(group):
		recordField(ctx, fc, group, audit.OutcomeAllowed)
	}
	return res, err
}

// FieldGroup returns the visibility group of a field of object: its @group
// directive, or public for the fields of root types, connections, edges and
// payloads, which carry no data of their own. A field of a data object
// without one has none (and is refused).
func FieldGroup(object string, def *ast.FieldDefinition) (domain.Group, bool) {
	if def != nil {
		if d := def.Directives.ForName("group"); d != nil {
			if a := d.Arguments.ForName("name"); a != nil && a.Value != nil {
				return domain.Group(strings.ReplaceAll(strings.ToLower(a.Value.Raw), "_", ".")), true
			}
		}
	}
	if Structural(object) {
		return domain.GroupPublic, true
	}
	return "", false
}

// objectField returns object's own definition of field def: a field
// selected through an interface (node { id }) comes with the interface's
// definition, while the group is declared on the object's.
func objectField(object string, def *ast.FieldDefinition) *ast.FieldDefinition {
	if def == nil || def.Directives.ForName("group") != nil {
		return def
	}
	if t := parsedSchema.Types[object]; t != nil {
		if f := t.Fields.ForName(def.Name); f != nil {
			return f
		}
	}
	return def
}

// Structural reports whether object carries no data of its own: root types,
// connections, edges and payloads.
func Structural(object string) bool {
	switch object {
	case "Query", "Mutation", "Subscription":
		return true
	}
	for _, suffix := range []string{"Connection", "Edge", "Payload"} {
		if len(object) > len(suffix) && strings.HasSuffix(object, suffix) {
			return true
		}
	}
	return false
}

// resource is what an audited object tells about itself.
type resource interface{ ResourceID() string }

// recordField notes an access to a field of a PHI group, against the object
// that holds it. Fields of nested value objects (a record, a treatment
// option) are covered by their parent field's entry.
func recordField(ctx context.Context, fc *graphql.FieldContext, group domain.Group, outcome string) {
	if !domain.PHI(group) || fc.Parent == nil {
		return
	}
	var id string
	switch v := fc.Parent.Result.(type) {
	case resource:
		id = v.ResourceID()
	case domain.Patient:
		id = v.ID
	default:
		return
	}
	entry := audit.Entry{ResourceType: fc.Object, ResourceID: id, Group: group, Outcome: outcome}
	// Whose data it is, for the member's access log: the member key, never
	// the pseudonym a partner sees as the patient's id.
	switch v := fc.Parent.Result.(type) {
	case *domain.Opinion:
		entry.CaseID, entry.PatientID = v.CaseID, v.PatientID
	case *domain.Case:
		entry.PatientID = v.PatientID
	case *domain.Patient:
		entry.PatientID, entry.CaseID = v.MemberKey, enclosingCase(fc)
	case domain.Patient:
		entry.PatientID, entry.CaseID = v.MemberKey, enclosingCase(fc)
	}
	audit.Record(ctx, entry)
}

// enclosingCase is the id of the case a patient was reached through
// (case { patient { … } }), or "" when it was not reached through one: the
// audit row names the case, and a first read by an organisation can be
// announced with its case (issue 17).
func enclosingCase(fc *graphql.FieldContext) string {
	for p := fc.Parent; p != nil; p = p.Parent {
		switch v := p.Result.(type) {
		case *domain.Case:
			if v != nil {
				return v.ID
			}
		case domain.Case:
			return v.ID
		}
	}
	return ""
}
