package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Outcome facts: one small document per case (same _id) holding exactly
// what outcome statistics count, so statistics read a collection of tiny
// documents instead of the cases and opinions. On the embedded store any
// filter but {_id} decodes the whole collection: reading the cases (with
// their events, records and follow-ups) and the opinions (with their
// content) for 2,000 cases took over a second; the facts decode in a few
// milliseconds.
//
// Every fact is written once and never changes after (a case's insurer,
// specialty and submission; when its records were complete; when its
// opinion was delivered and with which assessment; the member's outcome),
// so a refresh only ever $sets facts that are present: two refreshes in any
// order leave the same document, and a late one never takes a fact back.
//
// The case's facts are written when its events are published (events.go),
// from the case as the write that made the events left it:
// every write that adds a fact (submission, TRIAGE, delivery, outcome)
// writes an event, and an outbox left by a crash is published by the
// sweeper, so the facts catch up with it. The assessment is written when
// the opinion is frozen; a delivered case whose facts lack it (a crash
// between the freeze and that write) is completed from its opinion when
// statistics read it.

type outcomeFactsDoc struct {
	ID                string     `bson:"_id"`
	InsurerID         string     `bson:"insurerId"`
	Specialty         string     `bson:"specialty"`
	SubmittedAt       time.Time  `bson:"submittedAt"`
	RecordsCompleteAt *time.Time `bson:"recordsCompleteAt,omitempty"`
	DeliveredAt       *time.Time `bson:"deliveredAt,omitempty"`
	Assessment        string     `bson:"assessment,omitempty"`
	TreatmentChanged  *bool      `bson:"treatmentChanged,omitempty"`
	Satisfaction      *int       `bson:"satisfaction,omitempty"`
}

// factsFields are the case fields a refresh reads.
var factsFields = bson.D{
	{Key: "insurerId", Value: 1}, {Key: "specialty", Value: 1}, {Key: "submittedAt", Value: 1},
	{Key: "recordsCompleteAt", Value: 1}, {Key: "deliveredAt", Value: 1}, {Key: "outcome", Value: 1},
}

// caseFactsSet returns the $set of the facts case d holds.
func caseFactsSet(d *caseDoc) bson.D {
	set := bson.D{
		{Key: "insurerId", Value: d.InsurerID}, {Key: "specialty", Value: d.Specialty}, {Key: "submittedAt", Value: d.SubmittedAt},
	}
	if d.RecordsCompleteAt != nil {
		set = append(set, bson.E{Key: "recordsCompleteAt", Value: *d.RecordsCompleteAt})
	}
	if d.DeliveredAt != nil {
		set = append(set, bson.E{Key: "deliveredAt", Value: *d.DeliveredAt})
	}
	if o := d.Outcome; o != nil {
		if o.TreatmentChanged != nil {
			set = append(set, bson.E{Key: "treatmentChanged", Value: *o.TreatmentChanged})
		}
		if o.Satisfaction != nil {
			set = append(set, bson.E{Key: "satisfaction", Value: *o.Satisfaction})
		}
	}
	return set
}

// setFacts $sets facts on case id's facts document, creating it.
func (s *Store) setFacts(ctx context.Context, id string, set bson.D) error {
	return s.locked(ctx, colOutcomeFacts, id, func(ctx context.Context) error {
		_, err := s.c(colOutcomeFacts).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
			options.UpdateOne().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("store: outcome facts: %w", err)
		}
		return nil
	})
}

// factsEvent reports whether an event may have added a fact to its case.
func factsEvent(r CaseEventRecord) bool {
	switch domain.CaseStatus(r.ToStatus) {
	case domain.StatusSubmitted, domain.StatusTriage, domain.StatusOpinionDelivered, domain.StatusClosed:
		return true
	}
	return r.Type == "OUTCOME_RECORDED"
}

// setAssessmentFact records the delivered opinion's diagnosis assessment
// in its case's facts.
func (s *Store) setAssessmentFact(ctx context.Context, caseID string, a string) error {
	if a == "" {
		return nil
	}
	return s.setFacts(ctx, caseID, bson.D{{Key: "assessment", Value: a}})
}

