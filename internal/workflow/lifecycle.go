package workflow

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Every lifecycle move goes through move: the role and scope are checked,
// the state machine in domain decides, and the store writes with a
// compare-and-set so no update is lost.

func statusEvent(from, to domain.CaseStatus, role domain.Role, at time.Time) domain.CaseEvent {
	f, t := from, to
	return domain.CaseEvent{Type: "STATUS_CHANGED", At: at, FromStatus: &f, ToStatus: &t, ActorRole: role}
}

// autoTriage moves a submitted case to TRIAGE once it holds a record and an
// active records-release consent; c must already reflect the update.
func autoTriage(c *domain.Case, up *store.CaseUpdate, role domain.Role, at time.Time) {
	if domain.ReadyForTriage(c) {
		s := domain.StatusTriage
		up.Status = &s
		// The SLA clock starts now, when the records are complete, as
		// insurers' contracts measure it.
		due := at.Add(c.Urgency.SLA())
		up.RecordsCompleteAt, up.DueAt = &at, &due
		up.Events = append(up.Events, statusEvent(domain.StatusSubmitted, domain.StatusTriage, role, at))
	}
}

// GrantConsent records a member's consent on their own case.
func (s *Service) GrantConsent(ctx context.Context, p domain.Principal, caseID string, kind domain.ConsentKind) (*domain.Case, error) {
	return s.setConsent(ctx, p, caseID, kind, true)
}

// RevokeConsent withdraws a member's consent; revoking international sharing
// removes the case from the partner's view at once.
func (s *Service) RevokeConsent(ctx context.Context, p domain.Principal, caseID string, kind domain.ConsentKind) (*domain.Case, error) {
	return s.setConsent(ctx, p, caseID, kind, false)
}

func (s *Service) setConsent(ctx context.Context, p domain.Principal, caseID string, kind domain.ConsentKind, grant bool) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleMember); err != nil {
		return nil, err
	}
	return s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if !c.Status.Open() && grant {
			return up, domain.Errorf(domain.CodeInvalidTransition, "the case is %s; consents can no longer be granted", c.Status)
		}
		if c.ConsentActive(kind) == grant {
			// Already in that state: nothing changes, nothing is recorded.
			return up, store.ErrNoChange
		}
		now := s.store.Now()
		consents := make([]domain.Consent, 0, len(c.Consents)+1)
		found := false
		for _, x := range c.Consents {
			if x.Kind == kind {
				found = true
				x = applyConsent(x, grant, now)
			}
			consents = append(consents, x)
		}
		if !found {
			consents = append(consents, applyConsent(domain.Consent{Kind: kind}, grant, now))
		}
		up.Consents = consents
		typ := "CONSENT_GRANTED"
		if !grant {
			typ = "CONSENT_REVOKED"
		}
		up.Events = append(up.Events, domain.CaseEvent{Type: typ + ":" + string(kind), At: now, ActorRole: p.Role})
		next := *c
		next.Consents = consents
		autoTriage(&next, &up, p.Role, now)
		return up, nil
	})
}

func applyConsent(x domain.Consent, grant bool, now time.Time) domain.Consent {
	t := now
	x.Active = grant
	if grant {
		x.GrantedAt = &t
	} else {
		x.RevokedAt = &t
	}
	return x
}

// RecordInput is a medical record's metadata.
type RecordInput struct {
	Title      string
	Kind       domain.RecordKind
	RecordedOn *time.Time
	// ID, when set, is the new record's id, chosen by the caller so that
	// adding it again is idempotent: a record with that id already on the
	// case is answered as it is and nothing is added (a retried import).
	ID string
}

// AddMedicalRecord attaches a record's metadata to a case.
func (s *Service) AddMedicalRecord(ctx context.Context, p domain.Principal, caseID string, in RecordInput) (*domain.Case, *domain.Record, error) {
	if err := s.recordRole(p, false); err != nil {
		return nil, nil, err
	}
	rec := domain.Record{ID: NewRecordID(), Title: in.Title, Kind: in.Kind, RecordedOn: in.RecordedOn}
	return s.addRecord(ctx, p, caseID, rec, nil)
}

// NewRecordID returns a fresh record id.
func NewRecordID() string { return "rec-" + store.NewID() }

