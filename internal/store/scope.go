package store

import (
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// This file is the one place that decides which rows a caller may see.
// Each collection has one function returning both the filter
// used by list queries and the check applied to a document fetched by _id, so
// the two paths cannot drift apart; and one function returning the
// projection that leaves out field groups the role may not read.

// scope is a row rule: filter for queries, allow for fetched objects. none
// means the role sees no row at all.
type scope[T any] struct {
	none   bool
	filter bson.D
	allow  func(T) bool
}

func denyAll[T any]() scope[T] { return scope[T]{none: true, allow: func(T) bool { return false }} }

func allowAll[T any]() scope[T] {
	return scope[T]{filter: bson.D{}, allow: func(T) bool { return true }}
}

// policyScope: members their own policies, insurers their own insurer's,
// coordinators all; providers and partners none.
func policyScope(p domain.Principal) scope[*domain.Policy] {
	switch p.Role {
	case domain.RoleMember:
		return scope[*domain.Policy]{
			filter: bson.D{{Key: "insuredIds", Value: p.MemberKey()}, {Key: "insurerId", Value: p.Org}},
			allow: func(x *domain.Policy) bool {
				return x.InsurerID == p.Org && p.MemberKey() != "" && slices.Contains(x.InsuredIDs, p.MemberKey())
			},
		}
	case domain.RoleInsurer:
		return scope[*domain.Policy]{
			filter: bson.D{{Key: "insurerId", Value: p.Org}},
			allow:  func(x *domain.Policy) bool { return x.InsurerID == p.Org },
		}
	case domain.RoleCoordinator:
		return allowAll[*domain.Policy]()
	default:
		return denyAll[*domain.Policy]()
	}
}

// caseScope: members their own cases, insurers cases on their policies,
// providers cases assigned to their org (or to their specialist), partners
// cases assigned to their network while international sharing is consented,
// coordinators all.
func caseScope(p domain.Principal) scope[*domain.Case] {
	switch p.Role {
	case domain.RoleMember:
		return scope[*domain.Case]{
			filter: bson.D{{Key: "patientId", Value: p.MemberKey()}},
			allow:  func(c *domain.Case) bool { return p.MemberKey() != "" && c.PatientID == p.MemberKey() },
		}
	case domain.RoleInsurer:
		return scope[*domain.Case]{
			filter: bson.D{{Key: "insurerId", Value: p.Org}},
			allow:  func(c *domain.Case) bool { return c.InsurerID == p.Org },
		}
	case domain.RoleProvider, domain.RolePartner:
		// A reviewer's scope: cases assigned to its org (or its one
		// specialist). A partner network's cases need INTERNATIONAL_SHARING
		// always; a provider's, when the specialist is abroad. Consents
		// gate every reviewer, whatever kind its org is.
		f := bson.D{{Key: "specialistOrgId", Value: p.Org}}
		if p.SpecialistID != "" {
			f = append(f, bson.E{Key: "specialistId", Value: p.SpecialistID})
		}
		partner := p.Role == domain.RolePartner
		if partner {
			f = append(f, bson.E{Key: "intlConsent", Value: true})
		} else {
			f = append(f, bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: "specialistAbroad", Value: bson.D{{Key: "$ne", Value: true}}}},
				bson.D{{Key: "intlConsent", Value: true}},
			}})
		}
		return scope[*domain.Case]{
			filter: f,
			allow: func(c *domain.Case) bool {
				if c.SpecialistOrgID == "" || c.SpecialistOrgID != p.Org {
					return false
				}
				if p.SpecialistID != "" && c.SpecialistID != p.SpecialistID {
					return false
				}
				if partner || c.SpecialistAbroad {
					return c.ConsentActive(domain.ConsentInternationalSharing)
				}
				return true
			},
		}
	case domain.RoleCoordinator:
		return allowAll[*domain.Case]()
	default:
		return denyAll[*domain.Case]()
	}
}

