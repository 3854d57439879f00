package store

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// Demo is a data set written as is, for `make run` and benchmarks. It
// bypasses the workflow on purpose: it places cases in every status.
type Demo struct {
	Orgs        []domain.Organization
	Patients    []DemoPatient
	Policies    []*domain.Policy
	Specialists []*domain.Specialist
	Cases       []*domain.Case
	Opinions    []*domain.Opinion
}

// DemoPatient is an insured member of one insurer.
type DemoPatient struct {
	NewInsured
	InsurerID string
}

// IsEmpty reports whether the database holds no policies yet.
func (s *Store) IsEmpty(ctx context.Context) (bool, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var d bson.M
	err := s.c(colPolicies).FindOne(ctx, bson.D{}).Decode(&d)
	if err != nil {
		if translate(err, "x") != nil && domain.ErrorCode(translate(err, "x")) == domain.CodeNotFound {
			return true, nil
		}
		return false, translate(err, "policies")
	}
	return false, nil
}

// InsertDemo writes a demo data set.
func (s *Store) InsertDemo(ctx context.Context, d Demo) error {
	for _, o := range d.Orgs {
		if err := s.EnsureOrganization(ctx, o); err != nil {
			return err
		}
	}
	var docs []any
	for _, p := range d.Patients {
		docs = append(docs, newPatientDoc(p.InsurerID, p.NewInsured))
	}
	if err := s.insertMany(ctx, colPatients, docs); err != nil {
		return err
	}
	docs = nil
	now := s.Now()
	for _, p := range d.Policies {
		pd := policyDoc{
			ID: p.ID, PolicyNumber: p.PolicyNumber, Product: string(p.Product), Status: string(p.Status),
			EffectiveFrom: p.EffectiveFrom, EffectiveTo: p.EffectiveTo, InsurerID: p.InsurerID,
			InsuredIDs: p.InsuredIDs, Version: 1, CreatedAt: now, UpdatedAt: now,
			Benefit: benefitDoc{Covered: p.SecondOpinion.Covered, CasesPerYear: p.SecondOpinion.CasesPerYear, International: p.SecondOpinion.International},
		}
		if p.SecondOpinion.CasesUsed > 0 {
			pd.Usage = usageDoc{YearStart: p.PolicyYearStart(now), Used: p.SecondOpinion.CasesUsed}
		}
		docs = append(docs, pd)
	}
	if err := s.insertMany(ctx, colPolicies, docs); err != nil {
		return err
	}
	docs = nil
	for _, sp := range d.Specialists {
		sd := specialistDoc{
			ID: sp.ID, Name: sp.Name, Credentials: sp.Credentials, Specialties: sp.Specialties,
			SubSpecialties: nonNil(sp.SubSpecialties), Languages: sp.Languages, Country: sp.Country,
			Institution: sp.Institution, OrgID: sp.OrgID, OrgKind: string(sp.OrgKind),
			AcceptingCases: sp.AcceptingCases, Version: 1, UpdatedAt: now,
		}
		if sp.Internal != nil {
			sd.Internal = specialistInternalDoc{ActiveCases: sp.Internal.ActiveCases, Email: sp.Internal.Email}
		}
		docs = append(docs, sd)
	}
	if err := s.insertMany(ctx, colSpecialists, docs); err != nil {
		return err
	}
	docs = nil
	orgKind := map[string]domain.OrgKind{}
	for _, sp := range d.Specialists {
		orgKind[sp.OrgID] = sp.OrgKind
	}
	for _, c := range d.Cases {
		cd := fromCase(c)
		if c.SpecialistOrgID != "" && orgKind[c.SpecialistOrgID] == domain.OrgNetwork {
			ps, err := s.PseudonymFor(ctx, c.SpecialistOrgID, c.PatientID)
			if err != nil {
				return err
			}
			cd.PatientPseudonym = ps
		}
		docs = append(docs, cd)
	}
	if err := s.insertMany(ctx, colCases, docs); err != nil {
		return err
	}
	// Their outcome facts, as the workflow's writes would have left them.
	assessment := map[string]string{}
	for _, o := range d.Opinions {
		if o.Status == domain.OpinionDelivered && o.Content != nil {
			assessment[o.CaseID] = string(o.Content.DiagnosisAssessment)
		}
	}
	caseDocs := make([]*caseDoc, 0, len(docs))
	for _, x := range docs {
		cd := x.(caseDoc)
		caseDocs = append(caseDocs, &cd)
	}
	if err := s.mergeFacts(ctx, factsDocs(caseDocs, assessment)); err != nil {
		return err
	}
	docs = nil
	for _, o := range d.Opinions {
		docs = append(docs, fromOpinion(o, d.Cases))
	}
	return s.insertMany(ctx, colOpinions, docs)
}

