package workflow

import (
	"context"

	"github.com/secondopinion/gateway/internal/domain"
)

// The reads the FHIR door needs beyond the ones GraphQL's resolvers call
// directly: the patients behind cases and policies, which GraphQL reaches
// through its per-request loaders. They take the same scoped store reads,
// so a FHIR Patient is the GraphQL Patient of the same caller.

// PatientsOfCases returns the patients of cases p already read under its
// scope, keyed by case id: de-identified for partners, none for a case
// outside p's scope.
func (s *Service) PatientsOfCases(ctx context.Context, p domain.Principal, cases []*domain.Case) (map[string]*domain.Patient, error) {
	return s.store.PatientsOfCases(ctx, p, cases)
}

// PatientsOfPolicies returns the insured members of each policy as p may
// see them, in the order of pols.
func (s *Service) PatientsOfPolicies(ctx context.Context, p domain.Principal, pols []*domain.Policy) ([][]*domain.Patient, error) {
	return s.store.PatientsOfPolicies(ctx, p, pols)
}