// opinionScope: the opinion's own fields narrow the rows (members and
// insurers only delivered ones); the opinion's case must also be in the
// caller's case scope, which the store checks on the case for partners,
// whose visibility hangs on the case's consent.
func opinionScope(p domain.Principal) scope[*domain.Opinion] {
	delivered := bson.E{Key: "status", Value: string(domain.OpinionDelivered)}
	switch p.Role {
	case domain.RoleMember:
		return scope[*domain.Opinion]{
			filter: bson.D{{Key: "patientId", Value: p.MemberKey()}, delivered},
			allow:  func(o *domain.Opinion) bool { return o.Status == domain.OpinionDelivered },
		}
	case domain.RoleInsurer:
		return scope[*domain.Opinion]{
			filter: bson.D{{Key: "insurerId", Value: p.Org}, delivered},
			allow:  func(o *domain.Opinion) bool { return o.Status == domain.OpinionDelivered },
		}
	case domain.RoleProvider, domain.RolePartner:
		f := bson.D{{Key: "orgId", Value: p.Org}}
		if p.SpecialistID != "" {
			f = append(f, bson.E{Key: "specialistId", Value: p.SpecialistID})
		}
		return scope[*domain.Opinion]{
			filter: f,
			allow: func(o *domain.Opinion) bool {
				return o.OrgID == p.Org && (p.SpecialistID == "" || o.SpecialistID == p.SpecialistID)
			},
		}
	case domain.RoleCoordinator:
		return allowAll[*domain.Opinion]()
	default:
		return denyAll[*domain.Opinion]()
	}
}

// opinionNeedsCaseCheck reports whether an opinion's visibility also depends
// on its case document (for every role but the coordinator: the opinion's
// denormalised fields narrow, the case decides).
func opinionNeedsCaseCheck(p domain.Principal) bool { return p.Role != domain.RoleCoordinator }

// patientScope: the patients a caller may read directly (by id or through a
// policy). Providers and partners reach a patient only through a case.
func patientScope(p domain.Principal) scope[*patientDoc] {
	switch p.Role {
	case domain.RoleMember:
		return scope[*patientDoc]{
			filter: bson.D{{Key: "_id", Value: p.MemberKey()}},
			allow:  func(d *patientDoc) bool { return p.MemberKey() != "" && d.ID == p.MemberKey() },
		}
	case domain.RoleInsurer:
		return scope[*patientDoc]{
			filter: bson.D{{Key: "insurerId", Value: p.Org}},
			allow:  func(d *patientDoc) bool { return d.InsurerID == p.Org },
		}
	case domain.RoleCoordinator:
		return allowAll[*patientDoc]()
	default:
		return denyAll[*patientDoc]()
	}
}

// auditScope: coordinators only.
func auditScope(p domain.Principal) scope[*domain.AuditEvent] {
	if p.Role == domain.RoleCoordinator {
		return allowAll[*domain.AuditEvent]()
	}
	return denyAll[*domain.AuditEvent]()
}

// accessLogMember: whose access log p may read: its own, as a member; no
// one else has one ("" for everyone else). The log is keyed by member
// (accesslog.go), so this key is its whole row rule.
func accessLogMember(p domain.Principal) string {
	if p.Role != domain.RoleMember {
		return ""
	}
	return p.MemberKey()
}

// webhookScope: insurers, providers and partners see their own
// organisation's webhook subscriptions (same role and org; a token narrowed
// to one specialist, only those it created). Members and coordinators have
// none.
func webhookScope(p domain.Principal) scope[*domain.WebhookSubscription] {
	if !slices.Contains(domain.WebhookRoles, p.Role) || p.Org == "" {
		return denyAll[*domain.WebhookSubscription]()
	}
	f := bson.D{{Key: "org", Value: p.Org}, {Key: "role", Value: string(p.Role)}}
	if p.SpecialistID != "" {
		f = append(f, bson.E{Key: "specialistId", Value: p.SpecialistID})
	}
	return scope[*domain.WebhookSubscription]{
		filter: f,
		allow: func(s *domain.WebhookSubscription) bool {
			return s.Org == p.Org && s.Role == p.Role && (p.SpecialistID == "" || s.SpecialistID == p.SpecialistID)
		},
	}
}

