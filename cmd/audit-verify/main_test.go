package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
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

// jwksFile saves the gateway's published keys, as an auditor would.
func jwksFile(t *testing.T, env *testenv.Env) string {
	t.Helper()
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, rec.Body.Bytes(), 0o600))
	return path
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

	keys := jwksFile(t, env)
	verify := func(b []byte, out, errs *bytes.Buffer) int {
		out.Reset()
		errs.Reset()
		return run(context.Background(), []string{"-file", write(t, b), "-jwks", keys}, noEnv, out, errs)
	}
	var out, errs bytes.Buffer
	require.Equal(t, 0, verify(body, &out, &errs), out.String()+errs.String())
	var rep audit.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.Equal(t, events, rep.Events)
	assert.GreaterOrEqual(t, rep.Chains, 1)

	t.Run("one altered byte in an event is refused at the digest, and is a break at its position", func(t *testing.T) {
		i := bytes.LastIndex(body, []byte(`"subject":"`)) + len(`"subject":"`)
		altered := bytes.Clone(body)
		altered[i] ^= 0x01
		assert.Equal(t, 1, verify(altered, &out, &errs), out.String())
		assert.Contains(t, errs.String(), audit.RefusedDigest)
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
		assert.Equal(t, 2, verify(cut, &out, &errs))
		assert.Contains(t, errs.String(), "incomplete")
	})

	t.Run("a deleted event line with the end count fixed is refused, and is a missing link", func(t *testing.T) {
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
		assert.Equal(t, 1, verify([]byte(strings.Join(kept, "\n")+"\n"), &out, &errs), out.String())
		assert.Contains(t, errs.String(), audit.RefusedSignature)
		var rep audit.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
		require.NotEmpty(t, rep.Breaks)
		assert.Equal(t, audit.BreakMissing, rep.Breaks[0].Reason)
		assert.Equal(t, int64(2), rep.Breaks[0].Position)
	})
}