// CheckRecord checks, before any file is read, that p may add the record in
// to the case: the right role (with a document, the case's reviewer too),
// valid metadata, and a case in p's scope that is still open, with room for
// another record, and (for a reviewer) the member's RECORDS_RELEASE consent.
// The write checks all of it again.
func (s *Service) CheckRecord(ctx context.Context, p domain.Principal, caseID string, in RecordInput, withDocument bool) error {
	if err := s.recordRole(p, withDocument); err != nil {
		return err
	}
	if _, err := clean(in.Title, "title", 200, true); err != nil {
		return err
	}
	if in.RecordedOn != nil && in.RecordedOn.After(time.Now()) {
		return bad("recordedOn is in the future")
	}
	c, err := s.store.CaseWith(ctx, p, caseID, store.CaseView{Clinical: true})
	if err != nil {
		return err
	}
	return recordRoom(p, c)
}

// AddUploadedRecord attaches a record whose document is stored (encrypted,
// in blob storage) to a case. stored waits until the document's file is
// stored for good and reports whether it was: the record is written only
// after it answers nil, so the case can be read and the record prepared
// while storage finishes the file (the directory store's fsync). The
// caller deletes the blob when this fails.
func (s *Service) AddUploadedRecord(ctx context.Context, p domain.Principal, caseID string, in RecordInput, recordID string, doc *domain.Document, stored func() error) (*domain.Case, *domain.Record, error) {
	if err := s.recordRole(p, true); err != nil {
		return nil, nil, err
	}
	title, err := clean(in.Title, "title", 200, true)
	if err != nil {
		return nil, nil, err
	}
	rec := domain.Record{ID: recordID, Title: title, Kind: in.Kind, RecordedOn: in.RecordedOn, Document: doc}
	return s.addRecord(ctx, p, caseID, rec, stored)
}

func (s *Service) recordRole(p domain.Principal, withDocument bool) error {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return err
	}
	roles := []domain.Role{domain.RoleMember, domain.RoleCoordinator}
	if withDocument {
		// A reviewer adds, say, the pathology it re-read; the case scope
		// limits it to its own assigned cases.
		roles = append(roles, domain.RoleProvider, domain.RolePartner)
	}
	return p.RequireRole(roles...)
}

// recordRoom is the rule for adding a record to c (already in p's scope).
func recordRoom(p domain.Principal, c *domain.Case) error {
	if !c.Status.Open() {
		return domain.Errorf(domain.CodeInvalidTransition, "the case is %s; records can no longer be added", c.Status)
	}
	if p.Role.Reviewer() && !c.ConsentActive(domain.ConsentRecordsRelease) {
		return domain.Errorf(domain.CodeConsentRequired, "the member's RECORDS_RELEASE consent is not active")
	}
	if c.Clinical != nil && len(c.Clinical.Records) >= 100 {
		return bad("a case holds at most 100 records")
	}
	return nil
}

// addRecord adds rec to the case; with stored (an uploaded document), only
// once stored answers nil.
func (s *Service) addRecord(ctx context.Context, p domain.Principal, caseID string, rec domain.Record, stored func() error) (*domain.Case, *domain.Record, error) {
	withDocument := stored != nil
	title, err := clean(rec.Title, "title", 200, true)
	if err != nil {
		return nil, nil, err
	}
	rec.Title = title
	if rec.RecordedOn != nil && rec.RecordedOn.After(time.Now()) {
		return nil, nil, bad("recordedOn is in the future")
	}
	rec.AddedAt = s.store.Now()
	var held *domain.Record
	c, err := s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if c.Clinical != nil {
			for _, r := range c.Clinical.Records {
				if r.ID == rec.ID {
					held = &r
					return up, store.ErrNoChange
				}
			}
		}
		if err := recordRoom(p, c); err != nil {
			return up, err
		}
		if withDocument {
			if err := stored(); err != nil {
				return up, err
			}
		}
		var records []domain.Record
		if c.Clinical != nil {
			records = append(records, c.Clinical.Records...)
		}
		records = append(records, rec)
		up.Records = records
		now := s.store.Now()
		typ := "RECORD_ADDED"
		if withDocument {
			typ = "RECORD_UPLOADED"
		}
		up.Events = append(up.Events, domain.CaseEvent{Type: typ, At: now, ActorRole: p.Role})
		next := *c
		cl := domain.CaseClinical{}
		if c.Clinical != nil {
			cl = *c.Clinical
		}
		cl.Records = records
		next.Clinical = &cl
		autoTriage(&next, &up, p.Role, now)
		return up, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if held != nil {
		return c, held, nil
	}
	// The case comes back as the caller may read it: without its clinical
	// part for a token that may write cases but not read them.
	if c.Clinical != nil {
		for _, r := range c.Clinical.Records {
			if r.ID == rec.ID {
				return c, &r, nil
			}
		}
	}
	return c, &rec, nil
}

