package workflow

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/store"
)

// After the opinion (issue 16): follow-up questions, the signature over the
// delivered opinion, and the member's outcome.

// FollowUpID names follow-up n of a case; the case is part of the id so an
// answer finds its case by _id.
func FollowUpID(caseID string, n int) string { return caseID + ":" + strconv.Itoa(n) }

func splitFollowUpID(id string) (caseID string, n int, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 1 || n > domain.MaxFollowUps {
		return "", 0, false
	}
	return id[:i], n, true
}

// AskFollowUp records the member's question on their delivered (or closed)
// case: at most domain.MaxFollowUps per case, within domain.FollowUpWindow
// of delivery. It is an addendum: the delivered opinion does not change.
func (s *Service) AskFollowUp(ctx context.Context, p domain.Principal, caseID, question string) (*domain.Case, *domain.FollowUp, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, nil, err
	}
	if err := p.RequireRole(domain.RoleMember); err != nil {
		return nil, nil, err
	}
	question, err := cleanProse(question, "question", 2000, true)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.store.CaseForFollowUps(ctx, p, caseID); err != nil {
		return nil, nil, err
	}
	var asked domain.FollowUp
	c, err := s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		now := s.store.Now()
		if err := domain.CheckFollowUp(c, now); err != nil {
			return up, err
		}
		asked = domain.FollowUp{
			ID: FollowUpID(c.ID, len(c.FollowUps)+1), Question: question, AskedAt: now,
			DueAt: domain.AddWorkingDays(now, domain.FollowUpSLAWorkingDays),
		}
		up.FollowUps = append(append([]domain.FollowUp{}, c.FollowUps...), asked)
		up.Events = append(up.Events, domain.CaseEvent{Type: "FOLLOW_UP_ASKED", At: now, ActorRole: p.Role})
		return up, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return c, &asked, nil
}

// AnswerFollowUp records the answer of the opinion's specialist side (the
// provider or partner org of the delivered opinion) and signs the opinion
// again so the signature covers the answers. Answering an answered
// follow-up again with the same text completes a retry (and its signing);
// with another text it is INVALID_TRANSITION: answers are not edited.
func (s *Service) AnswerFollowUp(ctx context.Context, p domain.Principal, followUpID, answer string) (*domain.Case, *domain.FollowUp, error) {
	if err := s.specialistSide(p, domain.ScopeOpinionsWrite); err != nil {
		return nil, nil, err
	}
	answer, err := cleanProse(answer, "answer", 10000, true)
	if err != nil {
		return nil, nil, err
	}
	caseID, n, ok := splitFollowUpID(followUpID)
	if !ok {
		return nil, nil, domain.ErrNotFound("follow-up")
	}
	var answered domain.FollowUp
	_, err = s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if n > len(c.FollowUps) {
			return up, domain.ErrNotFound("follow-up")
		}
		fu := c.FollowUps[n-1]
		if fu.Answer != nil {
			if *fu.Answer != answer {
				return up, domain.Errorf(domain.CodeInvalidTransition, "the follow-up is answered; answers are not edited")
			}
			answered = fu
			return up, errAlreadyAnswered
		}
		now := s.store.Now()
		fu.Answer, fu.AnsweredAt = &answer, &now
		answered = fu
		fus := append([]domain.FollowUp{}, c.FollowUps...)
		fus[n-1] = fu
		up.FollowUps = fus
		up.Events = append(up.Events, domain.CaseEvent{Type: "FOLLOW_UP_ANSWERED", At: now, ActorRole: p.Role})
		return up, nil
	})
	if err != nil && err != errAlreadyAnswered {
		return nil, nil, err
	}
	c, err := s.store.Case(ctx, p, caseID)
	if err != nil {
		return nil, nil, err
	}
	if err := s.store.ResignOpinion(ctx, p, c, s.signFor(ctx, p, c)); err != nil {
		return nil, nil, err
	}
	return c, &answered, nil
}

var errAlreadyAnswered = domain.Errorf(domain.CodeInvalidTransition, "already answered")

