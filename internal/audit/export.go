package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
)

// The export for auditors (GET /audit/export, issue 17 item 4): NDJSON, one
// JSON object per line, written as it is read:
//
//	{"export": {"format": …, "from": …, "to": …, "generatedAt": …}}
//	{"head": {"chain": …, "seq": …, "hash": …}}          one per chain
//	{"event": {"id": …, "patientId": …, "chain": …, …}}  one per audit event
//	{"end": {"heads": n, "events": m, "chains": [heads…], "digest": "sha256:…",
//	         "signature": {"alg": "ES256", "keyId": …, "jws": …}}}
//
// Each event is one record and names at most one patient (the member key),
// so a privacy officer can take one patient's records apart; every event of
// the period's chains is there, with its chain, position, previous hash and
// hash, and the heads close each chain, so `audit-verify -file` recomputes
// every chain offline.
//
// The chain hashes carry no key: anyone can recompute them after an edit.
// What makes the file trustworthy is the end line, signed by the service's
// signing key (internal/signing, the key published at
// /.well-known/jwks.json): its digest covers every byte of every line
// before it, exactly as sent, and it lists every chain (segment) of the
// period with its head, so an edited event, a rewritten head or a dropped
// chain no longer matches what was signed. A file without its end line is
// refused as cut short.

// ExportFormat names the line format above.
const ExportFormat = "secondopinion.audit-export/1"