// RemoveMedicalRecord takes a record off a case before its review starts
// (member or coordinator) and returns the case and the removed record (with
// its document, so the caller can shred it). The removal stays in the case's
// history as RECORD_REMOVED.
func (s *Service) RemoveMedicalRecord(ctx context.Context, p domain.Principal, caseID, recordID string) (*domain.Case, *domain.Record, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, nil, err
	}
	if err := p.RequireRole(domain.RoleMember, domain.RoleCoordinator); err != nil {
		return nil, nil, err
	}
	var removed domain.Record
	c, err := s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		switch c.Status {
		case domain.StatusSubmitted, domain.StatusTriage, domain.StatusAssigned:
		default:
			return up, domain.Errorf(domain.CodeInvalidTransition, "the case is %s; records can only be removed before the review starts", c.Status)
		}
		records := []domain.Record{}
		found := false
		if c.Clinical != nil {
			for _, r := range c.Clinical.Records {
				if r.ID == recordID {
					found, removed = true, r
					continue
				}
				records = append(records, r)
			}
		}
		if !found {
			return up, domain.ErrNotFound("record")
		}
		up.Records = records
		up.Events = append(up.Events, domain.CaseEvent{Type: "RECORD_REMOVED", At: s.store.Now(), ActorRole: p.Role})
		return up, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return c, &removed, nil
}

// AssignSpecialist assigns (or reassigns, before review) a specialist. A
// specialist abroad needs the member's international-sharing consent and a
// policy whose benefit includes international experts.
func (s *Service) AssignSpecialist(ctx context.Context, p domain.Principal, caseID, specialistID string, expectedVersion *int) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleCoordinator); err != nil {
		return nil, err
	}
	sp, err := s.store.Specialist(ctx, p, specialistID)
	if err != nil {
		return nil, err
	}
	var previous string
	c, err := s.store.MutateCase(ctx, p, caseID, expectedVersion, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusAssigned); err != nil {
			return up, err
		}
		if c.SpecialistID == sp.ID {
			return up, domain.Errorf(domain.CodeInvalidTransition, "the case is already assigned to this specialist")
		}
		if !containsString(sp.Specialties, c.Specialty) {
			return up, bad("the specialist does not practise %s", c.Specialty)
		}
		if !sp.AcceptingCases {
			return up, domain.Errorf(domain.CodeNotEligible, "the specialist does not accept new cases")
		}
		cc, err := s.store.CaseContextFor(ctx, c)
		if err != nil {
			return up, err
		}
		away := abroad(sp, cc)
		up.SpecialistAbroad = &away
		if away {
			if !c.ConsentActive(domain.ConsentInternationalSharing) {
				return up, domain.Errorf(domain.CodeConsentRequired, "a specialist abroad needs the member's INTERNATIONAL_SHARING consent")
			}
			if !cc.PolicyInternational {
				return up, domain.Errorf(domain.CodeNotEligible, "the policy does not include international experts")
			}
		}
		previous = c.SpecialistID
		st := domain.StatusAssigned
		up.Status, up.SpecialistID, up.SpecialistOrgID = &st, &sp.ID, &sp.OrgID
		// A partner network sees the patient only under its pseudonym,
		// kept on the case so reading it costs nothing.
		alias := ""
		if sp.OrgKind == domain.OrgNetwork {
			if alias, err = s.store.PseudonymFor(ctx, sp.OrgID, c.PatientID); err != nil {
				return up, err
			}
		}
		up.PatientPseudonym = &alias
		up.Events = append(up.Events, statusEvent(c.Status, st, p.Role, s.store.Now()))
		return up, nil
	})
	if err != nil {
		return nil, err
	}
	// Load counts are advisory (matching ranks on them): best effort.
	_ = s.store.AdjustLoad(context.WithoutCancel(ctx), sp.ID, 1)
	_ = s.store.AdjustLoad(context.WithoutCancel(ctx), previous, -1)
	return c, nil
}

func abroad(sp *domain.Specialist, cc store.CaseContext) bool {
	return cc.PatientCountry != "" && !strings.EqualFold(sp.Country, cc.PatientCountry)
}

// StartReview is the assigned specialist's side taking the case up.
func (s *Service) StartReview(ctx context.Context, p domain.Principal, caseID string, expectedVersion *int) (*domain.Case, error) {
	if err := s.specialistSide(p, domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	return s.store.MutateCase(ctx, p, caseID, expectedVersion, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusInReview); err != nil {
			return up, err
		}
		st := domain.StatusInReview
		up.Status = &st
		up.Events = append(up.Events, statusEvent(c.Status, st, p.Role, s.store.Now()))
		return up, nil
	})
}