// MigrateOutcomeFacts builds the facts of every case stored before facts
// existed: once (a marker in counters records that it ran to its end), with
// one read of the cases and of the delivered opinions. Later writes keep
// the facts themselves; running it twice only $sets the same facts again.
func (s *Store) MigrateOutcomeFacts(ctx context.Context) error {
	const marker = "migration:outcome-facts"
	if _, err := findByID[counterDoc](ctx, s, colCounters, marker, nil); err == nil {
		return nil
	} else if !errors.Is(err, mongo.ErrNoDocuments) {
		return translate(err, "counters")
	}
	cases, err := findAll[caseDoc](ctx, s, colCases, bson.D{}, options.Find().SetProjection(factsFields))
	if err != nil {
		return translate(err, "cases")
	}
	ops, err := findAll[opinionDoc](ctx, s, colOpinions, bson.D{{Key: "status", Value: string(domain.OpinionDelivered)}},
		options.Find().SetProjection(bson.D{{Key: "caseId", Value: 1}, {Key: "content.diagnosisAssessment", Value: 1}}))
	if err != nil {
		return translate(err, "opinions")
	}
	assessment := make(map[string]string, len(ops))
	for _, o := range ops {
		if o.Content != nil {
			assessment[o.CaseID] = o.Content.DiagnosisAssessment
		}
	}
	for _, c := range cases {
		set := caseFactsSet(c)
		if a := assessment[c.ID]; a != "" {
			set = append(set, bson.E{Key: "assessment", Value: a})
		}
		if err := s.setFacts(ctx, c.ID, set); err != nil {
			return err
		}
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colCounters).InsertOne(cctx, counterDoc{ID: marker, Seq: int64(len(cases))}); err != nil && !isDuplicate(err) {
		return translate(err, "counters")
	}
	return nil
}

// StatsFilter narrows the rows outcome statistics are computed from.
type StatsFilter struct {
	From, To  time.Time
	InsurerID string
	Specialty string
}

// StatsRow is one case as outcome statistics read it: no identity, no
// clinical text.
type StatsRow struct {
	InsurerID         string
	Specialty         string
	SubmittedAt       time.Time
	RecordsCompleteAt *time.Time
	DeliveredAt       *time.Time
	Assessment        domain.DiagnosisAssessment
	TreatmentChanged  *bool
	Satisfaction      *int
}

// StatsRows returns the cases submitted or delivered in [From, To) of the
// filter, from their outcome facts (statistics are aggregate only; the
// workflow decides who may ask).
func (s *Store) StatsRows(ctx context.Context, f StatsFilter) ([]StatsRow, error) {
	window := bson.D{{Key: "$gte", Value: f.From}, {Key: "$lt", Value: f.To}}
	filter := bson.D{}
	if f.InsurerID != "" {
		filter = append(filter, bson.E{Key: "insurerId", Value: f.InsurerID})
	}
	if f.Specialty != "" {
		filter = append(filter, bson.E{Key: "specialty", Value: f.Specialty})
	}
	filter = append(filter, bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "submittedAt", Value: window}}, bson.D{{Key: "deliveredAt", Value: window}},
	}})
	facts, err := findAll[outcomeFactsDoc](ctx, s, colOutcomeFacts, filter, nil)
	if err != nil {
		return nil, translate(err, "outcome facts")
	}
	out := make([]StatsRow, 0, len(facts))
	for _, d := range facts {
		if d.DeliveredAt != nil && d.Assessment == "" {
			if d.Assessment, err = s.healAssessment(ctx, d.ID); err != nil {
				return nil, err
			}
		}
		out = append(out, StatsRow{
			InsurerID: d.InsurerID, Specialty: d.Specialty, SubmittedAt: d.SubmittedAt.UTC(),
			RecordsCompleteAt: utcPtr(d.RecordsCompleteAt), DeliveredAt: utcPtr(d.DeliveredAt),
			Assessment: domain.DiagnosisAssessment(d.Assessment), TreatmentChanged: d.TreatmentChanged, Satisfaction: d.Satisfaction,
		})
	}
	return out, nil
}

// healAssessment reads the assessment of case caseID's opinion when it is
// delivered (a write of its facts was lost, or the freeze is under way)
// and records it in the facts.
func (s *Store) healAssessment(ctx context.Context, caseID string) (string, error) {
	o, err := findByID[opinionDoc](ctx, s, colOpinions, OpinionIDForCase(caseID),
		bson.D{{Key: "status", Value: 1}, {Key: "content.diagnosisAssessment", Value: 1}})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", translate(err, "opinion")
	}
	if o.Status != string(domain.OpinionDelivered) || o.Content == nil {
		return "", nil
	}
	a := o.Content.DiagnosisAssessment
	if err := s.setAssessmentFact(ctx, caseID, a); err != nil {
		return "", err
	}
	return a, nil
}
