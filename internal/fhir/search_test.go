package fhir_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/fhir"
	"github.com/secondopinion/gateway/internal/testenv"
)

// sampleValue is a well-formed value of each search parameter.
func sampleValue(typ, param string) string {
	switch param {
	case "_id":
		return "no-such-id"
	case "patient", "subject":
		return "Patient/no-such-patient"
	case "_lastUpdated":
		return "ge2000-01-01"
	case "_count":
		return "5"
	case "status":
		return map[string]string{"ServiceRequest": "active", "Task": "requested", "Consent": "active", "DocumentReference": "current", "Coverage": "active"}[typ]
	}
	return ""
}

// The CapabilityStatement lists exactly what the server does: every listed
// interaction and search parameter works, and what it does not list is
// refused with an OperationOutcome.
func TestCapabilityStatementIsWhatTheServerDoes(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	code, cs := call(t, env, "", "GET", "/fhir/r4/metadata", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "transaction", testenv.Get(cs, "rest", 0, "interaction", 0, "code"))
	assert.Equal(t, "SMART-on-FHIR", testenv.Get(cs, "rest", 0, "security", "service", 0, "coding", 0, "code"))
	for _, r := range testenv.Get(cs, "rest", 0, "resource").([]any) {
		res := r.(map[string]any)
		typ := res["type"].(string)
		interactions := map[string]bool{}
		for _, i := range asList(res["interaction"]) {
			interactions[i.(map[string]any)["code"].(string)] = true
		}
		t.Run(typ+" does what the statement says and nothing else", func(t *testing.T) {
			code, b := call(t, env, tok, "GET", "/fhir/r4/"+typ+"/no-such-id", nil)
			if interactions["read"] {
				assert.Equal(t, http.StatusNotFound, code, b)
				assert.Equal(t, "NOT_FOUND", outcomeCode(b))
			} else {
				assert.Equal(t, http.StatusBadRequest, code, b)
			}
			if !interactions["search-type"] {
				code, b := call(t, env, tok, "GET", "/fhir/r4/"+typ, nil)
				assert.Equal(t, http.StatusBadRequest, code, b)
			}
			for _, sp := range asList(res["searchParam"]) {
				name := sp.(map[string]any)["name"].(string)
				v := url.Values{name: {sampleValue(typ, name)}}
				if typ == "Patient" && name != "_id" {
					v.Set("_id", "no-such-id")
				}
				code, b := call(t, env, tok, "GET", "/fhir/r4/"+typ+"?"+v.Encode(), nil)
				assert.Equal(t, http.StatusOK, code, "%s?%s: %v", typ, v.Encode(), b)
				assert.Equal(t, "searchset", b["type"])
			}
			for _, name := range []string{"_sort", "code", "_include", "identifier"} {
				code, b := call(t, env, tok, "GET", "/fhir/r4/"+typ+"?"+name+"=x", nil)
				assert.Equal(t, http.StatusBadRequest, code, "%s?%s", typ, name)
				assert.Equal(t, "OperationOutcome", b["resourceType"])
			}
			for _, op := range asList(res["operation"]) {
				assert.Equal(t, "document", op.(map[string]any)["name"])
				code, b := call(t, env, tok, "GET", "/fhir/r4/"+typ+"/no-such-id/$document", nil)
				assert.Equal(t, http.StatusNotFound, code, b)
			}
		})
	}
	code, b := call(t, env, tok, "GET", "/fhir/r4/Observation?_id=x", nil)
	assert.Equal(t, http.StatusBadRequest, code, b)
	code, b = call(t, env, tok, "DELETE", "/fhir/r4/ServiceRequest/x", nil)
	assert.Equal(t, http.StatusBadRequest, code, b)
}

func total(t *testing.T, env *testenv.Env, persona, filter string) int {
	t.Helper()
	r := env.As(t, persona, `{ cases(filter: `+filter+`) { totalCount } }`, nil)
	require.Empty(t, r.Errors, r.Raw)
	return int(testenv.Get(r.Data, "cases", "totalCount").(float64))
}

