package domain

import "time"

// CaseStatus is where a case stands in its lifecycle.
type CaseStatus string

// Case statuses.
const (
	StatusSubmitted        CaseStatus = "SUBMITTED"
	StatusTriage           CaseStatus = "TRIAGE"
	StatusAssigned         CaseStatus = "ASSIGNED"
	StatusInReview         CaseStatus = "IN_REVIEW"
	StatusOpinionDelivered CaseStatus = "OPINION_DELIVERED"
	StatusClosed           CaseStatus = "CLOSED"
	StatusCancelled        CaseStatus = "CANCELLED"
)

// Urgency decides the SLA.
type Urgency string

// Urgencies.
const (
	UrgencyRoutine Urgency = "ROUTINE"
	UrgencyUrgent  Urgency = "URGENT"
)

// SLA returns how long a case of urgency u may take until its opinion.
func (u Urgency) SLA() time.Duration {
	if u == UrgencyUrgent {
		return 3 * 24 * time.Hour
	}
	return 10 * 24 * time.Hour
}

// ConsentKind names a consent a member gives.
type ConsentKind string

// Consent kinds.
const (
	ConsentRecordsRelease       ConsentKind = "RECORDS_RELEASE"
	ConsentInternationalSharing ConsentKind = "INTERNATIONAL_SHARING"
)

// RecordKind classifies a medical record.
type RecordKind string

// Record kinds.
const (
	RecordPathology    RecordKind = "PATHOLOGY"
	RecordImaging      RecordKind = "IMAGING"
	RecordLab          RecordKind = "LAB"
	RecordClinicalNote RecordKind = "CLINICAL_NOTE"
	RecordOther        RecordKind = "OTHER"
)

// Decision is what the member did with the opinion.
type Decision string

// Decisions.
const (
	DecisionFollowOpinion    Decision = "FOLLOW_OPINION"
	DecisionKeepOriginalPlan Decision = "KEEP_ORIGINAL_PLAN"
	DecisionUndecided        Decision = "UNDECIDED"
)

// Diagnosis is an ICD-10 code with its text.
type Diagnosis struct {
	Code        string
	Description string
}

// Consent is one consent with its history stamps.
type Consent struct {
	Kind      ConsentKind
	Active    bool
	GrantedAt *time.Time
	RevokedAt *time.Time
}

// Record is a medical record's metadata.
type Record struct {
	ID         string
	Title      string
	Kind       RecordKind
	RecordedOn *time.Time
	// AddedAt is when the record was added (zero before it is stored).
	AddedAt time.Time
	// Document is the record's stored file; nil for a record without one.
	Document *Document
}

// CaseEvent is one entry of a case's history.
type CaseEvent struct {
	Type       string
	At         time.Time
	FromStatus *CaseStatus
	ToStatus   *CaseStatus
	ActorRole  Role
}

// CaseClinical is the clinical part of a case: never for insurers.
type CaseClinical struct {
	Diagnosis         Diagnosis
	ProposedTreatment string
	Questions         []string
	Records           []Record
}

// Case is one second-opinion request.
type Case struct {
	ID                string
	Reference         string
	Status            CaseStatus
	PolicyID          string
	PatientID         string
	InsurerID         string
	Specialty         string
	Urgency           Urgency
	PreferredLanguage string
	Consents          []Consent
	SpecialistID      string
	SpecialistOrgID   string
	// SpecialistAbroad: the assigned specialist practises in another
	// country than the patient's, so the case leaves the scope of the
	// specialist's org while INTERNATIONAL_SHARING is not active.
	SpecialistAbroad bool
	// PatientPseudonym is the patient's pseudonym for the assigned partner
	// network; never shown to anyone else.
	PatientPseudonym string
	Decision         *Decision
	// DueAt is the SLA: it counts from RecordsCompleteAt, when the case
	// entered TRIAGE; before that it is provisional (from submission), and
	// a case that entered TRIAGE before the clock moved keeps its date.
	DueAt time.Time
	// RecordsCompleteAt is when the case entered TRIAGE (records and
	// consent in); nil before, and for cases older than the field.
	RecordsCompleteAt *time.Time
	SubmittedAt       time.Time
	UpdatedAt         time.Time
	DeliveredAt       *time.Time
	// Events are the latest events (at most MaxEmbeddedEvents); the whole
	// history is in the event log.
	Events []CaseEvent
	// EventCount is how many events the case has had in all.
	EventCount int
	Version    int
	Clinical   *CaseClinical
	// FollowUps are the questions after delivery (opinion content: nil when
	// not fetched for the caller).
	FollowUps []FollowUp
	// Outcome is what the member did after the opinion (member and
	// coordinators only: nil when not fetched).
	Outcome *Outcome
}

// ResourceID names the object in audit events.
func (c *Case) ResourceID() string { return c.ID }

// MaxEmbeddedEvents is how many of its latest events a case keeps in
// itself: a case's whole normal life (submission, consents, records, the
// moves to delivery and closing, follow-ups) is about 10 to 20 events, so
// 50 shows all of it for every ordinary case, while a case flooded with
// changes stays a document of bounded size (every read of a case decodes
// it). The whole history stays in the event log, paged (Case.history).
const MaxEmbeddedEvents = 50

// LoggedCaseEvent is one event of a case's whole history, read from the
// event log, with its position there (the page cursor).
type LoggedCaseEvent struct {
	CaseEvent
	Position string
}

// GetID returns the event's position, which orders the history.
func (e *LoggedCaseEvent) GetID() string { return e.Position }

// ConsentActive reports whether consent k is currently granted.
func (c *Case) ConsentActive(k ConsentKind) bool {
	for _, x := range c.Consents {
		if x.Kind == k {
			return x.Active
		}
	}
	return false
}

// Overdue reports whether the SLA passed without an opinion.
func (c *Case) Overdue() bool { return c.OverdueAt(time.Now()) }

// OverdueAt reports whether the case is overdue at the given time.
func (c *Case) OverdueAt(at time.Time) bool {
	// The clock starts when the records are complete (TRIAGE).
	if c.DeliveredAt != nil || c.Status == StatusCancelled || c.Status == StatusClosed || c.Status == StatusSubmitted {
		return false
	}
	return at.After(c.DueAt)
}

// Diagnosis is clinical.
func (c *Case) Diagnosis() (*Diagnosis, error) {
	if c.Clinical == nil {
		return nil, ErrFieldForbidden
	}
	return &c.Clinical.Diagnosis, nil
}

// ProposedTreatment is clinical.
func (c *Case) ProposedTreatment() (*string, error) {
	if c.Clinical == nil {
		return nil, ErrFieldForbidden
	}
	return optional(c.Clinical.ProposedTreatment), nil
}

// Questions is clinical.
func (c *Case) Questions() ([]string, error) {
	if c.Clinical == nil {
		return nil, ErrFieldForbidden
	}
	return c.Clinical.Questions, nil
}

// Records is clinical.
func (c *Case) Records() ([]Record, error) {
	if c.Clinical == nil {
		return nil, ErrFieldForbidden
	}
	return c.Clinical.Records, nil
}
