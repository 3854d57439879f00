package workflow

import (
	"context"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// Referral is a referral imported as a whole (the FHIR transaction Bundle):
// the second-opinion request and the records that come with it.
type Referral struct {
	Request Request
	Records []RecordInput
	// Files are the records the referral sends with their files: checked
	// here with the others before the case opens, stored by the caller
	// (the document service) once it has the case.
	Files []RecordInput
}

// ImportReferral opens a case exactly as RequestSecondOpinion does (same
// rights, eligibility and errors) and attaches the referral's records, at
// most once per (caller, key): a replay with the same input hash returns the
// first case, another input under the same key is IDEMPOTENCY_KEY_REUSED.
// Everything that could refuse the records is checked before the case is
// opened, so a refused referral leaves nothing behind.
func (s *Service) ImportReferral(ctx context.Context, p domain.Principal, key, inputHash string, r Referral) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleInsurer, domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if key == "" || len(key) > 200 {
		return nil, bad("a referral needs an identifier of at most 200 characters")
	}
	if all := append(append([]RecordInput(nil), r.Records...), r.Files...); len(all) > 0 {
		// Records are clinical: the same rule as addMedicalRecord.
		if err := p.RequireRole(domain.RoleMember, domain.RoleCoordinator); err != nil {
			return nil, err
		}
		if len(all) > 100 {
			return nil, bad("a case holds at most 100 records")
		}
		for _, rec := range all {
			if _, err := clean(rec.Title, "title", 200, true); err != nil {
				return nil, err
			}
			if rec.RecordedOn != nil && rec.RecordedOn.After(time.Now()) {
				return nil, bad("recordedOn is in the future")
			}
		}
	}
	req := r.Request
	req.IdempotencyKey = ""
	if err := normalizeRequest(p, &req); err != nil {
		return nil, err
	}
	id, err := s.store.Idempotent(ctx, p, "importReferral", key, inputHash, func() (string, error) {
		c, err := s.RequestSecondOpinion(ctx, p, req)
		if err != nil {
			return "", err
		}
		for _, rec := range r.Records {
			if _, _, err := s.AddMedicalRecord(ctx, p, c.ID, rec); err != nil {
				return "", err
			}
		}
		return c.ID, nil
	})
	if err != nil {
		return nil, err
	}
	return s.store.Case(ctx, p, id)
}
