package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// Deleting, editing, reordering or inserting audit events through the raw
// driver is found, at the right position.
func TestTamperingWithTheAuditIsFoundAtItsPosition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	coordinator := domain.Principal{Subject: "u-c", Role: domain.RoleCoordinator, Org: "operator"}
	now := time.Now().UTC()

	fresh := func(t *testing.T) (*Store, []domain.AuditEvent) {
		s := openCAS(t, ctx, "chain")
		ch := audit.NewChainer(nil)
		for b := range 3 { // three batches of four
			var batch []domain.AuditEvent
			for i := range 4 {
				batch = append(batch, domain.AuditEvent{At: now, Subject: fmt.Sprintf("u-%d-%d", b, i), Role: domain.RoleProvider,
					Org: "prov-x", ResourceType: "Case", ResourceID: "c-1", FieldGroup: "case.clinical", Outcome: "ALLOWED"})
			}
			ch.Link(batch)
			require.NoError(t, s.AppendAudit(ctx, batch))
		}
		heads, events, err := s.AuditChains(ctx, coordinator, now, now)
		require.NoError(t, err)
		require.Len(t, heads, 1)
		require.Len(t, events, 12)
		require.True(t, audit.Verify(toHeads(heads), events).OK(), "untouched, it verifies")
		return s, events
	}
	verify := func(t *testing.T, s *Store) audit.Break {
		heads, events, err := s.AuditChains(ctx, coordinator, now, now)
		require.NoError(t, err)
		rep := audit.Verify(toHeads(heads), events)
		require.Len(t, rep.Breaks, 1, "%+v", rep)
		return rep.Breaks[0]
	}
	byID := func(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

	t.Run("a deleted event is a missing link", func(t *testing.T) {
		s, ev := fresh(t)
		_, err := s.c(colAudit).DeleteOne(ctx, byID(ev[4].ID))
		require.NoError(t, err)
		b := verify(t, s)
		assert.Equal(t, audit.BreakMissing, b.Reason)
		assert.EqualValues(t, 5, b.Position)
	})
	t.Run("the deleted last event is a missing link too", func(t *testing.T) {
		s, ev := fresh(t)
		_, err := s.c(colAudit).DeleteOne(ctx, byID(ev[11].ID))
		require.NoError(t, err)
		b := verify(t, s)
		assert.Equal(t, audit.BreakMissing, b.Reason)
		assert.EqualValues(t, 12, b.Position)
	})
	t.Run("an edited event no longer matches its hash", func(t *testing.T) {
		s, ev := fresh(t)
		_, err := s.c(colAudit).UpdateOne(ctx, byID(ev[6].ID), bson.D{{Key: "$set", Value: bson.D{{Key: "subject", Value: "someone-else"}}}})
		require.NoError(t, err)
		b := verify(t, s)
		assert.Equal(t, audit.BreakEdited, b.Reason)
		assert.EqualValues(t, 7, b.Position)
		assert.Equal(t, ev[6].ID, b.EventID)
	})
	t.Run("an edit with its hash recomputed breaks the next link", func(t *testing.T) {
		s, ev := fresh(t)
		e := ev[6]
		e.Subject = "someone-else"
		_, err := s.c(colAudit).UpdateOne(ctx, byID(e.ID), bson.D{{Key: "$set", Value: bson.D{{Key: "subject", Value: e.Subject}, {Key: "hash", Value: audit.Hash(e)}}}})
		require.NoError(t, err)
		b := verify(t, s)
		assert.Equal(t, audit.BreakLink, b.Reason)
		assert.EqualValues(t, 8, b.Position)
	})
	t.Run("two reordered events are found at the first of them", func(t *testing.T) {
		s, ev := fresh(t)
		_, err := s.c(colAudit).UpdateOne(ctx, byID(ev[2].ID), bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: 4}}}})
		require.NoError(t, err)
		_, err = s.c(colAudit).UpdateOne(ctx, byID(ev[3].ID), bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: 3}}}})
		require.NoError(t, err)
		b := verify(t, s)
		assert.EqualValues(t, 3, b.Position)
		assert.Equal(t, ev[3].ID, b.EventID)
	})
	t.Run("an inserted event, even with a correct hash, claims a taken position", func(t *testing.T) {
		s, ev := fresh(t)
		forged := ev[8]
		forged.ID, forged.Subject = "000000000000000000000001", "intruder"
		forged.Hash = audit.Hash(forged)
		require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{forged}))
		b := verify(t, s)
		assert.Equal(t, audit.BreakInserted, b.Reason)
		assert.EqualValues(t, 9, b.Position)
	})
	t.Run("an event appended after the head is found", func(t *testing.T) {
		s, ev := fresh(t)
		forged := ev[11]
		forged.ID, forged.Seq, forged.Prev = "000000000000000000000002", 13, ev[11].Hash
		forged.Hash = audit.Hash(forged)
		_, err := s.c(colAudit).InsertOne(ctx, toAuditDoc(forged))
		require.NoError(t, err)
		b := verify(t, s)
		assert.Equal(t, audit.BreakBeyondHead, b.Reason)
		assert.EqualValues(t, 13, b.Position)
	})
	t.Run("an event that names no chain is found", func(t *testing.T) {
		s, _ := fresh(t)
		_, err := s.c(colAudit).InsertOne(ctx, toAuditDoc(domain.AuditEvent{ID: "000000000000000000000003", At: now, Subject: "x", Outcome: "ALLOWED"}))
		require.NoError(t, err)
		assert.Equal(t, audit.BreakUnchained, verify(t, s).Reason)
	})
}

