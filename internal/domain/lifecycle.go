package domain

// The case state machine, the one place that decides which
// status may follow which.
var transitions = map[CaseStatus][]CaseStatus{
	StatusSubmitted: {StatusTriage, StatusCancelled},
	StatusTriage:    {StatusAssigned, StatusCancelled},
	// ASSIGNED → ASSIGNED is a reassignment before the review starts.
	StatusAssigned:         {StatusAssigned, StatusInReview, StatusCancelled},
	StatusInReview:         {StatusOpinionDelivered, StatusCancelled},
	StatusOpinionDelivered: {StatusClosed},
}

// CanMove reports whether a case may go from one status to another.
func CanMove(from, to CaseStatus) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Move returns INVALID_TRANSITION unless from → to is allowed.
func Move(from, to CaseStatus) error {
	if CanMove(from, to) {
		return nil
	}
	return Errorf(CodeInvalidTransition, "a case cannot go from %s to %s", from, to)
}

// ReadyForTriage reports whether a submitted case holds what triage needs: at
// least one record and an active records-release consent.
func ReadyForTriage(c *Case) bool {
	return c.Status == StatusSubmitted && c.Clinical != nil && len(c.Clinical.Records) > 0 &&
		c.ConsentActive(ConsentRecordsRelease)
}

// Open reports whether the case is still before delivery.
func (s CaseStatus) Open() bool {
	switch s {
	case StatusSubmitted, StatusTriage, StatusAssigned, StatusInReview:
		return true
	}
	return false
}
