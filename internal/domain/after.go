package domain

import "time"

// After the opinion (README, "After the opinion"): follow-up questions, the signature, the
// member's outcome. The rules here are pure; the workflow applies them.

// Follow-up limits: at most MaxFollowUps questions per case, asked within
// FollowUpWindow of delivery, each answered within FollowUpSLAWorkingDays
// working days.
const (
	MaxFollowUps           = 3
	FollowUpWindow         = 30 * 24 * time.Hour
	FollowUpSLAWorkingDays = 3
)

// FollowUp is a member's question after delivery and the specialist's
// answer: an addendum, never a change of the delivered opinion.
type FollowUp struct {
	ID         string
	Question   string
	AskedAt    time.Time
	Answer     *string
	AnsweredAt *time.Time
	DueAt      time.Time
}

// Overdue reports whether the answer is late now.
func (f FollowUp) Overdue() bool { return f.OverdueAt(time.Now()) }

// OverdueAt reports whether the answer is late at the given time.
func (f FollowUp) OverdueAt(at time.Time) bool { return f.AnsweredAt == nil && at.After(f.DueAt) }

// AddWorkingDays returns t plus n working days (Saturdays and Sundays do
// not count), at the same time of day, in UTC.
func AddWorkingDays(t time.Time, n int) time.Time {
	t = t.UTC()
	for n > 0 {
		t = t.AddDate(0, 0, 1)
		if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n--
		}
	}
	return t
}

// CheckFollowUp decides whether the member may ask one more question on c
// at now; a refusal names the limit it hit.
func CheckFollowUp(c *Case, now time.Time) error {
	if c.Status != StatusOpinionDelivered && c.Status != StatusClosed {
		return Errorf(CodeInvalidTransition, "follow-up questions are asked once the opinion is delivered; the case is %s", c.Status)
	}
	if c.DeliveredAt == nil {
		return Errorf(CodeInvalidTransition, "the opinion has no delivery time")
	}
	if len(c.FollowUps) >= MaxFollowUps {
		return Errorf(CodeNotEligible, "limit reached: at most %d follow-up questions per case", MaxFollowUps)
	}
	if now.Sub(*c.DeliveredAt) > FollowUpWindow {
		return Errorf(CodeNotEligible, "limit reached: follow-up questions are asked within %d days of delivery (delivered %s)",
			int(FollowUpWindow/(24*time.Hour)), c.DeliveredAt.Format(time.DateOnly))
	}
	return nil
}

// Signature is the service's detached JWS over an opinion's canonical JSON
// (RFC 8785): Payload is exactly the bytes signed.
type Signature struct {
	JWS      string
	KeyID    string
	SignedAt time.Time
	Payload  string
}

// Satisfaction bounds.
const (
	MinSatisfaction = 1
	MaxSatisfaction = 5
)

// Outcome is what the member did after the opinion.
type Outcome struct {
	Decision         Decision
	TreatmentChanged *bool
	Satisfaction     *int
	Note             string
	RecordedAt       time.Time
}

// CheckOutcome validates an outcome's figures.
func CheckOutcome(o Outcome) error {
	switch o.Decision {
	case DecisionFollowOpinion, DecisionKeepOriginalPlan, DecisionUndecided:
	default:
		return Errorf(CodeBadUserInput, "decision must be FOLLOW_OPINION, KEEP_ORIGINAL_PLAN or UNDECIDED")
	}
	if o.Satisfaction != nil && (*o.Satisfaction < MinSatisfaction || *o.Satisfaction > MaxSatisfaction) {
		return Errorf(CodeBadUserInput, "satisfaction must be from %d to %d", MinSatisfaction, MaxSatisfaction)
	}
	return nil
}
