package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Case events are persisted in their own collection with an increasing
// sequence, so every gateway replica sharing the database can tail them and
// fan them out to its subscribers and webhooks. Each event carries the case's
// scope fields as they were right after it, so a subscriber's visibility is
// judged per event.
//
// An event is never split from its change: the write that moves a case also
// stores the move's events in the case's outbox (one document, one write).
// They are then copied to case_events under a fresh sequence, with an _id
// fixed by the case, version and position (so a second copy is refused),
// and the outbox is cleared. If that copy fails or the process dies first,
// the outbox still holds the events: the case's next write, or the sweeper
// (PublishPendingEvents, at start and after any failed copy), publishes them.

// CaseEventRecord is one persisted case event.
type CaseEventRecord struct {
	// ID is "<case>@<version>.<position>" (an event stored before events
	// had a seq field has its number here instead: any keeps it readable).
	ID              any       `bson:"_id"`
	Seq             int64     `bson:"seq"`
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
	Abroad          bool      `bson:"specialistAbroad,omitempty"`
	Version         int       `bson:"version"`
	// Access is set on a DATA_ACCESSED_BY_NEW_ORGANIZATION event only.
	Access *AccessNotice `bson:"access,omitempty"`
}

// AccessNotice is what a first-read event tells: no PHI, only who read
// (the organisation's registered name and kind), which categories, and the
// case's reference.
type AccessNotice struct {
	Reference  string   `bson:"reference"`
	Org        string   `bson:"org"`
	OrgName    string   `bson:"orgName"`
	OrgKind    string   `bson:"orgKind"`
	Categories []string `bson:"categories"`
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

// VisibleTo reports whether p may see the event: the case as it was at
// this event, and for a first-read notice only the member whose data it is
// and the member's insurer.
func (r *CaseEventRecord) VisibleTo(p domain.Principal) bool {
	if r.Type == domain.EventDataAccessedByNewOrg {
		switch p.Role {
		case domain.RoleMember:
			return p.MemberKey() == r.PatientID
		case domain.RoleInsurer:
			return p.Org == r.InsurerID
		}
		return false
	}
	return r.CaseVisibleTo(p)
}

// CaseVisibleTo reports whether p may see the case as it was at this event.
func (r *CaseEventRecord) CaseVisibleTo(p domain.Principal) bool {
	c := &domain.Case{
		PatientID: r.PatientID, InsurerID: r.InsurerID, SpecialistID: r.SpecialistID,
		SpecialistOrgID: r.SpecialistOrgID, SpecialistAbroad: r.Abroad,
	}
	if r.IntlConsent {
		c.Consents = []domain.Consent{{Kind: domain.ConsentInternationalSharing, Active: true}}
	}
	return caseScope(p).allow(c)
}

// outboxFor builds the records of events written by the move from before
// to after (after.Version is the version the move writes).
func outboxFor(after *caseDoc, events []eventDoc) []CaseEventRecord {
	out := make([]CaseEventRecord, 0, len(events))
	for i, e := range events {
		out = append(out, CaseEventRecord{
			ID: fmt.Sprintf("%s@%d.%d", after.ID, after.Version, i), CaseID: after.ID, Type: e.Type, At: e.At,
			FromStatus: e.FromStatus, ToStatus: e.ToStatus, ActorRole: e.ActorRole, Status: after.Status,
			PatientID: after.PatientID, InsurerID: after.InsurerID, SpecialistID: after.SpecialistID,
			SpecialistOrgID: after.SpecialistOrgID, IntlConsent: after.IntlConsent, Abroad: after.SpecialistAbroad, Version: after.Version,
		})
	}
	return out
}

// publishOutbox copies the outbox of case id, written at version, to
// case_events, writes the case's list document, and clears the outbox
// (unless the case moved on meanwhile: its next write replaces the outbox
// anyway). A copy made before is left as it is. facts is the case as that
// version holds it, for its outcome facts; listed its list document.
func (s *Store) publishOutbox(ctx context.Context, id string, version int, recs []CaseEventRecord, facts *caseDoc, listed bson.D) error {
	return s.publish(ctx, id, version, recs, facts, listed, false)
}

// publish is publishOutbox; held says that the caller holds the case's
// lock (the embedded store's) since it wrote version, so that no other
// write of the case came between and the outbox is cleared without
// reading the version again.
func (s *Store) publish(ctx context.Context, id string, version int, recs []CaseEventRecord, facts *caseDoc, listed bson.D, held bool) error {
	if len(recs) == 0 {
		// A write without events has no outbox to retry it: a failed
		// copy waits for the case's next write or the next start.
		return s.writeListed(ctx, caseListing, id, listed)
	}
	if s.beforeWrite != nil {
		if err := s.beforeWrite(colCaseEvents, id); err != nil {
			s.outboxPending.Store(true)
			return err
		}
	}
	last, err := s.increment(ctx, "case-events", len(recs))
	if err != nil {
		s.outboxPending.Store(true)
		return err
	}
	docs := make([]any, 0, len(recs))
	for i, r := range recs {
		r.Seq = last - int64(len(recs)-1-i)
		docs = append(docs, r)
	}
	cctx, cancel := s.op(context.WithoutCancel(ctx))
	_, err = s.c(colCaseEvents).InsertMany(cctx, docs, options.InsertMany().SetOrdered(false))
	cancel()
	if err != nil && !allDuplicates(err) {
		s.outboxPending.Store(true)
		return fmt.Errorf("store: case events: %w", err)
	}
	// The facts statistics count follow the events that add them; a
	// failed refresh keeps the outbox, so the sweeper refreshes again.
	if slices.ContainsFunc(recs, factsEvent) {
		if err := s.writeCaseFacts(context.WithoutCancel(ctx), facts); err != nil {
			s.outboxPending.Store(true)
			return err
		}
	}
	if err := s.writeListed(context.WithoutCancel(ctx), caseListing, id, listed); err != nil {
		s.outboxPending.Store(true)
		return err
	}
	clear := func(ctx context.Context, filter bson.D) (int64, error) {
		res, err := s.c(colCases).UpdateOne(ctx, filter, bson.D{{Key: "$unset", Value: bson.D{{Key: "outbox", Value: ""}}}})
		if err != nil {
			return 0, err
		}
		return res.MatchedCount, nil
	}
	if held {
		err = s.heldWrite(ctx, colCases, id, func(ctx context.Context) error {
			_, err := clear(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		})
	} else {
		_, err = s.conditional(ctx, colCases, id, bson.D{{Key: "version", Value: version}}, clear)
	}
	if err != nil {
		s.outboxPending.Store(true) // published; only the clearing failed
	}
	return err
}

// allDuplicates reports whether every error of a bulk insert is a
// duplicate key: the records were copied before.
func allDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(we) && !isDuplicate(we) {
				return false
			}
		}
		return true
	}
	return isDuplicate(err)
}

