package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

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

// An entry the earlier logs stored (folded into one document whose _id is
// the entry's, or one fragment per entry with the entry's fields) merges
// with the packed fragments written since.
func TestAccessLogMergesEntriesStoredEarlierWithNewFragments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslogold")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	read := domain.AuditEvent{At: at, Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x", ResourceType: "Case",
		ResourceID: "c-1", CaseID: "c-1", FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: alice.MemberKey()}
	folded := accessLogEntries([]domain.AuditEvent{read})[0]
	folded.Count = 5
	_, err := s.c(colAccessLog).InsertOne(ctx, folded)
	require.NoError(t, err)
	fragment := folded
	fragment.ID += ":" + NewIDAt(at)
	fragment.Count, fragment.FirstAt, fragment.LastAt = 2, at.Add(-time.Hour), at.Add(-time.Hour)
	_, err = s.c(colAccessLog).InsertOne(ctx, fragment)
	require.NoError(t, err)
	later := read
	later.At = at.Add(time.Hour)
	require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{later}))

	page, _, err := s.AccessLog(ctx, alice, AccessLogFilter{}, Page{First: 10})
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, folded.ID, page[0].ID)
	assert.Equal(t, 8, page[0].Count)
	assert.Equal(t, at.Add(-time.Hour), page[0].FirstAt)
	assert.Equal(t, at.Add(time.Hour), page[0].LastAt)
}

// A batch writes one fragment per member and day, whatever the number of
// entries it touches; a reader still sees one entry per organisation,
// role, case, category, actor and day.
func TestAccessLogWritesOneFragmentPerMemberAndDay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslogfrag")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	bob := domain.Principal{Subject: "m-2", Role: domain.RoleMember, Org: "ins-a"}
	day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	read := func(who domain.Principal, at time.Time, caseID string, typ string, group domain.Group) domain.AuditEvent {
		return domain.AuditEvent{At: at, Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x", ResourceType: typ,
			ResourceID: caseID, CaseID: caseID, FieldGroup: string(group), Outcome: "ALLOWED", PatientID: who.MemberKey()}
	}
	batch := []domain.AuditEvent{
		read(alice, day1, "c-1", "Case", domain.GroupCaseClinical),
		read(alice, day1, "c-1", "Patient", domain.GroupPatientIdentity),
		read(alice, day1, "c-1", "Patient", domain.GroupPatientDemographic),
		read(alice, day1, "c-2", "Case", domain.GroupCaseClinical),
		read(alice, day1.Add(time.Second), "c-2", "Case", domain.GroupCaseClinical),
		read(alice, day2, "c-1", "Case", domain.GroupCaseClinical),
		read(bob, day1, "c-3", "Opinion", domain.GroupOpinionContent),
		read(bob, day1, "c-3", "Opinion", domain.GroupOpinionMeta),
	}
	require.NoError(t, s.AppendAudit(ctx, batch))

	n, err := s.c(colAccessLog).CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.EqualValues(t, 3, n, "alice's two days and bob's one")

	type line struct {
		day, caseID string
		cat         domain.DataCategory
		count       int
	}
	lines := func(who domain.Principal) []line {
		page, more, err := s.AccessLog(ctx, who, AccessLogFilter{}, Page{First: 10})
		require.NoError(t, err)
		require.False(t, more)
		var out []line
		for _, e := range page {
			assert.Equal(t, "prov-x", e.OrgID)
			out = append(out, line{e.Day, e.CaseID, e.Category, e.Count})
		}
		return out
	}
	assert.ElementsMatch(t, []line{
		{"2026-03-02", "c-1", domain.CategoryClinical, 1},
		{"2026-03-01", "c-1", domain.CategoryClinical, 1},
		{"2026-03-01", "c-1", domain.CategoryIdentity, 1},
		{"2026-03-01", "c-1", domain.CategoryDemographics, 1},
		{"2026-03-01", "c-2", domain.CategoryClinical, 2},
	}, lines(alice))
	assert.Equal(t, "2026-03-02", lines(alice)[0].day, "newest day first")
	assert.Equal(t, []line{{"2026-03-01", "c-3", domain.CategoryOpinion, 2}}, lines(bob), "both opinion groups are one category")
}

