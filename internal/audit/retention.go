package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
)

// Retention (issue 17, item 3). Audit rows are kept at least
// MinRetentionDays (HIPAA's six years; EHDS asks three of the access log).
// After that, retention drops whole days, and only days whose every chain
// verifies: one chain per instance per UTC day means a day goes without
// breaking any chain that stays. What a dropped day leaves is a Checkpoint,
// signed by the service's key (internal/signing, published at
// /.well-known/jwks.json): the day, every chain (segment) it held with its
// head, and how many events. Verification then reports a checkpointed chain
// as pruned, not missing, as long as its checkpoint's signature holds.

// MinRetentionDays is the shortest retention of audit rows: six years,
// leap days included.
const MinRetentionDays = 6*365 + 2

// Reasons retention adds to a verification's breaks.
const (
	// BreakCheckpoint names a checkpoint whose signature does not verify,
	// or that names a chain of another day (its chain is
	// "checkpoint/<day>").
	BreakCheckpoint = "CHECKPOINT"
	// BreakPrunedLeftover names rows found in a chain its day's checkpoint
	// says was pruned: a prune cut short, which the next run finishes, or
	// rows put there since. Either way they are not vouched for.
	BreakPrunedLeftover = "PRUNED_LEFTOVER"
)

// Checkpoint is what retention keeps of a pruned day.
type Checkpoint struct {
	Day       string           `json:"day"`
	Chains    []ChainHead      `json:"chains"`
	Events    int              `json:"events"`
	PrunedAt  time.Time        `json:"prunedAt"`
	Signature *ExportSignature `json:"signature,omitempty"`
}

// signedPayload is what a checkpoint's signature covers: its RFC 8785
// canonical JSON without the signature.
func (c Checkpoint) signedPayload() ([]byte, error) {
	c.Signature = nil
	c.PrunedAt = c.PrunedAt.UTC().Truncate(time.Millisecond)
	if c.Chains == nil {
		c.Chains = []ChainHead{}
	}
	return signing.Canonical(c)
}

// NewCheckpoint is the signed checkpoint of day, whose chains verified with
// these heads and events.
func NewCheckpoint(day string, heads []ChainHead, events int, at time.Time, s *signing.Signer) (Checkpoint, error) {
	for _, h := range heads {
		if ChainDay(h.Chain) != day {
			return Checkpoint{}, fmt.Errorf("audit: chain %s is not of %s", h.Chain, day)
		}
	}
	c := Checkpoint{Day: day, Chains: slices.Clone(heads), Events: events, PrunedAt: at.UTC().Truncate(time.Millisecond)}
	slices.SortFunc(c.Chains, func(a, b ChainHead) int { return strings.Compare(a.Chain, b.Chain) })
	payload, err := c.signedPayload()
	if err != nil {
		return Checkpoint{}, err
	}
	jws, kid, err := s.Sign(payload)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Signature = &ExportSignature{Alg: string(signing.Algorithm), KeyID: kid, JWS: jws}
	return c, nil
}

// Verify checks the checkpoint's signature against the service's keys, and
// that every chain it names is of its day.
func (c Checkpoint) Verify(keys jose.JSONWebKeySet) error {
	if c.Signature == nil || c.Signature.JWS == "" {
		return fmt.Errorf("audit: checkpoint %s is not signed", c.Day)
	}
	payload, err := c.signedPayload()
	if err != nil {
		return err
	}
	if _, err := signing.Verify(c.Signature.JWS, payload, keys); err != nil {
		return fmt.Errorf("audit: checkpoint %s: %w", c.Day, err)
	}
	for _, h := range c.Chains {
		if ChainDay(h.Chain) != c.Day {
			return fmt.Errorf("audit: checkpoint %s names chain %s of another day", c.Day, h.Chain)
		}
	}
	return nil
}

