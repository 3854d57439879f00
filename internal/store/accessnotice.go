package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// First reads by a new organisation (issue 17, item 2).
//
// The first time an organisation other than the member's insurer and the
// operator reads a member's data, the case event
// DATA_ACCESSED_BY_NEW_ORGANIZATION goes to the member's subscription and
// the insurer's webhooks, through case_events like any case event.
//
// "First" is decided by an insert, never by a read and a write back:
// access_orgs holds one document per (member, organisation), its _id fixed
// by the pair, inserted by AppendAudit with the audit batch that carried
// the read. Of any number of batches, in any number of gateway processes,
// that see a pair first, exactly one insert succeeds; the others get a
// duplicate key and know the pair was seen. Pairs this process has already
// seen are remembered, so a batch of known pairs (the usual case) costs no
// database call at all, and a new pair costs one insert.
//
// The notice is a case event whose _id is fixed by the pair, so a second
// copy is refused; the pair's document stays pending until the notice is
// stored, and PublishPendingEvents (at start, and after a failed copy)
// publishes what a failure or a crash left pending: once per pair, whatever
// fails.

type accessOrgDoc struct {
	ID         string    `bson:"_id"`
	Member     string    `bson:"member"`
	Org        string    `bson:"org"`
	Role       string    `bson:"role"`
	CaseID     string    `bson:"caseId"`
	Categories []string  `bson:"categories"`
	At         time.Time `bson:"at"`
	// Pending is set until the notice is in case_events.
	Pending bool `bson:"pending,omitempty"`
}

// maxSeenPairs bounds the pairs a process remembers; past it the memory
// starts over (a forgotten pair costs one refused insert).
const maxSeenPairs = 200_000

// accessPairID is the _id of a (member, organisation) pair.
func accessPairID(member, org string) string {
	h := sha256.Sum256([]byte(member + "\x00" + org))
	return hex.EncodeToString(h[:16])
}

// firstReadCandidates are the (member, organisation) pairs of a batch that
// would be a first read: reads that showed a member's data, by an
// organisation other than the member's insurer and the operator, reached
// through a case (the notice names it; a read without one waits for the
// organisation's next read through a case). Categories are every category
// the organisation read of the member in the batch.
func firstReadCandidates(events []domain.AuditEvent) []accessOrgDoc {
	byID := map[string]int{}
	var out []accessOrgDoc
	cats := map[string][]string{}
	for _, e := range events {
		if e.Outcome != "ALLOWED" || e.PatientID == "" {
			continue
		}
		insurer, _ := domain.SplitMemberKey(e.PatientID)
		if !domain.NotifiesFirstRead(e.Role, e.Org, insurer) {
			continue
		}
		cat, ok := domain.CategoryOf(e.ResourceType, e.FieldGroup)
		if !ok {
			continue
		}
		id := accessPairID(e.PatientID, e.Org)
		if !slices.Contains(cats[id], string(cat)) {
			cats[id] = append(cats[id], string(cat))
		}
		at := e.At.UTC().Truncate(time.Millisecond)
		if i, ok := byID[id]; ok {
			if out[i].CaseID == "" && e.CaseID != "" {
				out[i].CaseID, out[i].Role = e.CaseID, string(e.Role)
			}
			if at.Before(out[i].At) {
				out[i].At = at
			}
			continue
		}
		byID[id] = len(out)
		out = append(out, accessOrgDoc{ID: id, Member: e.PatientID, Org: e.Org, Role: string(e.Role), CaseID: e.CaseID, At: at, Pending: true})
	}
	kept := out[:0]
	for _, d := range out {
		if d.CaseID == "" {
			continue
		}
		d.Categories = cats[d.ID]
		slices.Sort(d.Categories)
		kept = append(kept, d)
	}
	return kept
}

// maxUnclaimed bounds the pairs a process keeps for a retried claim; past
// it a pair waits for its organisation's next read.
const maxUnclaimed = 10_000

