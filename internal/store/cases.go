package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
)

// CaseFilter narrows cases.
type CaseFilter struct {
	Statuses  []domain.CaseStatus
	Specialty *string
	Overdue   *bool
	// PatientID keeps the cases of one patient (member key).
	PatientID *string
	// PatientPseudonym keeps the cases whose patient has this pseudonym for
	// the assigned network (how a partner names patients).
	PatientPseudonym *string
	// UpdatedFrom and UpdatedTo bound updatedAt, inclusive.
	UpdatedFrom, UpdatedTo *time.Time
}

// openStatuses are the statuses whose SLA clock runs: it starts when the
// records are complete (TRIAGE), so a SUBMITTED case is never overdue.
var openStatuses = []string{
	string(domain.StatusTriage), string(domain.StatusAssigned), string(domain.StatusInReview),
}

func (f CaseFilter) bson(s *Store) bson.D {
	var parts bson.A
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, x := range f.Statuses {
			st[i] = string(x)
		}
		parts = append(parts, bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: st}}}})
	}
	if f.Specialty != nil {
		parts = append(parts, bson.D{{Key: "specialty", Value: strings.ToLower(strings.TrimSpace(*f.Specialty))}})
	}
	if f.PatientID != nil {
		parts = append(parts, bson.D{{Key: "patientId", Value: *f.PatientID}})
	}
	if f.PatientPseudonym != nil {
		parts = append(parts, bson.D{{Key: "patientPseudonym", Value: *f.PatientPseudonym}})
	}
	if f.UpdatedFrom != nil {
		parts = append(parts, bson.D{{Key: "updatedAt", Value: bson.D{{Key: "$gte", Value: f.UpdatedFrom.UTC()}}}})
	}
	if f.UpdatedTo != nil {
		parts = append(parts, bson.D{{Key: "updatedAt", Value: bson.D{{Key: "$lte", Value: f.UpdatedTo.UTC()}}}})
	}
	if f.Overdue != nil {
		now := s.Now()
		if *f.Overdue {
			parts = append(parts, bson.D{
				{Key: "status", Value: bson.D{{Key: "$in", Value: openStatuses}}},
				{Key: "dueAt", Value: bson.D{{Key: "$lt", Value: now}}},
			})
		} else {
			parts = append(parts, bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "status", Value: bson.D{{Key: "$nin", Value: openStatuses}}}},
				bson.D{{Key: "dueAt", Value: bson.D{{Key: "$gte", Value: now}}}},
			}}})
		}
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0].(bson.D)
	}
	return bson.D{{Key: "$and", Value: parts}}
}

// Case returns one case in p's scope, without the clinical fields for roles
// that may not read them.
func (s *Store) Case(ctx context.Context, p domain.Principal, id string) (*domain.Case, error) {
	return s.CaseWith(ctx, p, id, FullCase)
}

