package graph

import (
	"context"
	"time"

	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// auditIntegrity recomputes the chains of the days from..to: the export's
// rules (a coordinator, at most workflow.MaxExportDays), as it reads the
// same rows, here into memory.
func auditIntegrity(ctx context.Context, st *workflow.Service, p domain.Principal, from, to time.Time) (*model.AuditIntegrity, error) {
	if err := workflow.AuditExportAllowed(p); err != nil {
		return nil, err
	}
	if err := workflow.AuditExportPeriod(from, to); err != nil {
		return nil, err
	}
	heads, events, err := st.AuditChains(ctx, p, from, to)
	if err != nil {
		return nil, err
	}
	checkpoints, err := st.AuditCheckpoints(ctx, p, from, to)
	if err != nil {
		return nil, err
	}
	rep := audit.VerifyPeriod(workflow.AuditHeads(heads), events, checkpoints, st.AuditKeys())
	out := &model.AuditIntegrity{Ok: rep.OK(), Chains: rep.Chains, Events: rep.Events, PrunedChains: rep.Pruned, Breaks: []model.AuditChainBreak{}}
	for _, b := range rep.Breaks {
		ab := model.AuditChainBreak{Chain: b.Chain, Position: int(b.Position), Reason: b.Reason}
		if b.EventID != "" {
			ab.EventID = &b.EventID
		}
		out.Breaks = append(out.Breaks, ab)
	}
	return out, nil
}
