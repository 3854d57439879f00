// Package domain holds the gateway's entities, the caller's Principal, the
// error codes and the visibility rules. It imports nothing of ours.
package domain

import (
	"context"
	"slices"
	"strings"
)

// Role is what the token says the caller is.
type Role string

// The roles of the README's "Who calls".
const (
	RoleMember      Role = "member"
	RoleInsurer     Role = "insurer"
	RoleProvider    Role = "provider"
	RolePartner     Role = "partner"
	RoleCoordinator Role = "coordinator"
)

// Roles lists every known role.
var Roles = []Role{RoleMember, RoleInsurer, RoleProvider, RolePartner, RoleCoordinator}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Scope is an OAuth-style right named in the token's `scope` claim.
type Scope string

// The scopes of the README's "Who calls".
const (
	ScopePoliciesRead     Scope = "policies:read"
	ScopePoliciesWrite    Scope = "policies:write"
	ScopeCasesRead        Scope = "cases:read"
	ScopeCasesWrite       Scope = "cases:write"
	ScopeOpinionsRead     Scope = "opinions:read"
	ScopeOpinionsWrite    Scope = "opinions:write"
	ScopeSpecialistsRead  Scope = "specialists:read"
	ScopeSpecialistsWrite Scope = "specialists:write"
	ScopeAuditRead        Scope = "audit:read"
)

// roleScopes is the most each role may ever do; a token's scope claim can only
// narrow it.
var roleScopes = map[Role][]Scope{
	RoleMember:      {ScopePoliciesRead, ScopeCasesRead, ScopeCasesWrite, ScopeOpinionsRead, ScopeSpecialistsRead},
	RoleInsurer:     {ScopePoliciesRead, ScopePoliciesWrite, ScopeCasesRead, ScopeCasesWrite, ScopeOpinionsRead, ScopeSpecialistsRead},
	RoleProvider:    {ScopeCasesRead, ScopeCasesWrite, ScopeOpinionsRead, ScopeOpinionsWrite, ScopeSpecialistsRead, ScopeSpecialistsWrite},
	RolePartner:     {ScopeCasesRead, ScopeCasesWrite, ScopeOpinionsRead, ScopeOpinionsWrite, ScopeSpecialistsRead, ScopeSpecialistsWrite},
	RoleCoordinator: {ScopePoliciesRead, ScopePoliciesWrite, ScopeCasesRead, ScopeCasesWrite, ScopeOpinionsRead, ScopeOpinionsWrite, ScopeSpecialistsRead, ScopeSpecialistsWrite, ScopeAuditRead},
}

// Principal is the verified caller of one request.
type Principal struct {
	Subject string
	Role    Role
	// Org is the insurer, provider org, partner network or operator id; empty for members.
	Org string
	// TokenScopes is the token's scope claim; nil means the claim was absent
	// and the role's full rights apply.
	TokenScopes []Scope
	// SpecialistID narrows a provider or partner token to one specialist.
	SpecialistID string
	// ClientID is the token's azp / client_id, when present.
	ClientID string
}

// Scopes returns the effective rights: the role's rights, narrowed by the
// token's scope claim when present.
func (p Principal) Scopes() []Scope {
	base := roleScopes[p.Role]
	if p.TokenScopes == nil {
		return slices.Clone(base)
	}
	out := make([]Scope, 0, len(base))
	for _, s := range base {
		if slices.Contains(p.TokenScopes, s) {
			out = append(out, s)
		}
	}
	return out
}

// Has reports whether the principal holds scope s.
func (p Principal) Has(s Scope) bool {
	if !slices.Contains(roleScopes[p.Role], s) {
		return false
	}
	return p.TokenScopes == nil || slices.Contains(p.TokenScopes, s)
}

// Require returns a FORBIDDEN error unless the principal holds scope s.
func (p Principal) Require(s Scope) error {
	if p.Has(s) {
		return nil
	}
	return Errorf(CodeForbidden, "this operation needs the %q scope", s)
}

// RequireRole returns a FORBIDDEN error unless the principal has one of roles.
func (p Principal) RequireRole(roles ...Role) error {
	if slices.Contains(roles, p.Role) {
		return nil
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return Errorf(CodeForbidden, "this operation is for: %s", strings.Join(names, ", "))
}

// ParseScopes splits a space-separated scope claim.
func ParseScopes(claim string) []Scope {
	fields := strings.Fields(claim)
	out := make([]Scope, 0, len(fields))
	for _, f := range fields {
		out = append(out, Scope(f))
	}
	return out
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// RequirePrincipal returns the principal in ctx or an UNAUTHENTICATED error.
func RequirePrincipal(ctx context.Context) (Principal, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || !p.Role.Valid() {
		return Principal{}, Errorf(CodeUnauthenticated, "authentication required")
	}
	return p, nil
}

// MemberKey names a member: the pair (insurer org, member id). Each
// insurer's member ids are its own namespace, so two insurers naming the
// same member id name two different people. Org ids never hold ":".
func MemberKey(insurer, memberID string) string { return insurer + ":" + memberID }

// MemberKey is the member a member principal is: its insurer (org) and its
// member id (sub). Without an org it names nobody.
func (p Principal) MemberKey() string {
	if p.Org == "" {
		return ""
	}
	return MemberKey(p.Org, p.Subject)
}

// SplitMemberKey returns the insurer and member id of a MemberKey.
func SplitMemberKey(key string) (insurer, memberID string) {
	insurer, memberID, _ = strings.Cut(key, ":")
	return insurer, memberID
}