// CaseWith is Case fetching only the parts in view.
func (s *Store) CaseWith(ctx context.Context, p domain.Principal, id string, view CaseView) (*domain.Case, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("case")
	}
	proj := caseProjectionFor(p, view)
	d, err := findByID[caseDoc](ctx, s, colCases, id, proj)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, s.caseNotFound(ctx, sc, proj, false)
	}
	if err != nil {
		return nil, translate(err, "case")
	}
	s.lastCase.Store(&id)
	c := toCase(d)
	if !sc.allow(c) {
		return nil, s.caseNotFound(ctx, sc, proj, true)
	}
	if err := s.withClinical(ctx, p, view, []*domain.Case{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// absentCaseID is an id no case has (NewID never makes a zero time).
const absentCaseID = "000000000000000000000000"

// caseNotFound answers NOT_FOUND for a case read by id after the same work
// whichever way the read failed: one read that finds a case document
// (decoded, converted and held to the scope) and one that finds nothing.
// found says which of the two the caller's own read was; the other is
// made here, on the last case read by id or on an absent id, and
// discarded. Without it a missing id answers measurably sooner than an
// existing one outside the scope (FerretDB decodes a document even when a
// filter would refuse it, and a filter beyond {_id} makes it scan the
// collection), which tells a caller probing ids which exist (issue 14,
// finding 11; BenchmarkCaseOutsideScopeVersusMissing).
func (s *Store) caseNotFound(ctx context.Context, sc scope[*domain.Case], proj bson.D, found bool) error {
	if found {
		_, _ = findByID[caseDoc](ctx, s, colCases, absentCaseID, proj)
	} else if id := s.lastCase.Load(); id != nil {
		if d, err := findByID[caseDoc](ctx, s, colCases, *id, proj); err == nil {
			_ = sc.allow(toCase(d))
		}
	}
	return domain.ErrNotFound("case")
}

// withClinical fetches, for a reviewer, the clinical part of the cases
// (read without it) whose RECORDS_RELEASE consent is active, in one read;
// for other roles the projection already fetched what the role reads.
func (s *Store) withClinical(ctx context.Context, p domain.Principal, view CaseView, cases []*domain.Case) error {
	if !reviewer(p) || !view.Clinical {
		return nil
	}
	var ids []string
	for _, c := range cases {
		if clinicalAllowed(p, c) {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, bson.D{{Key: "clinical", Value: 1}})
	if err != nil {
		return translate(err, "case")
	}
	byID := make(map[string]*caseDoc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	for _, c := range cases {
		if d, ok := byID[c.ID]; ok && clinicalAllowed(p, c) {
			// The clinical part was read alone: its documents' release is
			// the consent of the case read first.
			d.Consents = fromConsents(c.Consents)
			c.Clinical = toCase(d).Clinical
		}
	}
	return nil
}

// CasesByIDs returns the cases among ids that p may see.
func (s *Store) CasesByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Case, error) {
	sc := caseScope(p)
	out := map[string]*domain.Case{}
	if sc.none {
		return out, nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, caseProjection(p))
	if err != nil {
		return nil, translate(err, "case")
	}
	var visible []*domain.Case
	for _, d := range docs {
		if c := toCase(d); sc.allow(c) {
			out[c.ID] = c
			visible = append(visible, c)
		}
	}
	if err := s.withClinical(ctx, p, FullCase, visible); err != nil {
		return nil, err
	}
	return out, nil
}

// Cases returns one page of cases in p's scope, newest first. The page is
// read from the list documents; the cases whose view shows more (or any
// page of a reviewer's, whose scope hangs on the consents) are then read
// by _id, held to the scope again, in the page's order.
func (s *Store) Cases(ctx context.Context, p domain.Principal, f CaseFilter, pg Page, view CaseView) ([]*domain.Case, bool, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := listPage[caseDoc](ctx, s, caseListing, and(sc.filter, f.bson(s)), pg, true)
	if err != nil {
		return nil, false, translate(err, "cases")
	}
	if view.Clinical || view.Events || view.Full || reviewer(p) {
		if docs, err = fullRows(ctx, s, colCases, docs, func(d *caseDoc) string { return d.ID }, caseProjectionFor(p, view)); err != nil {
			return nil, false, translate(err, "cases")
		}
	}
	out := make([]*domain.Case, 0, len(docs))
	for _, d := range docs {
		if c := toCase(d); sc.allow(c) {
			out = append(out, c)
		}
	}
	if err := s.withClinical(ctx, p, view, out); err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// CountCases counts the cases in p's scope matching f, over the list
// documents; a reviewer's, whose scope follows the case's assignment and
// consents, over the cases themselves (as its pages hold each row to the
// scope on the case).
func (s *Store) CountCases(ctx context.Context, p domain.Principal, f CaseFilter) (int, error) {
	sc := caseScope(p)
	if sc.none {
		return 0, nil
	}
	if reviewer(p) {
		n, err := count(ctx, s, colCases, and(sc.filter, f.bson(s)))
		return n, translate(err, "cases")
	}
	n, err := listCount(ctx, s, caseListing, and(sc.filter, f.bson(s)))
	return n, translate(err, "cases")
}

// ErrNoChange is a rule's answer that nothing is to be written.
var ErrNoChange = errors.New("store: nothing to change")

// NewCase is a case to create.
type NewCase struct {
	PolicyID          string
	PatientID         string
	InsurerID         string
	Specialty         string
	Diagnosis         domain.Diagnosis
	ProposedTreatment string
	Questions         []string
	Urgency           domain.Urgency
	PreferredLanguage string
	ActorRole         domain.Role
	ActorSub          string
	SubmittedAt       time.Time
}

// InsertCase stores a new case in SUBMITTED with its first event.
func (s *Store) InsertCase(ctx context.Context, nc NewCase) (*domain.Case, error) {
	at := nc.SubmittedAt
	if at.IsZero() {
		at = s.Now()
	}
	d := caseDoc{
		ID: NewIDAt(at), Status: string(domain.StatusSubmitted), PolicyID: nc.PolicyID,
		PatientID: nc.PatientID, InsurerID: nc.InsurerID, Specialty: nc.Specialty, Urgency: string(nc.Urgency),
		PreferredLanguage: nc.PreferredLanguage, Consents: []consentDoc{}, DueAt: at.Add(nc.Urgency.SLA()),
		SubmittedAt: at, UpdatedAt: at, Version: 1,
		Events:     []eventDoc{{Type: "SUBMITTED", At: at, ToStatus: string(domain.StatusSubmitted), ActorRole: string(nc.ActorRole), ActorSub: nc.ActorSub}},
		EventCount: 1,
		Clinical: &clinicalDoc{
			Diagnosis:         toDiagnosisDoc(nc.Diagnosis),
			ProposedTreatment: seal(nc.ProposedTreatment), Questions: sealAll(nc.Questions), Records: []recordDoc{},
		},
	}
	d.Outbox = outboxFor(&d, d.Events)
	// References are random, so they tell nothing of how many cases the
	// platform holds; the unique index refuses the rare repeat.
	for attempt := 0; ; attempt++ {
		d.Reference = newReference(at.Year())
		cctx, cancel := s.op(context.WithoutCancel(ctx))
		_, err := s.c(colCases).InsertOne(cctx, d)
		cancel()
		if err == nil {
			break
		}
		if !isDuplicate(err) || attempt >= 4 {
			return nil, translate(err, "case")
		}
	}
	// The sweeper retries a failed copy (and the list document with it).
	if listed, err := caseListing.ofValue(&d); err == nil {
		_ = s.publishOutbox(ctx, d.ID, d.Version, d.Outbox, &d, listed)
	} else {
		s.outboxPending.Store(true)
	}
	d.Outbox = nil
	return toCase(&d), nil
}

// referenceAlphabet is Crockford's base 32: no I, L, O or U to misread.
const referenceAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newReference returns SO-<year>-XXXX-XXXX with 40 random bits.
func newReference(year int) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 9)
	for i, x := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, referenceAlphabet[x&31])
	}
	return fmt.Sprintf("SO-%d-%s", year, out)
}