// claimFirstReads inserts the batch's candidate pairs this process has not
// seen, with any pair whose claim failed before, and returns those it
// inserted: the first reads. A pair whose insert failed, or may have, is
// kept for the next claim (the next batch, or the sweeper); one that landed
// after all is then a duplicate, and its pending mark brings its notice
// out through the sweeper. The caller holds appendMu (it guards seenPairs
// and unclaimed).
func (s *Store) claimFirstReads(ctx context.Context, events []domain.AuditEvent) ([]accessOrgDoc, error) {
	var fresh []accessOrgDoc
	for _, d := range firstReadCandidates(events) {
		if _, ok := s.seenPairs[d.ID]; !ok {
			if _, retry := s.unclaimed[d.ID]; !retry {
				fresh = append(fresh, d)
			}
		}
	}
	for _, d := range s.unclaimed {
		fresh = append(fresh, d)
	}
	clear(s.unclaimed)
	return s.claimPairs(ctx, fresh)
}

// claimPairs inserts pairs and returns those it inserted; the caller holds
// appendMu. Every pair whose insert failed is kept in unclaimed, and the
// sweeper is told to run.
func (s *Store) claimPairs(ctx context.Context, fresh []accessOrgDoc) ([]accessOrgDoc, error) {
	if len(fresh) == 0 {
		return nil, nil
	}
	docs := make([]any, len(fresh))
	for i, d := range fresh {
		docs[i] = d
	}
	ictx, cancel := s.op(ctx)
	defer cancel()
	var err error
	if s.beforeWrite != nil {
		err = s.beforeWrite(colAccessOrgs, fresh[0].ID)
	}
	if err == nil {
		_, err = s.c(colAccessOrgs).InsertMany(ictx, docs, options.InsertMany().SetOrdered(false))
	}
	seen, failed := map[int]bool{}, map[int]bool{}
	if err != nil {
		var bwe mongo.BulkWriteException
		switch {
		case errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0:
			for _, we := range bwe.WriteErrors {
				if mongo.IsDuplicateKeyError(we) || isDuplicate(we) {
					seen[we.Index] = true
				} else {
					failed[we.Index] = true
				}
			}
		case isDuplicate(err) && len(fresh) == 1:
			seen[0] = true
		default:
			// Whether any landed is unknown: retry them all.
			for i := range fresh {
				failed[i] = true
			}
		}
	}
	if len(s.seenPairs) > maxSeenPairs {
		clear(s.seenPairs)
	}
	if s.unclaimed == nil {
		s.unclaimed = map[string]accessOrgDoc{}
	}
	first := fresh[:0]
	for i, d := range fresh {
		switch {
		case failed[i]:
			if len(s.unclaimed) < maxUnclaimed {
				s.unclaimed[d.ID] = d
			}
		case seen[i]:
			s.seenPairs[d.ID] = struct{}{}
		default:
			s.seenPairs[d.ID] = struct{}{}
			first = append(first, d)
		}
	}
	if len(failed) > 0 {
		s.outboxPending.Store(true)
		return first, fmt.Errorf("store: claiming first reads: %w", err)
	}
	return first, nil
}

// retryClaims claims again the pairs whose claim failed (the sweeper).
func (s *Store) retryClaims(ctx context.Context) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	fresh := make([]accessOrgDoc, 0, len(s.unclaimed))
	for _, d := range s.unclaimed {
		fresh = append(fresh, d)
	}
	clear(s.unclaimed)
	// Those inserted now are pending: the scan that follows publishes them.
	_, err := s.claimPairs(ctx, fresh)
	return err
}