// ExportHeader opens an export.
type ExportHeader struct {
	Format      string    `json:"format"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	GeneratedAt time.Time `json:"generatedAt"`
}

// ExportEvent is one audit event as exported: every field the hash covers.
type ExportEvent struct {
	ID           string    `json:"id"`
	At           time.Time `json:"at"`
	Subject      string    `json:"subject"`
	Role         string    `json:"role"`
	Org          string    `json:"org"`
	ClientID     string    `json:"clientId,omitempty"`
	Operation    string    `json:"operation"`
	ResourceType string    `json:"resourceType"`
	ResourceID   string    `json:"resourceId"`
	FieldGroup   string    `json:"fieldGroup"`
	RequestID    string    `json:"requestId"`
	Outcome      string    `json:"outcome"`
	CaseID       string    `json:"caseId,omitempty"`
	PatientID    string    `json:"patientId,omitempty"`
	Chain        string    `json:"chain"`
	Seq          int64     `json:"seq"`
	Prev         string    `json:"prev"`
	Hash         string    `json:"hash"`
}

// ExportEnd closes an export: its counts, the list of every chain (segment)
// of the period with its head, the SHA-256 of every line before it exactly
// as sent, and the service's detached signature over all of that.
type ExportEnd struct {
	Heads     int              `json:"heads"`
	Events    int              `json:"events"`
	Chains    []ChainHead      `json:"chains"`
	Digest    string           `json:"digest"`
	Signature *ExportSignature `json:"signature,omitempty"`
}

// ExportSignature is the end line's signature: a detached compact JWS
// (ES256, internal/signing) over the end line's RFC 8785 canonical JSON
// without its signature, verified with the gateway's published keys
// (/.well-known/jwks.json).
type ExportSignature struct {
	Alg   string `json:"alg"`
	KeyID string `json:"keyId"`
	JWS   string `json:"jws"`
}

// digestPrefix names the digest's algorithm in the end line.
const digestPrefix = "sha256:"

// signedPayload is what the end line's signature covers.
func (e ExportEnd) signedPayload() ([]byte, error) {
	e.Signature = nil
	if e.Chains == nil {
		e.Chains = []ChainHead{}
	}
	return signing.Canonical(e)
}

// ExportLine is one line of an export: exactly one field is set.
type ExportLine struct {
	Export *ExportHeader `json:"export,omitempty"`
	Head   *ChainHead    `json:"head,omitempty"`
	Event  *ExportEvent  `json:"event,omitempty"`
	End    *ExportEnd    `json:"end,omitempty"`
}

// ToExportEvent is e as exported.
func ToExportEvent(e domain.AuditEvent) ExportEvent {
	return ExportEvent{
		ID: e.ID, At: e.At.UTC(), Subject: e.Subject, Role: string(e.Role), Org: e.Org, ClientID: e.ClientID,
		Operation: e.Operation, ResourceType: e.ResourceType, ResourceID: e.ResourceID, FieldGroup: e.FieldGroup,
		RequestID: e.RequestID, Outcome: e.Outcome, CaseID: e.CaseID, PatientID: e.PatientID,
		Chain: e.Chain, Seq: e.Seq, Prev: e.Prev, Hash: e.Hash,
	}
}

// AuditEvent is the exported event back as an audit event.
func (x ExportEvent) AuditEvent() domain.AuditEvent {
	return domain.AuditEvent{
		ID: x.ID, At: x.At.UTC(), Subject: x.Subject, Role: domain.Role(x.Role), Org: x.Org, ClientID: x.ClientID,
		Operation: x.Operation, ResourceType: x.ResourceType, ResourceID: x.ResourceID, FieldGroup: x.FieldGroup,
		RequestID: x.RequestID, Outcome: x.Outcome, CaseID: x.CaseID, PatientID: x.PatientID,
		Chain: x.Chain, Seq: x.Seq, Prev: x.Prev, Hash: x.Hash,
	}
}

// ExportWriter writes an export's lines as they come, keeping a running
// SHA-256 of every byte it writes, and seals the end line: the chain list
// (from the head lines written), the digest and the signature. Nothing but
// the heads is kept.
type ExportWriter struct {
	enc    *json.Encoder
	sum    hash.Hash
	signer *signing.Signer
	chains []ChainHead
}

// NewExportWriter writes to w and signs the end line with signer.
func NewExportWriter(w io.Writer, signer *signing.Signer) *ExportWriter {
	sum := sha256.New()
	return &ExportWriter{enc: json.NewEncoder(io.MultiWriter(w, sum)), sum: sum, signer: signer}
}

// ErrUnsigned means an export cannot be written without a signing key.
var ErrUnsigned = errors.New("audit: the export has no signing key")

// Write writes one line. On the end line it fills in the chains, the
// digest of everything written before it and the signature; the counts
// are the caller's and are checked against what was written.
func (x *ExportWriter) Write(l ExportLine) error {
	if l.Head != nil {
		x.chains = append(x.chains, *l.Head)
	}
	if l.End != nil {
		if x.signer == nil {
			return ErrUnsigned
		}
		end := *l.End
		if end.Heads != len(x.chains) {
			return fmt.Errorf("audit: export end counts %d heads, %d were written", end.Heads, len(x.chains))
		}
		end.Chains = append([]ChainHead{}, x.chains...)
		end.Digest = digestPrefix + hex.EncodeToString(x.sum.Sum(nil))
		payload, err := end.signedPayload()
		if err != nil {
			return err
		}
		jws, kid, err := x.signer.Sign(payload)
		if err != nil {
			return err
		}
		end.Signature = &ExportSignature{Alg: string(signing.Algorithm), KeyID: kid, JWS: jws}
		l = ExportLine{End: &end}
	}
	return x.enc.Encode(l)
}

// ErrTruncated is returned by ReadExport for an export cut short.
var ErrTruncated = errors.New("audit: the export is incomplete (no end line)")

// Why ReadExport refuses an export.
const (
	RefusedSignature = "SIGNATURE"  // unsigned, or not signed by a published key
	RefusedDigest    = "DIGEST"     // the lines before the end are not those signed
	RefusedChainList = "CHAIN_LIST" // the head lines differ from the signed chain list
	RefusedCounts    = "COUNTS"     // the end's counts differ from the lines
)

// RefusedError is an export that does not hold together: Reason says
// which check failed. ReadExport still returns what it read, so the
// chains can be recomputed to show where.
type RefusedError struct {
	Reason string
	Detail string
}

func (e *RefusedError) Error() string {
	return "audit: export refused: " + e.Reason + ": " + e.Detail
}

// ReadExport reads an export back and checks it as a whole: the end line's
// signature against keys (the gateway's JWKS), the digest of every line
// before it, the signed chain list against the head lines, and the counts.
// It returns the chain heads and events, ready for Verify; on a
// *RefusedError they are returned too. A line that is not JSON, a file in
// another format, or one cut short is an error.
func ReadExport(r io.Reader, keys jose.JSONWebKeySet) ([]ChainHead, []domain.AuditEvent, error) {
	var heads []ChainHead
	var events []domain.AuditEvent
	var header *ExportHeader
	var end *ExportEnd
	sum := sha256.New()
	var digest []byte
	br := bufio.NewReaderSize(r, 64*1024)
	for n := 1; ; n++ {
		// The raw line, newline included, is what the digest covers.
		raw, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if len(raw) > maxExportLine {
			return nil, nil, fmt.Errorf("line %d: longer than %d bytes", n, maxExportLine)
		}
		if end != nil {
			if len(bytes.TrimSpace(raw)) == 0 {
				continue
			}
			return nil, nil, fmt.Errorf("line %d: after the end line", n)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			sum.Write(raw)
			continue
		}
		var l ExportLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if l.End == nil {
			sum.Write(raw)
		}
		switch {
		case l.Export != nil:
			if n != 1 || l.Export.Format != ExportFormat {
				return nil, nil, fmt.Errorf("line %d: not an export in format %s", n, ExportFormat)
			}
			header = l.Export
		case header == nil:
			return nil, nil, fmt.Errorf("line %d: an export starts with its export line", n)
		case l.Head != nil:
			heads = append(heads, *l.Head)
		case l.Event != nil:
			events = append(events, l.Event.AuditEvent())
		case l.End != nil:
			end = l.End
			digest = sum.Sum(nil)
		default:
			return nil, nil, fmt.Errorf("line %d: neither a head, an event nor the end", n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if header == nil || end == nil {
		return nil, nil, ErrTruncated
	}
	if err := checkEnd(*end, digest, heads, len(events), keys); err != nil {
		return heads, events, err
	}
	return heads, events, nil
}

// maxExportLine bounds one line (an event is well under 4 KiB; the end
// line lists every chain of at most MaxExportDays days).
const maxExportLine = 16 << 20

// checkEnd checks the end line: signature first (nothing in it counts
// unless the service signed it), then what it vouches for.
func checkEnd(end ExportEnd, digest []byte, heads []ChainHead, events int, keys jose.JSONWebKeySet) error {
	if end.Signature == nil || end.Signature.JWS == "" {
		return &RefusedError{RefusedSignature, "the end line is not signed"}
	}
	payload, err := end.signedPayload()
	if err != nil {
		return err
	}
	if _, err := signing.Verify(end.Signature.JWS, payload, keys); err != nil {
		return &RefusedError{RefusedSignature, err.Error()}
	}
	if want := digestPrefix + hex.EncodeToString(digest); end.Digest != want {
		return &RefusedError{RefusedDigest, "the lines before the end line are not those that were signed"}
	}
	if !slices.Equal(end.Chains, heads) {
		return &RefusedError{RefusedChainList, fmt.Sprintf("the signed list names %d chains, the head lines %d, or they differ", len(end.Chains), len(heads))}
	}
	if end.Heads != len(heads) || end.Events != events {
		return &RefusedError{RefusedCounts, fmt.Sprintf("the end counts %d heads and %d events, the export holds %d and %d", end.Heads, end.Events, len(heads), events)}
	}
	return nil
}
