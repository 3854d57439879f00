package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/report"
)

// OpinionReport is a delivered opinion's printable report: the PDF and the
// document that describes it.
type OpinionReport struct {
	Document *domain.Document
	PDF      []byte
	// PatientID is whose opinion it is (the member key), for the audit.
	PatientID string
}

// OpinionReport renders the report of opinion id for p (issue 16, item 3):
// the same rules as the opinion's content (the role may read it, the
// opinion is in p's scope, consents included, and delivered). A draft has
// no report: NOT_FOUND.
func (s *Service) OpinionReport(ctx context.Context, p domain.Principal, id string) (*OpinionReport, error) {
	if err := p.Require(domain.ScopeOpinionsRead); err != nil {
		return nil, err
	}
	if !domain.CanRead(p, domain.GroupOpinionContent) {
		return nil, domain.ErrFieldForbidden
	}
	o, err := s.store.Opinion(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if o.Status != domain.OpinionDelivered || o.Content == nil || o.DeliveredAt == nil {
		return nil, domain.ErrNotFound("report")
	}
	c, err := s.store.CaseForFollowUps(ctx, p, o.CaseID)
	if err != nil {
		return nil, err
	}
	sp, err := s.store.Specialist(ctx, p, o.SpecialistID)
	if err != nil && domain.ErrorCode(err) != domain.CodeNotFound {
		return nil, err
	}
	in := report.Input{
		Language: c.PreferredLanguage, CaseReference: c.Reference, Specialty: c.Specialty,
		Opinion: o, Specialist: sp, FollowUps: c.FollowUps,
	}
	if !domain.CanRead(p, domain.GroupCaseAdmin) {
		// As GraphQL's opinion.case for a token narrowed to opinions:read:
		// the opinion, not the case's reference and specialty.
		in.CaseReference, in.Specialty = "", ""
	}
	pdf, err := report.Render(in)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pdf)
	at := *o.DeliveredAt
	if o.Sig != nil {
		at = o.Sig.SignedAt
	}
	return &OpinionReport{
		Document: &domain.Document{
			ContentType: report.ContentType, SizeBytes: len(pdf), SHA256: hex.EncodeToString(sum[:]), UploadedAt: at,
			CaseID: o.CaseID, RecordID: o.ID, Report: true,
		},
		PDF: pdf, PatientID: o.PatientID,
	}, nil
}
