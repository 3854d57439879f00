package store_test

import (
	"context"
	"testing"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// BenchmarkStoreCasePage50Clinical reads, as a coordinator, a page of 50
// of 2,000 cases with their clinical fields and their patients' identity:
// the store's part of a case list, where sealing PHI fields at rest costs
// most (every diagnosis, treatment, question, record title and identity of
// the page is opened).
func BenchmarkStoreCasePage50Clinical(b *testing.B) {
	env := testenv.Start(b, testenv.Options{Seed: seed.Size{Policies: 200, Specialists: 200, Cases: 2000}})
	ctx := context.Background()
	p := domain.Principal{Subject: "coord-1", Role: domain.RoleCoordinator, Org: seed.Operator}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cases, _, err := env.Store.Cases(ctx, p, store.CaseFilter{}, store.Page{First: 50}, store.CaseView{Clinical: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(cases) != 50 || cases[0].Clinical == nil {
			b.Fatalf("%d cases, clinical %v", len(cases), cases[0].Clinical != nil)
		}
		pts, err := env.Store.PatientsOfCases(ctx, p, cases)
		if err != nil {
			b.Fatal(err)
		}
		for _, pt := range pts {
			if pt.Identity == nil || pt.Identity.GivenName == "" {
				b.Fatal("identity not read")
			}
		}
	}
}
