package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
)

// OpinionFilter narrows opinions.
type OpinionFilter struct {
	CaseID *string
}

func (f OpinionFilter) bson() bson.D {
	if f.CaseID != nil {
		return bson.D{{Key: "caseId", Value: *f.CaseID}}
	}
	return nil
}

// Opinion returns one opinion in p's scope.
func (s *Store) Opinion(ctx context.Context, p domain.Principal, id string) (*domain.Opinion, error) {
	sc := opinionScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("opinion")
	}
	d, err := findByID[opinionDoc](ctx, s, colOpinions, id, opinionProjection(p))
	if err != nil {
		return nil, translate(err, "opinion")
	}
	o := toOpinion(d)
	if !sc.allow(o) {
		return nil, domain.ErrNotFound("opinion")
	}
	if opinionNeedsCaseCheck(p) {
		if _, err := s.Case(ctx, p, o.CaseID); err != nil {
			return nil, domain.ErrNotFound("opinion")
		}
	}
	return o, nil
}

// OpinionIDForCase is the id of a case's opinion: one opinion per case, so
// the edge case → opinion is a read by _id.
func OpinionIDForCase(caseID string) string { return "op-" + caseID }

// OpinionsForCases returns the opinions of the given cases that p may see;
// the cases must already have been read under p's scope.
func (s *Store) OpinionsForCases(ctx context.Context, p domain.Principal, cases []*domain.Case) (map[string]*domain.Opinion, error) {
	sc := opinionScope(p)
	out := map[string]*domain.Opinion{}
	if sc.none || len(cases) == 0 {
		return out, nil
	}
	cs := caseScope(p)
	ids := make([]string, 0, len(cases))
	for _, c := range cases {
		if cs.allow(c) {
			ids = append(ids, OpinionIDForCase(c.ID))
		}
	}
	docs, err := findByIDs[opinionDoc](ctx, s, colOpinions, ids, opinionProjection(p))
	if err != nil {
		return nil, translate(err, "opinion")
	}
	for _, d := range docs {
		if o := toOpinion(d); sc.allow(o) {
			out[o.CaseID] = o
		}
	}
	return out, nil
}

// keepVisibleCases drops opinions whose case p may not see.
func (s *Store) keepVisibleCases(ctx context.Context, p domain.Principal, ops []*domain.Opinion) ([]*domain.Opinion, error) {
	if !opinionNeedsCaseCheck(p) || len(ops) == 0 {
		return ops, nil
	}
	ids := make([]string, len(ops))
	for i, o := range ops {
		ids[i] = o.CaseID
	}
	visible, err := s.caseAdminByIDs(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	out := ops[:0]
	for _, o := range ops {
		if _, ok := visible[o.CaseID]; ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// caseAdminByIDs reads only the fields the case scope needs.
func (s *Store) caseAdminByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Case, error) {
	sc := caseScope(p)
	out := map[string]*domain.Case{}
	if sc.none {
		return out, nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}})
	if err != nil {
		return nil, translate(err, "case")
	}
	for _, d := range docs {
		if c := toCase(d); sc.allow(c) {
			out[c.ID] = c
		}
	}
	return out, nil
}

// Opinions returns one page of opinions in p's scope.
func (s *Store) Opinions(ctx context.Context, p domain.Principal, f OpinionFilter, pg Page, view View) ([]*domain.Opinion, bool, error) {
	sc := opinionScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := listPage[opinionDoc](ctx, s, opinionListing, and(sc.filter, f.bson()), pg, false)
	if err != nil {
		return nil, false, translate(err, "opinions")
	}
	if view.Full {
		if docs, err = fullRows(ctx, s, colOpinions, docs, func(d *opinionDoc) string { return d.ID }, opinionProjection(p)); err != nil {
			return nil, false, translate(err, "opinions")
		}
	}
	ops := make([]*domain.Opinion, 0, len(docs))
	for _, d := range docs {
		if o := toOpinion(d); sc.allow(o) {
			ops = append(ops, o)
		}
	}
	ops, err = s.keepVisibleCases(ctx, p, ops)
	return ops, more, err
}

