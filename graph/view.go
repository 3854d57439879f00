package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// clinicalFields are the Case fields stored in the clinical part.
var clinicalFields = map[string]bool{"diagnosis": true, "proposedTreatment": true, "questions": true, "records": true}

// The fields of Case, Specialist and Opinion that a page answers from the
// list documents alone (internal/store/lists.go): their own listed fields,
// edges read by the ids the list documents hold, and what is computed from
// them. Any other field, including one added later, makes the page read
// its rows whole.
var (
	caseListFields = map[string]bool{
		"__typename": true, "id": true, "reference": true, "status": true, "policy": true, "patient": true,
		"specialty": true, "urgency": true, "preferredLanguage": true, "specialist": true, "opinion": true,
		"decision": true, "dueAt": true, "overdue": true, "submittedAt": true, "updatedAt": true,
		"deliveredAt": true, "history": true, "version": true, "recordsCompleteAt": true,
	}
	specialistListFields = map[string]bool{
		"__typename": true, "id": true, "name": true, "specialties": true, "languages": true, "country": true,
		"acceptingCases": true,
	}
	opinionListFields = map[string]bool{
		"__typename": true, "id": true, "case": true, "specialist": true, "status": true, "deliveredAt": true,
	}
)

// caseViewOf returns which optional parts of Case the current field's
// selection reaches, following path (e.g. "edges", "node") from the current
// field down to the Case object.
func caseViewOf(ctx context.Context, path ...string) workflow.CaseView {
	var v workflow.CaseView
	for _, f := range caseFieldsOf(ctx, path...) {
		switch {
		case clinicalFields[f.Name]:
			v.Clinical = true
		case f.Name == "events":
			v.Events = true
		case !caseListFields[f.Name]:
			v.Full = true
		}
	}
	return v
}

// listView says whether the selection of object type typ along path shows
// a field beyond listed.
func listView(ctx context.Context, typ string, listed map[string]bool, path ...string) workflow.View {
	for _, f := range fieldsOf(ctx, typ, path...) {
		if !listed[f.Name] {
			return workflow.View{Full: true}
		}
	}
	return workflow.View{}
}

// caseFieldsOf returns the Case fields the current field's selection
// reaches along path.
func caseFieldsOf(ctx context.Context, path ...string) []graphql.CollectedField {
	return fieldsOf(ctx, "Case", path...)
}

// fieldsOf returns the fields of object type typ the current field's
// selection reaches along path.
func fieldsOf(ctx context.Context, typ string, path ...string) []graphql.CollectedField {
	oc := graphql.GetOperationContext(ctx)
	// Inline fragments and spreads on the type or Node (as under node(id:))
	// count.
	caseTypes := []string{typ, "Node"}
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
	return fields
}

// prefetchCaseEdges queues at once, for every case of a page, the edges the
// selection asks for and p may read, so each loader fetches them all in one
// batch however late the per-node resolvers start: under load, a page's
// field resolvers can take longer to start than a loader's batch window,
// which would split its edges over several reads. The resolvers then find
// the pending loads in the loaders' caches.
func prefetchCaseEdges(ctx context.Context, p domain.Principal, cases []*domain.Case, path ...string) {
	if len(cases) < 2 {
		return
	}
	l, err := loaders(ctx)
	if err != nil {
		return
	}
	for _, f := range caseFieldsOf(ctx, path...) {
		if g, ok := FieldGroup("Case", f.Definition); !ok || !domain.CanRead(p, g) {
			continue
		}
		for _, c := range cases {
			switch f.Name {
			case "policy":
				l.Policy.LoadThunk(ctx, c.PolicyID)
			case "patient":
				l.PatientOfCase.LoadThunk(ctx, c)
			case "specialist":
				if c.SpecialistID != "" {
					l.Specialist.LoadThunk(ctx, c.SpecialistID)
				}
			case "opinion":
				l.OpinionOfCase.LoadThunk(ctx, c)
			}
		}
	}
}

// prefetchPolicyEdges is prefetchCaseEdges for a page of policies.
func prefetchPolicyEdges(ctx context.Context, p domain.Principal, pols []*domain.Policy, path ...string) {
	if len(pols) < 2 {
		return
	}
	l, err := loaders(ctx)
	if err != nil {
		return
	}
	for _, f := range fieldsOf(ctx, "Policy", path...) {
		if g, ok := FieldGroup("Policy", f.Definition); !ok || !domain.CanRead(p, g) {
			continue
		}
		if f.Name == "insured" {
			for _, pol := range pols {
				l.PatientsOfPolicy.LoadThunk(ctx, pol)
			}
		}
	}
}
