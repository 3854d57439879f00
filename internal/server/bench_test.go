package server_test

import (
	"fmt"
	"testing"

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