// CountOpinions counts the opinions in p's scope matching f.
func (s *Store) CountOpinions(ctx context.Context, p domain.Principal, f OpinionFilter) (int, error) {
	sc := opinionScope(p)
	if sc.none {
		return 0, nil
	}
	if !opinionNeedsCaseCheck(p) || p.Role != domain.RolePartner {
		n, err := listCount(ctx, s, opinionListing, and(sc.filter, f.bson()))
		return n, translate(err, "opinions")
	}
	// A partner's count depends on each case's consent: count in Go.
	docs, err := listAll[opinionDoc](ctx, s, opinionListing, and(sc.filter, f.bson()))
	if err != nil {
		return 0, translate(err, "opinions")
	}
	ops := make([]*domain.Opinion, 0, len(docs))
	for _, d := range docs {
		ops = append(ops, toOpinion(d))
	}
	ops, err = s.keepVisibleCases(ctx, p, ops)
	return len(ops), err
}

type treatmentOptionDoc struct {
	Name         sealed `bson:"name"`
	Description  sealed `bson:"description,omitempty"`
	Invasiveness string `bson:"invasiveness,omitempty"`
}

type clinicalTrialDoc struct {
	RegistryID sealed `bson:"registryId"`
	Title      sealed `bson:"title"`
	URL        sealed `bson:"url,omitempty"`
}

type answerDoc struct {
	Question sealed `bson:"question"`
	Answer   sealed `bson:"answer"`
}

type opinionContentDoc struct {
	DiagnosisAssessment    string               `bson:"diagnosisAssessment"`
	RevisedDiagnosis       *diagnosisDoc        `bson:"revisedDiagnosis,omitempty"`
	TreatmentAssessment    string               `bson:"treatmentAssessment"`
	ClinicalImpact         string               `bson:"clinicalImpact,omitempty"`
	TreatmentOptions       []treatmentOptionDoc `bson:"treatmentOptions,omitempty"`
	ClinicalTrials         []clinicalTrialDoc   `bson:"clinicalTrials,omitempty"`
	Answers                []answerDoc          `bson:"answers,omitempty"`
	QuestionsForYourDoctor []sealed             `bson:"questionsForYourDoctor,omitempty"`
	MemberSummary          sealed               `bson:"memberSummary"`
	Report                 sealed               `bson:"report"`
}

type opinionDoc struct {
	ID           string             `bson:"_id"`
	CaseID       string             `bson:"caseId"`
	SpecialistID string             `bson:"specialistId"`
	OrgID        string             `bson:"orgId"`
	PatientID    string             `bson:"patientId"`
	InsurerID    string             `bson:"insurerId"`
	Status       string             `bson:"status"`
	DeliveredAt  *time.Time         `bson:"deliveredAt,omitempty"`
	UpdatedAt    time.Time          `bson:"updatedAt"`
	Content      *opinionContentDoc `bson:"content,omitempty"`
	// Signature is the service's signature over the delivered content
	// (and the answered follow-ups); projected away with the content.
	Signature *signatureDoc `bson:"signature,omitempty"`
	Version   int           `bson:"version"`
}

func toOpinionContentDoc(c domain.OpinionContent) opinionContentDoc {
	cd := opinionContentDoc{
		DiagnosisAssessment: string(c.DiagnosisAssessment), TreatmentAssessment: string(c.TreatmentAssessment),
		QuestionsForYourDoctor: sealAll(c.QuestionsForYourDoctor), MemberSummary: seal(c.MemberSummary), Report: seal(c.Report),
	}
	if c.RevisedDiagnosis != nil {
		rd := toDiagnosisDoc(*c.RevisedDiagnosis)
		cd.RevisedDiagnosis = &rd
	}
	if c.ClinicalImpact != nil {
		cd.ClinicalImpact = string(*c.ClinicalImpact)
	}
	for _, t := range c.TreatmentOptions {
		cd.TreatmentOptions = append(cd.TreatmentOptions, treatmentOptionDoc{Name: seal(t.Name), Description: seal(t.Description), Invasiveness: string(t.Invasiveness)})
	}
	for _, t := range c.ClinicalTrials {
		cd.ClinicalTrials = append(cd.ClinicalTrials, clinicalTrialDoc{RegistryID: seal(t.RegistryID), Title: seal(t.Title), URL: seal(t.URL)})
	}
	for _, a := range c.Answers {
		cd.Answers = append(cd.Answers, answerDoc{Question: seal(a.Question), Answer: seal(a.Answer)})
	}
	return cd
}

