package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
)

// SaveOpinionDraft creates or replaces the draft opinion of case c, which the
// workflow read under p's scope and found in review. A delivered opinion is
// frozen: replacing it is INVALID_TRANSITION.
func (s *Store) SaveOpinionDraft(ctx context.Context, p domain.Principal, c *domain.Case, content domain.OpinionContent) (*domain.Opinion, error) {
	if !caseScope(p).allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	id := OpinionIDForCase(c.ID)
	cd := toOpinionContentDoc(content)
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "opinion")
		}
		cur, err := findByID[opinionDoc](ctx, s, colOpinions, id, bson.D{{Key: "content", Value: 0}})
		if errors.Is(err, mongo.ErrNoDocuments) {
			d := opinionDoc{
				ID: id, CaseID: c.ID, SpecialistID: c.SpecialistID, OrgID: c.SpecialistOrgID, PatientID: c.PatientID,
				InsurerID: c.InsurerID, Status: string(domain.OpinionDraft), UpdatedAt: s.Now(), Content: &cd, Version: 1,
			}
			cctx, cancel := s.op(ctx)
			_, err = s.c(colOpinions).InsertOne(cctx, d)
			cancel()
			if err == nil {
				return s.Opinion(ctx, p, id)
			}
			if isDuplicate(err) {
				continue // created concurrently: update it instead
			}
			return nil, translate(err, "opinion")
		}
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if cur.Status == string(domain.OpinionDelivered) {
			return nil, domain.Errorf(domain.CodeInvalidTransition, "the opinion was delivered and is frozen")
		}
		ok, err := s.casUpdate(ctx, colOpinions, id, cur.Version, bson.D{
			{Key: "specialistId", Value: c.SpecialistID}, {Key: "orgId", Value: c.SpecialistOrgID},
			{Key: "content", Value: cd}, {Key: "updatedAt", Value: s.Now()},
		})
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if ok {
			return s.Opinion(ctx, p, id)
		}
	}
	return nil, errBusy("opinion")
}

// opinionState reports whether case caseID has an opinion and whether it
// is delivered.
func (s *Store) opinionState(ctx context.Context, caseID string) (exists, delivered bool, err error) {
	d, err := findByID[opinionDoc](ctx, s, colOpinions, OpinionIDForCase(caseID), bson.D{{Key: "status", Value: 1}})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, false, nil
	}
	if err != nil {
		return false, false, translate(err, "opinion")
	}
	return true, d.Status == string(domain.OpinionDelivered), nil
}

// OpinionState tells the workflow whether a case has a draft or a delivered
// opinion; the case must already have been read under the caller's scope.
func (s *Store) OpinionState(ctx context.Context, p domain.Principal, c *domain.Case) (exists, delivered bool, err error) {
	if !caseScope(p).allow(c) {
		return false, false, domain.ErrNotFound("case")
	}
	return s.opinionState(ctx, c.ID)
}

// FreezeOpinion marks a case's draft delivered at the given time and, with
// sign, stores the service's signature over exactly the content frozen (in
// the same compare-and-set); freezing a delivered one is a no-op, so a
// retried delivery completes.
func (s *Store) FreezeOpinion(ctx context.Context, p domain.Principal, c *domain.Case, at time.Time, sign SignFunc) (*domain.Opinion, error) {
	if !caseScope(p).allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	id := OpinionIDForCase(c.ID)
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "opinion")
		}
		cur, err := findByID[opinionDoc](ctx, s, colOpinions, id, nil)
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if cur.Status == string(domain.OpinionDelivered) {
			return s.Opinion(ctx, p, id)
		}
		set := bson.D{
			{Key: "status", Value: string(domain.OpinionDelivered)}, {Key: "deliveredAt", Value: at}, {Key: "updatedAt", Value: at},
		}
		if sign != nil {
			o := toOpinion(cur)
			o.Status, o.DeliveredAt = domain.OpinionDelivered, &at
			sig, err := sign(o)
			if err != nil {
				return nil, err
			}
			set = append(set, bson.E{Key: "signature", Value: fromSignature(sig)})
		}
		ok, err := s.casUpdate(ctx, colOpinions, id, cur.Version, set)
		if err != nil {
			return nil, translate(err, "opinion")
		}
		if ok {
			return s.Opinion(ctx, p, id)
		}
	}
	return nil, errBusy("opinion")
}
