package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// The export for auditors (GET /audit/export, issue 17 item 4): NDJSON, one
// JSON object per line, written as it is read:
//
//	{"export": {"format": …, "from": …, "to": …, "generatedAt": …}}
//	{"head": {"chain": …, "seq": …, "hash": …}}          one per chain
//	{"event": {"id": …, "patientId": …, "chain": …, …}}  one per audit event
//	{"end": {"heads": n, "events": m}}
//
// Each event is one record and names at most one patient (the member key),
// so a privacy officer can take one patient's records apart; every event of
// the period's chains is there, with its chain, position, previous hash and
// hash, and the heads close each chain, so `audit-verify -file` recomputes
// every chain offline. A file without its end line, or whose counts differ,
// was cut short and is refused.

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

// ExportEnd closes an export with its counts.
type ExportEnd struct {
	Heads  int `json:"heads"`
	Events int `json:"events"`
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

// ErrTruncated is returned by ReadExport for an export cut short.
var ErrTruncated = errors.New("audit: the export is incomplete (no end line, or its counts differ)")

// ReadExport reads an export back: its chain heads and events, ready for
// Verify. A line that is not JSON, a file in another format, or one cut
// short is an error.
func ReadExport(r io.Reader) ([]ChainHead, []domain.AuditEvent, error) {
	var heads []ChainHead
	var events []domain.AuditEvent
	var header *ExportHeader
	var end *ExportEnd
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if end != nil {
			return nil, nil, fmt.Errorf("line %d: after the end line", n)
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
		default:
			return nil, nil, fmt.Errorf("line %d: neither a head, an event nor the end", n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if header == nil || end == nil || end.Heads != len(heads) || end.Events != len(events) {
		return nil, nil, ErrTruncated
	}
	return heads, events, nil
}