// diagnosisDoc is PHI, sealed at rest (sealed.go).
type diagnosisDoc struct {
	Code        sealed `bson:"code"`
	Description sealed `bson:"description"`
}

func toDiagnosisDoc(d domain.Diagnosis) diagnosisDoc {
	return diagnosisDoc{Code: seal(d.Code), Description: seal(d.Description)}
}

func (d diagnosisDoc) toDomain() domain.Diagnosis {
	return domain.Diagnosis{Code: d.Code.String(), Description: d.Description.String()}
}

type consentDoc struct {
	Kind      string     `bson:"kind"`
	Active    bool       `bson:"active"`
	GrantedAt *time.Time `bson:"grantedAt,omitempty"`
	RevokedAt *time.Time `bson:"revokedAt,omitempty"`
}

type recordDoc struct {
	ID         string       `bson:"id"`
	Title      sealed       `bson:"title"`
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
	d := recordDoc{ID: r.ID, Title: seal(r.Title), Kind: string(r.Kind), RecordedOn: r.RecordedOn, AddedAt: r.AddedAt}
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
		ID: r.ID, Title: r.Title.String(), Kind: domain.RecordKind(r.Kind), RecordedOn: utcPtr(r.RecordedOn), AddedAt: r.AddedAt.UTC(),
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
	ProposedTreatment sealed       `bson:"proposedTreatment,omitempty"`
	Questions         []sealed     `bson:"questions,omitempty"`
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
	DecisionNote     sealed    `bson:"decisionNote,omitempty"`
	CancelReason     sealed    `bson:"cancelReason,omitempty"`
	DueAt            time.Time `bson:"dueAt"`
	// RecordsCompleteAt is when the case entered TRIAGE: the SLA clock's
	// start (absent on cases older than the field, which keep their dueAt).
	RecordsCompleteAt *time.Time `bson:"recordsCompleteAt,omitempty"`
	SubmittedAt       time.Time  `bson:"submittedAt"`
	UpdatedAt         time.Time  `bson:"updatedAt"`
	DeliveredAt       *time.Time `bson:"deliveredAt,omitempty"`
	// Events are the latest domain.MaxEmbeddedEvents events; EventCount
	// counts them all (absent on a case older than the cap: then every
	// event is still embedded).
	Events     []eventDoc   `bson:"events"`
	EventCount int          `bson:"eventCount,omitempty"`
	Version    int          `bson:"version"`
	Clinical   *clinicalDoc `bson:"clinical,omitempty"`
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

// eventCount is how many events the case has had: a case older than the
// count embeds them all.
func (d *caseDoc) eventCount() int {
	if d.EventCount == 0 {
		return len(d.Events)
	}
	return d.EventCount
}

func toCase(d *caseDoc) *domain.Case {
	c := &domain.Case{
		EventCount: d.eventCount(),
		ID:         d.ID, Reference: d.Reference, Status: domain.CaseStatus(d.Status), PolicyID: d.PolicyID,
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
			Diagnosis:         d.Clinical.Diagnosis.toDomain(),
			ProposedTreatment: d.Clinical.ProposedTreatment.String(),
			Questions:         openAll(d.Clinical.Questions),
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

// fromConsents converts a case's consents to their stored form.
func fromConsents(cs []domain.Consent) []consentDoc {
	out := make([]consentDoc, 0, len(cs))
	for _, x := range cs {
		out = append(out, consentDoc{Kind: string(x.Kind), Active: x.Active, GrantedAt: x.GrantedAt, RevokedAt: x.RevokedAt})
	}
	return out
}

// CaseUpdate is what one move changes on a case. Lists replace the stored
// ones whole: the compare-and-set on version makes that safe.
type CaseUpdate struct {
	Status          *domain.CaseStatus
	SpecialistID    *string
	SpecialistOrgID *string
	// SpecialistAbroad: whether the (newly) assigned specialist is abroad.
	SpecialistAbroad *bool
	// PatientPseudonym is the patient's pseudonym for the assigned network
	// ("" when the specialist is not a partner network's).
	PatientPseudonym *string
	Consents         []domain.Consent
	Records          []domain.Record
	Decision         *domain.Decision
	DecisionNote     *string
	CancelReason     *string
	DeliveredAt      *time.Time
	// RecordsCompleteAt and DueAt restart the SLA clock when the case
	// enters TRIAGE.
	RecordsCompleteAt *time.Time
	DueAt             *time.Time
	// FollowUps replaces the follow-up questions whole.
	FollowUps []domain.FollowUp
	Outcome   *domain.Outcome
	Events    []domain.CaseEvent
}

// MutateCase applies one move to a case in p's scope. change sees the whole
// case (it never leaves the store) and returns the update; the update is
// written only if the case is still at the version change saw. With
// expectedVersion a stale case is CONFLICT before change runs; without, a
// lost race re-reads and runs change again. It returns the case as p may see it.
func (s *Store) MutateCase(ctx context.Context, p domain.Principal, id string, expectedVersion *int, change func(c *domain.Case) (CaseUpdate, error)) (*domain.Case, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("case")
	}
	var hold *caseHold
	defer func() { hold.end() }()
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "case")
		}
		hold.end()
		d, raw, h, err := s.readCaseToWrite(ctx, id)
		if err != nil {
			return nil, translate(err, "case")
		}
		hold = h
		cur := toCase(d)
		if !sc.allow(cur) {
			return nil, domain.ErrNotFound("case")
		}
		if expectedVersion != nil && *expectedVersion != cur.Version {
			return nil, domain.Errorf(domain.CodeConflict, "the case is at version %d, not %d", cur.Version, *expectedVersion)
		}
		up, err := change(cur)
		if errors.Is(err, ErrNoChange) {
			// Nothing to write: no event, no webhook, the version stays.
			return s.Case(ctx, p, id)
		}
		if err != nil {
			return nil, err
		}
		now := s.Now()
		set := bson.D{{Key: "updatedAt", Value: now}}
		if up.Status != nil {
			set = append(set, bson.E{Key: "status", Value: string(*up.Status)})
		}
		if up.SpecialistID != nil {
			set = append(set, bson.E{Key: "specialistId", Value: *up.SpecialistID})
		}
		if up.SpecialistOrgID != nil {
			set = append(set, bson.E{Key: "specialistOrgId", Value: *up.SpecialistOrgID})
		}
		if up.SpecialistAbroad != nil {
			set = append(set, bson.E{Key: "specialistAbroad", Value: *up.SpecialistAbroad})
		}
		if up.PatientPseudonym != nil {
			set = append(set, bson.E{Key: "patientPseudonym", Value: *up.PatientPseudonym})
		}
		if up.Consents != nil {
			cs := make([]consentDoc, 0, len(up.Consents))
			intl := false
			for _, x := range up.Consents {
				cs = append(cs, consentDoc{Kind: string(x.Kind), Active: x.Active, GrantedAt: x.GrantedAt, RevokedAt: x.RevokedAt})
				if x.Kind == domain.ConsentInternationalSharing && x.Active {
					intl = true
				}
			}
			set = append(set, bson.E{Key: "consents", Value: cs}, bson.E{Key: "intlConsent", Value: intl})
		}
		if up.Records != nil {
			rs := make([]recordDoc, 0, len(up.Records))
			for _, r := range up.Records {
				rs = append(rs, toRecordDoc(r, now))
			}
			set = append(set, bson.E{Key: "clinical.records", Value: rs})
		}
		if up.Decision != nil {
			set = append(set, bson.E{Key: "decision", Value: string(*up.Decision)})
		}
		if up.DecisionNote != nil {
			set = append(set, bson.E{Key: "decisionNote", Value: seal(*up.DecisionNote)})
		}
		if up.CancelReason != nil {
			set = append(set, bson.E{Key: "cancelReason", Value: seal(*up.CancelReason)})
		}
		if up.DeliveredAt != nil {
			set = append(set, bson.E{Key: "deliveredAt", Value: *up.DeliveredAt})
		}
		if up.RecordsCompleteAt != nil {
			set = append(set, bson.E{Key: "recordsCompleteAt", Value: *up.RecordsCompleteAt})
		}
		if up.DueAt != nil {
			set = append(set, bson.E{Key: "dueAt", Value: *up.DueAt})
		}
		if up.FollowUps != nil {
			set = append(set, bson.E{Key: "followUps", Value: fromFollowUps(up.FollowUps)})
		}
		if up.Outcome != nil {
			set = append(set, bson.E{Key: "outcome", Value: fromOutcome(*up.Outcome)})
		}
		var newEvents []eventDoc
		if len(up.Events) > 0 {
			events := append([]eventDoc{}, d.Events...)
			for _, e := range up.Events {
				ed := eventDoc{Type: e.Type, At: e.At, ActorRole: string(e.ActorRole), ActorSub: p.Subject}
				if ed.At.IsZero() {
					ed.At = now
				}
				if e.FromStatus != nil {
					ed.FromStatus = string(*e.FromStatus)
				}
				if e.ToStatus != nil {
					ed.ToStatus = string(*e.ToStatus)
				}
				events = append(events, ed)
				newEvents = append(newEvents, ed)
			}
			// The document keeps the latest events only; the event log
			// (case_events) keeps them all.
			if n := len(events) - domain.MaxEmbeddedEvents; n > 0 {
				events = events[n:]
			}
			set = append(set, bson.E{Key: "events", Value: events}, bson.E{Key: "eventCount", Value: d.eventCount() + len(up.Events)})
		}
		// An outbox left by an earlier write goes out before this write
		// replaces it.
		if len(d.Outbox) > 0 {
			if err := s.publish(ctx, id, d.Version, d.Outbox, d, caseListing.of(raw), hold.held()); err != nil {
				return nil, translate(err, "case events")
			}
		}
		after := applyCaseUpdate(d, up)
		after.Version = d.Version + 1
		outbox := outboxFor(after, newEvents)
		if len(outbox) > 0 {
			set = append(set, bson.E{Key: "outbox", Value: outbox})
		}
		// The case's list document as this write leaves it.
		listed := caseListing.after(raw, set, after.Version)
		// Every value is bound to its place in the case (sealed.go).
		update := bson.D{{Key: "$set", Value: bindSet(colCases, id, set)}}
		if len(outbox) == 0 && len(d.Outbox) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "outbox", Value: ""}}})
		}
		written, err := s.writeCase(ctx, hold, id, cur.Version, update, after, outbox, listed)
		if err != nil {
			return nil, translate(err, "case")
		}
		if written == nil {
			if expectedVersion != nil {
				return nil, domain.Errorf(domain.CodeConflict, "the case changed while it was being updated")
			}
			continue
		}
		return s.caseAsWritten(ctx, p, id, written)
	}
	return nil, errBusy("case")
}

