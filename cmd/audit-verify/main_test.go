package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/testenv"
)

func noEnv(string) string { return "" }

// export fetches GET /audit/export for today as the coordinator.
func export(t *testing.T, env *testenv.Env) []byte {
	t.Helper()
	day := time.Now().UTC().Format(time.DateOnly)
	req := httptest.NewRequest(http.MethodGet, "/audit/export?from="+day+"&to="+day, nil)
	req.Header.Set("Authorization", "Bearer "+env.Token(t, testenv.Persona("coordinator")))
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/x-ndjson", rec.Header().Get("Content-Type"))
	return rec.Body.Bytes()
}

func write(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.ndjson")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// Issue 17, item 4: what GET /audit/export streams verifies offline with
// -file, and one altered byte in it is found, with its position.
func TestAnExportVerifiesOfflineAndOneAlteredByteIsFound(t *testing.T) {
	env := testenv.Start(t)
	// Reads of PHI by several roles: audit events with patients.
	for _, who := range []string{"member", "insurer", "coordinator"} {
		res := env.As(t, who, `{ cases(first: 5) { edges { node { reference patient { givenName birthYear } } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
	}
	body := export(t, env)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	require.Greater(t, len(lines), 3)
	events, patients := 0, map[string]bool{}
	for _, l := range lines {
		var x audit.ExportLine
		require.NoError(t, json.Unmarshal([]byte(l), &x), l)
		if x.Event != nil {
			events++
			patients[x.Event.PatientID] = true
		}
	}
	assert.Greater(t, events, 10)
	assert.Greater(t, len(patients), 2, "events name the patients they touched")

	var out, errs bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"-file", write(t, body)}, noEnv, &out, &errs), out.String()+errs.String())
	var rep audit.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.Equal(t, events, rep.Events)
	assert.GreaterOrEqual(t, rep.Chains, 1)

	t.Run("one altered byte in an event is a break at its position", func(t *testing.T) {
		i := bytes.LastIndex(body, []byte(`"subject":"`)) + len(`"subject":"`)
		altered := bytes.Clone(body)
		altered[i] ^= 0x01
		out.Reset()
		assert.Equal(t, 1, run(context.Background(), []string{"-file", write(t, altered)}, noEnv, &out, &errs), out.String())
		var rep audit.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
		require.Len(t, rep.Breaks, 1)
		assert.Equal(t, audit.BreakEdited, rep.Breaks[0].Reason)
		// The altered event is the last line's event before the end line.
		var x audit.ExportLine
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-2]), &x))
		require.NotNil(t, x.Event)
		assert.Equal(t, x.Event.Seq, rep.Breaks[0].Position)
		assert.Equal(t, x.Event.ID, rep.Breaks[0].EventID)
	})

	t.Run("an export cut short is refused", func(t *testing.T) {
		cut := []byte(strings.Join(lines[:len(lines)-2], "\n") + "\n")
		out.Reset()
		errs.Reset()
		assert.Equal(t, 2, run(context.Background(), []string{"-file", write(t, cut)}, noEnv, &out, &errs))
		assert.Contains(t, errs.String(), "incomplete")
	})

	t.Run("a deleted event line is a missing link", func(t *testing.T) {
		// Drop one event and fix the end count, as a careful forger would.
		var kept []string
		dropped := false
		for _, l := range lines {
			var x audit.ExportLine
			require.NoError(t, json.Unmarshal([]byte(l), &x))
			switch {
			case x.Event != nil && x.Event.Seq == 2 && !dropped:
				dropped = true
				continue
			case x.End != nil:
				x.End.Events--
				b, _ := json.Marshal(x)
				l = string(b)
			}
			kept = append(kept, l)
		}
		require.True(t, dropped)
		out.Reset()
		assert.Equal(t, 1, run(context.Background(), []string{"-file", write(t, []byte(strings.Join(kept, "\n")))}, noEnv, &out, &errs), out.String())
		var rep audit.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
		require.NotEmpty(t, rep.Breaks)
		assert.Equal(t, audit.BreakMissing, rep.Breaks[0].Reason)
		assert.Equal(t, int64(2), rep.Breaks[0].Position)
	})
}