// FollowUps returns the follow-ups of an opinion's case for a caller who
// may read the opinion's content.
func (s *Service) FollowUps(ctx context.Context, p domain.Principal, caseID string) ([]domain.FollowUp, error) {
	if !domain.CanRead(p, domain.GroupOpinionContent) {
		return nil, domain.ErrFieldForbidden
	}
	c, err := s.store.CaseForFollowUps(ctx, p, caseID)
	if err != nil {
		return nil, err
	}
	return c.FollowUps, nil
}

// OutcomeInput is what the member did after the opinion.
type OutcomeInput struct {
	Decision         domain.Decision
	TreatmentChanged *bool
	Satisfaction     *int
	Note             string
}

// RecordOutcome closes a delivered case with the member's outcome, as
// recordDecision does, and keeps the figures statistics count.
func (s *Service) RecordOutcome(ctx context.Context, p domain.Principal, caseID string, in OutcomeInput) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleMember); err != nil {
		return nil, err
	}
	note, err := cleanProse(in.Note, "note", 2000, false)
	if err != nil {
		return nil, err
	}
	o := domain.Outcome{Decision: in.Decision, TreatmentChanged: in.TreatmentChanged, Satisfaction: in.Satisfaction, Note: note}
	if err := domain.CheckOutcome(o); err != nil {
		return nil, err
	}
	return s.store.MutateCase(ctx, p, caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		var up store.CaseUpdate
		if err := domain.Move(c.Status, domain.StatusClosed); err != nil {
			return up, err
		}
		now := s.store.Now()
		o.RecordedAt = now
		st := domain.StatusClosed
		up.Status, up.Decision, up.DecisionNote, up.Outcome = &st, &o.Decision, &note, &o
		up.Events = append(up.Events,
			domain.CaseEvent{Type: "OUTCOME_RECORDED", At: now, ActorRole: p.Role},
			statusEvent(c.Status, st, p.Role, now))
		return up, nil
	})
}

// signedOpinion is the document the service signs: the opinion's content
// with its case reference, specialist, delivery time and the answered
// follow-ups. Its RFC 8785 canonical JSON is the payload of the detached
// JWS, and is served as Opinion.signature.payload.
type signedOpinion struct {
	Type          string           `json:"type"`
	Opinion       string           `json:"opinion"`
	CaseReference string           `json:"caseReference"`
	Specialist    signedSpecialist `json:"specialist"`
	DeliveredAt   string           `json:"deliveredAt"`
	Content       signedContent    `json:"content"`
	FollowUps     []signedFollowUp `json:"followUps"`
}

type signedSpecialist struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Credentials string `json:"credentials"`
	Institution string `json:"institution"`
	Country     string `json:"country"`
}

type signedContent struct {
	DiagnosisAssessment    string              `json:"diagnosisAssessment"`
	RevisedDiagnosis       *domain.Diagnosis   `json:"revisedDiagnosis"`
	TreatmentAssessment    string              `json:"treatmentAssessment"`
	ClinicalImpact         string              `json:"clinicalImpact"`
	TreatmentOptions       []map[string]string `json:"treatmentOptions"`
	ClinicalTrials         []map[string]string `json:"clinicalTrials"`
	Answers                []map[string]string `json:"answers"`
	QuestionsForYourDoctor []string            `json:"questionsForYourDoctor"`
	MemberSummary          string              `json:"memberSummary"`
	Report                 string              `json:"report"`
}