// applyCaseUpdate returns the scope fields of d as up leaves them.
func applyCaseUpdate(d *caseDoc, up CaseUpdate) *caseDoc {
	after := *d
	after.Clinical, after.Events, after.Outbox = nil, nil, nil
	if up.Status != nil {
		after.Status = string(*up.Status)
	}
	if up.SpecialistID != nil {
		after.SpecialistID = *up.SpecialistID
	}
	if up.SpecialistOrgID != nil {
		after.SpecialistOrgID = *up.SpecialistOrgID
	}
	if up.SpecialistAbroad != nil {
		after.SpecialistAbroad = *up.SpecialistAbroad
	}
	if up.Consents != nil {
		after.IntlConsent = false
		for _, x := range up.Consents {
			if x.Kind == domain.ConsentInternationalSharing && x.Active {
				after.IntlConsent = true
			}
		}
	}
	// The outcome facts (outcomefacts.go) as the move leaves them.
	if up.DeliveredAt != nil {
		after.DeliveredAt = up.DeliveredAt
	}
	if up.RecordsCompleteAt != nil {
		after.RecordsCompleteAt = up.RecordsCompleteAt
	}
	if up.Outcome != nil {
		o := fromOutcome(*up.Outcome)
		after.Outcome = &o
	}
	return &after
}

// CaseContext is what the workflow needs to judge a move on a case it may
// not show: the patient's country and the policy's benefit.
type CaseContext struct {
	PatientCountry      string
	PolicyInternational bool
}

// CaseContextFor reads the patient's country and the policy's international
// benefit of a case (already read under the caller's scope).
func (s *Store) CaseContextFor(ctx context.Context, c *domain.Case) (CaseContext, error) {
	var out CaseContext
	pd, err := findByID[patientDoc](ctx, s, colPatients, c.PatientID, bson.D{{Key: "country", Value: 1}})
	if err != nil {
		return out, translate(err, "patient")
	}
	pol, err := findByID[policyDoc](ctx, s, colPolicies, c.PolicyID, bson.D{{Key: "benefit", Value: 1}})
	if err != nil {
		return out, translate(err, "policy")
	}
	out.PatientCountry = pd.Country
	out.PolicyInternational = pol.Benefit.International
	return out, nil
}