// A page may end inside a day, and a day's entries are spread over
// fragments on both sides of the cursor: every entry comes exactly once,
// with the count of every batch that read it, whatever the page size.
func TestAccessLogPagesWithinADayAcrossFragments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslogday")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	want := map[string]int{} // case/category → reads
	for b := range 4 {
		var batch []domain.AuditEvent
		for c := range 5 {
			if (b+c)%3 == 0 {
				continue // not every batch touches every entry
			}
			caseID := fmt.Sprintf("c-%d", c)
			for _, g := range []domain.Group{domain.GroupCaseClinical, domain.GroupPatientIdentity} {
				typ := "Case"
				if g == domain.GroupPatientIdentity {
					typ = "Patient"
				}
				batch = append(batch, domain.AuditEvent{At: at.Add(time.Duration(b) * time.Minute), Subject: "u-1", Role: domain.RolePartner,
					Org: "net-x", ResourceType: typ, ResourceID: caseID, CaseID: caseID, FieldGroup: string(g), Outcome: "ALLOWED", PatientID: alice.MemberKey()})
				cat, _ := domain.CategoryOf(typ, string(g))
				want[caseID+"/"+string(cat)]++
			}
		}
		// And one read the day before, so pages cross a day too.
		batch = append(batch, domain.AuditEvent{At: at.AddDate(0, 0, -1), Subject: "u-1", Role: domain.RolePartner, Org: "net-x",
			ResourceType: "Case", ResourceID: "c-9", CaseID: "c-9", FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: alice.MemberKey()})
		want["c-9/"+string(domain.CategoryClinical)]++
		require.NoError(t, s.AppendAudit(ctx, batch))
	}
	all, _, err := s.AccessLog(ctx, alice, AccessLogFilter{}, Page{First: 100})
	require.NoError(t, err)
	require.Len(t, all, len(want))
	total, err := s.CountAccessLog(ctx, alice, AccessLogFilter{})
	require.NoError(t, err)
	assert.Equal(t, len(want), total)

	for _, size := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
			var got []*domain.AccessLogEntry
			pg := Page{First: size}
			for {
				page, more, err := s.AccessLog(ctx, alice, AccessLogFilter{}, pg)
				require.NoError(t, err)
				require.LessOrEqual(t, len(page), size)
				got = append(got, page...)
				if !more {
					break
				}
				require.NotEmpty(t, page)
				pg.After = page[len(page)-1].ID
			}
			require.Len(t, got, len(all))
			for i, e := range got {
				assert.Equal(t, all[i].ID, e.ID, "the same order as one page")
				assert.Equal(t, want[e.CaseID+"/"+string(e.Category)], e.Count, e.CaseID+" "+string(e.Category))
				if i > 0 {
					assert.True(t, got[i-1].Day > e.Day || (got[i-1].Day == e.Day && got[i-1].ID > e.ID), "newest day first, then by id")
				}
			}
		})
	}
}

// A fragment that does not decode is an error, never a page that leaves
// it out.
func TestAccessLogRefusesAMalformedFragment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "accesslogbad")
	alice := domain.Principal{Subject: "m-1", Role: domain.RoleMember, Org: "ins-a"}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	require.NoError(t, s.AppendAudit(ctx, []domain.AuditEvent{{At: at, Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x",
		ResourceType: "Case", ResourceID: "c-1", CaseID: "c-1", FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: alice.MemberKey()}}))
	_, err := s.c(colAccessLog).UpdateMany(ctx, bson.D{}, bson.D{{Key: "$push", Value: bson.D{{Key: "entries", Value: `["prov-x","PROVIDER"]`}}}})
	require.NoError(t, err)
	_, _, err = s.AccessLog(ctx, alice, AccessLogFilter{}, Page{First: 10})
	assert.Error(t, err)
	_, err = s.CountAccessLog(ctx, alice, AccessLogFilter{})
	assert.Error(t, err)
}
