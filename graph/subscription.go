package graph

import (
	"context"

	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// caseEvents streams the case events the caller may see.
func (r *subscriptionResolver) caseEvents(ctx context.Context, caseID *string) (<-chan *model.CaseEventNotice, error) {
	p, err := readable(ctx, domain.ScopeCasesRead)
	if err != nil {
		return nil, err
	}
	if r.Events == nil {
		return nil, domain.Errorf(domain.CodeInternal, "subscriptions are not available")
	}
	raw := ""
	if caseID != nil {
		if raw, err = rawID(*caseID, "Case"); err != nil {
			return nil, err
		}
		// Out of scope or missing: NOT_FOUND, as for a read.
		if err := r.Workflow.SubscribeCheck(ctx, p, raw); err != nil {
			return nil, err
		}
	}
	in := r.Events.Subscribe(ctx, p, raw)
	out := make(chan *model.CaseEventNotice)
	go func() {
		defer close(out)
		for rec := range in {
			select {
			case out <- toNotice(rec):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func toNotice(r *workflow.CaseEventRecord) *model.CaseEventNotice {
	ev := r.Event()
	n := &model.CaseEventNotice{CaseID: r.CaseID, Event: &ev, Status: domain.CaseStatus(r.Status), Version: r.Version}
	if a := r.Access; a != nil {
		cats := make([]domain.DataCategory, len(a.Categories))
		for i, c := range a.Categories {
			cats[i] = domain.DataCategory(c)
		}
		n.Access = &model.DataAccessNotice{
			Organization:   &domain.Organization{ID: a.Org, Name: a.OrgName, Kind: domain.OrgKind(a.OrgKind)},
			DataCategories: cats, At: r.At.UTC(), CaseReference: a.Reference,
		}
	}
	return n
}
