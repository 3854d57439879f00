package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// A first read whose notice cannot be stored is not lost and not repeated:
// the audit batch succeeds, the pair stays pending, a later read of the
// same pair adds nothing, and the sweeper publishes the notice once.
func TestAFirstReadWhoseNoticeFailsIsPublishedOnceBySweeper(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "notice")
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	read := func(role domain.Role, org string) []domain.AuditEvent {
		return []domain.AuditEvent{{At: s.Now(), Subject: "u", Role: role, Org: org, Outcome: "ALLOWED", PatientID: "ins:m-1",
			CaseID: c.ID, ResourceType: "Case", ResourceID: c.ID, FieldGroup: string(domain.GroupCaseClinical)}}
	}
	notices := func() []*CaseEventRecord {
		recs, err := s.CaseEventsAfter(ctx, 0, 1000)
		require.NoError(t, err)
		var out []*CaseEventRecord
		for _, r := range recs {
			if r.Type == domain.EventDataAccessedByNewOrg {
				out = append(out, r)
			}
		}
		return out
	}

	s.beforeWrite = func(coll, id string) error {
		if coll == colCaseEvents {
			return errors.New("injected: case_events unavailable")
		}
		return nil
	}
	require.NoError(t, s.AppendAudit(ctx, read(domain.RoleProvider, "prov")), "the reads are recorded; only the notice is late")
	s.beforeWrite = nil
	assert.True(t, s.PendingEvents())
	assert.Empty(t, notices())

	require.NoError(t, s.AppendAudit(ctx, read(domain.RoleProvider, "prov")))
	require.NoError(t, s.AppendAudit(ctx, read(domain.RoleInsurer, "ins")))
	require.NoError(t, s.AppendAudit(ctx, read(domain.RoleCoordinator, "operator")))
	assert.Empty(t, notices(), "a second read of the pair is no first read; the insurer and the operator never are")

	require.NoError(t, s.PublishPendingEvents(ctx))
	require.NoError(t, s.PublishPendingEvents(ctx))
	got := notices()
	require.Len(t, got, 1, "published once")
	assert.Equal(t, "prov", got[0].Access.Org)
	assert.Equal(t, []string{"CLINICAL"}, got[0].Access.Categories)
	assert.Equal(t, c.Reference, got[0].Access.Reference)
	assert.False(t, s.PendingEvents())

	// Another process (no memory of the pair) that reads it again finds it
	// seen by the insert alone.
	clear(s.seenPairs)
	require.NoError(t, s.AppendAudit(ctx, read(domain.RoleProvider, "prov")))
	assert.Len(t, notices(), 1)
}

// A claim of first reads that fails mid-batch leaves the audit batch
// green; the sweeper, with no restart and no further read, delivers every
// notice of the batch once, including a pair whose insert landed although
// the claim reported a failure.
func TestAFailedClaimLeavesTheBatchGreenAndTheSweeperDeliversTheNotices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "claimfail")
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	read := func(role domain.Role, org string) domain.AuditEvent {
		return domain.AuditEvent{At: s.Now(), Subject: "u", Role: role, Org: org, Outcome: "ALLOWED", PatientID: "ins:m-1",
			CaseID: c.ID, ResourceType: "Case", ResourceID: c.ID, FieldGroup: string(domain.GroupCaseClinical)}
	}
	notices := func() map[string]int {
		recs, err := s.CaseEventsAfter(ctx, 0, 1000)
		require.NoError(t, err)
		out := map[string]int{}
		for _, r := range recs {
			if r.Type == domain.EventDataAccessedByNewOrg {
				out[r.Access.Org]++
			}
		}
		return out
	}

	s.beforeWrite = func(coll, id string) error {
		if coll == colAccessOrgs {
			return errors.New("injected: access_orgs unavailable")
		}
		return nil
	}
	require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{read(domain.RoleProvider, "prov"), read(domain.RolePartner, "net")}),
		"a failed claim never fails the audit batch")
	s.beforeWrite = nil
	assert.True(t, s.PendingEvents(), "the sweeper is asked to run")
	assert.Empty(t, notices())
	n, err := s.CountAuditEvents(ctx, domain.Principal{Role: domain.RoleCoordinator, Org: "operator"}, AuditFilter{})
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the audit rows are written")

	// The insert of one pair landed although the claim failed (a reply
	// lost): it is pending in the database, and its retried claim is a
	// duplicate; still its notice comes out.
	_, err = s.c(colAccessOrgs).InsertOne(ctx, accessOrgDoc{ID: accessPairID("ins:m-1", "prov"), Member: "ins:m-1", Org: "prov",
		Role: string(domain.RoleProvider), CaseID: c.ID, Categories: []string{"CLINICAL"}, At: s.Now().Truncate(time.Millisecond), Pending: true})
	require.NoError(t, err)

	require.NoError(t, s.PublishPendingEvents(ctx), "the sweeper's run")
	assert.Equal(t, map[string]int{"prov": 1, "net": 1}, notices(), "each organisation's first read announced once")
	assert.False(t, s.PendingEvents())
	pending, err := findAll[accessOrgDoc](ctx, s, colAccessOrgs, bson.D{{Key: "pending", Value: true}}, nil)
	require.NoError(t, err)
	assert.Empty(t, pending)

	require.NoError(t, s.PublishPendingEvents(ctx))
	require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{read(domain.RoleProvider, "prov"), read(domain.RolePartner, "net")}))
	assert.Equal(t, map[string]int{"prov": 1, "net": 1}, notices(), "nothing twice")
}

// A pair whose case is not found is not announced and keeps its pending
// mark, so a later sweep publishes it; the pairs that were published in
// the same batch are cleared.
func TestAMissingCaseDoesNotClearThePendingMark(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "noticecase")
	c, err := s.InsertCase(ctx, NewCase{PolicyID: "pol", PatientID: "ins:m-1", InsurerID: "ins", Specialty: "oncology", Urgency: domain.UrgencyRoutine, ActorRole: domain.RoleMember})
	require.NoError(t, err)
	pair := func(org, caseID string) accessOrgDoc {
		return accessOrgDoc{ID: accessPairID("ins:m-1", org), Member: "ins:m-1", Org: org, Role: string(domain.RoleProvider),
			CaseID: caseID, Categories: []string{"CLINICAL"}, At: s.Now().Truncate(time.Millisecond), Pending: true}
	}
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		found, missing := pair(fmt.Sprintf("found-%v", serial), c.ID), pair(fmt.Sprintf("missing-%v", serial), "no-such-case")
		_, err := s.c(colAccessOrgs).InsertMany(ctx, []any{found, missing})
		require.NoError(t, err)

		require.NoError(t, s.publishAccessNotices(ctx, []accessOrgDoc{found, missing}))
		got, err := findByID[accessOrgDoc](ctx, s, colAccessOrgs, missing.ID, nil)
		require.NoError(t, err)
		assert.True(t, got.Pending, "no notice was stored: the mark stays")
		got, err = findByID[accessOrgDoc](ctx, s, colAccessOrgs, found.ID, nil)
		require.NoError(t, err)
		assert.False(t, got.Pending, "the published pair is cleared")
	})
}