// specialistWriteScope: the specialists p may change: its own org's, any
// for a coordinator; a token narrowed to one specialist (specialist_id)
// only that one, as every read scope narrows it.
func specialistWriteScope(p domain.Principal) func(*specialistDoc) bool {
	return func(d *specialistDoc) bool {
		if p.Role == domain.RoleCoordinator {
			return true
		}
		return d.OrgID == p.Org && (p.SpecialistID == "" || d.ID == p.SpecialistID)
	}
}

// specialistInternalVisible: load and contact for the specialist's own org and
// coordinators.
func specialistInternalVisible(p domain.Principal, s *specialistDoc) bool {
	if !domain.CanRead(p, domain.GroupSpecialistInternal) {
		return false
	}
	return p.Role == domain.RoleCoordinator || s.OrgID == p.Org
}

// reviewer reports whether p reviews cases (a provider org or a partner
// network): consents gate what it reads of a case in its scope.
func reviewer(p domain.Principal) bool {
	return p.Role == domain.RoleProvider || p.Role == domain.RolePartner
}

// clinicalAllowed reports whether p may read the clinical part of case c
// (already in p's scope): its role reads clinical fields and, for a
// reviewer, the member's RECORDS_RELEASE consent is active.
func clinicalAllowed(p domain.Principal, c *domain.Case) bool {
	if !domain.CanRead(p, domain.GroupCaseClinical) {
		return false
	}
	return !reviewer(p) || c.ConsentActive(domain.ConsentRecordsRelease)
}

// Projections: what is never fetched for a role.

// CaseView says which optional parts of a case a query selected; what is
// not selected is not fetched.
type CaseView struct {
	Clinical bool
	Events   bool
	// Full: fields beyond the case's list document (consents, outcome).
	Full bool
}

// FullCase fetches everything the role may read.
var FullCase = CaseView{Clinical: true, Events: true, Full: true}

// View says whether a page of specialists or opinions shows fields beyond
// their list documents (lists.go).
type View struct {
	Full bool
}

func caseProjection(p domain.Principal) bson.D { return caseProjectionFor(p, FullCase) }

func caseProjectionFor(p domain.Principal, v CaseView) bson.D {
	var proj bson.D
	// A reviewer's clinical part depends on the case's RECORDS_RELEASE
	// consent, so it is never fetched with the case: withClinical fetches
	// it afterwards for the cases whose consent is active.
	if !v.Clinical || !domain.CanRead(p, domain.GroupCaseClinical) || reviewer(p) {
		proj = append(proj, bson.E{Key: "clinical", Value: 0})
	}
	if !v.Events {
		proj = append(proj, bson.E{Key: "events", Value: 0})
	}
	// Follow-ups are opinion content, read through Opinion.followUps.
	proj = append(proj, bson.E{Key: "followUps", Value: 0})
	if !domain.CanRead(p, domain.GroupCaseOutcome) {
		proj = append(proj, bson.E{Key: "outcome", Value: 0})
	}
	return proj
}

func opinionProjection(p domain.Principal) bson.D {
	if !domain.CanRead(p, domain.GroupOpinionContent) {
		return bson.D{{Key: "content", Value: 0}, {Key: "signature", Value: 0}}
	}
	return nil
}

func patientProjection(p domain.Principal) bson.D {
	if domain.CanRead(p, domain.GroupPatientIdentity) {
		return nil
	}
	proj := bson.D{}
	for _, f := range identityFields {
		proj = append(proj, bson.E{Key: f, Value: 0})
	}
	return proj
}

func specialistProjection(p domain.Principal) bson.D {
	if !domain.CanRead(p, domain.GroupSpecialistInternal) {
		return bson.D{{Key: "internal", Value: 0}}
	}
	return nil
}

// and combines a scope filter with a query filter; $and keeps a key used by
// both (status, say) from overwriting the other.
func and(scopeFilter, filter bson.D) bson.D {
	switch {
	case len(filter) == 0:
		return scopeFilter
	case len(scopeFilter) == 0:
		return filter
	}
	return bson.D{{Key: "$and", Value: bson.A{scopeFilter, filter}}}
}