func (s *Service) specialistSide(p domain.Principal, scope domain.Scope) error {
	if err := p.Require(scope); err != nil {
		return err
	}
	return p.RequireRole(domain.RoleProvider, domain.RolePartner)
}

// SaveOpinionDraft creates or replaces the draft of the assigned specialist's
// side while the case is in review.
func (s *Service) SaveOpinionDraft(ctx context.Context, p domain.Principal, caseID string, content domain.OpinionContent) (*domain.Opinion, error) {
	if err := s.specialistSide(p, domain.ScopeOpinionsWrite); err != nil {
		return nil, err
	}
	if err := checkOpinion(&content); err != nil {
		return nil, err
	}
	c, err := s.store.Case(ctx, p, caseID)
	if err != nil {
		return nil, err
	}
	if c.Status != domain.StatusInReview {
		return nil, domain.Errorf(domain.CodeInvalidTransition, "opinions are drafted while the case is IN_REVIEW, not %s", c.Status)
	}
	return s.store.SaveOpinionDraft(ctx, p, c, content)
}

func checkOpinion(o *domain.OpinionContent) error {
	var err error
	if o.MemberSummary, err = cleanProse(o.MemberSummary, "memberSummary", 5000, true); err != nil {
		return err
	}
	if o.Report, err = cleanProse(o.Report, "report", 100000, true); err != nil {
		return err
	}
	if o.DiagnosisAssessment != domain.DiagnosisConfirmed && o.RevisedDiagnosis == nil {
		return bad("revisedDiagnosis is required when the diagnosis is %s", o.DiagnosisAssessment)
	}
	if o.RevisedDiagnosis != nil {
		o.RevisedDiagnosis.Code = strings.ToUpper(strings.TrimSpace(o.RevisedDiagnosis.Code))
		if !icd10.MatchString(o.RevisedDiagnosis.Code) {
			return bad("revisedDiagnosis.code must be an ICD-10 code")
		}
	}
	if len(o.TreatmentOptions) > 20 || len(o.ClinicalTrials) > 20 || len(o.Answers) > 20 || len(o.QuestionsForYourDoctor) > 20 {
		return bad("at most 20 treatment options, trials, answers and questions")
	}
	for i, t := range o.TreatmentOptions {
		if strings.TrimSpace(t.Name) == "" {
			return bad("treatmentOptions[%d].name is required", i)
		}
	}
	return nil
}

// DeliverOpinion freezes the draft, stamps deliveredAt and moves the case to
// OPINION_DELIVERED. A retry with the same idempotency key returns the first
// result; a retry after a partial failure completes the delivery.
func (s *Service) DeliverOpinion(ctx context.Context, p domain.Principal, caseID, idempotencyKey string) (*domain.Case, *domain.Opinion, error) {
	if err := s.specialistSide(p, domain.ScopeOpinionsWrite); err != nil {
		return nil, nil, err
	}
	if utf8.RuneCountInString(idempotencyKey) > 200 {
		return nil, nil, bad("idempotencyKey is longer than 200 characters")
	}
	deliver := func() (string, error) {
		_, err := s.deliver(ctx, p, caseID)
		return caseID, err
	}
	if idempotencyKey == "" {
		if _, err := deliver(); err != nil {
			return nil, nil, err
		}
	} else if _, err := s.store.Idempotent(ctx, p, "deliverOpinion", idempotencyKey, caseID, deliver); err != nil {
		return nil, nil, err
	}
	c, err := s.store.Case(ctx, p, caseID)
	if err != nil {
		return nil, nil, err
	}
	o, err := s.store.Opinion(ctx, p, store.OpinionIDForCase(caseID))
	if err != nil {
		return nil, nil, err
	}
	return c, o, nil
}

func (s *Service) deliver(ctx context.Context, p domain.Principal, caseID string) (*domain.Case, error) {
	c, err := s.store.Case(ctx, p, caseID)
	if err != nil {
		return nil, err
	}
	exists, delivered, err := s.store.OpinionState(ctx, p, c)
	if err != nil {
		return nil, err
	}
	if (c.Status == domain.StatusOpinionDelivered || c.Status == domain.StatusClosed) && exists && !delivered {
		// A previous delivery moved the case but did not freeze the opinion.
		_, err := s.store.FreezeOpinion(context.WithoutCancel(ctx), p, c, deref(c.DeliveredAt, s.store.Now()), s.signFor(ctx, p, c))
		return c, err
	}
	if !exists {
		return nil, domain.Errorf(domain.CodeInvalidTransition, "there is no draft opinion to deliver")
	}
	now := s.store.Now()
	c, err = s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusOpinionDelivered); err != nil {
			return up, err
		}
		st := domain.StatusOpinionDelivered
		up.Status, up.DeliveredAt = &st, &now
		up.Events = append(up.Events, statusEvent(c.Status, st, p.Role, now))
		return up, nil
	})
	if err != nil {
		return nil, err
	}
	// The case says delivered: the freeze runs to its end even if the
	// client has gone, so the opinion is not left a draft behind it.
	if _, err := s.store.FreezeOpinion(context.WithoutCancel(ctx), p, c, now, s.signFor(ctx, p, c)); err != nil {
		return nil, err
	}
	_ = s.store.AdjustLoad(context.WithoutCancel(ctx), c.SpecialistID, -1)
	return c, nil
}