func toOpinion(d *opinionDoc) *domain.Opinion {
	o := &domain.Opinion{
		ID: d.ID, CaseID: d.CaseID, SpecialistID: d.SpecialistID, OrgID: d.OrgID, PatientID: d.PatientID,
		Status: domain.OpinionStatus(d.Status), DeliveredAt: utcPtr(d.DeliveredAt),
		UpdatedAt: d.UpdatedAt.UTC(), Version: d.Version,
	}
	if c := d.Content; c != nil {
		oc := &domain.OpinionContent{
			DiagnosisAssessment:    domain.DiagnosisAssessment(c.DiagnosisAssessment),
			TreatmentAssessment:    domain.TreatmentAssessment(c.TreatmentAssessment),
			QuestionsForYourDoctor: nonNil(openAll(c.QuestionsForYourDoctor)),
			MemberSummary:          c.MemberSummary.String(),
			Report:                 c.Report.String(),
			TreatmentOptions:       []domain.TreatmentOption{},
			ClinicalTrials:         []domain.ClinicalTrial{},
			Answers:                []domain.Answer{},
		}
		if c.RevisedDiagnosis != nil {
			rd := c.RevisedDiagnosis.toDomain()
			oc.RevisedDiagnosis = &rd
		}
		if c.ClinicalImpact != "" {
			ci := domain.ClinicalImpact(c.ClinicalImpact)
			oc.ClinicalImpact = &ci
		}
		for _, t := range c.TreatmentOptions {
			oc.TreatmentOptions = append(oc.TreatmentOptions, domain.TreatmentOption{
				Name: t.Name.String(), Description: t.Description.String(), Invasiveness: domain.Invasiveness(t.Invasiveness),
			})
		}
		for _, t := range c.ClinicalTrials {
			oc.ClinicalTrials = append(oc.ClinicalTrials, domain.ClinicalTrial{RegistryID: t.RegistryID.String(), Title: t.Title.String(), URL: t.URL.String()})
		}
		for _, a := range c.Answers {
			oc.Answers = append(oc.Answers, domain.Answer{Question: a.Question.String(), Answer: a.Answer.String()})
		}
		o.Content = oc
		o.Sig = toSignature(d.Signature)
	}
	return o
}

