package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/secondopinion/gateway/internal/store"
)

// clinicalFields are the Case fields stored in the clinical part.
var clinicalFields = map[string]bool{"diagnosis": true, "proposedTreatment": true, "questions": true, "records": true}

// caseViewOf returns which optional parts of Case the current field's
// selection reaches, following path (e.g. "edges", "node") from the current
// field down to the Case object.
func caseViewOf(ctx context.Context, path ...string) store.CaseView {
	oc := graphql.GetOperationContext(ctx)
	// Inline fragments and spreads on Case or Node (as under node(id:)) count.
	caseTypes := []string{"Case", "Node"}
	var fields []graphql.CollectedField
	if len(path) == 0 {
		fields = graphql.CollectFieldsCtx(ctx, caseTypes)
	} else {
		fields = graphql.CollectFieldsCtx(ctx, nil)
	}
	for i, name := range path {
		satisfies := []string(nil)
		if i == len(path)-1 {
			satisfies = caseTypes
		}
		var next []graphql.CollectedField
		for _, f := range fields {
			if f.Name == name {
				next = append(next, graphql.CollectFields(oc, f.Selections, satisfies)...)
			}
		}
		fields = next
	}
	var v store.CaseView
	for _, f := range fields {
		switch {
		case clinicalFields[f.Name]:
			v.Clinical = true
		case f.Name == "events":
			v.Events = true
		}
	}
	return v
}