func (s *Store) insertMany(ctx context.Context, coll string, docs []any) error {
	for rest := docs; len(rest) > 0; {
		n := min(len(rest), 500)
		cctx, cancel := s.op(ctx)
		_, err := s.c(coll).InsertMany(cctx, rest[:n])
		cancel()
		if err != nil {
			return translate(err, coll)
		}
		rest = rest[n:]
	}
	return s.insertListed(ctx, coll, docs)
}

// insertListed inserts the list documents of new documents of coll (when
// coll has a list collection), after the documents themselves: a start
// that finds a document without its list document writes it.
func (s *Store) insertListed(ctx context.Context, coll string, docs []any) error {
	for _, l := range listings {
		if l.coll != coll {
			continue
		}
		listed := make([]any, 0, len(docs))
		for _, d := range docs {
			ld, err := l.ofValue(d)
			if err != nil {
				return err
			}
			listed = append(listed, ld)
		}
		if s.packed() {
			if err := s.packAdd(ctx, l, listed); err != nil {
				return translate(err, l.list)
			}
			continue
		}
		for len(listed) > 0 {
			n := min(len(listed), 500)
			cctx, cancel := s.op(ctx)
			_, err := s.c(l.list).InsertMany(cctx, listed[:n])
			cancel()
			if err != nil {
				return translate(err, l.list)
			}
			listed = listed[n:]
		}
	}
	return nil
}

func fromCase(c *domain.Case) caseDoc {
	d := caseDoc{
		ID: c.ID, Reference: c.Reference, Status: string(c.Status), PolicyID: c.PolicyID, PatientID: c.PatientID,
		InsurerID: c.InsurerID, Specialty: c.Specialty, Urgency: string(c.Urgency),
		PreferredLanguage: c.PreferredLanguage, IntlConsent: c.ConsentActive(domain.ConsentInternationalSharing),
		SpecialistID: c.SpecialistID, SpecialistOrgID: c.SpecialistOrgID, SpecialistAbroad: c.SpecialistAbroad, DueAt: c.DueAt,
		SubmittedAt: c.SubmittedAt, UpdatedAt: c.UpdatedAt, DeliveredAt: c.DeliveredAt, Version: c.Version,
		Consents: []consentDoc{}, Events: []eventDoc{}, RecordsCompleteAt: c.RecordsCompleteAt,
	}
	if len(c.FollowUps) > 0 {
		d.FollowUps = fromFollowUps(c.FollowUps)
	}
	if c.Outcome != nil {
		o := fromOutcome(*c.Outcome)
		d.Outcome = &o
	}
	if c.Decision != nil {
		d.Decision = string(*c.Decision)
	}
	for _, x := range c.Consents {
		d.Consents = append(d.Consents, consentDoc{Kind: string(x.Kind), Active: x.Active, GrantedAt: x.GrantedAt, RevokedAt: x.RevokedAt})
	}
	for _, e := range c.Events {
		ed := eventDoc{Type: e.Type, At: e.At, ActorRole: string(e.ActorRole)}
		if e.FromStatus != nil {
			ed.FromStatus = string(*e.FromStatus)
		}
		if e.ToStatus != nil {
			ed.ToStatus = string(*e.ToStatus)
		}
		d.Events = append(d.Events, ed)
	}
	if cl := c.Clinical; cl != nil {
		d.Clinical = &clinicalDoc{
			Diagnosis:         toDiagnosisDoc(cl.Diagnosis),
			ProposedTreatment: seal(cl.ProposedTreatment), Questions: sealAll(cl.Questions), Records: []recordDoc{},
		}
		for _, r := range cl.Records {
			d.Clinical.Records = append(d.Clinical.Records, recordDoc{ID: r.ID, Title: seal(r.Title), Kind: string(r.Kind), RecordedOn: r.RecordedOn, AddedAt: c.SubmittedAt})
		}
	}
	return d
}

func fromOpinion(o *domain.Opinion, cases []*domain.Case) opinionDoc {
	d := opinionDoc{
		ID: OpinionIDForCase(o.CaseID), CaseID: o.CaseID, SpecialistID: o.SpecialistID, OrgID: o.OrgID,
		Status: string(o.Status), DeliveredAt: o.DeliveredAt, UpdatedAt: o.UpdatedAt, Version: 1,
	}
	for _, c := range cases {
		if c.ID == o.CaseID {
			d.PatientID, d.InsurerID = c.PatientID, c.InsurerID
		}
	}
	if o.Content != nil {
		cd := toOpinionContentDoc(*o.Content)
		d.Content = &cd
	}
	d.Signature = fromSignature(o.Sig)
	return d
}