// SaveOpinionDraft creates or replaces the draft opinion of case c, which the
// workflow read under p's scope and found in review. A delivered opinion is
// frozen: replacing it is INVALID_TRANSITION.
func (s *Store) SaveOpinionDraft(ctx context.Context, p domain.Principal, c *domain.Case, content domain.OpinionContent) (*domain.Opinion, error) {
	if !caseScope(p).allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	id := OpinionIDForCase(c.ID)
	cd := toOpinionContentDoc(content)
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "opinion")
		}
		cur, err := findByID[opinionDoc](ctx, s, colOpinions, id, bson.D{{Key: "content", Value: 0}})
		if errors.Is(err, mongo.ErrNoDocuments) {
			d := opinionDoc{
				ID: id, CaseID: c.ID, SpecialistID: c.SpecialistID, OrgID: c.SpecialistOrgID, PatientID: c.PatientID,
				InsurerID: c.InsurerID, Status: string(domain.OpinionDraft), UpdatedAt: s.Now(), Content: &cd, Version: 1,
			}
			cctx, cancel := s.op(ctx)
			_, err = s.c(colOpinions).InsertOne(cctx, d)
			cancel()
			if err == nil {
				if err := s.relist(ctx, opinionListing, id); err != nil {
					return nil, err
				}
				return s.Opinion(ctx, p, id)
			}
			if isDuplicate(err) {
				continue // created concurrently: update it instead
			}
			return nil, translate(err, "opinion")
		}
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if cur.Status == string(domain.OpinionDelivered) {
			return nil, domain.Errorf(domain.CodeInvalidTransition, "the opinion was delivered and is frozen")
		}
		ok, err := s.casUpdate(ctx, colOpinions, id, cur.Version, bindSet(colOpinions, id, bson.D{
			{Key: "specialistId", Value: c.SpecialistID}, {Key: "orgId", Value: c.SpecialistOrgID},
			{Key: "content", Value: cd}, {Key: "updatedAt", Value: s.Now()},
		}))
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if ok {
			if err := s.relist(ctx, opinionListing, id); err != nil {
				return nil, err
			}
			return s.Opinion(ctx, p, id)
		}
	}
	return nil, errBusy("opinion")
}

// opinionState reports whether case caseID has an opinion and whether it
// is delivered.
func (s *Store) opinionState(ctx context.Context, caseID string) (exists, delivered bool, err error) {
	d, err := findByID[opinionDoc](ctx, s, colOpinions, OpinionIDForCase(caseID), bson.D{{Key: "status", Value: 1}})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, false, nil
	}
	if err != nil {
		return false, false, translate(err, "opinion")
	}
	return true, d.Status == string(domain.OpinionDelivered), nil
}

// OpinionState tells the workflow whether a case has a draft or a delivered
// opinion; the case must already have been read under the caller's scope.
func (s *Store) OpinionState(ctx context.Context, p domain.Principal, c *domain.Case) (exists, delivered bool, err error) {
	if !caseScope(p).allow(c) {
		return false, false, domain.ErrNotFound("case")
	}
	return s.opinionState(ctx, c.ID)
}

// FreezeOpinion marks a case's draft delivered at the given time and, with
// sign, stores the service's signature over exactly the content frozen (in
// the same compare-and-set); freezing a delivered one is a no-op, so a
// retried delivery completes.
func (s *Store) FreezeOpinion(ctx context.Context, p domain.Principal, c *domain.Case, at time.Time, sign SignFunc) (*domain.Opinion, error) {
	if !caseScope(p).allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	id := OpinionIDForCase(c.ID)
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "opinion")
		}
		cur, err := findByID[opinionDoc](ctx, s, colOpinions, id, nil)
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if cur.Status == string(domain.OpinionDelivered) {
			// A retried delivery: its list document, if the first
			// attempt's copy failed, is written now.
			if err := s.relist(ctx, opinionListing, id); err != nil {
				return nil, err
			}
			return s.Opinion(ctx, p, id)
		}
		set := bson.D{
			{Key: "status", Value: string(domain.OpinionDelivered)}, {Key: "deliveredAt", Value: at}, {Key: "updatedAt", Value: at},
		}
		if sign != nil {
			o := toOpinion(cur)
			o.Status, o.DeliveredAt = domain.OpinionDelivered, &at
			sig, err := sign(o)
			if err != nil {
				return nil, err
			}
			set = append(set, bson.E{Key: "signature", Value: fromSignature(sig)})
		}
		ok, err := s.casUpdate(ctx, colOpinions, id, cur.Version, bindSet(colOpinions, id, set))
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if ok {
			if err := s.relist(ctx, opinionListing, id); err != nil {
				return nil, err
			}
			if cur.Content != nil {
				// Statistics complete a lost write from the opinion itself.
				_ = s.setAssessmentFact(context.WithoutCancel(ctx), c.ID, cur.Content.DiagnosisAssessment, at)
			}
			return s.Opinion(ctx, p, id)
		}
	}
	return nil, errBusy("opinion")
}
