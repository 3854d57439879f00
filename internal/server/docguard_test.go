package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/testenv"
)

// fanOut is a chain of n fragments each spreading the next twice: 2^n fields
// once expanded, from a document of a few hundred bytes.
func fanOut(n int) string {
	var b strings.Builder
	b.WriteString("query { viewer { ...F0 } }\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "fragment F%d on Viewer { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Viewer { role }\n", n)
	return b.String()
}

func hostileDocuments() map[string]string {
	deep := strings.Repeat("opinion { case { ", 10) + "id" + strings.Repeat(" } }", 10)
	var aliases, roots, dirs, repeated strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&aliases, "a%d: role ", i)
		fmt.Fprintf(&roots, "v%d: viewer { role } ", i)
		dirs.WriteString("role @include(if: true) ")
	}
	for i := 0; i < 400; i++ {
		repeated.WriteString("role ")
	}
	return map[string]string{
		"fragment fan-out of 2^30": fanOut(30),
		"nesting 21 levels deep":   fmt.Sprintf(`query($id: ID!) { case(id: $id) { %s } }`, deep),
		"60 aliases":               "{ viewer { " + aliases.String() + "} }",
		"60 root fields":           "{ " + roots.String() + "}",
		"60 directives":            "{ viewer { " + dirs.String() + "} }",
		"a fragment cycle":         "query { viewer { ...A } } fragment A on Viewer { ...B } fragment B on Viewer { ...A }",
		"400 repeats of one field": "{ viewer { " + repeated.String() + "} }",
		"100 cases with their histories twice over": `{ cases(first: 100) { edges { node {
		  events { type at fromStatus toStatus actorRole } records { id title kind recordedOn }
		  opinion { case { events { type at fromStatus toStatus actorRole } records { id title kind recordedOn } } } } } } }`,
	}
}

func TestHostileDocumentsAreRefusedBeforeExecution(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	for name, doc := range hostileDocuments() {
		t.Run(name+" is QUERY_TOO_COMPLEX", func(t *testing.T) {
			res := env.Do(t, tok, doc, map[string]any{"id": "x"})
			require.NotEmpty(t, res.Errors, res.Raw)
			assert.Equal(t, "QUERY_TOO_COMPLEX", res.Errors[0].Code(), res.Raw)
			assert.Nil(t, res.Data["cases"])
		})
	}
}

func TestOrdinaryPartnerQueriesPass(t *testing.T) {
	env := testenv.Start(t)
	res := env.As(t, "partner", `query Page($after: String) {
	  cases(first: 50, after: $after) { totalCount pageInfo { hasNextPage endCursor }
	    edges { cursor node { id reference status specialty urgency dueAt overdue submittedAt
	      diagnosis { code description } proposedTreatment questions records { id title kind recordedOn }
	      patient { id birthYear sex country language }
	      specialist { id name country languages email activeCases }
	      opinion { id status deliveredAt memberSummary report treatmentOptions { name invasiveness } answers { question answer } }
	      events { type at fromStatus toStatus actorRole } } } } }`, nil)
	assert.Empty(t, res.Errors, res.Raw)
}

func TestTooManyErrorsAreCapped(t *testing.T) {
	env := testenv.Start(t)
	var b strings.Builder
	for i := 0; i < 120; i++ {
		fmt.Fprintf(&b, "f%d: nope%d ", i, i)
	}
	limits := server.DefaultLimits
	res := env.As(t, "member", "{ viewer { "+b.String()+"} }", nil)
	require.NotEmpty(t, res.Errors)
	assert.LessOrEqual(t, len(res.Errors), limits.MaxErrors+1)
}

func BenchmarkRefuseFanOut(b *testing.B) {
	doc := fanOut(40)
	for i := 0; i < b.N; i++ {
		if server.CheckDocument(server.DefaultLimits, doc) == "" {
			b.Fatal("fan-out accepted")
		}
	}
}

func FuzzDocumentGuard(f *testing.F) {
	for _, d := range hostileDocuments() {
		f.Add(d)
	}
	f.Add("{ viewer { role } }")
	f.Fuzz(func(t *testing.T, doc string) {
		_ = server.CheckDocument(server.DefaultLimits, doc) // must not panic or hang
	})
}