func TestSearchParametersNarrowAsTheySay(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	all := func(path string) []map[string]any {
		t.Helper()
		code, res, _ := searchAll(t, env, tok, path)
		require.Equal(t, http.StatusOK, code, path)
		return res
	}
	t.Run("status of a ServiceRequest", func(t *testing.T) {
		res := all("/fhir/r4/ServiceRequest?status=completed&_count=100")
		for _, r := range res {
			assert.Equal(t, "completed", r["status"])
		}
		assert.Equal(t, total(t, env, "coordinator", `{ status: [OPINION_DELIVERED, CLOSED] }`), len(res))
		assert.NotEmpty(t, res)
	})
	t.Run("status of a Task", func(t *testing.T) {
		res := all("/fhir/r4/Task?status=in-progress")
		for _, r := range res {
			assert.Equal(t, "IN_REVIEW", testenv.Get(r, "businessStatus", "coding", 0, "code"))
		}
		assert.Equal(t, total(t, env, "coordinator", `{ status: [IN_REVIEW] }`), len(res))
		assert.NotEmpty(t, res)
	})
	t.Run("patient and subject", func(t *testing.T) {
		mine := env.As(t, "member", `{ cases(first: 1) { totalCount edges { node { patient { id } } } } }`, nil)
		_, raw, _ := graph.ParseGlobalID(testenv.Get(mine.Data, "cases", "edges", 0, "node", "patient", "id").(string))
		want := int(testenv.Get(mine.Data, "cases", "totalCount").(float64))
		for _, path := range []string{"/fhir/r4/ServiceRequest?patient=Patient/" + fhir.ID(raw), "/fhir/r4/ServiceRequest?subject=" + fhir.ID(raw), "/fhir/r4/Task?patient=" + fhir.ID(raw)} {
			res := all(path + "&_count=3")
			assert.Len(t, res, want, path)
			for _, r := range res {
				subject := testenv.Get(r, "subject", "reference")
				if subject == nil {
					subject = testenv.Get(r, "for", "reference")
				}
				assert.Equal(t, "Patient/"+fhir.ID(raw), subject, path)
			}
		}
		assert.Empty(t, all("/fhir/r4/ServiceRequest?patient=Patient/nobody"))
	})
	t.Run("_lastUpdated ge and le", func(t *testing.T) {
		assert.Empty(t, all("/fhir/r4/ServiceRequest?_lastUpdated=le2000-01-01"))
		everything := all("/fhir/r4/ServiceRequest?_count=100")
		assert.Len(t, all("/fhir/r4/ServiceRequest?_lastUpdated=ge2000-01-01&_lastUpdated=le2200-01-01&_count=100"), len(everything))
		// A bound inside the data splits it.
		var stamps []string
		for _, r := range everything {
			stamps = append(stamps, testenv.Get(r, "meta", "lastUpdated").(string))
		}
		mid := stamps[len(stamps)/2]
		older, newer := all("/fhir/r4/ServiceRequest?_count=100&_lastUpdated=le"+url.QueryEscape(mid)), all("/fhir/r4/ServiceRequest?_count=100&_lastUpdated=ge"+url.QueryEscape(mid))
		for _, r := range older {
			assert.LessOrEqual(t, testenv.Get(r, "meta", "lastUpdated").(string), mid)
		}
		for _, r := range newer {
			assert.GreaterOrEqual(t, testenv.Get(r, "meta", "lastUpdated").(string), mid)
		}
		assert.GreaterOrEqual(t, len(older)+len(newer), len(everything))
		assert.NotEmpty(t, older)
		assert.NotEmpty(t, newer)
	})
	t.Run("status of a Consent", func(t *testing.T) {
		for _, st := range []string{"active", "inactive"} {
			for _, r := range all("/fhir/r4/Consent?status=" + st) {
				assert.Equal(t, st, r["status"])
			}
		}
		code, b := call(t, env, tok, "GET", "/fhir/r4/Consent?status=current", nil)
		assert.Equal(t, http.StatusBadRequest, code, b)
	})
	t.Run("_count bounds every page, also of types a case holds several of", func(t *testing.T) {
		r := env.As(t, "coordinator", `{ cases(first: 100) { edges { node { consents { kind } records { id } } } } }`, nil)
		consents, records := 0, 0
		for _, e := range testenv.Get(r.Data, "cases", "edges").([]any) {
			consents += len(asList(testenv.Get(e, "node", "consents")))
			records += len(asList(testenv.Get(e, "node", "records")))
		}
		for typ, want := range map[string]int{"Consent": consents, "DocumentReference": records} {
			seen := map[string]bool{}
			path := "/fhir/r4/" + typ + "?_count=3"
			for pages := 0; path != ""; pages++ {
				require.Less(t, pages, 200)
				code, b := call(t, env, tok, "GET", path, nil)
				require.Equal(t, http.StatusOK, code, b)
				es := entries(b)
				assert.LessOrEqual(t, len(es), 3, typ)
				for _, e := range es {
					id := e["id"].(string)
					assert.False(t, seen[id], "%s %s on two pages", typ, id)
					seen[id] = true
				}
				path = nextPath(b)
			}
			assert.Len(t, seen, want, typ)
		}
	})
}

