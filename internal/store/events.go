package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Case events are persisted in their own collection with an increasing
// sequence, so every gateway replica sharing the database can tail them and
// fan them out to its subscribers (and, later, to webhooks). Each event
// carries the case's scope fields as they were right after it, so a
// subscriber's visibility is judged per event.

// CaseEventRecord is one persisted case event.
type CaseEventRecord struct {
	Seq             int64     `bson:"_id"`
	CaseID          string    `bson:"caseId"`
	Type            string    `bson:"type"`
	At              time.Time `bson:"at"`
	FromStatus      string    `bson:"fromStatus,omitempty"`
	ToStatus        string    `bson:"toStatus,omitempty"`
	ActorRole       string    `bson:"actorRole"`
	Status          string    `bson:"status"`
	PatientID       string    `bson:"patientId"`
	InsurerID       string    `bson:"insurerId"`
	SpecialistID    string    `bson:"specialistId,omitempty"`
	SpecialistOrgID string    `bson:"specialistOrgId,omitempty"`
	IntlConsent     bool      `bson:"intlConsent"`
	Version         int       `bson:"version"`
}

// Event returns the record as a domain case event.
func (r *CaseEventRecord) Event() domain.CaseEvent {
	ev := domain.CaseEvent{Type: r.Type, At: r.At.UTC(), ActorRole: domain.Role(r.ActorRole)}
	if r.FromStatus != "" {
		s := domain.CaseStatus(r.FromStatus)
		ev.FromStatus = &s
	}
	if r.ToStatus != "" {
		s := domain.CaseStatus(r.ToStatus)
		ev.ToStatus = &s
	}
	return ev
}

// VisibleTo reports whether p may see the case as it was at this event.
func (r *CaseEventRecord) VisibleTo(p domain.Principal) bool {
	c := &domain.Case{
		PatientID: r.PatientID, InsurerID: r.InsurerID, SpecialistID: r.SpecialistID,
		SpecialistOrgID: r.SpecialistOrgID,
	}
	if r.IntlConsent {
		c.Consents = []domain.Consent{{Kind: domain.ConsentInternationalSharing, Active: true}}
	}
	return caseScope(p).allow(c)
}

func (s *Store) publish(ctx context.Context, before *caseDoc, up CaseUpdate, events []eventDoc) error {
	if len(events) == 0 {
		return nil
	}
	after := *before
	if up.Status != nil {
		after.Status = string(*up.Status)
	}
	if up.SpecialistID != nil {
		after.SpecialistID = *up.SpecialistID
	}
	if up.SpecialistOrgID != nil {
		after.SpecialistOrgID = *up.SpecialistOrgID
	}
	if up.Consents != nil {
		after.IntlConsent = false
		for _, x := range up.Consents {
			if x.Kind == domain.ConsentInternationalSharing && x.Active {
				after.IntlConsent = true
			}
		}
	}
	docs := make([]any, 0, len(events))
	for _, e := range events {
		seq, err := s.nextSeq(ctx, "case-events")
		if err != nil {
			return err
		}
		docs = append(docs, CaseEventRecord{
			Seq: seq, CaseID: before.ID, Type: e.Type, At: e.At, FromStatus: e.FromStatus, ToStatus: e.ToStatus,
			ActorRole: e.ActorRole, Status: after.Status, PatientID: after.PatientID, InsurerID: after.InsurerID,
			SpecialistID: after.SpecialistID, SpecialistOrgID: after.SpecialistOrgID, IntlConsent: after.IntlConsent,
			Version: before.Version + 1,
		})
	}
	return s.insertMany(ctx, colCaseEvents, docs)
}

// PublishNewCase records the SUBMITTED event of a new case.
func (s *Store) PublishNewCase(ctx context.Context, c *domain.Case) error {
	d := fromCase(c)
	seq, err := s.nextSeq(ctx, "case-events")
	if err != nil {
		return err
	}
	return s.insertMany(ctx, colCaseEvents, []any{CaseEventRecord{
		Seq: seq, CaseID: c.ID, Type: "SUBMITTED", At: c.SubmittedAt, ToStatus: d.Status,
		ActorRole: d.Events[0].ActorRole, Status: d.Status, PatientID: d.PatientID, InsurerID: d.InsurerID,
		Version: d.Version,
	}})
}

func (s *Store) nextSeq(ctx context.Context, name string) (int64, error) {
	return s.increment(ctx, name)
}

// CaseEventsAfter returns persisted events with a sequence above seq, oldest
// first. It is not scoped: the subscription hub filters each event by its
// subscriber's principal before anything is sent.
func (s *Store) CaseEventsAfter(ctx context.Context, seq int64, limit int) ([]*CaseEventRecord, error) {
	docs, err := findAll[CaseEventRecord](ctx, s, colCaseEvents, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: seq}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	return docs, translate(err, "case events")
}

// LastCaseEventSeq returns the highest sequence written so far.
func (s *Store) LastCaseEventSeq(ctx context.Context) (int64, error) {
	docs, err := findAll[CaseEventRecord](ctx, s, colCaseEvents, bson.D{},
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(1).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, translate(err, "case events")
	}
	if len(docs) == 0 {
		return 0, nil
	}
	return docs[0].Seq, nil
}