func toHeads(hs []ChainHead) []audit.ChainHead {
	out := make([]audit.ChainHead, 0, len(hs))
	for _, h := range hs {
		out = append(out, audit.ChainHead{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash})
	}
	return out
}

// Retention drops whole UTC days (their events and their chains' heads);
// the days kept verify as before, because no chain spans two days.
func TestDroppingAWholeDayKeepsTheOthersVerifiable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	coordinator := domain.Principal{Subject: "u-c", Role: domain.RoleCoordinator, Org: "operator"}
	s := openCAS(t, ctx, "retention")
	day1 := time.Date(2023, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	clock := day1
	ch := audit.NewChainer(func() time.Time { return clock })
	for _, day := range []time.Time{day1, day2} {
		clock = day
		for b := range 2 {
			var batch []domain.AuditEvent
			for i := range 3 {
				batch = append(batch, domain.AuditEvent{At: day, Subject: fmt.Sprintf("u-%d-%d", b, i), Role: domain.RoleProvider,
					Org: "prov-x", ResourceType: "Case", ResourceID: "c-1", FieldGroup: "case.clinical", Outcome: "ALLOWED"})
			}
			ch.Link(batch)
			require.NoError(t, s.AppendAudit(ctx, batch))
		}
	}
	heads, events, err := s.AuditChains(ctx, coordinator, day1, day2)
	require.NoError(t, err)
	require.Len(t, heads, 2, "one chain a day")
	require.True(t, audit.Verify(toHeads(heads), events).OK())

	// Retention: the first day goes, events and heads.
	first := day1.Format(time.DateOnly)
	for _, e := range events {
		if e.At.UTC().Format(time.DateOnly) == first {
			_, err := s.c(colAudit).DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}})
			require.NoError(t, err)
		}
	}
	_, err = s.c(colAuditChains).DeleteMany(ctx, bson.D{{Key: "day", Value: first}})
	require.NoError(t, err)

	heads, events, err = s.AuditChains(ctx, coordinator, day2, day2)
	require.NoError(t, err)
	require.Len(t, heads, 1)
	require.Len(t, events, 6)
	assert.True(t, audit.Verify(toHeads(heads), events).OK(), "the day kept still verifies")
	heads, events, err = s.AuditChains(ctx, coordinator, day1, day1)
	require.NoError(t, err)
	assert.Empty(t, heads)
	assert.Empty(t, events, "the dropped day is gone as a whole, not half")
}
