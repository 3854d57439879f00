package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
)

// The access log pages by day, newest first, across days, and the from/to
// filter keeps to the days asked for; each member's range is their own.
func TestAccessLogPagesByDayNewestFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslog")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	bob := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-b"}
	day0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var events []domain.AuditEvent
	for d := range 5 {
		for _, who := range []domain.Principal{alice, bob} {
			at := day0.AddDate(0, 0, d)
			read := domain.AuditEvent{At: at, Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x", ResourceType: "Case",
				ResourceID: "c-1", CaseID: "c-1", FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: who.MemberKey()}
			again := read
			again.At = at.Add(3 * time.Hour)
			own := read
			own.Role, own.Subject, own.Org = domain.RoleMember, who.Subject, who.Org
			denied := read
			denied.Outcome, denied.FieldGroup = "DENIED", string(domain.GroupPatientIdentity)
			events = append(events, read, again, own, denied)
		}
	}
	// One batch per event: an entry's count, first and last time merge
	// the fragments that separate batches wrote.
	for _, e := range events {
		require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{e}))
	}

	var days []string
	pg := Page{First: 2}
	for {
		page, more, err := s.AccessLog(ctx, alice, AccessLogFilter{}, pg)
		require.NoError(t, err)
		for _, e := range page {
			days = append(days, e.Day)
			assert.Equal(t, 2, e.Count)
			assert.Equal(t, 3*time.Hour, e.LastAt.Sub(e.FirstAt))
			assert.Equal(t, domain.CategoryClinical, e.Category)
		}
		if !more {
			break
		}
		pg.After = page[len(page)-1].ID
	}
	assert.Equal(t, []string{"2026-03-05", "2026-03-04", "2026-03-03", "2026-03-02", "2026-03-01"}, days)

	from, to := day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2).Add(time.Hour)
	page, _, err := s.AccessLog(ctx, alice, AccessLogFilter{From: &from, To: &to}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, "2026-03-03", page[0].Day)
	n, err := s.CountAccessLog(ctx, alice, AccessLogFilter{From: &from, To: &to})
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	_, _, err = s.AccessLog(ctx, bob, AccessLogFilter{}, Page{First: 10, After: page[0].ID})
	assert.Equal(t, domain.CodeBadUserInput, domain.ErrorCode(err), "alice's cursor is not bob's")
	_, _, err = s.AccessLog(ctx, alice, AccessLogFilter{}, Page{First: 10, After: page[0].ID + ":" + NewID()})
	assert.Equal(t, domain.CodeBadUserInput, domain.ErrorCode(err), "a cursor names an entry, not one of its fragments")
	for _, p := range []domain.Principal{{Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x"}, {Subject: "u-c", Role: domain.RoleCoordinator, Org: "operator"}} {
		page, _, err := s.AccessLog(ctx, p, AccessLogFilter{}, Page{First: 10})
		require.NoError(t, err)
		assert.Empty(t, page, "no one but the member has an access log")
	}
}

// An entry the earlier, folded log stored (its _id has no fragment id)
// merges with the fragments written since.
func TestAccessLogMergesAFoldedEntryWithNewFragments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslogold")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	read := domain.AuditEvent{At: at, Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x", ResourceType: "Case",
		ResourceID: "c-1", CaseID: "c-1", FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: alice.MemberKey()}
	old := accessLogEntries([]domain.AuditEvent{read})[0]
	old.Count = 5
	_, err := s.c(colAccessLog).InsertOne(ctx, old)
	require.NoError(t, err)
	later := read
	later.At = at.Add(time.Hour)
	require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{later}))

	page, _, err := s.AccessLog(ctx, alice, AccessLogFilter{}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, old.ID, page[0].ID)
	assert.Equal(t, 6, page[0].Count)
	assert.Equal(t, at, page[0].FirstAt)
	assert.Equal(t, at.Add(time.Hour), page[0].LastAt)
}
