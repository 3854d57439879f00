package domain

import "time"

// DataCategory is what kind of a member's data an access touched, as the
// member's access log shows it.
type DataCategory string

// Data categories.
const (
	CategoryIdentity     DataCategory = "IDENTITY"
	CategoryDemographics DataCategory = "DEMOGRAPHICS"
	CategoryClinical     DataCategory = "CLINICAL"
	CategoryRecords      DataCategory = "RECORDS"
	CategoryOpinion      DataCategory = "OPINION"
)

// CategoryOf maps an audited read to its data category: the patient's
// identity and demographics groups, the case's clinical group (its record
// documents, read as MedicalRecord or Document, are RECORDS), and both
// opinion groups. Groups that are not PHI have none.
func CategoryOf(resourceType, group string) (DataCategory, bool) {
	switch Group(group) {
	case GroupPatientIdentity:
		return CategoryIdentity, true
	case GroupPatientDemographic:
		return CategoryDemographics, true
	case GroupCaseClinical:
		if resourceType == "MedicalRecord" || resourceType == "Document" {
			return CategoryRecords, true
		}
		return CategoryClinical, true
	case GroupRecordDocument:
		// A record's file, downloaded through its link.
		return CategoryRecords, true
	case GroupOpinionMeta, GroupOpinionContent:
		return CategoryOpinion, true
	}
	return "", false
}

// EventDataAccessedByNewOrg is the case event of an organisation's first
// read of a member's data (other than the member's insurer and the
// operator): it goes to the member's subscription and, without PHI, to the
// insurer's webhooks; no other party sees it.
const EventDataAccessedByNewOrg = "DATA_ACCESSED_BY_NEW_ORGANIZATION"

// NotifiesFirstRead reports whether a read by role r of org reaches a
// member of insurer as a first-read notice: never the member's own reads,
// the operator's (coordinators) or the member's insurer's.
func NotifiesFirstRead(r Role, org, insurer string) bool {
	return r != RoleMember && r != RoleCoordinator && org != "" && org != insurer
}

// AccessPurpose is why an organisation read a member's data, derived from
// the reader's role.
type AccessPurpose string

// Purposes.
const (
	PurposeCareCoordination      AccessPurpose = "CARE_COORDINATION"
	PurposeSpecialistReview      AccessPurpose = "SPECIALIST_REVIEW"
	PurposeInsurerAdministration AccessPurpose = "INSURER_ADMINISTRATION"
	PurposeMemberAccess          AccessPurpose = "MEMBER_ACCESS"
)

// PurposeOf is the purpose of a read by role r: a coordinator coordinates
// care, a provider or partner reviews as the specialist, an insurer
// administers the benefit, and a member reads their own account.
func PurposeOf(r Role) AccessPurpose {
	switch r {
	case RoleCoordinator:
		return PurposeCareCoordination
	case RoleProvider, RolePartner:
		return PurposeSpecialistReview
	case RoleInsurer:
		return PurposeInsurerAdministration
	}
	return PurposeMemberAccess
}

// Actor says whether a person or a system read the data, as far as the
// token tells: a token naming an OAuth client (azp or client_id) is a
// system's.
type Actor string

// Actors.
const (
	ActorPerson Actor = "PERSON"
	ActorSystem Actor = "SYSTEM"
)

// AccessLogEntry is one line of a member's access log: the reads of one
// organisation, in one role, of one case, of one category of data, on one
// day (UTC).
type AccessLogEntry struct {
	// ID is the entry's key; its order is the log's order.
	ID       string
	Day      string
	FirstAt  time.Time
	LastAt   time.Time
	Count    int
	OrgID    string
	Org      *Organization
	Role     Role
	CaseID   string
	Category DataCategory
	Actor    Actor
}

// Purpose is why the organisation read the data.
func (e *AccessLogEntry) Purpose() AccessPurpose { return PurposeOf(e.Role) }
