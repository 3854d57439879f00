package graph

import (
	"context"

	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// patient resolves node(id) for a Patient: the store decides the scope.
func (r *queryResolver) patient(ctx context.Context, id string) (*domain.Patient, error) {
	p, err := readable(ctx, domain.ScopeCasesRead)
	if err != nil {
		if p.Role == domain.RoleMember || p.Role == domain.RoleInsurer {
			p, err = readable(ctx, domain.ScopePoliciesRead)
		}
		if err != nil {
			return nil, err
		}
	}
	raw, err := rawID(id, "Patient")
	if err != nil {
		return nil, err
	}
	pt, err := r.Workflow.Patient(ctx, p, raw)
	return pt, err
}

// auditWrite records a write of PHI.
func auditWrite(ctx context.Context, typ, id string, group domain.Group, caseID string) {
	audit.Record(ctx, audit.Entry{ResourceType: typ, ResourceID: id, Group: group, Outcome: "WRITTEN", CaseID: caseID})
}

// caseInput returns the principal and the raw id of a case argument.
func caseInput(ctx context.Context, caseID string) (domain.Principal, string, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, "", err
	}
	id, err := rawID(caseID, "Case")
	return p, id, err
}

func (r *mutationResolver) consent(ctx context.Context, in model.ConsentInput, grant bool) (*domain.Case, error) {
	p, id, err := caseInput(ctx, in.CaseID)
	if err != nil {
		return nil, err
	}
	var c *domain.Case
	if grant {
		c, err = r.Workflow.GrantConsent(ctx, p, id, in.Kind)
	} else {
		c, err = r.Workflow.RevokeConsent(ctx, p, id, in.Kind)
	}
	if err != nil {
		return nil, err
	}
	auditWrite(ctx, "Case", id, domain.GroupCaseAdmin, id)
	return c, nil
}
