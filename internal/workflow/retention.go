package workflow

import (
	"context"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// PruneReport says what one run of audit retention did.
type PruneReport struct {
	// Pruned are the days dropped (their checkpoints stored), oldest first.
	Pruned []string
	// Kept are the days past retention left in place, with the first
	// break of each and why (Why): a chain that does not verify, a head
	// filed under a day not its chain's, a stored checkpoint that does not
	// verify, or rows in a pruned day that its checkpoint does not vouch
	// for. A tampered day is evidence, never pruned.
	Kept map[string]audit.Break
	Why  map[string]string
	// Events is how many audit rows were deleted.
	Events int64
}

// PruneAudit drops the audit days older than retention (at least
// audit.MinRetentionDays) as of now: for each day, every chain is
// recomputed; only a day that verifies whole, all its chains of that day,
// is pruned. Its signed checkpoint is stored first, then its events and
// chain heads are deleted. A day whose checkpoint is already stored (a run
// cut short, or another replica's) is finished on that checkpoint's word,
// once its signature verifies and the rows left fit it. A day that cannot
// be pruned is kept and reported, and the run goes on to the next day.
// Audit rows are deleted nowhere else.
func (s *Service) PruneAudit(ctx context.Context, now time.Time, retention time.Duration) (PruneReport, error) {
	rep := PruneReport{Kept: map[string]audit.Break{}, Why: map[string]string{}}
	if retention < audit.MinRetentionDays*24*time.Hour {
		return rep, fmt.Errorf("workflow: audit retention %s is shorter than %d days", retention, audit.MinRetentionDays)
	}
	cutoff := now.UTC().Add(-retention).Format(time.DateOnly)
	days, err := s.store.AuditDaysBefore(ctx, cutoff)
	if err != nil {
		return rep, err
	}
	keys := s.AuditKeys()
	for _, day := range days {
		cp, b, why, err := s.checkpointFor(ctx, day, now, keys)
		if err != nil {
			return rep, err
		}
		if b != nil {
			rep.Kept[day], rep.Why[day] = *b, why
			continue
		}
		n, err := s.store.DeleteAuditChains(ctx, cp)
		rep.Events += n
		if err != nil {
			return rep, err
		}
		rep.Pruned = append(rep.Pruned, day)
	}
	return rep, nil
}

// checkpointFor returns the checkpoint on whose word day's rows may go:
// one stored before whose signature verifies and whose day's rows fit it,
// or a new one, once every chain of the day verified. Otherwise it returns
// the first break, and why.
func (s *Service) checkpointFor(ctx context.Context, day string, now time.Time, keys jose.JSONWebKeySet) (store.AuditCheckpoint, *audit.Break, string, error) {
	cp, done, err := s.store.AuditCheckpoint(ctx, day)
	if err != nil {
		return cp, nil, "", err
	}
	heads, events, err := s.store.AuditDay(ctx, day)
	if err != nil {
		return cp, nil, "", err
	}
	hs := AuditHeads(heads)
	for _, h := range hs {
		if audit.ChainDay(h.Chain) != day {
			return cp, &audit.Break{Chain: h.Chain, Position: h.Seq, Reason: audit.BreakHead}, "a chain head is filed under a day not its chain's", nil
		}
	}
	if !done {
		v := audit.Verify(hs, events)
		if v.OK() {
			c, err := audit.NewCheckpoint(day, hs, len(events), now, s.signer)
			if err != nil {
				return cp, nil, "", err
			}
			cp, err = s.store.AddAuditCheckpoint(ctx, toStoreCheckpoint(c))
			if err != nil {
				return cp, nil, "", err
			}
		} else {
			// Another replica may be deleting this day right now: its
			// checkpoint is then stored, and the day is finished on it.
			if cp, done, err = s.store.AuditCheckpoint(ctx, day); err != nil {
				return cp, nil, "", err
			}
			if !done {
				return cp, &v.Breaks[0], "a chain of the day does not verify", nil
			}
		}
	}
	c := FromStoreCheckpoint(cp)
	// Ours, or one stored before: nothing is deleted on the word of a
	// checkpoint the service did not sign.
	if err := c.Verify(keys); err != nil {
		return cp, &audit.Break{Chain: "checkpoint/" + day, Reason: audit.BreakCheckpoint}, err.Error(), nil
	}
	if b := c.Leftovers(hs, events); b != nil {
		return cp, b, "rows of the day that its checkpoint does not vouch for", nil
	}
	return cp, nil, "", nil
}

// AuditCheckpoints returns the checkpoints of the pruned days from..to, for
// a coordinator.
func (s *Service) AuditCheckpoints(ctx context.Context, p domain.Principal, from, to time.Time) ([]audit.Checkpoint, error) {
	cps, err := s.store.AuditCheckpoints(ctx, p, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Checkpoint, 0, len(cps))
	for _, c := range cps {
		out = append(out, FromStoreCheckpoint(c))
	}
	return out, nil
}

// AuditKeys are the keys checkpoints (and exports) are verified with: the
// service's published signing keys.
func (s *Service) AuditKeys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: s.signer.PublicKeys()}
}

// AuditHeads are the store's chain heads in the audit package's form.
func AuditHeads(heads []store.ChainHead) []audit.ChainHead {
	out := make([]audit.ChainHead, 0, len(heads))
	for _, h := range heads {
		out = append(out, audit.ChainHead{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash})
	}
	return out
}

func toStoreCheckpoint(c audit.Checkpoint) store.AuditCheckpoint {
	out := store.AuditCheckpoint{Day: c.Day, Events: c.Events, PrunedAt: c.PrunedAt}
	for _, h := range c.Chains {
		out.Chains = append(out.Chains, store.ChainHead{Chain: h.Chain, Day: c.Day, Seq: h.Seq, Hash: h.Hash})
	}
	if c.Signature != nil {
		out.Alg, out.KeyID, out.JWS = c.Signature.Alg, c.Signature.KeyID, c.Signature.JWS
	}
	return out
}

// FromStoreCheckpoint is a stored checkpoint in the audit package's form
// (audit-verify reads the database itself).
func FromStoreCheckpoint(c store.AuditCheckpoint) audit.Checkpoint {
	out := audit.Checkpoint{Day: c.Day, Events: c.Events, PrunedAt: c.PrunedAt}
	for _, h := range c.Chains {
		out.Chains = append(out.Chains, audit.ChainHead{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash})
	}
	if c.JWS != "" {
		out.Signature = &audit.ExportSignature{Alg: c.Alg, KeyID: c.KeyID, JWS: c.JWS}
	}
	return out
}