// publishAccessNotices stores the notices of first reads as case events
// (each _id fixed by its pair: a second copy is refused) and clears the
// pending marks of the pairs it published. One batch costs a read of its
// cases and of its organisations, one sequence increment and one insert,
// whatever its size; then one update clears the marks (one per pair on the
// embedded store). A pair whose case is not found stays pending: its notice
// is published by a later sweep (at start, or after any failed copy), not
// dropped. It does not itself ask for a sweep, which would retry every few
// seconds a case that may never come back.
func (s *Store) publishAccessNotices(ctx context.Context, pairs []accessOrgDoc) error {
	if len(pairs) == 0 {
		return nil
	}
	caseIDs, orgIDs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, d := range pairs {
		caseIDs[i], orgIDs[i] = d.CaseID, d.Org
	}
	cases, err := findByIDs[caseDoc](ctx, s, colCases, caseIDs, bson.D{
		{Key: "reference", Value: 1}, {Key: "status", Value: 1}, {Key: "patientId", Value: 1}, {Key: "insurerId", Value: 1},
		{Key: "specialistId", Value: 1}, {Key: "specialistOrgId", Value: 1}, {Key: "intlConsent", Value: 1},
		{Key: "specialistAbroad", Value: 1}, {Key: "version", Value: 1},
	})
	if err != nil {
		return err
	}
	orgs, err := findByIDs[orgDoc](ctx, s, colOrgs, orgIDs, bson.D{{Key: "name", Value: 1}, {Key: "kind", Value: 1}})
	if err != nil {
		return err
	}
	byCase := make(map[string]*caseDoc, len(cases))
	for _, c := range cases {
		byCase[c.ID] = c
	}
	byOrg := make(map[string]*orgDoc, len(orgs))
	for _, o := range orgs {
		byOrg[o.ID] = o
	}
	var recs []CaseEventRecord
	published := make([]accessOrgDoc, 0, len(pairs))
	for _, d := range pairs {
		c := byCase[d.CaseID]
		if c == nil {
			continue // nothing to announce it with: it stays pending
		}
		published = append(published, d)
		name, kind := d.Org, string(domain.OrgKindOf(domain.Role(d.Role)))
		if o := byOrg[d.Org]; o != nil {
			name, kind = o.Name, o.Kind
		}
		recs = append(recs, CaseEventRecord{
			ID: "access:" + d.ID, CaseID: d.CaseID, Type: domain.EventDataAccessedByNewOrg, At: d.At,
			ActorRole: d.Role, Status: c.Status, PatientID: c.PatientID, InsurerID: c.InsurerID, SpecialistID: c.SpecialistID,
			SpecialistOrgID: c.SpecialistOrgID, IntlConsent: c.IntlConsent, Abroad: c.SpecialistAbroad, Version: c.Version,
			Access: &AccessNotice{Reference: c.Reference, Org: d.Org, OrgName: name, OrgKind: kind, Categories: d.Categories},
		})
	}
	if len(recs) > 0 {
		if s.beforeWrite != nil {
			if err := s.beforeWrite(colCaseEvents, recs[0].ID.(string)); err != nil {
				return err
			}
		}
		last, err := s.increment(ctx, "case-events", len(recs))
		if err != nil {
			return err
		}
		docs := make([]any, len(recs))
		for i, r := range recs {
			r.Seq = last - int64(len(recs)-1-i)
			docs[i] = r
		}
		ictx, cancel := s.op(context.WithoutCancel(ctx))
		_, err = s.c(colCaseEvents).InsertMany(ictx, docs, options.InsertMany().SetOrdered(false))
		cancel()
		if err != nil && !allDuplicates(err) {
			return err
		}
	}
	if !s.serialWrites {
		// MongoDB: one command; on the embedded store an $in filter would
		// decode the whole collection, so there each pair is one write by _id.
		if len(published) == 0 {
			return nil
		}
		ids := make([]string, len(published))
		for i, d := range published {
			ids[i] = d.ID
		}
		uctx, cancel := s.op(ctx)
		defer cancel()
		_, err := s.c(colAccessOrgs).UpdateMany(uctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}})
		return err
	}
	for _, d := range published {
		err := s.locked(ctx, colAccessOrgs, d.ID, func(ctx context.Context) error {
			_, err := s.c(colAccessOrgs).UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
				bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// publishFirstReads publishes the notices of first reads; what fails is
// left pending for PublishPendingEvents. The audit batch that found them
// does not fail: the reads are recorded, only their notice is late.
func (s *Store) publishFirstReads(ctx context.Context, first []accessOrgDoc) {
	if err := s.publishAccessNotices(ctx, first); err != nil {
		s.outboxPending.Store(true)
		slog.Default().Warn("access notices: publishing failed; the sweeper retries", "error", domain.Scrub(err.Error()))
	}
}

// publishPendingAccessNotices claims again the pairs whose claim failed,
// then publishes every notice a failure or a crash left pending.
func (s *Store) publishPendingAccessNotices(ctx context.Context) error {
	claimErr := s.retryClaims(ctx)
	docs, err := findAll[accessOrgDoc](ctx, s, colAccessOrgs, bson.D{{Key: "pending", Value: true}}, options.Find())
	if err != nil {
		return errors.Join(translate(claimErr, "access notices"), translate(err, "access notices"))
	}
	pairs := make([]accessOrgDoc, len(docs))
	for i, d := range docs {
		pairs[i] = *d
	}
	return errors.Join(translate(claimErr, "access notices"), translate(s.publishAccessNotices(ctx, pairs), "access notices"))
}
