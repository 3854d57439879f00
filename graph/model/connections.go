package model

import (
	"context"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// Counter computes a connection's totalCount; it runs only when the field is
// selected, since on the embedded store a count scans the collection.
type Counter func(ctx context.Context) (int, error)

// PolicyConnection is a page of policies.
type PolicyConnection struct {
	Edges    []PolicyEdge
	PageInfo PageInfo
	Count    Counter
}

// PolicyEdge is one policy of a page.
type PolicyEdge struct {
	Cursor string
	Node   *domain.Policy
}

// CaseConnection is a page of cases.
type CaseConnection struct {
	Edges    []CaseEdge
	PageInfo PageInfo
	Count    Counter
}

// CaseEdge is one case of a page.
type CaseEdge struct {
	Cursor string
	Node   *domain.Case
}

// SpecialistConnection is a page of specialists.
type SpecialistConnection struct {
	Edges    []SpecialistEdge
	PageInfo PageInfo
	Count    Counter
}

// SpecialistEdge is one specialist of a page.
type SpecialistEdge struct {
	Cursor string
	Node   *domain.Specialist
}

// OpinionConnection is a page of opinions.
type OpinionConnection struct {
	Edges    []OpinionEdge
	PageInfo PageInfo
	Count    Counter
}

// OpinionEdge is one opinion of a page.
type OpinionEdge struct {
	Cursor string
	Node   *domain.Opinion
}

// AuditEventConnection is a page of audit events.
type AuditEventConnection struct {
	Edges    []AuditEventEdge
	PageInfo PageInfo
	Count    Counter
}

// AuditEventEdge is one audit event of a page.
type AuditEventEdge struct {
	Cursor string
	Node   *domain.AuditEvent
}

// PageInfo is the Relay page state.
type PageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool
	StartCursor     *string
	EndCursor       *string
}

// NewPageInfo describes a forward page of the given ids.
func NewPageInfo(ids []string, more, after bool, encode func(string) string) PageInfo {
	pi := PageInfo{HasNextPage: more, HasPreviousPage: after}
	if len(ids) > 0 {
		first, last := encode(ids[0]), encode(ids[len(ids)-1])
		pi.StartCursor, pi.EndCursor = &first, &last
	}
	return pi
}

// SpecialistMatch is a ranked candidate for a case.
type SpecialistMatch struct {
	Specialist *domain.Specialist
	Score      float64
	Reasons    []string
}

// CaseEventNotice is one case event pushed to a subscriber.
type CaseEventNotice struct {
	CaseID  string
	Event   *domain.CaseEvent
	Status  domain.CaseStatus
	Version int
	// Access is set on a first-read notice.
	Access *DataAccessNotice
}

// DataAccessNotice is an organisation's first read of a member's data.
type DataAccessNotice struct {
	Organization   *domain.Organization
	DataCategories []domain.DataCategory
	At             time.Time
	CaseReference  string
}

// OrganizationConnection is a page of organisations.
type OrganizationConnection struct {
	Edges    []OrganizationEdge
	PageInfo PageInfo
	Count    Counter
}

// OrganizationEdge is one organisation of a page.
type OrganizationEdge struct {
	Cursor string
	Node   *domain.Organization
}

// AccessLogConnection is a page of a member's access log.
type AccessLogConnection struct {
	Edges    []AccessLogEdge
	PageInfo PageInfo
	Count    Counter
}

// AccessLogEdge is one access-log entry of a page.
type AccessLogEdge struct {
	Cursor string
	Node   *domain.AccessLogEntry
}
