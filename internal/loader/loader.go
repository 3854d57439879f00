// Package loader batches the edges of one request into few database
// commands. Loaders are built per request around that request's principal,
// so one caller's scoped results can never serve another's.
package loader

import (
	"context"
	"errors"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Loaders are the batched edges of one request.
type Loaders struct {
	Policy           *dataloadgen.Loader[string, *domain.Policy]
	Case             *dataloadgen.Loader[string, *domain.Case]
	Specialist       *dataloadgen.Loader[string, *domain.Specialist]
	OpinionOfCase    *dataloadgen.Loader[*domain.Case, *domain.Opinion]
	PatientOfCase    *dataloadgen.Loader[*domain.Case, *domain.Patient]
	PatientsOfPolicy *dataloadgen.Loader[*domain.Policy, []*domain.Patient]
}

// wait is how long a loader gathers keys before it fetches, when the
// operation reads lists whose items have edges. The pages of cases and
// policies queue their edges all at once (graph's prefetch), so their
// batches do not depend on it; it gathers the rest (edges of edges).
const wait = 2 * time.Millisecond

// New builds the loaders of one request for principal p. Without batch
// (an operation that reads single objects only: a case opened on a phone)
// each key is fetched at once: there is nothing to gather, and waiting would
// add the wait to every level of the response.
func New(st *store.Store, p domain.Principal, batch bool) *Loaders {
	opt := dataloadgen.WithWait(0)
	if batch {
		opt = dataloadgen.WithWait(wait)
	}
	return &Loaders{
		Policy: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]*domain.Policy, error) {
			return st.PoliciesByIDs(ctx, p, ids)
		}, opt),
		Case: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]*domain.Case, error) {
			return st.CasesByIDs(ctx, p, ids)
		}, opt),
		Specialist: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]*domain.Specialist, error) {
			return st.SpecialistsByIDs(ctx, p, ids)
		}, opt),
		OpinionOfCase: dataloadgen.NewMappedLoader(func(ctx context.Context, cases []*domain.Case) (map[*domain.Case]*domain.Opinion, error) {
			byCaseID, err := st.OpinionsForCases(ctx, p, cases)
			if err != nil {
				return nil, err
			}
			out := make(map[*domain.Case]*domain.Opinion, len(byCaseID))
			for _, c := range cases {
				if o, ok := byCaseID[c.ID]; ok {
					out[c] = o
				}
			}
			return out, nil
		}, opt),
		PatientOfCase: dataloadgen.NewMappedLoader(func(ctx context.Context, cases []*domain.Case) (map[*domain.Case]*domain.Patient, error) {
			byCaseID, err := st.PatientsOfCases(ctx, p, cases)
			if err != nil {
				return nil, err
			}
			out := make(map[*domain.Case]*domain.Patient, len(byCaseID))
			for _, c := range cases {
				if pt, ok := byCaseID[c.ID]; ok {
					out[c] = pt
				}
			}
			return out, nil
		}, opt),
		PatientsOfPolicy: dataloadgen.NewLoader(func(ctx context.Context, pols []*domain.Policy) ([][]*domain.Patient, []error) {
			out, err := st.PatientsOfPolicies(ctx, p, pols)
			if err != nil {
				errs := make([]error, len(pols))
				for i := range errs {
					errs[i] = err
				}
				return make([][]*domain.Patient, len(pols)), errs
			}
			return out, nil
		}, opt),
	}
}

// Optional turns "not found or out of scope" into a plain nil, for nullable
// edges.
func Optional[T any](v *T, err error) (*T, error) {
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

type key struct{}

// With returns a context carrying l.
func With(ctx context.Context, l *Loaders) context.Context { return context.WithValue(ctx, key{}, l) }

// From returns the request's loaders.
func From(ctx context.Context) (*Loaders, error) {
	l, ok := ctx.Value(key{}).(*Loaders)
	if !ok {
		return nil, errors.New("loader: no loaders in context")
	}
	return l, nil
}
