package store

import (
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// The documents below are the stored shapes; to*/from* are the only places
// that cross between them and the domain.

type benefitDoc struct {
	Covered       bool `bson:"covered"`
	CasesPerYear  int  `bson:"casesPerYear"`
	International bool `bson:"international"`
}

type usageDoc struct {
	YearStart time.Time `bson:"yearStart"`
	Used      int       `bson:"used"`
}

type policyDoc struct {
	ID            string     `bson:"_id"`
	PolicyNumber  string     `bson:"policyNumber"`
	Product       string     `bson:"product"`
	Status        string     `bson:"status"`
	EffectiveFrom time.Time  `bson:"effectiveFrom"`
	EffectiveTo   *time.Time `bson:"effectiveTo,omitempty"`
	InsurerID     string     `bson:"insurerId"`
	Benefit       benefitDoc `bson:"benefit"`
	Usage         usageDoc   `bson:"usage"`
	InsuredIDs    []string   `bson:"insuredIds"`
	Version       int        `bson:"version"`
	CreatedAt     time.Time  `bson:"createdAt"`
	UpdatedAt     time.Time  `bson:"updatedAt"`
}

func toPolicy(d *policyDoc, now time.Time) *domain.Policy {
	p := &domain.Policy{
		ID: d.ID, PolicyNumber: d.PolicyNumber, Product: domain.Product(d.Product),
		Status: domain.PolicyStatus(d.Status), EffectiveFrom: d.EffectiveFrom.UTC(),
		InsurerID: d.InsurerID, InsuredIDs: d.InsuredIDs, Version: d.Version,
		SecondOpinion: domain.Benefit{
			Covered: d.Benefit.Covered, CasesPerYear: d.Benefit.CasesPerYear,
			International: d.Benefit.International,
		},
	}
	if d.EffectiveTo != nil {
		t := d.EffectiveTo.UTC()
		p.EffectiveTo = &t
	}
	if d.Usage.YearStart.Equal(p.PolicyYearStart(now)) {
		p.SecondOpinion.CasesUsed = d.Usage.Used
	}
	return p
}

type patientDoc struct {
	ID          string    `bson:"_id"`
	GivenName   string    `bson:"givenName,omitempty"`
	FamilyName  string    `bson:"familyName,omitempty"`
	DateOfBirth time.Time `bson:"dateOfBirth,omitempty"`
	Email       string    `bson:"email,omitempty"`
	Phone       string    `bson:"phone,omitempty"`
	BirthYear   int       `bson:"birthYear"`
	Sex         string    `bson:"sex"`
	Country     string    `bson:"country,omitempty"`
	Language    string    `bson:"language,omitempty"`
	// InsurerID and MemberID make the _id (domain.MemberKey): a member
	// belongs to one insurer, whose member ids are its own namespace.
	InsurerID string `bson:"insurerId"`
	MemberID  string `bson:"memberId"`
	Version   int    `bson:"version"`
}

// identityFor returns the identity when p's role reads it (the projection
// left it out otherwise).
func identityFor(p domain.Principal, d *patientDoc) *domain.PatientIdentity {
	if !domain.CanRead(p.Role, domain.GroupPatientIdentity) {
		return nil
	}
	return &domain.PatientIdentity{
		GivenName: d.GivenName, FamilyName: d.FamilyName, DateOfBirth: d.DateOfBirth.UTC(), Email: d.Email, Phone: d.Phone,
	}
}

// identityFields are never fetched for a role that may not read identity.
var identityFields = []string{"givenName", "familyName", "dateOfBirth", "email", "phone"}

// toPatient converts a patient for p, shown under id. Where the date of
// birth was read the age is exact; where only the year was (de-identified
// reads), the age counted is the one reached this calendar year, so a
// patient who may be 90 or more never shows a birth year there (Safe
// Harbor), at the price of showing "90+" a few months early.
func toPatient(d *patientDoc, p domain.Principal, id string, now time.Time) *domain.Patient {
	pt := &domain.Patient{
		ID: id, MemberKey: d.ID, Sex: domain.Sex(d.Sex), Country: d.Country, Language: d.Language,
		Identity: identityFor(p, d),
	}
	age := now.Year() - d.BirthYear
	if pt.Identity != nil && !pt.Identity.DateOfBirth.IsZero() {
		age = domain.AgeOn(pt.Identity.DateOfBirth, now)
	}
	pt.AgeBand = domain.AgeBand(age)
	if pt.Identity != nil || age < 90 {
		y := d.BirthYear
		pt.BirthYear = &y
	}
	return pt
}

type pseudonymDoc struct {
	ID        string `bson:"_id"` // network + "/" + member id
	Pseudonym string `bson:"pseudonym"`
	MemberID  string `bson:"memberId"`
	Network   string `bson:"network"`
}

type diagnosisDoc struct {
	Code        string `bson:"code"`
	Description string `bson:"description"`
}

type consentDoc struct {
	Kind      string     `bson:"kind"`
	Active    bool       `bson:"active"`
	GrantedAt *time.Time `bson:"grantedAt,omitempty"`
	RevokedAt *time.Time `bson:"revokedAt,omitempty"`
}

type recordDoc struct {
	ID         string       `bson:"id"`
	Title      string       `bson:"title"`
	Kind       string       `bson:"kind"`
	RecordedOn *time.Time   `bson:"recordedOn,omitempty"`
	AddedAt    time.Time    `bson:"addedAt"`
	Document   *documentDoc `bson:"document,omitempty"`
}

// documentDoc is a record's stored file: metadata, where the encrypted bytes
// are, and the data key wrapped under the master key keyId. The file itself
// is never in the database.
type documentDoc struct {
	ContentType string    `bson:"contentType"`
	SizeBytes   int       `bson:"sizeBytes"`
	SHA256      string    `bson:"sha256"`
	UploadedAt  time.Time `bson:"uploadedAt"`
	BlobKey     string    `bson:"blobKey"`
	KeyID       string    `bson:"keyId"`
	WrappedKey  []byte    `bson:"wrappedKey"`
}

func toRecordDoc(r domain.Record, now time.Time) recordDoc {
	d := recordDoc{ID: r.ID, Title: r.Title, Kind: string(r.Kind), RecordedOn: r.RecordedOn, AddedAt: r.AddedAt}
	if d.AddedAt.IsZero() {
		d.AddedAt = now
	}
	if x := r.Document; x != nil {
		d.Document = &documentDoc{
			ContentType: x.ContentType, SizeBytes: x.SizeBytes, SHA256: x.SHA256, UploadedAt: x.UploadedAt,
			BlobKey: x.BlobKey, KeyID: x.KeyID, WrappedKey: x.WrappedKey,
		}
	}
	return d
}

func toRecord(caseID string, released bool, r recordDoc) domain.Record {
	rec := domain.Record{
		ID: r.ID, Title: r.Title, Kind: domain.RecordKind(r.Kind), RecordedOn: utcPtr(r.RecordedOn), AddedAt: r.AddedAt.UTC(),
	}
	if x := r.Document; x != nil {
		rec.Document = &domain.Document{
			ContentType: x.ContentType, SizeBytes: x.SizeBytes, SHA256: x.SHA256, UploadedAt: x.UploadedAt.UTC(),
			CaseID: caseID, RecordID: r.ID, Released: released,
			BlobKey: x.BlobKey, KeyID: x.KeyID, WrappedKey: x.WrappedKey,
		}
	}
	return rec
}

type eventDoc struct {
	Type       string    `bson:"type"`
	At         time.Time `bson:"at"`
	FromStatus string    `bson:"fromStatus,omitempty"`
	ToStatus   string    `bson:"toStatus,omitempty"`
	ActorRole  string    `bson:"actorRole"`
	ActorSub   string    `bson:"actorSub,omitempty"`
	Detail     string    `bson:"detail,omitempty"`
}

type clinicalDoc struct {
	Diagnosis         diagnosisDoc `bson:"diagnosis"`
	ProposedTreatment string       `bson:"proposedTreatment,omitempty"`
	Questions         []string     `bson:"questions,omitempty"`
	Records           []recordDoc  `bson:"records,omitempty"`
}

type caseDoc struct {
	ID                string       `bson:"_id"`
	Reference         string       `bson:"reference"`
	Status            string       `bson:"status"`
	PolicyID          string       `bson:"policyId"`
	PatientID         string       `bson:"patientId"`
	InsurerID         string       `bson:"insurerId"`
	Specialty         string       `bson:"specialty"`
	Urgency           string       `bson:"urgency"`
	PreferredLanguage string       `bson:"preferredLanguage,omitempty"`
	Consents          []consentDoc `bson:"consents"`
	// IntlConsent mirrors the INTERNATIONAL_SHARING consent so a partner's
	// scope is one equality filter.
	IntlConsent     bool   `bson:"intlConsent"`
	SpecialistID    string `bson:"specialistId,omitempty"`
	SpecialistOrgID string `bson:"specialistOrgId,omitempty"`
	// SpecialistAbroad is set at assignment (and when the specialist's
	// country changes): see domain.Case.SpecialistAbroad.
	SpecialistAbroad bool `bson:"specialistAbroad,omitempty"`
	// PatientPseudonym is the patient's pseudonym for the assigned network.
	PatientPseudonym string    `bson:"patientPseudonym,omitempty"`
	Decision         string    `bson:"decision,omitempty"`
	DecisionNote     string    `bson:"decisionNote,omitempty"`
	CancelReason     string    `bson:"cancelReason,omitempty"`
	DueAt            time.Time `bson:"dueAt"`
	// RecordsCompleteAt is when the case entered TRIAGE: the SLA clock's
	// start (absent on cases older than the field, which keep their dueAt).
	RecordsCompleteAt *time.Time   `bson:"recordsCompleteAt,omitempty"`
	SubmittedAt       time.Time    `bson:"submittedAt"`
	UpdatedAt         time.Time    `bson:"updatedAt"`
	DeliveredAt       *time.Time   `bson:"deliveredAt,omitempty"`
	Events            []eventDoc   `bson:"events"`
	Version           int          `bson:"version"`
	Clinical          *clinicalDoc `bson:"clinical,omitempty"`
	// FollowUps are the member's questions after delivery and their
	// answers (opinion content: projected away for roles that may not
	// read it).
	FollowUps []followUpDoc `bson:"followUps,omitempty"`
	// Outcome is what the member did after the opinion (member and
	// coordinators; statistics read it in aggregate).
	Outcome *outcomeDoc `bson:"outcome,omitempty"`
	// Outbox holds the events of the last write until they are copied to
	// case_events (see events.go).
	Outbox []CaseEventRecord `bson:"outbox,omitempty"`
}

func toCase(d *caseDoc) *domain.Case {
	c := &domain.Case{
		ID: d.ID, Reference: d.Reference, Status: domain.CaseStatus(d.Status), PolicyID: d.PolicyID,
		PatientID: d.PatientID, InsurerID: d.InsurerID, Specialty: d.Specialty,
		Urgency: domain.Urgency(d.Urgency), PreferredLanguage: d.PreferredLanguage,
		SpecialistID: d.SpecialistID, SpecialistOrgID: d.SpecialistOrgID, SpecialistAbroad: d.SpecialistAbroad, PatientPseudonym: d.PatientPseudonym,
		DueAt: d.DueAt.UTC(), SubmittedAt: d.SubmittedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		DeliveredAt: utcPtr(d.DeliveredAt), Version: d.Version, RecordsCompleteAt: utcPtr(d.RecordsCompleteAt),
		FollowUps: toFollowUps(d.FollowUps), Outcome: toOutcome(d.Outcome),
	}
	if d.Decision != "" {
		dec := domain.Decision(d.Decision)
		c.Decision = &dec
	}
	for _, x := range d.Consents {
		c.Consents = append(c.Consents, domain.Consent{
			Kind: domain.ConsentKind(x.Kind), Active: x.Active,
			GrantedAt: utcPtr(x.GrantedAt), RevokedAt: utcPtr(x.RevokedAt),
		})
	}
	for _, e := range d.Events {
		ev := domain.CaseEvent{Type: e.Type, At: e.At.UTC(), ActorRole: domain.Role(e.ActorRole)}
		if e.FromStatus != "" {
			s := domain.CaseStatus(e.FromStatus)
			ev.FromStatus = &s
		}
		if e.ToStatus != "" {
			s := domain.CaseStatus(e.ToStatus)
			ev.ToStatus = &s
		}
		c.Events = append(c.Events, ev)
	}
	if d.Clinical != nil {
		cl := &domain.CaseClinical{
			Diagnosis:         domain.Diagnosis{Code: d.Clinical.Diagnosis.Code, Description: d.Clinical.Diagnosis.Description},
			ProposedTreatment: d.Clinical.ProposedTreatment,
			Questions:         d.Clinical.Questions,
		}
		released := false
		for _, x := range d.Consents {
			if x.Kind == string(domain.ConsentRecordsRelease) {
				released = x.Active
			}
		}
		for _, r := range d.Clinical.Records {
			cl.Records = append(cl.Records, toRecord(d.ID, released, r))
		}
		if cl.Questions == nil {
			cl.Questions = []string{}
		}
		if cl.Records == nil {
			cl.Records = []domain.Record{}
		}
		c.Clinical = cl
	}
	if c.Consents == nil {
		c.Consents = []domain.Consent{}
	}
	if c.Events == nil {
		c.Events = []domain.CaseEvent{}
	}
	return c
}

type specialistInternalDoc struct {
	ActiveCases int    `bson:"activeCases"`
	Email       string `bson:"email,omitempty"`
}

type specialistDoc struct {
	ID             string                `bson:"_id"`
	Name           string                `bson:"name"`
	Credentials    string                `bson:"credentials,omitempty"`
	Specialties    []string              `bson:"specialties"`
	SubSpecialties []string              `bson:"subSpecialties"`
	Languages      []string              `bson:"languages"`
	Country        string                `bson:"country"`
	Institution    string                `bson:"institution,omitempty"`
	OrgID          string                `bson:"orgId"`
	OrgKind        string                `bson:"orgKind"`
	AcceptingCases bool                  `bson:"acceptingCases"`
	Internal       specialistInternalDoc `bson:"internal"`
	// Version moves when the profile changes; the load (an $inc) leaves
	// it alone.
	Version   int       `bson:"version"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

func toSpecialist(d *specialistDoc, withInternal bool) *domain.Specialist {
	s := &domain.Specialist{
		ID: d.ID, Name: d.Name, Credentials: d.Credentials, Specialties: nonNil(d.Specialties),
		SubSpecialties: nonNil(d.SubSpecialties), Languages: nonNil(d.Languages), Country: d.Country,
		Institution: d.Institution, OrgID: d.OrgID, OrgKind: domain.OrgKind(d.OrgKind),
		AcceptingCases: d.AcceptingCases, Version: d.Version,
	}
	if withInternal {
		s.Internal = &domain.SpecialistInternal{ActiveCases: max(0, d.Internal.ActiveCases), Email: d.Internal.Email}
	}
	return s
}

type treatmentOptionDoc struct {
	Name         string `bson:"name"`
	Description  string `bson:"description,omitempty"`
	Invasiveness string `bson:"invasiveness,omitempty"`
}

type clinicalTrialDoc struct {
	RegistryID string `bson:"registryId"`
	Title      string `bson:"title"`
	URL        string `bson:"url,omitempty"`
}

type answerDoc struct {
	Question string `bson:"question"`
	Answer   string `bson:"answer"`
}

type opinionContentDoc struct {
	DiagnosisAssessment    string               `bson:"diagnosisAssessment"`
	RevisedDiagnosis       *diagnosisDoc        `bson:"revisedDiagnosis,omitempty"`
	TreatmentAssessment    string               `bson:"treatmentAssessment"`
	ClinicalImpact         string               `bson:"clinicalImpact,omitempty"`
	TreatmentOptions       []treatmentOptionDoc `bson:"treatmentOptions,omitempty"`
	ClinicalTrials         []clinicalTrialDoc   `bson:"clinicalTrials,omitempty"`
	Answers                []answerDoc          `bson:"answers,omitempty"`
	QuestionsForYourDoctor []string             `bson:"questionsForYourDoctor,omitempty"`
	MemberSummary          string               `bson:"memberSummary"`
	Report                 string               `bson:"report"`
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
		QuestionsForYourDoctor: c.QuestionsForYourDoctor, MemberSummary: c.MemberSummary, Report: c.Report,
	}
	if c.RevisedDiagnosis != nil {
		cd.RevisedDiagnosis = &diagnosisDoc{Code: c.RevisedDiagnosis.Code, Description: c.RevisedDiagnosis.Description}
	}
	if c.ClinicalImpact != nil {
		cd.ClinicalImpact = string(*c.ClinicalImpact)
	}
	for _, t := range c.TreatmentOptions {
		cd.TreatmentOptions = append(cd.TreatmentOptions, treatmentOptionDoc{Name: t.Name, Description: t.Description, Invasiveness: string(t.Invasiveness)})
	}
	for _, t := range c.ClinicalTrials {
		cd.ClinicalTrials = append(cd.ClinicalTrials, clinicalTrialDoc{RegistryID: t.RegistryID, Title: t.Title, URL: t.URL})
	}
	for _, a := range c.Answers {
		cd.Answers = append(cd.Answers, answerDoc{Question: a.Question, Answer: a.Answer})
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
			QuestionsForYourDoctor: nonNil(c.QuestionsForYourDoctor),
			MemberSummary:          c.MemberSummary,
			Report:                 c.Report,
			TreatmentOptions:       []domain.TreatmentOption{},
			ClinicalTrials:         []domain.ClinicalTrial{},
			Answers:                []domain.Answer{},
		}
		if c.RevisedDiagnosis != nil {
			oc.RevisedDiagnosis = &domain.Diagnosis{Code: c.RevisedDiagnosis.Code, Description: c.RevisedDiagnosis.Description}
		}
		if c.ClinicalImpact != "" {
			ci := domain.ClinicalImpact(c.ClinicalImpact)
			oc.ClinicalImpact = &ci
		}
		for _, t := range c.TreatmentOptions {
			oc.TreatmentOptions = append(oc.TreatmentOptions, domain.TreatmentOption{
				Name: t.Name, Description: t.Description, Invasiveness: domain.Invasiveness(t.Invasiveness),
			})
		}
		for _, t := range c.ClinicalTrials {
			oc.ClinicalTrials = append(oc.ClinicalTrials, domain.ClinicalTrial{RegistryID: t.RegistryID, Title: t.Title, URL: t.URL})
		}
		for _, a := range c.Answers {
			oc.Answers = append(oc.Answers, domain.Answer{Question: a.Question, Answer: a.Answer})
		}
		o.Content = oc
		o.Sig = toSignature(d.Signature)
	}
	return o
}

type auditDoc struct {
	ID           string    `bson:"_id"`
	At           time.Time `bson:"at"`
	Subject      string    `bson:"subject"`
	Role         string    `bson:"role"`
	Org          string    `bson:"org,omitempty"`
	Operation    string    `bson:"operation"`
	ResourceType string    `bson:"resourceType"`
	ResourceID   string    `bson:"resourceId"`
	FieldGroup   string    `bson:"fieldGroup"`
	RequestID    string    `bson:"requestId"`
	Outcome      string    `bson:"outcome"`
	CaseID       string    `bson:"caseId,omitempty"`
	PatientID    string    `bson:"patientId,omitempty"`
	ClientID     string    `bson:"clientId,omitempty"`
	Chain        string    `bson:"chain,omitempty"`
	Seq          int64     `bson:"seq,omitempty"`
	Prev         string    `bson:"prev,omitempty"`
	Hash         string    `bson:"hash,omitempty"`
}

func toAuditEvent(d *auditDoc) *domain.AuditEvent {
	return &domain.AuditEvent{
		ID: d.ID, At: d.At.UTC(), Subject: d.Subject, Role: domain.Role(d.Role), Org: d.Org,
		Operation: d.Operation, ResourceType: d.ResourceType, ResourceID: d.ResourceID,
		FieldGroup: d.FieldGroup, RequestID: d.RequestID, Outcome: d.Outcome, CaseID: d.CaseID,
		PatientID: d.PatientID, ClientID: d.ClientID, Chain: d.Chain, Seq: d.Seq, Prev: d.Prev, Hash: d.Hash,
	}
}

func toAuditDoc(e domain.AuditEvent) auditDoc {
	return auditDoc{
		ID: e.ID, At: e.At, Subject: e.Subject, Role: string(e.Role), Org: e.Org, Operation: e.Operation,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, FieldGroup: e.FieldGroup,
		RequestID: e.RequestID, Outcome: e.Outcome, CaseID: e.CaseID, PatientID: e.PatientID,
		ClientID: e.ClientID, Chain: e.Chain, Seq: e.Seq, Prev: e.Prev, Hash: e.Hash,
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fromConsents converts a case's consents to their stored form.
func fromConsents(cs []domain.Consent) []consentDoc {
	out := make([]consentDoc, 0, len(cs))
	for _, x := range cs {
		out = append(out, consentDoc{Kind: string(x.Kind), Active: x.Active, GrantedAt: x.GrantedAt, RevokedAt: x.RevokedAt})
	}
	return out
}
