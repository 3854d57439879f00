package workflow

import (
	"time"

	"context"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Reads take the same road as writes: resolver → use case → store. The
// store applies the caller's scope (internal/store/scope.go: a query filter
// for lists, a check on the fetched document by id); this layer owns what
// the use cases decide around a read, such as auditing a lookup that found
// nothing, so every door (GraphQL, subscriptions, FHIR) does the same.

// The read types the API layer names: the store's, under the use cases'
// names, so the API layer never imports the store.
type (
	// Page is one page of a list.
	Page = store.Page
	// CaseView says which optional parts of a case a query selected.
	CaseView = store.CaseView
	// View says whether a page of specialists or opinions shows more than
	// their list documents hold.
	View = store.View
	// CaseFilter narrows cases.
	CaseFilter = store.CaseFilter
	// PolicyFilter narrows policies.
	PolicyFilter = store.PolicyFilter
	// SpecialistFilter narrows specialists.
	SpecialistFilter = store.SpecialistFilter
	// OpinionFilter narrows opinions.
	OpinionFilter = store.OpinionFilter
	// AuditFilter narrows audit events.
	AuditFilter = store.AuditFilter
	// OrgFilter narrows organisations.
	OrgFilter = store.OrgFilter
	// OrgChange is what updateOrganization may change.
	OrgChange = store.OrgChange
	// PolicyChange is what updatePolicy may change.
	PolicyChange = store.PolicyChange
	// NewPolicy is a policy to create.
	NewPolicy = store.NewPolicy
	// NewInsured is an insured member of a new policy.
	NewInsured = store.NewInsured
	// SpecialistInput creates or updates a specialist.
	SpecialistInput = store.SpecialistInput
	// CaseEventRecord is one persisted case event.
	CaseEventRecord = store.CaseEventRecord
)

// Page sizes: first defaults to DefaultPageSize and may not exceed
// MaxPageSize.
const (
	DefaultPageSize = store.DefaultPageSize
	MaxPageSize     = store.MaxPageSize
)

// FullCase fetches every part of a case the role may read.
var FullCase = store.FullCase

// OpinionIDForCase is the id of a case's opinion.
func OpinionIDForCase(caseID string) string { return store.OpinionIDForCase(caseID) }

// NewPage checks first and after and returns the page.
func NewPage(first *int, after *string) (Page, error) { return store.NewPage(first, after) }

// EncodeCursor returns the opaque cursor of an object id.
func EncodeCursor(id string) string { return store.EncodeCursor(id) }

// lookedUp records a root lookup of PHI that found nothing (missing or out
// of scope: the two are one answer).
func lookedUp(ctx context.Context, typ, id string, group domain.Group, err error) {
	if domain.ErrorCode(err) == domain.CodeNotFound {
		audit.Record(ctx, audit.Entry{ResourceType: typ, ResourceID: id, Group: group, Outcome: audit.OutcomeNotFound})
	}
}

// Case returns one case in p's scope, fetching the parts in view.
func (s *Service) Case(ctx context.Context, p domain.Principal, id string, view CaseView) (*domain.Case, error) {
	c, err := s.store.CaseWith(ctx, p, id, view)
	lookedUp(ctx, "Case", id, domain.GroupCaseAdmin, err)
	return c, err
}

// CaseHistory returns one page of the whole history of a case in p's
// scope, oldest first, and how many events it has had (Case.events holds
// the latest domain.MaxEmbeddedEvents only).
func (s *Service) CaseHistory(ctx context.Context, p domain.Principal, caseID string, pg Page) ([]*domain.LoggedCaseEvent, bool, int, error) {
	return s.store.CaseHistory(ctx, p, caseID, pg)
}

// Cases returns one page of the cases in p's scope, newest first.
func (s *Service) Cases(ctx context.Context, p domain.Principal, f CaseFilter, pg Page, view CaseView) ([]*domain.Case, bool, error) {
	return s.store.Cases(ctx, p, f, pg, view)
}

// CountCases counts the cases in p's scope matching f.
func (s *Service) CountCases(ctx context.Context, p domain.Principal, f CaseFilter) (int, error) {
	return s.store.CountCases(ctx, p, f)
}

// Policy returns one policy in p's scope.
func (s *Service) Policy(ctx context.Context, p domain.Principal, id string) (*domain.Policy, error) {
	return s.store.Policy(ctx, p, id)
}

// Policies returns one page of the policies in p's scope.
func (s *Service) Policies(ctx context.Context, p domain.Principal, f PolicyFilter, pg Page) ([]*domain.Policy, bool, error) {
	return s.store.Policies(ctx, p, f, pg)
}

// CountPolicies counts the policies in p's scope matching f.
func (s *Service) CountPolicies(ctx context.Context, p domain.Principal, f PolicyFilter) (int, error) {
	return s.store.CountPolicies(ctx, p, f)
}

// Patient returns a patient by the id the API showed p.
func (s *Service) Patient(ctx context.Context, p domain.Principal, id string) (*domain.Patient, error) {
	pt, err := s.store.Patient(ctx, p, id)
	lookedUp(ctx, "Patient", id, domain.GroupPatientDemographic, err)
	return pt, err
}

// Specialist returns one specialist.
func (s *Service) Specialist(ctx context.Context, p domain.Principal, id string) (*domain.Specialist, error) {
	return s.store.Specialist(ctx, p, id)
}

// Specialists returns one page of specialists.
func (s *Service) Specialists(ctx context.Context, p domain.Principal, f SpecialistFilter, pg Page, view View) ([]*domain.Specialist, bool, error) {
	return s.store.Specialists(ctx, p, f, pg, view)
}

// CountSpecialists counts the specialists matching f.
func (s *Service) CountSpecialists(ctx context.Context, p domain.Principal, f SpecialistFilter) (int, error) {
	return s.store.CountSpecialists(ctx, p, f)
}

// Opinion returns one opinion in p's scope.
func (s *Service) Opinion(ctx context.Context, p domain.Principal, id string) (*domain.Opinion, error) {
	o, err := s.store.Opinion(ctx, p, id)
	lookedUp(ctx, "Opinion", id, domain.GroupOpinionMeta, err)
	return o, err
}

// Opinions returns one page of the opinions in p's scope.
func (s *Service) Opinions(ctx context.Context, p domain.Principal, f OpinionFilter, pg Page, view View) ([]*domain.Opinion, bool, error) {
	return s.store.Opinions(ctx, p, f, pg, view)
}

// CountOpinions counts the opinions in p's scope matching f.
func (s *Service) CountOpinions(ctx context.Context, p domain.Principal, f OpinionFilter) (int, error) {
	return s.store.CountOpinions(ctx, p, f)
}

// AuditEvents returns one page of audit events (coordinators).
func (s *Service) AuditEvents(ctx context.Context, p domain.Principal, f AuditFilter, pg Page) ([]*domain.AuditEvent, bool, error) {
	return s.store.AuditEvents(ctx, p, f, pg)
}

// CountAuditEvents counts the audit events matching f.
func (s *Service) CountAuditEvents(ctx context.Context, p domain.Principal, f AuditFilter) (int, error) {
	return s.store.CountAuditEvents(ctx, p, f)
}

// Organizations returns one page of registered organisations.
func (s *Service) Organizations(ctx context.Context, f OrgFilter, pg Page) ([]*domain.Organization, bool, error) {
	return s.store.Organizations(ctx, f, pg)
}

// CountOrganizations counts the organisations matching f.
func (s *Service) CountOrganizations(ctx context.Context, f OrgFilter) (int, error) {
	return s.store.CountOrganizations(ctx, f)
}

// CountWebhookSubscriptions counts p's organisation's subscriptions.
func (s *Service) CountWebhookSubscriptions(ctx context.Context, p domain.Principal) (int, error) {
	return s.store.CountWebhookSubscriptions(ctx, p)
}

// SubscribeCheck answers whether p may subscribe to case id: NOT_FOUND when
// it is missing or out of scope, as for a read, and audited as one.
func (s *Service) SubscribeCheck(ctx context.Context, p domain.Principal, id string) error {
	_, err := s.Case(ctx, p, id, CaseView{})
	return err
}

// AccessLogFilter narrows a member's access log.
type AccessLogFilter = store.AccessLogFilter

// ChainHead is the head of one audit hash chain.
type ChainHead = store.ChainHead

// AccessLog returns one page of the member's own access log.
func (s *Service) AccessLog(ctx context.Context, p domain.Principal, f AccessLogFilter, pg Page) ([]*domain.AccessLogEntry, bool, error) {
	return s.store.AccessLog(ctx, p, f, pg)
}

// CountAccessLog counts the member's access-log entries matching f.
func (s *Service) CountAccessLog(ctx context.Context, p domain.Principal, f AccessLogFilter) (int, error) {
	return s.store.CountAccessLog(ctx, p, f)
}

// AuditChains returns the audit chain heads and events between from and to
// (coordinators), for verification.
func (s *Service) AuditChains(ctx context.Context, p domain.Principal, from, to time.Time) ([]ChainHead, []domain.AuditEvent, error) {
	return s.store.AuditChains(ctx, p, from, to)
}
