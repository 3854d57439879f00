package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

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
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "case")
		}
		d, err := findByID[caseDoc](ctx, s, colCases, id, nil)
		if err != nil {
			return nil, translate(err, "case")
		}
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
			set = append(set, bson.E{Key: "decisionNote", Value: *up.DecisionNote})
		}
		if up.CancelReason != nil {
			set = append(set, bson.E{Key: "cancelReason", Value: *up.CancelReason})
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
			set = append(set, bson.E{Key: "events", Value: events})
		}
		// An outbox left by an earlier write goes out before this write
		// replaces it.
		if len(d.Outbox) > 0 {
			if err := s.publishOutbox(ctx, id, d.Version, d.Outbox); err != nil {
				return nil, translate(err, "case events")
			}
		}
		after := applyCaseUpdate(d, up)
		after.Version = d.Version + 1
		outbox := outboxFor(after, newEvents)
		update := bson.D{{Key: "$set", Value: set}}
		if len(outbox) > 0 {
			update[0].Value = append(set, bson.E{Key: "outbox", Value: outbox})
		} else if len(d.Outbox) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "outbox", Value: ""}}})
		}
		ok, err := s.casApply(ctx, colCases, id, cur.Version, update)
		if err != nil {
			return nil, translate(err, "case")
		}
		if !ok {
			if expectedVersion != nil {
				return nil, domain.Errorf(domain.CodeConflict, "the case changed while it was being updated")
			}
			continue
		}
		// The change and its events are stored; a failed copy to
		// case_events is retried by the sweeper, so it does not fail the
		// move.
		_ = s.publishOutbox(ctx, id, after.Version, outbox)
		return s.Case(ctx, p, id)
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
	return &after
}

// AdjustLoad changes a specialist's count of active cases with an $inc
// (serialised with the specialist's other writes on FerretDB); the profile's
// version does not move. The stored count is the raw sum (a release may land
// before the assignment it releases); reads floor it at zero.
func (s *Store) AdjustLoad(ctx context.Context, specialistID string, delta int) error {
	if specialistID == "" || delta == 0 {
		return nil
	}
	return translate(s.inc(ctx, colSpecialists, specialistID, bson.D{{Key: "internal.activeCases", Value: delta}}), "specialist")
}

// CandidateSpecialists returns every specialist with the given specialty, for
// matching (the public profile plus load, which matching ranks on).
func (s *Store) CandidateSpecialists(ctx context.Context, specialty string) ([]*domain.Specialist, []int, error) {
	docs, err := findAll[specialistDoc](ctx, s, colSpecialists, bson.D{{Key: "specialties", Value: specialty}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(1000))
	if err != nil {
		return nil, nil, translate(err, "specialists")
	}
	out := make([]*domain.Specialist, 0, len(docs))
	loads := make([]int, 0, len(docs))
	for _, d := range docs {
		out = append(out, toSpecialist(d, false))
		loads = append(loads, max(0, d.Internal.ActiveCases))
	}
	return out, loads, nil
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
