// Package model holds the GraphQL-only types that have no domain twin.
package model

import (
	"fmt"
	"io"
	"strconv"

	"github.com/secondopinion/gateway/internal/domain"
)

// Role is the GraphQL enum of caller roles (upper case on the wire).
type Role string

// Role values.
const (
	RoleMember      Role = "MEMBER"
	RoleInsurer     Role = "INSURER"
	RoleProvider    Role = "PROVIDER"
	RolePartner     Role = "PARTNER"
	RoleCoordinator Role = "COORDINATOR"
)

// RoleOf converts a domain role to its GraphQL enum value.
func RoleOf(r domain.Role) Role {
	switch r {
	case domain.RoleMember:
		return RoleMember
	case domain.RoleInsurer:
		return RoleInsurer
	case domain.RoleProvider:
		return RoleProvider
	case domain.RolePartner:
		return RolePartner
	default:
		return RoleCoordinator
	}
}

// IsValid reports whether r is a known value.
func (r Role) IsValid() bool {
	switch r {
	case RoleMember, RoleInsurer, RoleProvider, RolePartner, RoleCoordinator:
		return true
	}
	return false
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (r *Role) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("roles must be strings")
	}
	*r = Role(s)
	if !r.IsValid() {
		return fmt.Errorf("%s is not a valid Role", s)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (r Role) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(r))) }
