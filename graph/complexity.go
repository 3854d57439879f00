package graph

import (
	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/workflow"
)

// pageCost is what a list field costs: its children once per item it may
// return.
func pageCost(child int, first *int) int {
	n := workflow.DefaultPageSize
	if first != nil && *first > 0 {
		n = min(*first, workflow.MaxPageSize)
	}
	return 1 + n*child
}

// Complexity makes list fields multiply their children by `first`; other
// fields keep gqlgen's default (1 + children).
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Cases = func(child int, first *int, _ *string, _ *model.CaseFilter) int { return pageCost(child, first) }
	c.Query.Policies = func(child int, first *int, _ *string, _ *model.PolicyFilter) int { return pageCost(child, first) }
	c.Query.Specialists = func(child int, first *int, _ *string, _ *model.SpecialistFilter) int { return pageCost(child, first) }
	c.Query.Opinions = func(child int, first *int, _ *string, _ *model.OpinionFilter) int { return pageCost(child, first) }
	c.Query.AuditEvents = func(child int, first *int, _ *string, _ *model.AuditEventFilter) int {
		return pageCost(child, first)
	}
	c.Query.SpecialistMatches = func(child int, _ string, first *int) int {
		ten := 10
		if first == nil {
			first = &ten
		}
		return pageCost(child, first)
	}
	// Bounded lists of a case or policy: count a typical upper size.
	c.Case.Events = func(child int) int { return 1 + 20*child }
	// Each event of a page of the history is one read by _id.
	c.Case.History = func(child int, first *int, _ *string) int { return pageCost(child, first) }
	c.Case.Records = func(child int) int { return 1 + 20*child }
	c.Policy.Insured = func(child int) int { return 1 + 5*child }
	return c
}
