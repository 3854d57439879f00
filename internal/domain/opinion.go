package domain

import "time"

// DiagnosisAssessment is the specialist's view of the initial diagnosis.
type DiagnosisAssessment string

// Diagnosis assessments.
const (
	DiagnosisConfirmed DiagnosisAssessment = "CONFIRMED"
	DiagnosisModified  DiagnosisAssessment = "MODIFIED"
	DiagnosisChanged   DiagnosisAssessment = "CHANGED"
)

// TreatmentAssessment is the specialist's view of the proposed treatment.
type TreatmentAssessment string

// Treatment assessments.
const (
	TreatmentAgree       TreatmentAssessment = "AGREE"
	TreatmentAlternative TreatmentAssessment = "ALTERNATIVE"
)

// ClinicalImpact grades how much the opinion changes care.
type ClinicalImpact string

// Clinical impacts.
const (
	ImpactNone     ClinicalImpact = "NONE"
	ImpactMinor    ClinicalImpact = "MINOR"
	ImpactModerate ClinicalImpact = "MODERATE"
	ImpactMajor    ClinicalImpact = "MAJOR"
)

// Invasiveness grades a treatment option.
type Invasiveness string

// Invasiveness grades.
const (
	InvasivenessLow    Invasiveness = "LOW"
	InvasivenessMedium Invasiveness = "MEDIUM"
	InvasivenessHigh   Invasiveness = "HIGH"
)

// OpinionStatus is draft or delivered.
type OpinionStatus string

// Opinion statuses.
const (
	OpinionDraft     OpinionStatus = "DRAFT"
	OpinionDelivered OpinionStatus = "DELIVERED"
)

// TreatmentOption is one recommended option.
type TreatmentOption struct {
	Name         string
	Description  string
	Invasiveness Invasiveness
}

// ClinicalTrial is a trial the patient may consider.
type ClinicalTrial struct {
	RegistryID string
	Title      string
	URL        string
}

// Answer replies to one of the case's questions.
type Answer struct {
	Question string
	Answer   string
}

// OpinionContent is the written opinion: never for insurers.
type OpinionContent struct {
	DiagnosisAssessment    DiagnosisAssessment
	RevisedDiagnosis       *Diagnosis
	TreatmentAssessment    TreatmentAssessment
	ClinicalImpact         *ClinicalImpact
	TreatmentOptions       []TreatmentOption
	ClinicalTrials         []ClinicalTrial
	Answers                []Answer
	QuestionsForYourDoctor []string
	MemberSummary          string
	Report                 string
}

// Opinion is a specialist's written second opinion on a case.
type Opinion struct {
	ID           string
	CaseID       string
	SpecialistID string
	OrgID        string
	// PatientID is the member key of the case's patient, for the audit.
	PatientID   string
	Status      OpinionStatus
	DeliveredAt *time.Time
	UpdatedAt   time.Time
	Content     *OpinionContent
	// Sig is the service's signature over the delivered opinion (nil for a
	// draft, and when the content was not fetched).
	Sig     *Signature
	Version int
}

// Signature is content: it carries the signed canonical JSON.
func (o *Opinion) Signature() (*Signature, error) {
	if _, err := o.content(); err != nil {
		return nil, err
	}
	return o.Sig, nil
}

// ResourceID names the object in audit events.
func (o *Opinion) ResourceID() string { return o.ID }

func (o *Opinion) content() (*OpinionContent, error) {
	if o.Content == nil {
		return nil, ErrFieldForbidden
	}
	return o.Content, nil
}

// DiagnosisAssessment is content.
func (o *Opinion) DiagnosisAssessment() (*DiagnosisAssessment, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return &c.DiagnosisAssessment, nil
}

// RevisedDiagnosis is content.
func (o *Opinion) RevisedDiagnosis() (*Diagnosis, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.RevisedDiagnosis, nil
}

// TreatmentAssessment is content.
func (o *Opinion) TreatmentAssessment() (*TreatmentAssessment, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return &c.TreatmentAssessment, nil
}

// ClinicalImpact is content.
func (o *Opinion) ClinicalImpact() (*ClinicalImpact, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.ClinicalImpact, nil
}

// TreatmentOptions is content.
func (o *Opinion) TreatmentOptions() ([]TreatmentOption, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.TreatmentOptions, nil
}

// ClinicalTrials is content.
func (o *Opinion) ClinicalTrials() ([]ClinicalTrial, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.ClinicalTrials, nil
}

// Answers is content.
func (o *Opinion) Answers() ([]Answer, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.Answers, nil
}

// QuestionsForYourDoctor is content.
func (o *Opinion) QuestionsForYourDoctor() ([]string, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return c.QuestionsForYourDoctor, nil
}

// MemberSummary is content.
func (o *Opinion) MemberSummary() (*string, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return &c.MemberSummary, nil
}

// Report is content.
func (o *Opinion) Report() (*string, error) {
	c, err := o.content()
	if err != nil {
		return nil, err
	}
	return &c.Report, nil
}

// AuditEvent is one entry of the audit trail.
type AuditEvent struct {
	ID           string
	At           time.Time
	Subject      string
	Role         Role
	Org          string
	Operation    string
	ResourceType string
	ResourceID   string
	FieldGroup   string
	RequestID    string
	Outcome      string
	CaseID       string
	// PatientID is the member key of the patient whose data was touched,
	// where the object read tells it (cases, patients, opinions).
	PatientID string
	// ClientID is the token's azp or client_id, when it named one.
	ClientID string
	// Chain, Seq, Prev and Hash link the event into its tamper-evident
	// chain: its chain's name, its position from 1, the hash of the event
	// before it ("" for the first) and its own hash.
	Chain string
	Seq   int64
	Prev  string
	Hash  string
}
