package domain

import "slices"

// Group is a set of fields that share one visibility rule (DESIGN.md §3).
// Whether a row is visible at all is the store's scope; whether its fields of
// a group are readable is this table.
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
	// GroupOpinionContent: the written opinion itself.
	GroupOpinionContent Group = "opinion.content"
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
	GroupSpecialistPublic:   Roles,
	GroupSpecialistInternal: {RoleProvider, RolePartner, RoleCoordinator},
	GroupAudit:              {RoleCoordinator},
	GroupOrgAdmin:           {RoleCoordinator},
	// Coordinators may read the fields, but no webhook row is in their scope.
	GroupWebhook: {RoleInsurer, RoleProvider, RolePartner, RoleCoordinator},
}

// CanRead reports whether role r may read fields of group g.
func CanRead(r Role, g Group) bool { return slices.Contains(groupRoles[g], r) }

// PHI reports whether reading group g touches protected health information
// and must be audited.
func PHI(g Group) bool {
	switch g {
	case GroupPatientIdentity, GroupPatientDemographic, GroupCaseClinical, GroupRecordDocument, GroupOpinionMeta, GroupOpinionContent:
		return true
	}
	return false
}

// FieldGroups assigns every field of every object type in the schema to a
// group. A field missing here is refused at run time (fail closed), and a
// test fails when the schema has a field this table does not name.
var FieldGroups = map[string]Group{
	"Viewer.subject": GroupPublic, "Viewer.role": GroupPublic, "Viewer.org": GroupPublic,
	"Viewer.scopes": GroupPublic, "Viewer.specialistId": GroupPublic,

	"PageInfo.hasNextPage": GroupPublic, "PageInfo.endCursor": GroupPublic,
	"PageInfo.hasPreviousPage": GroupPublic, "PageInfo.startCursor": GroupPublic,

	"Policy.id": GroupPolicy, "Policy.policyNumber": GroupPolicy, "Policy.product": GroupPolicy,
	"Policy.status": GroupPolicy, "Policy.effectiveFrom": GroupPolicy, "Policy.effectiveTo": GroupPolicy,
	"Policy.insurerId": GroupPolicy, "Policy.secondOpinion": GroupPolicy, "Policy.insured": GroupPolicy,
	"Policy.version":               GroupPolicy,
	"SecondOpinionBenefit.covered": GroupPolicy, "SecondOpinionBenefit.casesPerYear": GroupPolicy,
	"SecondOpinionBenefit.casesUsed": GroupPolicy, "SecondOpinionBenefit.international": GroupPolicy,

	"Patient.id": GroupPatientDemographic, "Patient.birthYear": GroupPatientDemographic,
	"Patient.sex": GroupPatientDemographic, "Patient.country": GroupPatientDemographic,
	"Patient.language": GroupPatientDemographic, "Patient.ageBand": GroupPatientDemographic,
	"Patient.givenName": GroupPatientIdentity, "Patient.familyName": GroupPatientIdentity,
	"Patient.dateOfBirth": GroupPatientIdentity, "Patient.email": GroupPatientIdentity,
	"Patient.phone": GroupPatientIdentity,

	"Case.id": GroupCaseAdmin, "Case.reference": GroupCaseAdmin, "Case.status": GroupCaseAdmin,
	"Case.policy": GroupCaseAdmin, "Case.patient": GroupCaseAdmin, "Case.specialty": GroupCaseAdmin,
	"Case.urgency": GroupCaseAdmin, "Case.preferredLanguage": GroupCaseAdmin, "Case.consents": GroupCaseAdmin,
	"Case.specialist": GroupCaseAdmin, "Case.opinion": GroupCaseAdmin, "Case.decision": GroupCaseAdmin,
	"Case.dueAt": GroupCaseAdmin, "Case.overdue": GroupCaseAdmin, "Case.submittedAt": GroupCaseAdmin,
	"Case.updatedAt": GroupCaseAdmin, "Case.deliveredAt": GroupCaseAdmin, "Case.events": GroupCaseAdmin,
	"Case.version":   GroupCaseAdmin,
	"Case.diagnosis": GroupCaseClinical, "Case.proposedTreatment": GroupCaseClinical,
	"Case.questions": GroupCaseClinical, "Case.records": GroupCaseClinical,
	"Consent.kind": GroupCaseAdmin, "Consent.active": GroupCaseAdmin, "Consent.grantedAt": GroupCaseAdmin,
	"Consent.revokedAt": GroupCaseAdmin,
	"CaseEvent.type":    GroupCaseAdmin, "CaseEvent.at": GroupCaseAdmin, "CaseEvent.fromStatus": GroupCaseAdmin,
	"CaseEvent.toStatus": GroupCaseAdmin, "CaseEvent.actorRole": GroupCaseAdmin,
	// Diagnosis objects hang only off clinical fields; readable wherever the parent was.
	"Diagnosis.code": GroupPublic, "Diagnosis.description": GroupPublic,
	"MedicalRecord.id": GroupCaseClinical, "MedicalRecord.title": GroupCaseClinical,
	"MedicalRecord.kind": GroupCaseClinical, "MedicalRecord.recordedOn": GroupCaseClinical,
	"MedicalRecord.document": GroupRecordDocument,
	"Document.contentType":   GroupRecordDocument, "Document.sizeBytes": GroupRecordDocument,
	"Document.sha256": GroupRecordDocument, "Document.uploadedAt": GroupRecordDocument,
	"Document.downloadUrl": GroupRecordDocument,

	"Specialist.id": GroupSpecialistPublic, "Specialist.name": GroupSpecialistPublic,
	"Specialist.credentials": GroupSpecialistPublic, "Specialist.specialties": GroupSpecialistPublic,
	"Specialist.subSpecialties": GroupSpecialistPublic, "Specialist.languages": GroupSpecialistPublic,
	"Specialist.country": GroupSpecialistPublic, "Specialist.institution": GroupSpecialistPublic,
	"Specialist.orgId": GroupSpecialistPublic, "Specialist.acceptingCases": GroupSpecialistPublic,
	"Specialist.activeCases": GroupSpecialistInternal, "Specialist.email": GroupSpecialistInternal,

	"Opinion.id": GroupOpinionMeta, "Opinion.case": GroupOpinionMeta, "Opinion.specialist": GroupOpinionMeta,
	"Opinion.status": GroupOpinionMeta, "Opinion.deliveredAt": GroupOpinionMeta,
	"Opinion.diagnosisAssessment": GroupOpinionContent, "Opinion.revisedDiagnosis": GroupOpinionContent,
	"Opinion.treatmentAssessment": GroupOpinionContent, "Opinion.clinicalImpact": GroupOpinionContent,
	"Opinion.treatmentOptions": GroupOpinionContent, "Opinion.clinicalTrials": GroupOpinionContent,
	"Opinion.answers": GroupOpinionContent, "Opinion.questionsForYourDoctor": GroupOpinionContent,
	"Opinion.memberSummary": GroupOpinionContent, "Opinion.report": GroupOpinionContent,
	"TreatmentOption.name": GroupOpinionContent, "TreatmentOption.description": GroupOpinionContent,
	"TreatmentOption.invasiveness": GroupOpinionContent,
	"ClinicalTrial.registryId":     GroupOpinionContent, "ClinicalTrial.title": GroupOpinionContent,
	"ClinicalTrial.url": GroupOpinionContent,
	"Answer.question":   GroupOpinionContent, "Answer.answer": GroupOpinionContent,

	"SpecialistMatch.specialist": GroupSpecialistPublic, "SpecialistMatch.score": GroupSpecialistPublic,
	"SpecialistMatch.reasons": GroupSpecialistPublic,

	"CaseEventNotice.caseId": GroupCaseAdmin, "CaseEventNotice.event": GroupCaseAdmin,
	"CaseEventNotice.status": GroupCaseAdmin, "CaseEventNotice.version": GroupCaseAdmin,

	"AuditEvent.id": GroupAudit, "AuditEvent.at": GroupAudit, "AuditEvent.subject": GroupAudit,
	"AuditEvent.role": GroupAudit, "AuditEvent.org": GroupAudit, "AuditEvent.operation": GroupAudit,
	"AuditEvent.resourceType": GroupAudit, "AuditEvent.resourceId": GroupAudit,
	"AuditEvent.fieldGroup": GroupAudit, "AuditEvent.requestId": GroupAudit, "AuditEvent.outcome": GroupAudit,

	"Organization.id": GroupPublic, "Organization.orgId": GroupPublic, "Organization.name": GroupPublic,
	"Organization.kind": GroupPublic, "Organization.country": GroupOrgAdmin, "Organization.status": GroupOrgAdmin,
	"Organization.version": GroupOrgAdmin,

	"WebhookSubscription.id": GroupWebhook, "WebhookSubscription.url": GroupWebhook,
	"WebhookSubscription.eventTypes": GroupWebhook, "WebhookSubscription.createdBy": GroupWebhook,
	"WebhookSubscription.createdAt": GroupWebhook, "WebhookSubscription.deliveries": GroupWebhook,
	"WebhookDelivery.id": GroupWebhook, "WebhookDelivery.eventType": GroupWebhook,
	"WebhookDelivery.status": GroupWebhook, "WebhookDelivery.attempts": GroupWebhook,
	"WebhookDelivery.lastError": GroupWebhook, "WebhookDelivery.lastStatusCode": GroupWebhook,
	"WebhookDelivery.nextAttemptAt": GroupWebhook, "WebhookDelivery.lastAttemptAt": GroupWebhook,
	"WebhookDelivery.deliveredAt": GroupWebhook, "WebhookDelivery.createdAt": GroupWebhook,
}

// FieldGroup returns the group of Type.field and whether the table names it.
// Root types, connections, edges and payloads carry no data of their own and
// are public; everything else must be named.
func FieldGroup(object, field string) (Group, bool) {
	if g, ok := FieldGroups[object+"."+field]; ok {
		return g, true
	}
	if isStructural(object) {
		return GroupPublic, true
	}
	return "", false
}

func isStructural(object string) bool {
	switch object {
	case "Query", "Mutation", "Subscription":
		return true
	}
	for _, suffix := range []string{"Connection", "Edge", "Payload"} {
		if len(object) > len(suffix) && object[len(object)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}
