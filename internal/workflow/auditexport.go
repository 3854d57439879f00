package workflow

import (
	"context"
	"time"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// MaxExportDays bounds one audit export (GET /audit/export): a longer
// period is exported in pieces, each verifiable on its own since chains
// are per day.
const MaxExportDays = 31

// AuditExportAllowed is who may export: coordinators holding audit:read,
// no one else, whatever they ask for (so a refusal tells nothing about the
// period asked for).
func AuditExportAllowed(p domain.Principal) error {
	if err := p.RequireRole(domain.RoleCoordinator); err != nil {
		return err
	}
	return p.Require(domain.ScopeAuditRead)
}

// AuditExportPeriod checks an export's period: whole UTC days from..to, at
// most MaxExportDays.
func AuditExportPeriod(from, to time.Time) error {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	if to.Before(from) || to.Sub(from) >= MaxExportDays*24*time.Hour {
		return domain.Errorf(domain.CodeBadUserInput, "from must not be after to, and at most %d days apart", MaxExportDays)
	}
	return nil
}

// ExportAudit streams the audit of the UTC days from..to as export lines
// (audit.ExportLine), heads first, to line, as they are read. The export
// itself is audited first, and nothing is streamed unless that record is
// stored (fail closed).
func (s *Service) ExportAudit(ctx context.Context, p domain.Principal, from, to time.Time, rec *audit.Recorder, sink audit.Sink, line func(audit.ExportLine) error) error {
	if err := AuditExportAllowed(p); err != nil {
		return err
	}
	if err := AuditExportPeriod(from, to); err != nil {
		return err
	}
	fromDay, toDay := from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)
	rec.Record(audit.Entry{ResourceType: "AuditExport", ResourceID: fromDay + ".." + toDay, Group: domain.GroupAudit, Outcome: audit.OutcomeAllowed})
	if err := rec.Flush(ctx, sink); err != nil {
		return err
	}
	if err := line(audit.ExportLine{Export: &audit.ExportHeader{Format: audit.ExportFormat, From: fromDay, To: toDay, GeneratedAt: s.store.Now().UTC()}}); err != nil {
		return err
	}
	var end audit.ExportEnd
	err := s.store.ExportAudit(ctx, p, from, to,
		func(h ChainHead) error {
			end.Heads++
			return line(audit.ExportLine{Head: &audit.ChainHead{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash}})
		},
		func(e domain.AuditEvent) error {
			end.Events++
			x := audit.ToExportEvent(e)
			return line(audit.ExportLine{Event: &x})
		})
	if err != nil {
		return err
	}
	return line(audit.ExportLine{End: &end})
}
