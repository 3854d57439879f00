package domain

import "slices"

// Group is a set of fields that share one visibility rule. Whether a row is
// visible at all is the store's scope; whether its fields of a group are
// readable is this table. Which group a field belongs to is declared beside
// the field, in the schema (@group).
type Group string

// Field groups.
const (
	// GroupPublic: readable by anyone who can see the row.
	GroupPublic Group = "public"
	// GroupPolicy: policy fields.
	GroupPolicy Group = "policy"
	// GroupPatientDemographic: birth year, sex, country, language, id.
	GroupPatientDemographic Group = "patient.demographic"
	// GroupPatientIdentity: name, date of birth, contact.
	GroupPatientIdentity Group = "patient.identity"
	// GroupCaseAdmin: reference, status, specialty, dates, SLA, consents, history.
	GroupCaseAdmin Group = "case.admin"
	// GroupCaseClinical: diagnosis, proposed treatment, questions, records.
	GroupCaseClinical Group = "case.clinical"
	// GroupRecordDocument: a record's stored file (its metadata and download
	// link); for the case's reviewers only while RECORDS_RELEASE is active.
	GroupRecordDocument Group = "record.document"
	// GroupOpinionMeta: that and when an opinion was delivered.
	GroupOpinionMeta Group = "opinion.meta"
	// GroupOpinionContent: the written opinion itself, its follow-ups and
	// its signature.
	GroupOpinionContent Group = "opinion.content"
	// GroupCaseOutcome: what the member did after the opinion (insurers
	// see outcomes only in aggregate, through outcomeStatistics).
	GroupCaseOutcome Group = "case.outcome"
	// GroupStatistics: aggregate outcome statistics (no row-level data).
	GroupStatistics Group = "statistics"
	// GroupSpecialistPublic: the public profile.
	GroupSpecialistPublic Group = "specialist.public"
	// GroupSpecialistInternal: load and contact; the store further limits
	// rows to the caller's own org.
	GroupSpecialistInternal Group = "specialist.internal"
	// GroupAudit: the audit trail.
	GroupAudit Group = "audit"
	// GroupOrgAdmin: an organisation's country, status and version.
	GroupOrgAdmin Group = "organization.admin"
	// GroupWebhook: an organisation's webhook subscriptions and their
	// deliveries; the store further limits rows to the caller's own org.
	GroupWebhook Group = "webhook"
	// GroupAccessLog: a member's own access log ("who saw my data").
	GroupAccessLog Group = "accesslog"
)

// groupRoles says which roles may read each group, given the row is in scope.
var groupRoles = map[Group][]Role{
	GroupPublic:             Roles,
	GroupPolicy:             {RoleMember, RoleInsurer, RoleCoordinator},
	GroupPatientDemographic: Roles,
	GroupPatientIdentity:    {RoleMember, RoleInsurer, RoleProvider, RoleCoordinator},
	GroupCaseAdmin:          Roles,
	GroupCaseClinical:       {RoleMember, RoleProvider, RolePartner, RoleCoordinator},
	GroupRecordDocument:     {RoleMember, RoleProvider, RolePartner, RoleCoordinator},
	GroupOpinionMeta:        Roles,
	GroupOpinionContent:     {RoleMember, RoleProvider, RolePartner, RoleCoordinator},
	GroupCaseOutcome:        {RoleMember, RoleCoordinator},
	GroupStatistics:         {RoleInsurer, RoleCoordinator},
	GroupSpecialistPublic:   Roles,
	GroupSpecialistInternal: {RoleProvider, RolePartner, RoleCoordinator},
	GroupAudit:              {RoleCoordinator},
	GroupOrgAdmin:           {RoleCoordinator},
	// Coordinators may read the fields, but no webhook row is in their scope.
	GroupWebhook: {RoleInsurer, RoleProvider, RolePartner, RoleCoordinator},
	// Coordinators may read the fields, but no access-log row is ever in
	// their scope: the store gives a member's entries to that member alone.
	GroupAccessLog: {RoleMember, RoleCoordinator},
}

// groupScopes says which token scopes open each group, any one of them
// (a token's scope narrows its role's rights, never widens
// them). A narrowed token reaches no more through an edge than through a
// query: a token with only opinions:read reads an opinion, not the case
// and patient behind it. A group not listed needs no scope beyond the
// operation's own: a specialist's public profile, for one, shows wherever
// a case or an opinion names its specialist.
var groupScopes = map[Group][]Scope{
	GroupPolicy:             {ScopePoliciesRead},
	GroupPatientDemographic: {ScopeCasesRead, ScopePoliciesRead},
	GroupPatientIdentity:    {ScopeCasesRead, ScopePoliciesRead},
	GroupCaseAdmin:          {ScopeCasesRead},
	GroupCaseClinical:       {ScopeCasesRead},
	GroupRecordDocument:     {ScopeCasesRead},
	GroupCaseOutcome:        {ScopeCasesRead},
	GroupStatistics:         {ScopeCasesRead},
	GroupOpinionMeta:        {ScopeOpinionsRead},
	GroupOpinionContent:     {ScopeOpinionsRead},
	GroupSpecialistInternal: {ScopeSpecialistsRead},
	GroupAudit:              {ScopeAuditRead},
	// Who read which case's data: as much a read of cases as the case.
	GroupAccessLog: {ScopeCasesRead},
}

// RoleCanRead reports whether role r may read fields of group g, whatever
// a token's scopes.
func RoleCanRead(r Role, g Group) bool { return slices.Contains(groupRoles[g], r) }

// CanRead reports whether p may read fields of group g: its role may, and
// its token holds a scope that opens the group.
func CanRead(p Principal, g Group) bool {
	if !RoleCanRead(p.Role, g) {
		return false
	}
	scopes := groupScopes[g]
	return len(scopes) == 0 || slices.ContainsFunc(scopes, p.Has)
}

// PHI reports whether reading group g touches protected health information
// and must be audited.
func PHI(g Group) bool {
	switch g {
	case GroupPatientIdentity, GroupPatientDemographic, GroupCaseClinical, GroupRecordDocument, GroupOpinionMeta, GroupOpinionContent, GroupCaseOutcome:
		return true
	}
	return false
}
