package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
)

// benchStore opens a fresh database: on MONGODB_URI, or on an embedded
// store of its own.
func benchStore(b *testing.B) *Store {
	ctx := context.Background()
	o := Options{Database: fmt.Sprintf("bench_%d", time.Now().UnixNano()), Keys: testKeyring(b)}
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		o.URI = uri
	} else {
		db, err := embedded.Start(ctx, embedded.Options{DataDir: b.TempDir()})
		require.NoError(b, err)
		b.Cleanup(db.Stop)
		o.URI, o.Prepare = db.URI(), db.IndexIDs
	}
	s, err := Open(ctx, o)
	require.NoError(b, err)
	b.Cleanup(func() {
		_ = s.db.Drop(context.Background())
		_ = s.Close(context.Background())
	})
	return s
}

// One audit batch of 1,000 partner reads of 200 members' cases, as a busy
// page load sends it: the audit rows, the chain head and the member's access
// log. Every batch touches entries that earlier batches wrote, which is what
// folding the log with upserts had made cost seconds on the embedded store.
func BenchmarkAppendAuditWithAccessLog(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	batch := func() []domain.AuditEvent {
		ev := make([]domain.AuditEvent, 0, 1000)
		for i := range 1000 {
			ev = append(ev, domain.AuditEvent{At: time.Now(), Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x",
				Operation: "Cases", ResourceType: "Case", ResourceID: fmt.Sprint("c-", i), CaseID: fmt.Sprint("c-", i),
				FieldGroup: string(domain.GroupCaseClinical), Outcome: "ALLOWED", PatientID: fmt.Sprint("ins-a:m-", i%200)})
		}
		return ev
	}
	require.NoError(b, s.AppendAudit(ctx, batch()))
	b.ResetTimer()
	for b.Loop() {
		if err := s.AppendAudit(ctx, batch()); err != nil {
			b.Fatal(err)
		}
	}
}

// Audit batches of case details as the load run sends them (cmd/loadrun
// -ops detail, a coordinator): the gateway's, five rows a detail (the
// case's clinical fields, the opinion's two groups, the patient's two) with
// the member's four access-log entries; the hand-written baseline's, three
// rows naming no member (so no access log). Both chain, so each batch also
// writes its chain's head. cpu-ms/detail is the CPU of this whole process
// (driver and embedded store) per detail: the time per batch is mostly
// waiting for the disk.
func BenchmarkAppendAuditCaseDetails(b *testing.B) {
	for _, shape := range []string{"gateway", "baseline"} {
		for _, per := range []int{2, 7} {
			b.Run(fmt.Sprintf("%s, %d details a batch", shape, per), func(b *testing.B) {
				s := benchStore(b)
				ch := audit.NewChainer(nil)
				n := 0
				batch := func() []domain.AuditEvent {
					var ev []domain.AuditEvent
					for range per {
						n++
						caseID, member := fmt.Sprintf("6b0eeac00ecf49b311e1%04x", n*7919%2000), fmt.Sprintf("ins-maple:m-%d", 1000+n*7919%1000)
						read := func(typ, id string, g domain.Group) domain.AuditEvent {
							e := domain.AuditEvent{At: time.Now(), Subject: "u-coordinator", Role: domain.RoleCoordinator, Org: "operator",
								Operation: "query", ResourceType: typ, ResourceID: id, FieldGroup: string(g), RequestID: fmt.Sprintf("%016x", n),
								Outcome: "ALLOWED"}
							if shape == "gateway" {
								e.CaseID, e.PatientID = caseID, member
							}
							return e
						}
						if shape == "baseline" {
							ev = append(ev, read("Case", caseID, domain.GroupCaseClinical), read("Patient", member, domain.GroupPatientIdentity),
								read("Opinion", caseID, domain.GroupOpinionContent))
							continue
						}
						ev = append(ev, read("Case", caseID, domain.GroupCaseClinical), read("Opinion", "op-"+caseID, domain.GroupOpinionMeta),
							read("Opinion", "op-"+caseID, domain.GroupOpinionContent), read("Patient", member, domain.GroupPatientIdentity),
							read("Patient", member, domain.GroupPatientDemographic))
					}
					ch.Link(ev)
					return ev
				}
				// A collection of some size, as after a while of load.
				for range 300 {
					require.NoError(b, s.AppendAudit(context.Background(), batch()))
				}
				cpu0 := processCPU()
				b.ResetTimer()
				for b.Loop() {
					if err := s.AppendAudit(context.Background(), batch()); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N*per), "cpu-ms/detail")
			})
		}
	}
}
