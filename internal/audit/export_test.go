package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
)

var exportDay = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// chained returns n events linked by ch, as the Batcher links a batch.
func chained(ch *audit.Chainer, n int, patient string) []domain.AuditEvent {
	events := make([]domain.AuditEvent, n)
	for i := range events {
		events[i] = domain.AuditEvent{
			At: exportDay.Add(time.Duration(i) * time.Second), Subject: "dr-1", Role: domain.RoleProvider, Org: "prov-1",
			Operation: "CaseDetail", ResourceType: "Patient", ResourceID: "p-1", FieldGroup: "patient.identity",
			RequestID: "req", Outcome: audit.OutcomeAllowed, PatientID: patient,
		}
	}
	ch.Link(events)
	return events
}

// exportOf writes heads then events as the handler does, signed by sg.
func exportOf(t *testing.T, sg *signing.Signer, events []domain.AuditEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := audit.NewExportWriter(&buf, sg)
	require.NoError(t, w.Write(audit.ExportLine{Export: &audit.ExportHeader{Format: audit.ExportFormat, From: "2026-03-01", To: "2026-03-01", GeneratedAt: exportDay}}))
	heads := map[string]audit.ChainHead{}
	var order []string
	for _, e := range events {
		if _, ok := heads[e.Chain]; !ok {
			order = append(order, e.Chain)
		}
		heads[e.Chain] = audit.ChainHead{Chain: e.Chain, Seq: e.Seq, Hash: e.Hash}
	}
	for _, c := range order {
		h := heads[c]
		require.NoError(t, w.Write(audit.ExportLine{Head: &h}))
	}
	for _, e := range events {
		x := audit.ToExportEvent(e)
		require.NoError(t, w.Write(audit.ExportLine{Event: &x}))
	}
	require.NoError(t, w.Write(audit.ExportLine{End: &audit.ExportEnd{Heads: len(order), Events: len(events)}}))
	return buf.Bytes()
}

func keysOf(t *testing.T, sg *signing.Signer) jose.JSONWebKeySet {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: sg.PublicKeys()})
	require.NoError(t, err)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(b, &set))
	return set
}

// lines splits an export into its parsed lines.
func lines(t *testing.T, b []byte) []audit.ExportLine {
	t.Helper()
	var out []audit.ExportLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var x audit.ExportLine
		require.NoError(t, json.Unmarshal([]byte(l), &x))
		out = append(out, x)
	}
	return out
}

func join(t *testing.T, ls []audit.ExportLine) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, l := range ls {
		require.NoError(t, enc.Encode(l))
	}
	return buf.Bytes()
}

func refusal(t *testing.T, err error) string {
	t.Helper()
	var r *audit.RefusedError
	require.True(t, errors.As(err, &r), "refused, got %v", err)
	return r.Reason
}

