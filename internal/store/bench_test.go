package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/embedded"
)

// One audit batch of 1,000 partner reads of 200 members' cases, as a busy
// page load sends it: the audit rows, the chain head and the member's access
// log. Every batch touches entries that earlier batches wrote, which is what
// folding the log with upserts had made cost seconds on the embedded store.
func BenchmarkAppendAuditWithAccessLog(b *testing.B) {
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
