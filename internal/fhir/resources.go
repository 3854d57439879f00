package fhir

import (
	"context"
	"strconv"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// Systems and codes of our own; public terminologies where one fits.
const (
	sysOurs         = "https://secondopinion.example/fhir"
	sysCaseRef      = sysOurs + "/sid/case-reference"
	sysPolicyNumber = sysOurs + "/sid/policy-number"
	sysPolicyID     = sysOurs + "/sid/policy-id"
	sysMemberID     = sysOurs + "/sid/member-id"
	sysBundleID     = sysOurs + "/sid/referral-bundle"
	sysCaseStatus   = sysOurs + "/CodeSystem/case-status"
	sysCategory     = sysOurs + "/CodeSystem/request-category"
	sysSpecialty    = sysOurs + "/CodeSystem/specialty"
	sysRecordKind   = sysOurs + "/CodeSystem/record-kind"
	sysConsentKind  = sysOurs + "/CodeSystem/consent-kind"
	sysSection      = sysOurs + "/CodeSystem/opinion-section"
	extAgeBand      = sysOurs + "/StructureDefinition/age-band"
	extBenefit      = sysOurs + "/StructureDefinition/second-opinion-benefit"
	sysICD10        = "http://hl7.org/fhir/sid/icd-10"
	sysLOINC        = "http://loinc.org"
	sysLanguage     = "urn:ietf:bcp:47"
	sysCountry      = "urn:iso:std:iso:3166"
)

func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
func fhirDate(t time.Time) string { return t.UTC().Format("2006-01-02") }

func ref(typ, raw string) fm.Reference { return fm.Reference{Reference: ptr(typ + "/" + ID(raw))} }

func text(s string) fm.CodeableConcept { return fm.CodeableConcept{Text: ptr(s)} }

func coded(system, code, display string) fm.CodeableConcept {
	c := fm.Coding{System: ptr(system), Code: ptr(code)}
	if display != "" {
		c.Display = ptr(display)
	}
	return fm.CodeableConcept{Coding: []fm.Coding{c}, Text: c.Display}
}

func meta(updated time.Time) *fm.Meta {
	if updated.IsZero() {
		return nil
	}
	return &fm.Meta{LastUpdated: ptr(fhirTime(updated))}
}

// ---- audit, as graph.FieldGuard records it
//
// Each entry names the object read as GraphQL's does (Patient, Case,
// Opinion and its id), and whose data it is (the member key, never a
// partner's pseudonym), so the member's access log ("who saw my data")
// shows a read through FHIR exactly as one through GraphQL.

// notePatient records the read of a patient's demographics and, when the
// resource carries it, identity; a partner's missing identity is a denial.
// caseID is the case the patient was reached through (none from a policy),
// as the field guard records it.
func notePatient(ctx context.Context, pt *domain.Patient, caseID string, full bool) {
	audit.Record(ctx, audit.Entry{ResourceType: "Patient", ResourceID: pt.ID, Group: domain.GroupPatientDemographic, Outcome: audit.OutcomeAllowed, PatientID: pt.MemberKey, CaseID: caseID})
	if !full {
		return
	}
	out := audit.OutcomeAllowed
	if pt.Identity == nil {
		out = audit.OutcomeDenied
	}
	audit.Record(ctx, audit.Entry{ResourceType: "Patient", ResourceID: pt.ID, Group: domain.GroupPatientIdentity, Outcome: out, PatientID: pt.MemberKey, CaseID: caseID})
}

// noteClinical records the read (or the denial) of a case's clinical part.
func noteClinical(ctx context.Context, c *domain.Case) {
	out := audit.OutcomeAllowed
	if c.Clinical == nil {
		out = audit.OutcomeDenied
	}
	audit.Record(ctx, audit.Entry{ResourceType: "Case", ResourceID: c.ID, Group: domain.GroupCaseClinical, Outcome: out, PatientID: c.PatientID})
}

// noteOpinion records the read (or the denial) of an opinion's group g.
func noteOpinion(ctx context.Context, o *domain.Opinion, g domain.Group, outcome string) {
	audit.Record(ctx, audit.Entry{ResourceType: "Opinion", ResourceID: o.ID, Group: g, Outcome: outcome, CaseID: o.CaseID, PatientID: o.PatientID})
}

// ---- ServiceRequest and Task: a case and its workflow state

func requestStatus(s domain.CaseStatus) fm.RequestStatus {
	switch s {
	case domain.StatusOpinionDelivered, domain.StatusClosed:
		return fm.RequestStatusCompleted
	case domain.StatusCancelled:
		return fm.RequestStatusRevoked
	}
	return fm.RequestStatusActive
}

// requestStatuses maps a ServiceRequest status code to our statuses.
var requestStatuses = map[string][]domain.CaseStatus{
	"active":    {domain.StatusSubmitted, domain.StatusTriage, domain.StatusAssigned, domain.StatusInReview},
	"completed": {domain.StatusOpinionDelivered, domain.StatusClosed},
	"revoked":   {domain.StatusCancelled},
}

func taskStatus(s domain.CaseStatus) fm.TaskStatus {
	switch s {
	case domain.StatusSubmitted:
		return fm.TaskStatusRequested
	case domain.StatusTriage:
		return fm.TaskStatusReceived
	case domain.StatusAssigned:
		return fm.TaskStatusAccepted
	case domain.StatusInReview:
		return fm.TaskStatusInProgress
	case domain.StatusCancelled:
		return fm.TaskStatusCancelled
	}
	return fm.TaskStatusCompleted
}

// taskStatuses maps a Task status code to our statuses.
var taskStatuses = map[string][]domain.CaseStatus{
	"requested":   {domain.StatusSubmitted},
	"received":    {domain.StatusTriage},
	"accepted":    {domain.StatusAssigned},
	"in-progress": {domain.StatusInReview},
	"completed":   {domain.StatusOpinionDelivered, domain.StatusClosed},
	"cancelled":   {domain.StatusCancelled},
}

// patientRef is the case's subject as the caller may name it; nil when
// the store gave the caller no patient for the case.
func patientRef(pt *domain.Patient) fm.Reference {
	if pt == nil {
		return fm.Reference{Display: ptr("patient not visible")}
	}
	return ref("Patient", pt.ID)
}

func serviceRequest(ctx context.Context, p domain.Principal, c *domain.Case, pt *domain.Patient) fm.ServiceRequest {
	priority := fm.RequestPriorityRoutine
	if c.Urgency == domain.UrgencyUrgent {
		priority = fm.RequestPriorityUrgent
	}
	sr := fm.ServiceRequest{
		Id:         ptr(ID(c.ID)),
		Meta:       meta(c.UpdatedAt),
		Identifier: []fm.Identifier{{System: ptr(sysCaseRef), Value: ptr(c.Reference)}},
		Status:     requestStatus(c.Status),
		Intent:     fm.RequestIntentOrder,
		Category:   []fm.CodeableConcept{coded(sysCategory, "second-opinion", "second opinion")},
		Priority:   &priority,
		Code:       ptr(coded(sysSpecialty, c.Specialty, c.Specialty)),
		Subject:    patientRef(pt),
		AuthoredOn: ptr(fhirTime(c.SubmittedAt)),
		// The SLA: the opinion is due by then.
		OccurrenceDateTime: ptr(fhirTime(c.DueAt)),
	}
	if pt != nil {
		notePatient(ctx, pt, c.ID, false)
	}
	if domain.CanRead(p, domain.GroupPolicy) {
		sr.Insurance = []fm.Reference{ref("Coverage", c.PolicyID)}
	}
	if c.SpecialistID != "" {
		sr.Performer = []fm.Reference{ref("Practitioner", c.SpecialistID)}
	}
	// reasonCode, note, orderDetail and supportingInfo are the case's
	// clinical fields: read, or denied (an insurer, a reviewer before
	// RECORDS_RELEASE), as GraphQL records a query of Case.diagnosis.
	noteClinical(ctx, c)
	if c.Clinical != nil {
		d := c.Clinical.Diagnosis
		sr.ReasonCode = []fm.CodeableConcept{coded(sysICD10, d.Code, d.Description)}
		sr.ReasonReference = []fm.Reference{ref("Condition", c.ID)}
		for _, q := range c.Clinical.Questions {
			sr.Note = append(sr.Note, fm.Annotation{Text: q})
		}
		for _, rec := range c.Clinical.Records {
			sr.SupportingInfo = append(sr.SupportingInfo, ref("DocumentReference", c.ID+"."+rec.ID))
		}
		if c.Clinical.ProposedTreatment != "" {
			sr.OrderDetail = []fm.CodeableConcept{text("proposed treatment: " + c.Clinical.ProposedTreatment)}
		}
	}
	if c.PreferredLanguage != "" {
		sr.Language = ptr(c.PreferredLanguage)
	}
	return sr
}

func task(c *domain.Case, pt *domain.Patient) fm.Task {
	t := fm.Task{
		Id:             ptr(ID(c.ID)),
		Meta:           meta(c.UpdatedAt),
		Identifier:     []fm.Identifier{{System: ptr(sysCaseRef), Value: ptr(c.Reference)}},
		Status:         taskStatus(c.Status),
		BusinessStatus: ptr(coded(sysCaseStatus, string(c.Status), string(c.Status))),
		Intent:         "order",
		Code:           ptr(coded("http://hl7.org/fhir/CodeSystem/task-code", "fulfill", "Fulfill the focal request")),
		Focus:          ptr(ref("ServiceRequest", c.ID)),
		AuthoredOn:     ptr(fhirTime(c.SubmittedAt)),
		LastModified:   ptr(fhirTime(c.UpdatedAt)),
		Restriction:    &fm.TaskRestriction{Period: &fm.Period{End: ptr(fhirTime(c.DueAt))}},
	}
	if pt != nil {
		t.For = ptr(ref("Patient", pt.ID))
	}
	if c.SpecialistID != "" {
		t.Owner = ptr(ref("Practitioner", c.SpecialistID))
	}
	return t
}

// ---- Condition, Consent, DocumentReference: parts of a case

func condition(c *domain.Case, pt *domain.Patient) fm.Condition {
	d := c.Clinical.Diagnosis
	return fm.Condition{
		Id:                 ptr(ID(c.ID)),
		Meta:               meta(c.UpdatedAt),
		VerificationStatus: ptr(coded("http://terminology.hl7.org/CodeSystem/condition-ver-status", "provisional", "Provisional")),
		Category:           []fm.CodeableConcept{coded("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis", "Encounter Diagnosis")},
		Code:               ptr(coded(sysICD10, d.Code, d.Description)),
		Subject:            patientRef(pt),
		RecordedDate:       ptr(fhirTime(c.SubmittedAt)),
	}
}

func consentSlug(k domain.ConsentKind) string {
	return strings.ToLower(strings.ReplaceAll(string(k), "_", "-"))
}

func consentKind(slug string) (domain.ConsentKind, bool) {
	for _, k := range []domain.ConsentKind{domain.ConsentRecordsRelease, domain.ConsentInternationalSharing} {
		if consentSlug(k) == slug {
			return k, true
		}
	}
	return "", false
}

func consent(c *domain.Case, x domain.Consent, pt *domain.Patient) fm.Consent {
	status := fm.ConsentStateInactive
	if x.Active {
		status = fm.ConsentStateActive
	}
	out := fm.Consent{
		Id:         ptr(ID(c.ID + "." + consentSlug(x.Kind))),
		Meta:       meta(c.UpdatedAt),
		Status:     status,
		Scope:      coded("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent"),
		Category:   []fm.CodeableConcept{coded(sysLOINC, "59284-0", "Patient Consent"), coded(sysConsentKind, string(x.Kind), string(x.Kind))},
		PolicyRule: ptr(coded("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in")),
		Provision: &fm.ConsentProvision{
			Data: []fm.ConsentProvisionData{{Meaning: fm.ConsentDataMeaningRelated, Reference: ref("ServiceRequest", c.ID)}},
		},
	}
	if pt != nil {
		out.Patient = ptr(ref("Patient", pt.ID))
	}
	if x.GrantedAt != nil {
		out.DateTime = ptr(fhirTime(*x.GrantedAt))
		per := &fm.Period{Start: ptr(fhirTime(*x.GrantedAt))}
		if x.RevokedAt != nil && !x.Active {
			per.End = ptr(fhirTime(*x.RevokedAt))
		}
		out.Provision.Period = per
	}
	return out
}

// documentReference is a record of the case; url is its document's signed
// download link when the caller may download it (else empty).
func documentReference(c *domain.Case, rec domain.Record, pt *domain.Patient, url string) fm.DocumentReference {
	d := fm.DocumentReference{
		Id:          ptr(ID(c.ID + "." + rec.ID)),
		Meta:        meta(c.UpdatedAt),
		Status:      fm.DocumentReferenceStatusCurrent,
		Type:        ptr(coded(sysRecordKind, string(rec.Kind), string(rec.Kind))),
		Description: ptr(rec.Title),
		Content:     []fm.DocumentReferenceContent{{Attachment: attachment(rec, url)}},
		Context:     &fm.DocumentReferenceContext{Related: []fm.Reference{ref("ServiceRequest", c.ID)}},
	}
	if pt != nil {
		d.Subject = ptr(ref("Patient", pt.ID))
	}
	if rec.RecordedOn != nil {
		d.Date = ptr(fhirTime(*rec.RecordedOn))
	}
	return d
}

// attachment describes a record's file: its title always; its content
// type, size, upload time and signed link only with a URL, that is when the
// caller may read the document (GraphQL's MedicalRecord.document).
func attachment(rec domain.Record, url string) fm.Attachment {
	a := fm.Attachment{Title: ptr(rec.Title)}
	if url == "" || rec.Document == nil {
		return a
	}
	d := rec.Document
	a.Url = ptr(url)
	a.ContentType = ptr(d.ContentType)
	a.Size = ptr(d.SizeBytes)
	a.Creation = ptr(fhirTime(d.UploadedAt))
	return a
}

// ---- Patient, Coverage, Practitioner

func gender(s domain.Sex) *fm.AdministrativeGender {
	var g fm.AdministrativeGender
	switch s {
	case domain.SexFemale:
		g = fm.AdministrativeGenderFemale
	case domain.SexMale:
		g = fm.AdministrativeGenderMale
	case domain.SexOther:
		g = fm.AdministrativeGenderOther
	default:
		g = fm.AdministrativeGenderUnknown
	}
	return &g
}

// patient is the Patient as the caller may see it: for a partner the
// pseudonym, birth year (none at 90+), sex, country, language and age band;
// identity only where the store returned it.
func patient(ctx context.Context, pt *domain.Patient, caseID string) fm.Patient {
	notePatient(ctx, pt, caseID, true)
	out := fm.Patient{
		Id:        ptr(ID(pt.ID)),
		Gender:    gender(pt.Sex),
		Extension: []fm.Extension{{Url: extAgeBand, ValueString: ptr(pt.AgeBand)}},
	}
	if pt.Country != "" {
		out.Address = []fm.Address{{Country: ptr(pt.Country)}}
	}
	if pt.Language != "" {
		out.Communication = []fm.PatientCommunication{{Language: coded(sysLanguage, pt.Language, "")}}
	}
	if id := pt.Identity; id != nil {
		// The member id as the insurer issued it (what a referral names in
		// Patient.identifier), assigned by that insurer.
		insurer, member := domain.SplitMemberKey(pt.ID)
		out.Identifier = []fm.Identifier{{System: ptr(sysMemberID), Value: ptr(member), Assigner: &fm.Reference{Identifier: &fm.Identifier{System: ptr(sysOurs + "/sid/org"), Value: ptr(insurer)}}}}
		out.Name = []fm.HumanName{{Family: ptr(id.FamilyName), Given: []string{id.GivenName}}}
		out.BirthDate = ptr(fhirDate(id.DateOfBirth))
		if id.Email != "" {
			out.Telecom = append(out.Telecom, fm.ContactPoint{System: ptr(fm.ContactPointSystemEmail), Value: ptr(id.Email)})
		}
		if id.Phone != "" {
			out.Telecom = append(out.Telecom, fm.ContactPoint{System: ptr(fm.ContactPointSystemPhone), Value: ptr(id.Phone)})
		}
	} else if pt.BirthYear != nil {
		out.BirthDate = ptr(strconv.Itoa(*pt.BirthYear))
	}
	return out
}

func coverage(pol *domain.Policy, beneficiary *domain.Patient) fm.Coverage {
	status := fm.FinancialResourceStatusCodesActive
	if pol.Status != domain.PolicyActive {
		status = fm.FinancialResourceStatusCodesCancelled
	}
	b := pol.SecondOpinion
	cov := fm.Coverage{
		Id:         ptr(ID(pol.ID)),
		Identifier: []fm.Identifier{{System: ptr(sysPolicyNumber), Value: ptr(pol.PolicyNumber)}, {System: ptr(sysPolicyID), Value: ptr(pol.ID)}},
		Status:     status,
		Type:       ptr(coded(sysOurs+"/CodeSystem/product", string(pol.Product), string(pol.Product))),
		Payor:      []fm.Reference{{Identifier: &fm.Identifier{System: ptr(sysOurs + "/sid/org"), Value: ptr(pol.InsurerID)}, Display: ptr(pol.InsurerID)}},
		Period:     &fm.Period{Start: ptr(fhirDate(pol.EffectiveFrom))},
		Class:      []fm.CoverageClass{{Type: coded("http://terminology.hl7.org/CodeSystem/coverage-class", "plan", "Plan"), Value: pol.PolicyNumber, Name: ptr(string(pol.Product))}},
		Extension: []fm.Extension{{Url: extBenefit, Extension: []fm.Extension{
			{Url: "covered", ValueBoolean: ptr(b.Covered)},
			{Url: "casesPerYear", ValueInteger: ptr(b.CasesPerYear)},
			{Url: "casesUsed", ValueInteger: ptr(b.CasesUsed)},
			{Url: "international", ValueBoolean: ptr(b.International)},
		}}},
	}
	if pol.EffectiveTo != nil {
		cov.Period.End = ptr(fhirDate(*pol.EffectiveTo))
	}
	if beneficiary != nil {
		cov.Beneficiary = ref("Patient", beneficiary.ID)
	} else {
		cov.Beneficiary = fm.Reference{Display: ptr("no insured member visible")}
	}
	return cov
}

// practitioner is a specialist's public profile only.
func practitioner(sp *domain.Specialist) fm.Practitioner {
	pr := fm.Practitioner{
		Id:     ptr(ID(sp.ID)),
		Meta:   nil,
		Active: ptr(sp.AcceptingCases),
		Name:   []fm.HumanName{{Text: ptr(sp.Name)}},
	}
	if sp.Credentials != "" {
		pr.Qualification = append(pr.Qualification, fm.PractitionerQualification{Code: text(sp.Credentials)})
	}
	for _, s := range sp.Specialties {
		pr.Qualification = append(pr.Qualification, fm.PractitionerQualification{Code: coded(sysSpecialty, s, s)})
	}
	for _, l := range sp.Languages {
		pr.Communication = append(pr.Communication, coded(sysLanguage, l, ""))
	}
	if sp.Country != "" || sp.Institution != "" {
		a := fm.Address{}
		if sp.Country != "" {
			a.Country = ptr(sp.Country)
		}
		if sp.Institution != "" {
			a.Text = ptr(sp.Institution)
		}
		pr.Address = []fm.Address{a}
	}
	return pr
}
