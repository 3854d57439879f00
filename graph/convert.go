package graph

import (
	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// Converters from GraphQL inputs to use-case inputs, one per crossing.

func toNewPolicy(in model.CreatePolicyInput) workflow.NewPolicy {
	np := workflow.NewPolicy{
		PolicyNumber: in.PolicyNumber, Product: in.Product, EffectiveFrom: in.EffectiveFrom,
		EffectiveTo: in.EffectiveTo,
	}
	if in.SecondOpinion != nil {
		np.Benefit = toBenefit(*in.SecondOpinion)
	}
	for _, x := range in.Insured {
		np.Insured = append(np.Insured, workflow.NewInsured{
			MemberID: x.MemberID, GivenName: x.GivenName, FamilyName: x.FamilyName, DateOfBirth: x.DateOfBirth,
			Sex: deref(x.Sex), Email: deref(x.Email), Phone: deref(x.Phone), Country: deref(x.Country),
			Language: deref(x.Language),
		})
	}
	return np
}

func toBenefit(b model.SecondOpinionBenefitInput) domain.Benefit {
	return domain.Benefit{Covered: b.Covered, CasesPerYear: b.CasesPerYear, International: b.International}
}

func toSpecialistInput(in model.UpsertSpecialistInput, rawID string) workflow.SpecialistInput {
	return workflow.SpecialistInput{
		ID: rawID, Name: in.Name, Credentials: deref(in.Credentials), Specialties: in.Specialties,
		SubSpecialties: in.SubSpecialties, Languages: in.Languages, Country: in.Country,
		Institution: deref(in.Institution), AcceptingCases: in.AcceptingCases, Email: in.Email,
		OrgID: deref(in.OrgID), ExpectedVersion: in.ExpectedVersion,
	}
}

func toRequest(in model.RequestSecondOpinionInput, policyID string) workflow.Request {
	r := workflow.Request{
		PolicyID: policyID, PatientMemberID: deref(in.PatientMemberID), Specialty: in.Specialty,
		ProposedTreatment: deref(in.ProposedTreatment), Questions: in.Questions,
		Urgency: deref(in.Urgency), PreferredLanguage: deref(in.PreferredLanguage),
		IdempotencyKey: deref(in.IdempotencyKey),
	}
	if in.Diagnosis != nil {
		r.Diagnosis = domain.Diagnosis{Code: in.Diagnosis.Code, Description: in.Diagnosis.Description}
	}
	return r
}

func toCaseFilter(f *model.CaseFilter) workflow.CaseFilter {
	if f == nil {
		return workflow.CaseFilter{}
	}
	return workflow.CaseFilter{Statuses: f.Status, Specialty: f.Specialty, Overdue: f.Overdue}
}

func toSpecialistFilter(f *model.SpecialistFilter) workflow.SpecialistFilter {
	if f == nil {
		return workflow.SpecialistFilter{}
	}
	return workflow.SpecialistFilter{Specialty: f.Specialty, Language: f.Language, Country: f.Country, AcceptingCases: f.AcceptingCases}
}

func toOpinionContent(in model.SaveOpinionDraftInput) domain.OpinionContent {
	c := domain.OpinionContent{
		DiagnosisAssessment: in.DiagnosisAssessment, TreatmentAssessment: in.TreatmentAssessment,
		ClinicalImpact: in.ClinicalImpact, QuestionsForYourDoctor: in.QuestionsForYourDoctor,
		MemberSummary: in.MemberSummary, Report: in.Report,
	}
	if in.RevisedDiagnosis != nil {
		c.RevisedDiagnosis = &domain.Diagnosis{Code: in.RevisedDiagnosis.Code, Description: in.RevisedDiagnosis.Description}
	}
	for _, t := range in.TreatmentOptions {
		c.TreatmentOptions = append(c.TreatmentOptions, domain.TreatmentOption{Name: t.Name, Description: deref(t.Description), Invasiveness: deref(t.Invasiveness)})
	}
	for _, t := range in.ClinicalTrials {
		c.ClinicalTrials = append(c.ClinicalTrials, domain.ClinicalTrial{RegistryID: t.RegistryID, Title: t.Title, URL: deref(t.URL)})
	}
	for _, a := range in.Answers {
		c.Answers = append(c.Answers, domain.Answer{Question: a.Question, Answer: a.Answer})
	}
	return c
}
