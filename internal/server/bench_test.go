package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// The hot paths, on the embedded store. `make bench` runs them with
// -benchmem; docs of the figures are in the README's performance section.

// bigEnv is a gateway over 2,000 cases and 200 specialists (seeded in about
// two seconds; the timer is reset after).
func bigEnv(b *testing.B) *testenv.Env {
	return testenv.Start(b, testenv.Options{Seed: seed.Size{Policies: 200, Specialists: 200, Cases: 2000}})
}

// BenchmarkViewerCached is the gateway's own cost per request, no database:
// auth, the transport guard, the cached document, execution, JSON.
func BenchmarkViewerCached(b *testing.B) {
	env := testenv.Start(b, testenv.Options{NoSeed: true})
	tok := env.Token(b, testenv.Persona("member"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		env.Do(b, tok, `{ viewer { subject role scopes } }`, nil)
	}
}

// BenchmarkViewerUncached adds lexing, the document guard, parsing and
// validation of a document seen for the first time.
func BenchmarkViewerUncached(b *testing.B) {
	env := testenv.Start(b, testenv.Options{NoSeed: true})
	tok := env.Token(b, testenv.Persona("member"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		env.Do(b, tok, fmt.Sprintf(`query Q%d { viewer { subject role scopes } }`, i), nil)
	}
}

func BenchmarkCasePage50(b *testing.B) {
	env := bigEnv(b)
	tok := env.Token(b, testenv.Persona("coordinator"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := env.Do(b, tok, pageDoc, nil)
		if len(res.Errors) > 0 {
			b.Fatal(res.Raw)
		}
	}
}

// clinicalPageDoc reads a page of 50 cases with every PHI field a
// coordinator's case list may show: what sealing at rest costs most.
const clinicalPageDoc = `{ cases(first: 50) { edges { node { id reference status
  diagnosis { code description } proposedTreatment questions records { title kind }
  patient { givenName familyName dateOfBirth email phone } } } } }`

// BenchmarkCasePage50Clinical is BenchmarkCasePage50 with the clinical
// fields and the patient's identity, which are sealed at rest.
func BenchmarkCasePage50Clinical(b *testing.B) {
	env := bigEnv(b)
	tok := env.Token(b, testenv.Persona("coordinator"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := env.Do(b, tok, clinicalPageDoc, nil)
		if len(res.Errors) > 0 {
			b.Fatal(res.Raw)
		}
	}
}

func BenchmarkCaseDetail(b *testing.B) {
	env := bigEnv(b)
	tok := env.Token(b, testenv.Persona("coordinator"))
	res := env.Do(b, tok, `{ cases(first: 100) { edges { node { id } } } }`, nil)
	edges := testenv.Get(res.Data, "cases", "edges").([]any)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := testenv.Get(edges[i%len(edges)], "node", "id")
		r := env.Do(b, tok, `query($id: ID!) { case(id: $id) { id reference status diagnosis { code } events { type at }
		  patient { givenName familyName } specialist { name } opinion { status memberSummary } } }`, map[string]any{"id": id})
		if len(r.Errors) > 0 {
			b.Fatal(r.Raw)
		}
	}
}

// BenchmarkCaseOutsideScopeVersusMissing is issue 14, finding 11: a member
// asking case(id:) for another member's case and for an id that does not
// exist gets the same null, and should spend the same time on it. Both do
// the same reads (store.caseNotFound: one that finds a case document,
// decoded and held to the scope, and one that finds none;
// TestAnIDOutsideTheScopeAndAMissingIDDoTheSameReads counts them). The
// "interleaved" run alternates the two in one loop, so load from elsewhere
// on the machine falls on both alike: compare its outside-ns/op and
// missing-ns/op (and B/op, allocs/op of the two separate runs).
func BenchmarkCaseOutsideScopeVersusMissing(b *testing.B) {
	env := bigEnv(b)
	coord := env.Token(b, testenv.Persona("coordinator"))
	member := env.Token(b, testenv.Persona("member"))
	res := env.Do(b, coord, `{ cases(first: 100) { edges { node { id } } } }`, nil)
	var outside string
	for _, e := range testenv.Get(res.Data, "cases", "edges").([]any) {
		id := testenv.Get(e, "node", "id").(string)
		if r := env.Do(b, member, `query($id: ID!) { case(id: $id) { id } }`, map[string]any{"id": id}); testenv.Get(r.Data, "case") == nil {
			outside = id
			break
		}
	}
	if outside == "" {
		b.Fatal("no case outside the member's scope")
	}
	_, raw, _ := graph.ParseGlobalID(outside)
	missing := graph.GlobalID("Case", strings.Repeat("0", len(raw)))
	probe := func(b *testing.B, id string) {
		r := env.Do(b, member, `query($id: ID!) { case(id: $id) { id reference } }`, map[string]any{"id": id})
		if testenv.Get(r.Data, "case") != nil {
			b.Fatal(r.Raw)
		}
	}
	for _, tc := range []struct{ name, id string }{{"outside scope", outside}, {"missing", missing}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				probe(b, tc.id)
			}
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		var out, miss time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			probe(b, outside)
			t1 := time.Now()
			probe(b, missing)
			out, miss = out+t1.Sub(t0), miss+time.Since(t1)
		}
		b.ReportMetric(float64(out.Nanoseconds())/float64(b.N), "outside-ns/op")
		b.ReportMetric(float64(miss.Nanoseconds())/float64(b.N), "missing-ns/op")
	})
}