// Leftovers checks the rows of a day against its checkpoint, before they
// are deleted on its word: every head must be one it names, as it names
// it; every event must be of a chain it names, at or before that chain's
// head, hold its own hash, link to the event before it where both are
// there, and be the head's where it stands at the head's position. Those
// are what a prune cut short leaves (the rows of the verified day, some
// deleted). It returns the first row that does not fit, or nil.
func (c Checkpoint) Leftovers(heads []ChainHead, events []domain.AuditEvent) *Break {
	named := make(map[string]ChainHead, len(c.Chains))
	for _, h := range c.Chains {
		named[h.Chain] = h
	}
	for _, h := range heads {
		if want, ok := named[h.Chain]; !ok || want != h {
			return &Break{Chain: h.Chain, Position: h.Seq, Reason: BreakHead}
		}
	}
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b domain.AuditEvent) int {
		if a.Chain != b.Chain {
			return strings.Compare(a.Chain, b.Chain)
		}
		return int(a.Seq - b.Seq)
	})
	for i, e := range events {
		h, ok := named[e.Chain]
		var before *domain.AuditEvent
		if i > 0 && events[i-1].Chain == e.Chain {
			before = &events[i-1]
		}
		bad := func(reason string) *Break {
			return &Break{Chain: e.Chain, Position: e.Seq, EventID: e.ID, Reason: reason}
		}
		switch {
		case !ok:
			return bad(BreakPrunedLeftover)
		case e.Seq < 1 || e.Seq > h.Seq:
			return bad(BreakBeyondHead)
		case before != nil && before.Seq == e.Seq:
			return bad(BreakInserted)
		case Hash(e) != e.Hash:
			return bad(BreakEdited)
		case e.Seq == h.Seq && e.Hash != h.Hash:
			return bad(BreakHead)
		case e.Seq == 1 && e.Prev != "", before != nil && before.Seq+1 == e.Seq && e.Prev != before.Hash:
			return bad(BreakLink)
		}
	}
	return nil
}

// ChainDay is the day in a chain name "<instance>/<day>/<segment>".
func ChainDay(chain string) string {
	parts := strings.Split(chain, "/")
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// VerifyPeriod verifies the chains of a period of which some days were
// pruned. A chain named by a checkpoint whose signature verifies is pruned:
// it is counted in Pruned and not recomputed. Rows of it still present, an
// event or a head, are a break (BreakPrunedLeftover) at the lowest
// position found: left by a prune cut short (the next run deletes them) or
// put there since, they are not vouched for either way. A checkpoint that
// does not verify is a break (BreakCheckpoint), and its chains count for
// nothing.
func VerifyPeriod(heads []ChainHead, events []domain.AuditEvent, checkpoints []Checkpoint, keys jose.JSONWebKeySet) Report {
	pruned := map[string]bool{}
	var bad []Break
	for _, c := range checkpoints {
		if err := c.Verify(keys); err != nil {
			bad = append(bad, Break{Chain: "checkpoint/" + c.Day, Reason: BreakCheckpoint})
			continue
		}
		for _, h := range c.Chains {
			pruned[h.Chain] = true
		}
	}
	leftover := map[string]Break{}
	note := func(chain string, seq int64, id string) {
		if b, ok := leftover[chain]; !ok || seq < b.Position {
			leftover[chain] = Break{Chain: chain, Position: seq, EventID: id, Reason: BreakPrunedLeftover}
		}
	}
	keptHeads := slices.DeleteFunc(slices.Clone(heads), func(h ChainHead) bool {
		if pruned[h.Chain] {
			note(h.Chain, h.Seq, "")
		}
		return pruned[h.Chain]
	})
	keptEvents := slices.DeleteFunc(slices.Clone(events), func(e domain.AuditEvent) bool {
		if pruned[e.Chain] {
			note(e.Chain, e.Seq, e.ID)
		}
		return pruned[e.Chain]
	})
	rep := Verify(keptHeads, keptEvents)
	rep.Pruned = len(pruned)
	names := make([]string, 0, len(leftover))
	for name := range leftover {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		bad = append(bad, leftover[name])
	}
	rep.Breaks = append(bad, rep.Breaks...)
	return rep
}
