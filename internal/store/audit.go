package store

import (
	"context"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// AuditFilter narrows audit events.
type AuditFilter struct {
	CaseID  *string
	Subject *string
}

func (f AuditFilter) bson() bson.D {
	var d bson.D
	if f.CaseID != nil {
		d = append(d, bson.E{Key: "caseId", Value: *f.CaseID})
	}
	if f.Subject != nil {
		d = append(d, bson.E{Key: "subject", Value: *f.Subject})
	}
	return d
}

// AuditEvents returns one page of audit events, newest first.
func (s *Store) AuditEvents(ctx context.Context, p domain.Principal, f AuditFilter, pg Page) ([]*domain.AuditEvent, bool, error) {
	sc := auditScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[auditDoc](ctx, s, colAudit, and(sc.filter, f.bson()), pg, true, nil)
	if err != nil {
		return nil, false, translate(err, "audit events")
	}
	out := make([]*domain.AuditEvent, 0, len(docs))
	for _, d := range docs {
		out = append(out, toAuditEvent(d))
	}
	return out, more, nil
}

// CountAuditEvents counts audit events matching f.
func (s *Store) CountAuditEvents(ctx context.Context, p domain.Principal, f AuditFilter) (int, error) {
	sc := auditScope(p)
	if sc.none {
		return 0, nil
	}
	n, err := count(ctx, s, colAudit, and(sc.filter, f.bson()))
	return n, translate(err, "audit events")
}

// AppendAudit writes audit events in one command. It is not scoped: every
// caller's accesses are recorded. It fails only when the audit rows, their
// chain heads or the access log cannot be written; a first-read notice that
// cannot be claimed or published is late (the sweeper retries it), never a
// failure of the batch, which carries other callers' requests too.
func (s *Store) AppendAudit(ctx context.Context, events []domain.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	first, err := s.appendAudit(ctx, events)
	if err != nil {
		return err
	}
	// Publishing reads cases and organisations and writes events: outside
	// appendMu, so the next batch's audit rows do not wait for it.
	s.publishFirstReads(ctx, first)
	return nil
}

// appendAudit writes the audit rows, chain heads and access log of one
// batch under appendMu, and claims its first reads.
func (s *Store) appendAudit(ctx context.Context, events []domain.AuditEvent) ([]accessOrgDoc, error) {
	docs := make([]any, len(events))
	for i, e := range events {
		if e.ID == "" {
			e.ID = NewIDAt(e.At)
		}
		docs[i] = toAuditDoc(e)
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	ictx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colAudit).InsertMany(ictx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		return nil, translate(err, "audit")
	}
	if err := s.recordChainHeads(ctx, events); err != nil {
		return nil, translate(err, "audit chain")
	}
	// The reads are not recorded until the member can see them too.
	if err := s.insertAccessLog(ctx, accessLogEntries(events)); err != nil {
		return nil, translate(err, "access log")
	}
	// A first read is claimed with its batch; a claim that fails keeps its
	// pairs for the sweeper (claimPairs), so the notice may be late, never
	// lost.
	first, err := s.claimFirstReads(ctx, events)
	if err != nil {
		slog.Default().Warn("access notices: claiming first reads failed; the sweeper retries", "error", domain.Scrub(err.Error()))
	}
	return first, nil
}

type auditDoc struct {
	ID           string    `bson:"_id"`
	At           time.Time `bson:"at"`
	Subject      string    `bson:"subject"`
	Role         string    `bson:"role"`
	Org          string    `bson:"org,omitempty"`
	Operation    string    `bson:"operation"`
	ResourceType string    `bson:"resourceType"`
	ResourceID   string    `bson:"resourceId"`
	FieldGroup   string    `bson:"fieldGroup"`
	RequestID    string    `bson:"requestId"`
	Outcome      string    `bson:"outcome"`
	CaseID       string    `bson:"caseId,omitempty"`
	PatientID    string    `bson:"patientId,omitempty"`
	ClientID     string    `bson:"clientId,omitempty"`
	Chain        string    `bson:"chain,omitempty"`
	Seq          int64     `bson:"seq,omitempty"`
	Prev         string    `bson:"prev,omitempty"`
	Hash         string    `bson:"hash,omitempty"`
}

func toAuditEvent(d *auditDoc) *domain.AuditEvent {
	return &domain.AuditEvent{
		ID: d.ID, At: d.At.UTC(), Subject: d.Subject, Role: domain.Role(d.Role), Org: d.Org,
		Operation: d.Operation, ResourceType: d.ResourceType, ResourceID: d.ResourceID,
		FieldGroup: d.FieldGroup, RequestID: d.RequestID, Outcome: d.Outcome, CaseID: d.CaseID,
		PatientID: d.PatientID, ClientID: d.ClientID, Chain: d.Chain, Seq: d.Seq, Prev: d.Prev, Hash: d.Hash,
	}
}

func toAuditDoc(e domain.AuditEvent) auditDoc {
	return auditDoc{
		ID: e.ID, At: e.At, Subject: e.Subject, Role: string(e.Role), Org: e.Org, Operation: e.Operation,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, FieldGroup: e.FieldGroup,
		RequestID: e.RequestID, Outcome: e.Outcome, CaseID: e.CaseID, PatientID: e.PatientID,
		ClientID: e.ClientID, Chain: e.Chain, Seq: e.Seq, Prev: e.Prev, Hash: e.Hash,
	}
}
