package domain

import (
	"regexp"
	"time"
)

// OrgStatus says whether an organisation's tokens are accepted.
type OrgStatus string

// Organisation statuses.
const (
	OrgActive    OrgStatus = "ACTIVE"
	OrgSuspended OrgStatus = "SUSPENDED"
)

// Organization is a registered organisation.
type Organization struct {
	ID        string
	Name      string
	Kind      OrgKind
	Country   string
	Status    OrgStatus
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ResourceID names the object in audit events.
func (o *Organization) ResourceID() string { return o.ID }

// OrgKindOf is the kind of organisation a role's tokens must name: members
// and insurers an insurer, providers a provider org, partners a network,
// coordinators the operator.
func OrgKindOf(r Role) OrgKind {
	switch r {
	case RoleMember, RoleInsurer:
		return OrgInsurer
	case RoleProvider:
		return OrgProvider
	case RolePartner:
		return OrgNetwork
	case RoleCoordinator:
		return OrgOperator
	}
	return ""
}

// OrgKinds are every organisation kind.
var OrgKinds = []OrgKind{OrgInsurer, OrgProvider, OrgNetwork, OrgOperator}

// orgIDPattern: lower-case letters, digits and hyphens, 2 to 63 long, so an
// org id can never be confused with a member key (":") or a path.
var orgIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// ValidOrgID reports whether id may name an organisation.
func ValidOrgID(id string) bool { return orgIDPattern.MatchString(id) }