type signedFollowUp struct {
	Question   string `json:"question"`
	AskedAt    string `json:"askedAt"`
	Answer     string `json:"answer"`
	AnsweredAt string `json:"answeredAt"`
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// SignedPayload returns the canonical JSON signed for opinion o of case c.
func SignedPayload(o *domain.Opinion, c *domain.Case, sp *domain.Specialist, followUps []domain.FollowUp) ([]byte, error) {
	if o.Content == nil || o.DeliveredAt == nil {
		return nil, fmt.Errorf("workflow: sign: the opinion's content and delivery time are needed")
	}
	oc := o.Content
	doc := signedOpinion{
		Type: "second-opinion", Opinion: o.ID, CaseReference: c.Reference, DeliveredAt: stamp(*o.DeliveredAt),
		Content: signedContent{
			DiagnosisAssessment: string(oc.DiagnosisAssessment), RevisedDiagnosis: oc.RevisedDiagnosis,
			TreatmentAssessment: string(oc.TreatmentAssessment), QuestionsForYourDoctor: nonNilStrings(oc.QuestionsForYourDoctor),
			MemberSummary: oc.MemberSummary, Report: oc.Report,
			TreatmentOptions: []map[string]string{}, ClinicalTrials: []map[string]string{}, Answers: []map[string]string{},
		},
		FollowUps: []signedFollowUp{},
	}
	if sp != nil {
		doc.Specialist = signedSpecialist{ID: sp.ID, Name: sp.Name, Credentials: sp.Credentials, Institution: sp.Institution, Country: sp.Country}
	}
	if oc.ClinicalImpact != nil {
		doc.Content.ClinicalImpact = string(*oc.ClinicalImpact)
	}
	for _, t := range oc.TreatmentOptions {
		doc.Content.TreatmentOptions = append(doc.Content.TreatmentOptions, map[string]string{"name": t.Name, "description": t.Description, "invasiveness": string(t.Invasiveness)})
	}
	for _, t := range oc.ClinicalTrials {
		doc.Content.ClinicalTrials = append(doc.Content.ClinicalTrials, map[string]string{"registryId": t.RegistryID, "title": t.Title, "url": t.URL})
	}
	for _, a := range oc.Answers {
		doc.Content.Answers = append(doc.Content.Answers, map[string]string{"question": a.Question, "answer": a.Answer})
	}
	for _, f := range followUps {
		if f.Answer == nil || f.AnsweredAt == nil {
			continue
		}
		doc.FollowUps = append(doc.FollowUps, signedFollowUp{Question: f.Question, AskedAt: stamp(f.AskedAt), Answer: *f.Answer, AnsweredAt: stamp(*f.AnsweredAt)})
	}
	return signing.Canonical(doc)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// signFor returns the function that signs case c's delivered opinion as it
// stands, with the follow-up answers stored at the time it runs.
func (s *Service) signFor(ctx context.Context, p domain.Principal, c *domain.Case) store.SignFunc {
	return func(o *domain.Opinion) (*domain.Signature, error) {
		sp, err := s.store.Specialist(ctx, p, o.SpecialistID)
		if err != nil {
			return nil, err
		}
		withFU, err := s.store.CaseForFollowUps(ctx, p, c.ID)
		if err != nil {
			return nil, err
		}
		payload, err := SignedPayload(o, c, sp, withFU.FollowUps)
		if err != nil {
			return nil, err
		}
		jws, kid, err := s.signer.Sign(payload)
		if err != nil {
			return nil, err
		}
		return &domain.Signature{JWS: jws, KeyID: kid, SignedAt: s.store.Now(), Payload: string(payload)}, nil
	}
}

// SignDemo signs the delivered opinions of a demo data set before it is
// written (the demo bypasses delivery, which signs): each over the same
// payload delivery and the follow-up answers would have left, signed at
// the latest of its delivery and its answers.
func (s *Service) SignDemo(d *store.Demo) error {
	cases := make(map[string]*domain.Case, len(d.Cases))
	for _, c := range d.Cases {
		cases[c.ID] = c
	}
	specialists := make(map[string]*domain.Specialist, len(d.Specialists))
	for _, sp := range d.Specialists {
		specialists[sp.ID] = sp
	}
	for _, o := range d.Opinions {
		c := cases[o.CaseID]
		if o.Status != domain.OpinionDelivered || o.Content == nil || o.DeliveredAt == nil || c == nil {
			continue
		}
		if o.ID == "" {
			o.ID = store.OpinionIDForCase(o.CaseID)
		}
		payload, err := SignedPayload(o, c, specialists[o.SpecialistID], c.FollowUps)
		if err != nil {
			return err
		}
		jws, kid, err := s.signer.Sign(payload)
		if err != nil {
			return err
		}
		at := *o.DeliveredAt
		for _, f := range c.FollowUps {
			if f.AnsweredAt != nil && f.AnsweredAt.After(at) {
				at = *f.AnsweredAt
			}
		}
		o.Sig = &domain.Signature{JWS: jws, KeyID: kid, SignedAt: at, Payload: string(payload)}
	}
	return nil
}
