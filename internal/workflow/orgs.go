package workflow

import (
	"context"
	"slices"
	"strings"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// RegisterOrganization registers an organisation (coordinators).
func (s *Service) RegisterOrganization(ctx context.Context, p domain.Principal, o domain.Organization) (*domain.Organization, error) {
	if err := p.RequireRole(domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if !domain.ValidOrgID(o.ID) {
		return nil, bad("id must be 2 to 63 lower-case letters, digits and hyphens, starting with a letter or digit")
	}
	var err error
	if o.Name, err = clean(o.Name, "name", 200, true); err != nil {
		return nil, err
	}
	o.Country = strings.ToUpper(strings.TrimSpace(o.Country))
	if !country.MatchString(o.Country) {
		return nil, bad("country must be an ISO 3166-1 alpha-2 code")
	}
	if !slices.Contains(domain.OrgKinds, o.Kind) {
		return nil, bad("kind must be one of INSURER, PROVIDER, NETWORK, OPERATOR")
	}
	if o.Kind == domain.OrgOperator {
		// The operator is one organisation, registered at start.
		return nil, bad("the operator's organisation is registered by the service itself")
	}
	return s.store.InsertOrganization(ctx, o)
}

// UpdateOrganization renames, suspends or reactivates an organisation
// (coordinators). The operator's own organisation is never suspended: that
// would lock every coordinator out.
func (s *Service) UpdateOrganization(ctx context.Context, p domain.Principal, id string, ch store.OrgChange, expectedVersion *int) (*domain.Organization, error) {
	if err := p.RequireRole(domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if ch.Name != nil {
		name, err := clean(*ch.Name, "name", 200, true)
		if err != nil {
			return nil, err
		}
		ch.Name = &name
	}
	if ch.Status != nil {
		if *ch.Status != domain.OrgActive && *ch.Status != domain.OrgSuspended {
			return nil, bad("status must be ACTIVE or SUSPENDED")
		}
		if *ch.Status == domain.OrgSuspended && id == p.Org {
			return nil, bad("the operator's own organisation cannot be suspended")
		}
	}
	return s.store.UpdateOrganization(ctx, id, ch, expectedVersion)
}

// Organization reads one organisation (every role: names and kinds are
// public, the field guard hides the rest).
func (s *Service) Organization(ctx context.Context, id string) (*domain.Organization, error) {
	return s.store.Organization(ctx, id)
}

// requireOrgOfKind checks that org is registered, active and of one of
// kinds: a specialist's org and the like may only name such an org.
func (s *Service) requireOrgOfKind(ctx context.Context, org string, kinds ...domain.OrgKind) (domain.OrgKind, error) {
	kind, active, err := s.store.Org(ctx, org)
	if domain.ErrorCode(err) == domain.CodeNotFound {
		return "", bad("organization %q is not registered", org)
	}
	if err != nil {
		return "", err
	}
	if !active {
		return "", bad("organization %q is suspended", org)
	}
	if !slices.Contains(kinds, kind) {
		return "", bad("organization %q is a %s organization, not %s", org, kind, kinds)
	}
	return kind, nil
}