func deref(t *time.Time, def time.Time) time.Time {
	if t == nil {
		return def
	}
	return *t
}

// RecordDecision closes a delivered case with the member's decision
// (deprecated in the schema for recordOutcome, which records more).
func (s *Service) RecordDecision(ctx context.Context, p domain.Principal, caseID string, d domain.Decision, note string) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleMember); err != nil {
		return nil, err
	}
	note, err := cleanProse(note, "note", 2000, false)
	if err != nil {
		return nil, err
	}
	return s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusClosed); err != nil {
			return up, err
		}
		st := domain.StatusClosed
		up.Status, up.Decision, up.DecisionNote = &st, &d, &note
		up.Events = append(up.Events, statusEvent(c.Status, st, p.Role, s.store.Now()))
		return up, nil
	})
}

// CancelCase cancels a case before delivery.
func (s *Service) CancelCase(ctx context.Context, p domain.Principal, caseID, reason string) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleMember, domain.RoleCoordinator); err != nil {
		return nil, err
	}
	reason, err := cleanProse(reason, "reason", 2000, true)
	if err != nil {
		return nil, err
	}
	var specialist string
	c, err := s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusCancelled); err != nil {
			return up, err
		}
		specialist = c.SpecialistID
		st := domain.StatusCancelled
		up.Status, up.CancelReason = &st, &reason
		up.Events = append(up.Events, statusEvent(c.Status, st, p.Role, s.store.Now()))
		return up, nil
	})
	if err != nil {
		return nil, err
	}
	_ = s.store.AdjustLoad(context.WithoutCancel(ctx), specialist, -1)
	return c, nil
}

// Match is one ranked candidate for a case.
type Match struct {
	Specialist *domain.Specialist
	Score      float64
	Reasons    []string
}

// SpecialistMatches ranks the specialists who could take a case: the
// specialty is required; preferred language, same country, accepting new
// cases and a light load raise the score. Specialists abroad appear only
// when they could be assigned.
func (s *Service) SpecialistMatches(ctx context.Context, p domain.Principal, caseID string, first int) ([]Match, error) {
	if err := p.Require(domain.ScopeSpecialistsRead); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if first < 1 || first > 100 {
		return nil, bad("first must be between 1 and 100")
	}
	c, err := s.store.Case(ctx, p, caseID)
	if err != nil {
		return nil, err
	}
	cc, err := s.store.CaseContextFor(ctx, c)
	if err != nil {
		return nil, err
	}
	cands, loads, err := s.store.CandidateSpecialists(ctx, c.Specialty)
	if err != nil {
		return nil, err
	}
	intlOK := c.ConsentActive(domain.ConsentInternationalSharing) && cc.PolicyInternational
	var out []Match
	for i, sp := range cands {
		if sp.ID == c.SpecialistID {
			continue
		}
		away := abroad(sp, cc)
		if away && !intlOK {
			continue
		}
		m := Match{Specialist: sp, Score: 50, Reasons: []string{"practises " + c.Specialty}}
		if c.PreferredLanguage != "" && containsString(sp.Languages, c.PreferredLanguage) {
			m.Score += 20
			m.Reasons = append(m.Reasons, "speaks "+c.PreferredLanguage)
		}
		if !away {
			m.Score += 10
			m.Reasons = append(m.Reasons, "practises in the patient's country")
		} else {
			m.Reasons = append(m.Reasons, "abroad ("+sp.Country+"), international sharing consented")
		}
		if sp.AcceptingCases {
			m.Score += 15
			m.Reasons = append(m.Reasons, "accepting new cases")
		} else {
			m.Score -= 40
			m.Reasons = append(m.Reasons, "not accepting new cases")
		}
		load := loads[i]
		m.Score += float64(max(0, 10-load))
		m.Reasons = append(m.Reasons, fmt.Sprintf("%d active cases", load))
		out = append(out, m)
	}
	sortMatches(out)
	if len(out) > first {
		out = out[:first]
	}
	return out, nil
}