// Issue 17 item 3/4: the chain hashes carry no key, so the export is
// trusted through its signed end line. Each attack below is what someone
// holding the file (not the signing key) could do.
func TestASignedExportResistsTheForger(t *testing.T) {
	sg, err := signing.Generate()
	require.NoError(t, err)
	keys := keysOf(t, sg)
	fixed := func() time.Time { return exportDay }
	a, b := audit.NewChainer(fixed), audit.NewChainer(fixed)
	events := chained(a, 5, "ins-1:m-1")
	events = append(events, chained(b, 4, "ins-1:m-2")...)
	b.Broken() // a second segment of instance b that day
	events = append(events, chained(b, 3, "ins-1:m-3")...)
	body := exportOf(t, sg, events)

	t.Run("a valid export verifies", func(t *testing.T) {
		heads, got, err := audit.ReadExport(bytes.NewReader(body), keys)
		require.NoError(t, err)
		rep := audit.Verify(heads, got)
		assert.True(t, rep.OK(), "%+v", rep.Breaks)
		assert.Equal(t, 3, rep.Chains)
		assert.Equal(t, string(body), string(join(t, lines(t, body))), "re-encoding an untouched line keeps its bytes, so each attack below changes only what it says")
		assert.Equal(t, len(events), rep.Events)
		end := lines(t, body)[len(lines(t, body))-1].End
		require.NotNil(t, end)
		assert.Len(t, end.Chains, 3, "the end line lists every chain and segment")
		assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, end.Digest)
		assert.Equal(t, sg.KeyID(), end.Signature.KeyID)
	})

	t.Run("an edited event with every hash after it and the head recomputed is refused at the digest", func(t *testing.T) {
		ls := lines(t, body)
		var chain string
		var prev string
		for i := range ls {
			if ls[i].Event == nil {
				continue
			}
			e := ls[i].Event.AuditEvent()
			switch {
			case chain == "" && e.Seq == 2:
				chain = e.Chain
				e.Subject = "someone-else"
			case e.Chain != chain:
				continue
			default:
				e.Prev = prev
			}
			e.Hash = audit.Hash(e)
			prev = e.Hash
			x := audit.ToExportEvent(e)
			ls[i].Event = &x
		}
		for i := range ls {
			if ls[i].Head != nil && ls[i].Head.Chain == chain {
				ls[i].Head.Hash = prev
			}
		}
		forged := join(t, ls)
		heads, got, err := audit.ReadExport(bytes.NewReader(forged), keys)
		assert.Equal(t, audit.RefusedDigest, refusal(t, err))
		assert.True(t, audit.Verify(heads, got).OK(), "the chains alone are fooled: only the signature catches it")

		// Rewriting the signed chain list too breaks the signature.
		end := ls[len(ls)-1].End
		for i := range end.Chains {
			if end.Chains[i].Chain == chain {
				end.Chains[i].Hash = prev
			}
		}
		_, _, err = audit.ReadExport(bytes.NewReader(join(t, ls)), keys)
		assert.Equal(t, audit.RefusedSignature, refusal(t, err))
	})

	t.Run("a chain dropped whole, head and events, with the counts fixed is refused", func(t *testing.T) {
		drop := events[0].Chain
		var kept []audit.ExportLine
		for _, l := range lines(t, body) {
			switch {
			case l.Head != nil && l.Head.Chain == drop, l.Event != nil && l.Event.Chain == drop:
				continue
			case l.End != nil:
				l.End.Heads--
				l.End.Events -= 5
			}
			kept = append(kept, l)
		}
		heads, got, err := audit.ReadExport(bytes.NewReader(join(t, kept)), keys)
		assert.Equal(t, audit.RefusedSignature, refusal(t, err))
		assert.True(t, audit.Verify(heads, got).OK(), "the remaining chains hold: only the signed end catches it")

		// Dropping it from the signed list as well changes nothing.
		end := kept[len(kept)-1].End
		end.Chains = end.Chains[1:]
		_, _, err = audit.ReadExport(bytes.NewReader(join(t, kept)), keys)
		assert.Equal(t, audit.RefusedSignature, refusal(t, err))
	})

	t.Run("an export signed by another key is refused", func(t *testing.T) {
		other, err := signing.Generate()
		require.NoError(t, err)
		_, _, err = audit.ReadExport(bytes.NewReader(body), keysOf(t, other))
		assert.Equal(t, audit.RefusedSignature, refusal(t, err))
		_, _, err = audit.ReadExport(bytes.NewReader(exportOf(t, other, events)), keys)
		assert.Equal(t, audit.RefusedSignature, refusal(t, err), "a forger re-signing with their own key")
	})

	t.Run("an end line without its signature is refused", func(t *testing.T) {
		ls := lines(t, body)
		ls[len(ls)-1].End.Signature = nil
		_, _, err := audit.ReadExport(bytes.NewReader(join(t, ls)), keys)
		assert.Equal(t, audit.RefusedSignature, refusal(t, err))
	})

	t.Run("an export without its end line is cut short", func(t *testing.T) {
		ls := lines(t, body)
		_, _, err := audit.ReadExport(bytes.NewReader(join(t, ls[:len(ls)-1])), keys)
		assert.ErrorIs(t, err, audit.ErrTruncated)
	})
}

// A segment of an instance's day that is missing from an export (or the
// database) is reported as MISSING, even when what is left is signed.
func TestAMissingSegmentIsReported(t *testing.T) {
	sg, err := signing.Generate()
	require.NoError(t, err)
	ch := audit.NewChainer(func() time.Time { return exportDay })
	first := chained(ch, 2, "ins-1:m-1")
	ch.Broken()
	second := chained(ch, 2, "ins-1:m-1")
	ch.Broken()
	third := chained(ch, 2, "ins-1:m-1")
	require.True(t, strings.HasSuffix(second[0].Chain, "/1"))

	// The middle segment was deleted before the export was made: the
	// export is genuine, its chains are not complete.
	body := exportOf(t, sg, append(first, third...))
	heads, got, err := audit.ReadExport(bytes.NewReader(body), keysOf(t, sg))
	require.NoError(t, err)
	rep := audit.Verify(heads, got)
	require.Len(t, rep.Breaks, 1)
	assert.Equal(t, audit.Break{Chain: second[0].Chain, Position: 1, Reason: audit.BreakMissing}, rep.Breaks[0])

	t.Run("with every segment present it verifies", func(t *testing.T) {
		all := append(append(append([]domain.AuditEvent{}, first...), second...), third...)
		heads, got, err := audit.ReadExport(bytes.NewReader(exportOf(t, sg, all)), keysOf(t, sg))
		require.NoError(t, err)
		assert.True(t, audit.Verify(heads, got).OK())
	})
}

func TestTheWriterRefusesToSignWrongCountsOrWithoutAKey(t *testing.T) {
	var buf bytes.Buffer
	err := audit.NewExportWriter(&buf, nil).Write(audit.ExportLine{End: &audit.ExportEnd{}})
	assert.ErrorIs(t, err, audit.ErrUnsigned)

	sg, err := signing.Generate()
	require.NoError(t, err)
	w := audit.NewExportWriter(&buf, sg)
	require.NoError(t, w.Write(audit.ExportLine{Head: &audit.ChainHead{Chain: "gw-1/2026-03-01/0", Seq: 1, Hash: "h"}}))
	assert.Error(t, w.Write(audit.ExportLine{End: &audit.ExportEnd{Heads: 2}}))
}
