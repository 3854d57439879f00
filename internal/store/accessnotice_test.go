package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
