package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// After the opinion: follow-ups and outcomes live on the case (written by
// MutateCase with their events, so limits hold under the case's
// compare-and-set); the signature lives on the opinion.

type followUpDoc struct {
	ID         string     `bson:"id"`
	Question   sealed     `bson:"question"`
	AskedAt    time.Time  `bson:"askedAt"`
	Answer     *sealed    `bson:"answer,omitempty"`
	AnsweredAt *time.Time `bson:"answeredAt,omitempty"`
	DueAt      time.Time  `bson:"dueAt"`
}

type outcomeDoc struct {
	Decision         string    `bson:"decision"`
	TreatmentChanged *bool     `bson:"treatmentChanged,omitempty"`
	Satisfaction     *int      `bson:"satisfaction,omitempty"`
	Note             sealed    `bson:"note,omitempty"`
	RecordedAt       time.Time `bson:"recordedAt"`
}

type signatureDoc struct {
	JWS      string    `bson:"jws"`
	KeyID    string    `bson:"keyId"`
	SignedAt time.Time `bson:"signedAt"`
	Payload  sealed    `bson:"payload"`
}

func toFollowUps(ds []followUpDoc) []domain.FollowUp {
	if ds == nil {
		return nil
	}
	out := make([]domain.FollowUp, 0, len(ds))
	for _, d := range ds {
		out = append(out, domain.FollowUp{
			ID: d.ID, Question: d.Question.String(), AskedAt: d.AskedAt.UTC(), Answer: openPtr(d.Answer),
			AnsweredAt: utcPtr(d.AnsweredAt), DueAt: d.DueAt.UTC(),
		})
	}
	return out
}

func fromFollowUps(fs []domain.FollowUp) []followUpDoc {
	out := make([]followUpDoc, 0, len(fs))
	for _, f := range fs {
		out = append(out, followUpDoc{ID: f.ID, Question: seal(f.Question), AskedAt: f.AskedAt, Answer: sealPtr(f.Answer), AnsweredAt: f.AnsweredAt, DueAt: f.DueAt})
	}
	return out
}

func toOutcome(d *outcomeDoc) *domain.Outcome {
	if d == nil {
		return nil
	}
	return &domain.Outcome{
		Decision: domain.Decision(d.Decision), TreatmentChanged: d.TreatmentChanged, Satisfaction: d.Satisfaction,
		Note: d.Note.String(), RecordedAt: d.RecordedAt.UTC(),
	}
}

func fromOutcome(o domain.Outcome) outcomeDoc {
	return outcomeDoc{Decision: string(o.Decision), TreatmentChanged: o.TreatmentChanged, Satisfaction: o.Satisfaction, Note: seal(o.Note), RecordedAt: o.RecordedAt}
}

func toSignature(d *signatureDoc) *domain.Signature {
	if d == nil {
		return nil
	}
	return &domain.Signature{JWS: d.JWS, KeyID: d.KeyID, SignedAt: d.SignedAt.UTC(), Payload: d.Payload.String()}
}

// CaseForFollowUps returns case id in p's scope with its follow-ups, for
// the workflow (which checks the role may read opinion content).
func (s *Store) CaseForFollowUps(ctx context.Context, p domain.Principal, id string) (*domain.Case, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("case")
	}
	d, err := findByID[caseDoc](ctx, s, colCases, id, bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}, {Key: "outcome", Value: 0}, {Key: "outbox", Value: 0}})
	if err != nil {
		return nil, translate(err, "case")
	}
	c := toCase(d)
	if !sc.allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	if c.FollowUps == nil {
		c.FollowUps = []domain.FollowUp{}
	}
	return c, nil
}

// SignFunc signs a delivered opinion as it stands (content, delivery time).
type SignFunc func(o *domain.Opinion) (*domain.Signature, error)

// ResignOpinion signs the delivered opinion of case caseID again (after a
// follow-up answer): sign runs on each attempt of the compare-and-set, so
// the signature stored last covers everything written before it read.
func (s *Store) ResignOpinion(ctx context.Context, p domain.Principal, c *domain.Case, sign SignFunc) error {
	if !caseScope(p).allow(c) {
		return domain.ErrNotFound("case")
	}
	id := OpinionIDForCase(c.ID)
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return translate(err, "opinion")
		}
		cur, err := findByID[opinionDoc](ctx, s, colOpinions, id, nil)
		if err != nil {
			return translate(err, "opinion")
		}
		if cur.Status != string(domain.OpinionDelivered) {
			return domain.Errorf(domain.CodeInvalidTransition, "the opinion is not delivered")
		}
		sig, err := sign(toOpinion(cur))
		if err != nil {
			return err
		}
		ok, err := s.casUpdate(ctx, colOpinions, id, cur.Version, bindSet(colOpinions, id, bson.D{{Key: "signature", Value: fromSignature(sig)}}))
		if err != nil {
			return translate(err, "opinion")
		}
		if ok {
			return s.relist(ctx, opinionListing, id) // the version moved
		}
	}
	return errBusy("opinion")
}

func fromSignature(sig *domain.Signature) *signatureDoc {
	if sig == nil {
		return nil
	}
	return &signatureDoc{JWS: sig.JWS, KeyID: sig.KeyID, SignedAt: sig.SignedAt, Payload: seal(sig.Payload)}
}