func nextPath(b map[string]any) string {
	for _, l := range asList(b["link"]) {
		if l.(map[string]any)["relation"] == "next" {
			u := l.(map[string]any)["url"].(string)
			return u[strings.Index(u, fhir.Prefix):]
		}
	}
	return ""
}

// Cases opened while a client pages neither repeat nor hide a case: the
// pages started before hold exactly the cases that existed then.
func TestSearchPagingAcrossInserts(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	before := total(t, env, "coordinator", "{}")
	pol := env.As(t, "insurer", `mutation { createPolicy(input: { policyNumber: "NS-PAGING", product: CRITICAL_ILLNESS, effectiveFrom: "2020-01-01",
		secondOpinion: { covered: true, casesPerYear: 20, international: false },
		insured: [{ memberId: "m-paging", givenName: "Pat", familyName: "Pager", dateOfBirth: "1980-01-01", sex: OTHER }] }) { policy { id } } }`, nil)
	require.Empty(t, pol.Errors, pol.Raw)
	policyID := testenv.Get(pol.Data, "createPolicy", "policy", "id").(string)
	open := func() string {
		r := env.As(t, "insurer", `mutation($p: ID!) { requestSecondOpinion(input: { policyId: $p, patientMemberId: "m-paging", specialty: "oncology", diagnosis: { code: "C50.9", description: "paging" } }) { case { id } } }`, map[string]any{"p": policyID})
		require.Empty(t, r.Errors, r.Raw)
		_, raw, _ := graph.ParseGlobalID(testenv.Get(r.Data, "requestSecondOpinion", "case", "id").(string))
		return fhir.ID(raw)
	}

	seen := map[string]bool{}
	var inserted []string
	path := "/fhir/r4/ServiceRequest?_count=4"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 100)
		code, b := call(t, env, tok, "GET", path, nil)
		require.Equal(t, http.StatusOK, code, b)
		assert.LessOrEqual(t, len(entries(b)), 4)
		for _, e := range entries(b) {
			id := e["id"].(string)
			assert.False(t, seen[id], "case %s on two pages", id)
			seen[id] = true
		}
		inserted = append(inserted, open())
		path = nextPath(b)
	}
	assert.Len(t, seen, before)
	for _, id := range inserted {
		assert.False(t, seen[id], "a case opened after the first page is not on a later one")
	}
	code, after, _ := searchAll(t, env, tok, "/fhir/r4/ServiceRequest?_count=100")
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, after, before+len(inserted), "a new search sees them")
}