// The security review's attacks on a real export (issue 17, item 3/4):
// someone holding the file but not the gateway's key edits it so that
// every hash chain still holds.
func TestAForgedExportIsRefused(t *testing.T) {
	env := testenv.Start(t)
	for _, who := range []string{"member", "insurer"} {
		res := env.As(t, who, `{ cases(first: 5) { edges { node { reference patient { givenName } } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
	}
	body := export(t, env)
	keys := jwksFile(t, env)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	parse := func(l string) audit.ExportLine {
		var x audit.ExportLine
		require.NoError(t, json.Unmarshal([]byte(l), &x))
		return x
	}
	encode := func(x audit.ExportLine) string {
		b, err := json.Marshal(x)
		require.NoError(t, err)
		return string(b)
	}
	verify := func(b []byte, jwks string) (int, audit.Report, string) {
		var out, errs bytes.Buffer
		code := run(context.Background(), []string{"-file", write(t, b), "-jwks", jwks}, noEnv, &out, &errs)
		var rep audit.Report
		if code != 2 {
			require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
		}
		return code, rep, errs.String()
	}

	t.Run("a valid export still verifies", func(t *testing.T) {
		code, rep, errs := verify(body, keys)
		assert.Equal(t, 0, code, errs)
		assert.True(t, rep.OK())
	})

	t.Run("an edited event with every later hash and its head recomputed is refused", func(t *testing.T) {
		forged := slices.Clone(lines)
		var chain, prev string
		var last int64
		for i, l := range forged {
			x := parse(l)
			if x.Event == nil {
				continue
			}
			e := x.Event.AuditEvent()
			switch {
			case chain == "" && e.Seq == 2:
				chain = e.Chain
				e.Subject = "someone-else"
			case e.Chain != chain || chain == "":
				continue
			default:
				e.Prev = prev
			}
			e.Hash = audit.Hash(e)
			prev, last = e.Hash, e.Seq
			ev := audit.ToExportEvent(e)
			forged[i] = encode(audit.ExportLine{Event: &ev})
		}
		require.NotEmpty(t, chain)
		for i, l := range forged {
			if x := parse(l); x.Head != nil && x.Head.Chain == chain {
				require.Equal(t, last, x.Head.Seq)
				x.Head.Hash = prev
				forged[i] = encode(x)
			}
		}
		code, rep, errs := verify([]byte(strings.Join(forged, "\n")+"\n"), keys)
		assert.Equal(t, 1, code)
		assert.True(t, rep.OK(), "the recomputed chains hold: the signature is what catches the edit")
		assert.Contains(t, errs, audit.RefusedDigest)
	})

	t.Run("a whole chain dropped with its head and the counts fixed is refused", func(t *testing.T) {
		drop := ""
		for _, l := range lines {
			if x := parse(l); x.Head != nil {
				drop = x.Head.Chain
				break
			}
		}
		require.NotEmpty(t, drop)
		var kept []string
		heads, events := 0, 0
		for _, l := range lines {
			x := parse(l)
			switch {
			case x.Head != nil && x.Head.Chain == drop:
				heads++
				continue
			case x.Event != nil && x.Event.Chain == drop:
				events++
				continue
			case x.End != nil:
				x.End.Heads -= heads
				x.End.Events -= events
				x.End.Chains = slices.DeleteFunc(x.End.Chains, func(h audit.ChainHead) bool { return h.Chain == drop })
				l = encode(x)
			}
			kept = append(kept, l)
		}
		require.Positive(t, events)
		code, rep, errs := verify([]byte(strings.Join(kept, "\n")+"\n"), keys)
		assert.Equal(t, 1, code)
		assert.True(t, rep.OK(), "what is left holds: the signed chain list is what catches the drop")
		assert.Contains(t, errs, audit.RefusedSignature)
	})

	t.Run("a key set that is not the gateway's is refused", func(t *testing.T) {
		other, err := signing.Generate()
		require.NoError(t, err)
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: other.PublicKeys()})
		require.NoError(t, err)
		wrong := filepath.Join(t.TempDir(), "other.json")
		require.NoError(t, os.WriteFile(wrong, b, 0o600))
		code, _, errs := verify(body, wrong)
		assert.Equal(t, 1, code)
		assert.Contains(t, errs, audit.RefusedSignature)
	})

	t.Run("an export is not verified without the keys", func(t *testing.T) {
		var out, errs bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), []string{"-file", write(t, body)}, noEnv, &out, &errs))
		assert.Contains(t, errs.String(), "-jwks")
	})

	t.Run("the keys can be fetched from the gateway's JWKS URL, and only from there", func(t *testing.T) {
		gw := httptest.NewServer(env.Handler)
		t.Cleanup(gw.Close)
		code, _, errs := verify(body, gw.URL+"/.well-known/jwks.json")
		assert.Equal(t, 0, code, errs)

		elsewhere := httptest.NewServer(http.RedirectHandler(gw.URL+"/.well-known/jwks.json", http.StatusFound))
		t.Cleanup(elsewhere.Close)
		code, _, errs = verify(body, elsewhere.URL+"/jwks.json")
		assert.Equal(t, 2, code, "a redirect is not followed")
		assert.Contains(t, errs, "redirect")

		code, _, errs = verify(body, "http://example.com/.well-known/jwks.json")
		assert.Equal(t, 2, code, "plain http only on loopback")
		assert.Contains(t, errs, "https")
	})
}

// Read from the database, a period that retention pruned verifies with the
// gateway's keys (its checkpoints are signed), and without them the
// checkpoints are not taken on trust.
func TestAPrunedPeriodVerifiesFromTheDatabaseWithTheKeys(t *testing.T) {
	env := testenv.Start(t)
	at := time.Date(2019, 7, 1, 12, 0, 0, 0, time.UTC)
	ch := audit.NewChainer(func() time.Time { return at })
	events := []domain.AuditEvent{
		{At: at, Subject: "prov-1", Role: domain.RoleProvider, Org: "prov-toronto", Operation: "CaseDetail", ResourceType: "Case", ResourceID: "c-1", FieldGroup: "case.clinical", RequestID: "r-1", Outcome: "ALLOWED"},
		{At: at, Subject: "prov-1", Role: domain.RoleProvider, Org: "prov-toronto", Operation: "CaseDetail", ResourceType: "Case", ResourceID: "c-2", FieldGroup: "case.clinical", RequestID: "r-2", Outcome: "ALLOWED"},
	}
	ch.Link(events)
	require.NoError(t, env.Store.AppendAudit(context.Background(), events))
	retention := audit.MinRetentionDays * 24 * time.Hour
	rep, err := env.Workflow.PruneAudit(context.Background(), at.AddDate(0, 0, 3).Add(retention), retention)
	require.NoError(t, err)
	require.Equal(t, []string{"2019-07-01"}, rep.Pruned)

	verify := func(extra ...string) (int, audit.Report, string) {
		var out, errs bytes.Buffer
		args := append([]string{"-uri", testenv.URI(t), "-db", env.DB, "-from", "2019-07-01", "-to", "2019-07-01"}, extra...)
		code := run(context.Background(), args, noEnv, &out, &errs)
		var r audit.Report
		require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String()+errs.String())
		return code, r, errs.String()
	}
	code, r, _ := verify("-jwks", jwksFile(t, env))
	assert.Equal(t, 0, code)
	assert.Equal(t, 1, r.Pruned)
	assert.True(t, r.OK())

	code, r, errs := verify()
	assert.Equal(t, 1, code)
	assert.Zero(t, r.Pruned)
	require.Len(t, r.Breaks, 1)
	assert.Equal(t, audit.BreakCheckpoint, r.Breaks[0].Reason)
	assert.Contains(t, errs, "-jwks")
}