// PublishPendingEvents publishes every case's outbox left by a failed copy
// or a process that stopped between a case's write and its events' copy. It
// runs at start, and again (see PendingEvents) after a copy failed.
func (s *Store) PublishPendingEvents(ctx context.Context) error {
	s.outboxPending.Store(false)
	noticeErr := s.publishPendingAccessNotices(ctx)
	if noticeErr != nil {
		s.outboxPending.Store(true)
	}
	// The whole case but its clinical part and history: its outcome facts
	// and list document are made from it.
	docs, err := findAllStored[caseDoc](ctx, s, colCases, bson.D{{Key: "outbox", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetProjection(bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}, {Key: "followUps", Value: 0}}))
	if err != nil {
		s.outboxPending.Store(true)
		return errors.Join(translate(err, "cases"), noticeErr)
	}
	var errs []error
	for _, x := range docs {
		d := x.doc
		if err := s.publishOutbox(ctx, d.ID, d.Version, d.Outbox, d, caseListing.of(x.raw)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, noticeErr)...)
}

// PendingEvents reports whether a copy of events failed since the last
// PublishPendingEvents.
func (s *Store) PendingEvents() bool { return s.outboxPending.Load() }

// CaseEventsAfter returns persisted events with a sequence above seq, oldest
// first. It is not scoped: the subscription hub filters each event by its
// subscriber's principal before anything is sent.
func (s *Store) CaseEventsAfter(ctx context.Context, seq int64, limit int) ([]*CaseEventRecord, error) {
	docs, err := findAll[CaseEventRecord](ctx, s, colCaseEvents, bson.D{{Key: "seq", Value: bson.D{{Key: "$gt", Value: seq}}}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	return docs, translate(err, "case events")
}

// LastCaseEventSeq returns the highest sequence written so far.
func (s *Store) LastCaseEventSeq(ctx context.Context) (int64, error) {
	docs, err := findAll[CaseEventRecord](ctx, s, colCaseEvents, bson.D{},
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(1).SetProjection(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return 0, translate(err, "case events")
	}
	if len(docs) == 0 {
		return 0, nil
	}
	return docs[0].Seq, nil
}

// CaseHistory returns one page of the whole history of case id, oldest
// first, from the event log, and how many events the case has had; the
// case must be in p's scope, else NOT_FOUND. The cursor is an event's
// position, "<version>.<index>". Events are read by their _id
// (<case>@<version>.<index>), which the embedded store looks up directly,
// so no read decodes the event log: a version that wrote no event costs one
// empty lookup. Events of the case's last write not yet copied from its
// outbox (a failed copy, until the sweeper retries) are in Case.events.
func (s *Store) CaseHistory(ctx context.Context, p domain.Principal, id string, pg Page) ([]*domain.LoggedCaseEvent, bool, int, error) {
	c, err := s.CaseWith(ctx, p, id, CaseView{})
	if err != nil {
		return nil, false, 0, err
	}
	version, index := 1, 0
	if pg.After != "" {
		if _, err := fmt.Sscanf(pg.After, "%d.%d", &version, &index); err != nil || version < 1 || index < 0 {
			return nil, false, 0, domain.Errorf(domain.CodeBadUserInput, "after is not a cursor of this history")
		}
		index++
	}
	var out []*domain.LoggedCaseEvent
	for version <= c.Version && len(out) <= pg.First {
		rec, err := findByID[CaseEventRecord](ctx, s, colCaseEvents, fmt.Sprintf("%s@%d.%d", id, version, index), nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			version, index = version+1, 0
			continue
		}
		if err != nil {
			return nil, false, 0, translate(err, "case events")
		}
		out = append(out, &domain.LoggedCaseEvent{CaseEvent: rec.Event(), Position: fmt.Sprintf("%d.%d", version, index)})
		index++
	}
	more := len(out) > pg.First
	if more {
		out = out[:pg.First]
	}
	return out, more, c.EventCount, nil
}
