package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
)

// An export verifies offline, and an edited line in it is found.
func TestAnExportVerifiesOffline(t *testing.T) {
	events := make([]domain.AuditEvent, 5)
	for i := range events {
		events[i] = domain.AuditEvent{At: time.Now(), Subject: "u-1", Role: domain.RoleProvider, Org: "prov-x", Outcome: "ALLOWED"}
	}
	audit.NewChainer(nil).Link(events)
	write := func(evs []domain.AuditEvent) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		last := evs[len(evs)-1]
		require.NoError(t, enc.Encode(Line{Head: &audit.ChainHead{Chain: last.Chain, Seq: last.Seq, Hash: last.Hash}}))
		for i := range evs {
			require.NoError(t, enc.Encode(Line{Event: &evs[i]}))
		}
		path := filepath.Join(t.TempDir(), "export.ndjson")
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
		return path
	}
	var out, errs bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"-file", write(events)}, func(string) string { return "" }, &out, &errs), out.String()+errs.String())

	events[2].Subject = "someone-else"
	out.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"-file", write(events)}, func(string) string { return "" }, &out, &errs))
	var rep audit.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	require.Len(t, rep.Breaks, 1)
	assert.Equal(t, audit.Break{Chain: events[2].Chain, Position: 3, EventID: events[2].ID, Reason: audit.BreakEdited}, rep.Breaks[0])
}
