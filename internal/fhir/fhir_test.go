package fhir_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/fhir"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// emitted collects every resource the door answered with, for the schema
// validation (validate_test.go).
var emitted struct {
	sync.Mutex
	all []json.RawMessage
}

func call(t *testing.T, env *testenv.Env, token, method, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", fhir.ContentType)
	}
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	var out map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), fhir.ContentType) {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
		emitted.Lock()
		emitted.all = append(emitted.all, json.RawMessage(bytes.Clone(rec.Body.Bytes())))
		emitted.Unlock()
	}
	return rec.Code, out
}

func entries(b map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := b["entry"].([]any)
	for _, e := range list {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		out = append(out, res)
	}
	return out
}

func outcomeCode(b map[string]any) string {
	issues, _ := b["issue"].([]any)
	if len(issues) == 0 {
		return ""
	}
	cod := testenv.Get(issues[0], "details", "coding", 0, "code")
	s, _ := cod.(string)
	return s
}

func TestMetadataListsWhatIsImplemented(t *testing.T) {
	env := testenv.Start(t)
	code, cs := call(t, env, "", "GET", "/fhir/r4/metadata", nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "CapabilityStatement", cs["resourceType"])
	assert.Equal(t, "4.0.1", cs["fhirVersion"])
	var types []string
	for _, r := range testenv.Get(cs, "rest", 0, "resource").([]any) {
		types = append(types, r.(map[string]any)["type"].(string))
	}
	assert.ElementsMatch(t, []string{"Composition", "Condition", "Consent", "Coverage", "DocumentReference", "Patient", "Practitioner", "ServiceRequest", "Task"}, types)
}

func TestUnsupportedSearchParametersAreRefused(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	for _, path := range []string{
		"/fhir/r4/ServiceRequest?code=oncology",
		"/fhir/r4/ServiceRequest?status:not=active",
		"/fhir/r4/Task?_count=1000",
		"/fhir/r4/Condition?status=active",
		"/fhir/r4/Observation",
		"/fhir/r4/ServiceRequest?_lastUpdated=gt2020-01-01",
	} {
		code, b := call(t, env, tok, "GET", path, nil)
		assert.Equal(t, http.StatusBadRequest, code, path)
		assert.Equal(t, "OperationOutcome", b["resourceType"], path)
		assert.Equal(t, string(domain.CodeBadUserInput), outcomeCode(b), path)
	}
}

func TestSearchPagesWithNextLinks(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	seen := map[string]bool{}
	path := "/fhir/r4/Task?_count=7"
	for pages := 0; path != "" && pages < 100; pages++ {
		code, b := call(t, env, tok, "GET", path, nil)
		require.Equal(t, http.StatusOK, code, b)
		for _, e := range entries(b) {
			id := e["id"].(string)
			assert.False(t, seen[id], "task %s on two pages", id)
			seen[id] = true
			assert.Equal(t, "order", e["intent"])
		}
		path = ""
		for _, l := range b["link"].([]any) {
			if l.(map[string]any)["relation"] == "next" {
				u := l.(map[string]any)["url"].(string)
				path = u[strings.Index(u, "/fhir/r4"):]
			}
		}
	}
	gq := env.As(t, "coordinator", `{ cases { totalCount } }`, nil)
	assert.Equal(t, int(testenv.Get(gq.Data, "cases", "totalCount").(float64)), len(seen))
}

// auditRows are the audit events of one operation label by subject, as
// "resourceType resourceId fieldGroup outcome".
func auditRows(t *testing.T, env *testenv.Env, subject, operation string) []string {
	t.Helper()
	var rows []string
	after := ""
	for {
		ev := env.As(t, "coordinator", `query($s: String!, $after: String) { auditEvents(first: 100, after: $after, filter: { subject: $s }) { pageInfo { hasNextPage endCursor } edges { node { operation resourceType resourceId fieldGroup outcome } } } }`, map[string]any{"s": subject, "after": after})
		require.Empty(t, ev.Errors, ev.Raw)
		for _, e := range testenv.Get(ev.Data, "auditEvents", "edges").([]any) {
			n := e.(map[string]any)["node"].(map[string]any)
			if n["operation"] == operation {
				rows = append(rows, strings.Join([]string{n["resourceType"].(string), n["resourceId"].(string), n["fieldGroup"].(string), n["outcome"].(string)}, " "))
			}
		}
		if testenv.Get(ev.Data, "auditEvents", "pageInfo", "hasNextPage") != true {
			break
		}
		after = testenv.Get(ev.Data, "auditEvents", "pageInfo", "endCursor").(string)
	}
	sort.Strings(rows)
	return rows
}

// A FHIR read writes the audit rows the GraphQL read of the same fields
// writes: ServiceRequest is a case's patient and clinical fields; Patient is
// a patient's demographics and identity.
func TestFHIRReadsAreAuditedLikeGraphQLReads(t *testing.T) {
	env := testenv.Start(t)
	for _, persona := range []string{"member", "insurer", "provider", "partner", "coordinator"} {
		t.Run(persona+" leaves the same audit rows through both doors", func(t *testing.T) {
			who := testenv.Persona(persona)
			tok := env.Token(t, who)
			gq := env.Do(t, tok, `query ParityCases { cases(first: 100) { edges { node { reference status specialty patient { id } diagnosis { code description } proposedTreatment questions records { id title } } } } }`, nil)
			require.NotEmpty(t, testenv.Get(gq.Data, "cases", "edges"), gq.Raw)
			code, b := call(t, env, tok, "GET", "/fhir/r4/ServiceRequest?_count=100", nil)
			require.Equal(t, http.StatusOK, code, b)
			viaGraphQL, viaFHIR := auditRows(t, env, who.Subject, "query ParityCases"), auditRows(t, env, who.Subject, "fhir GET ServiceRequest search")
			require.NotEmpty(t, viaGraphQL)
			assert.Equal(t, viaGraphQL, viaFHIR, "cases")

			pid := testenv.Get(gq.Data, "cases", "edges", 0, "node", "patient", "id").(string)
			_, raw, _ := graph.ParseGlobalID(pid)
			gp := env.Do(t, tok, `query ParityPatient($id: ID!) { node(id: $id) { ... on Patient { id givenName familyName dateOfBirth birthYear ageBand sex email phone country language } } }`, map[string]any{"id": pid})
			require.NotNil(t, testenv.Get(gp.Data, "node"), gp.Raw)
			code, b = call(t, env, tok, "GET", "/fhir/r4/Patient/"+fhir.ID(raw), nil)
			require.Equal(t, http.StatusOK, code, b)
			viaGraphQL, viaFHIR = auditRows(t, env, who.Subject, "query ParityPatient"), auditRows(t, env, who.Subject, "fhir GET Patient")
			require.NotEmpty(t, viaGraphQL)
			assert.Equal(t, viaGraphQL, viaFHIR, "patient")
		})
	}
	for _, persona := range []string{"member", "insurer", "provider", "partner", "coordinator"} {
		t.Run(persona+" leaves the same audit rows reading an opinion document", func(t *testing.T) {
			who := testenv.Persona(persona)
			tok := env.Token(t, who)
			ops := env.Do(t, tok, `{ opinions(first: 100) { edges { node { id status } } } }`, nil)
			var id string
			for _, e := range asList(testenv.Get(ops.Data, "opinions", "edges")) {
				if testenv.Get(e, "node", "status") == "DELIVERED" {
					id = testenv.Get(e, "node", "id").(string)
					break
				}
			}
			require.NotEmpty(t, id, "the demo gives %s a delivered opinion", persona)
			_, raw, _ := graph.ParseGlobalID(id)
			code, b := call(t, env, tok, "GET", "/fhir/r4/Composition/"+fhir.ID(raw)+"/$document", nil)
			// The GraphQL read of what the document holds: the whole
			// opinion and its patient; for a role refused the content, the
			// request stops there in both doors.
			q := `query ParityDocument($id: ID!) { node(id: $id) { ... on Opinion { status memberSummary case { patient { id givenName familyName dateOfBirth } } } } }`
			if code != http.StatusOK {
				require.Equal(t, http.StatusForbidden, code, b)
				q = `query ParityDocument($id: ID!) { node(id: $id) { ... on Opinion { status memberSummary } } }`
			}
			env.Do(t, tok, q, map[string]any{"id": id})
			viaGraphQL, viaFHIR := auditRows(t, env, who.Subject, "query ParityDocument"), auditRows(t, env, who.Subject, "fhir GET Composition $document")
			require.NotEmpty(t, viaGraphQL)
			assert.Equal(t, viaGraphQL, viaFHIR)
		})
	}
	t.Run("a lookup of a case out of scope is audited as not found, as GraphQL's", func(t *testing.T) {
		all := env.As(t, "coordinator", `{ cases(first: 100) { edges { node { id specialist { orgId } } } } }`, nil)
		var outside string
		for _, e := range testenv.Get(all.Data, "cases", "edges").([]any) {
			n := e.(map[string]any)["node"].(map[string]any)
			if testenv.Get(n, "specialist", "orgId") != seed.ProviderToronto {
				_, outside, _ = graph.ParseGlobalID(n["id"].(string))
				break
			}
		}
		require.NotEmpty(t, outside)
		who := testenv.Persona("provider")
		tok := env.Token(t, who)
		gq := env.Do(t, tok, `query ParityCase($id: ID!) { case(id: $id) { reference } }`, map[string]any{"id": graph.GlobalID("Case", outside)})
		assert.Nil(t, testenv.Get(gq.Data, "case"))
		code, b := call(t, env, tok, "GET", "/fhir/r4/ServiceRequest/"+fhir.ID(outside), nil)
		assert.Equal(t, http.StatusNotFound, code, b)
		viaGraphQL, viaFHIR := auditRows(t, env, who.Subject, "query ParityCase"), auditRows(t, env, who.Subject, "fhir GET ServiceRequest")
		assert.Equal(t, []string{"Case " + outside + " case.admin NOT_FOUND"}, viaGraphQL)
		assert.Equal(t, viaGraphQL, viaFHIR)
	})
	t.Run("the member's access log shows a provider's FHIR read", func(t *testing.T) {
		log := func() int {
			r := env.As(t, "member", `{ myAccessLog(first: 100) { edges { node { organization { kind } dataCategories count } } } }`, nil)
			require.Empty(t, r.Errors, r.Raw)
			n := 0
			for _, e := range testenv.Get(r.Data, "myAccessLog", "edges").([]any) {
				node := e.(map[string]any)["node"].(map[string]any)
				if testenv.Get(node, "organization", "kind") == "PROVIDER" && slices.Contains(node["dataCategories"].([]any), any("CLINICAL")) {
					n += int(node["count"].(float64))
				}
			}
			return n
		}
		before := log()
		code, b := call(t, env, env.Token(t, testenv.Persona("provider")), "GET", "/fhir/r4/Condition?_count=100", nil)
		require.Equal(t, http.StatusOK, code, b)
		require.NotEmpty(t, entries(b))
		assert.Greater(t, log(), before)
	})
}

func readExample(t *testing.T, name string, repl map[string]string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	s := string(b)
	for k, v := range repl {
		s = strings.ReplaceAll(s, k, v)
	}
	return []byte(s)
}

func TestReferralBundleImportIsIdempotent(t *testing.T) {
	env := testenv.Start(t)
	pol := env.As(t, "insurer", `mutation { createPolicy(input: { policyNumber: "FHIR-1", product: CRITICAL_ILLNESS, effectiveFrom: "2020-01-01",
		secondOpinion: { covered: true, casesPerYear: 5, international: true },
		insured: [{ memberId: "m-fhir-1", givenName: "Ada", familyName: "Lovelace", dateOfBirth: "1970-05-01", sex: FEMALE, country: "CA", language: "en" }] }) { policy { id } } }`, nil)
	require.Empty(t, pol.Errors)
	_, policyID, _ := graph.ParseGlobalID(testenv.Get(pol.Data, "createPolicy", "policy", "id").(string))
	tok := env.Token(t, testenv.Persona("insurer"))
	bundle := readExample(t, "referral-bundle.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": "ref-0001"})

	code, first := call(t, env, tok, "POST", "/fhir/r4", bundle)
	require.Equal(t, http.StatusOK, code, first)
	assert.Equal(t, "transaction-response", first["type"])
	loc := location(t, first, "ServiceRequest")
	caseID := strings.TrimPrefix(loc, "ServiceRequest/")
	t.Run("the response has one entry per request entry, in order", func(t *testing.T) {
		var req map[string]any
		require.NoError(t, json.Unmarshal(bundle, &req))
		reqEntries, respEntries := req["entry"].([]any), first["entry"].([]any)
		require.Len(t, respEntries, len(reqEntries))
		want := map[string]string{"Patient": "200 OK", "Coverage": "200 OK", "Condition": "201 Created", "ServiceRequest": "201 Created"}
		for i, e := range reqEntries {
			typ := testenv.Get(e, "resource", "resourceType").(string)
			assert.Equal(t, want[typ], testenv.Get(respEntries[i], "response", "status"), typ)
			l := testenv.Get(respEntries[i], "response", "location").(string)
			assert.True(t, strings.HasPrefix(l, typ+"/"), l)
			if typ == "Condition" || typ == "ServiceRequest" {
				assert.Equal(t, typ+"/"+caseID, l)
			}
		}
		assert.Equal(t, "Coverage/"+fhir.ID(policyID), location(t, first, "Coverage"))
		code, pt := call(t, env, tok, "GET", "/fhir/r4/"+location(t, first, "Patient"), nil)
		require.Equal(t, http.StatusOK, code, pt)
		assert.Equal(t, "Lovelace", testenv.Get(pt, "name", 0, "family"))
	})

	t.Run("a replay returns the first result", func(t *testing.T) {
		code, again := call(t, env, tok, "POST", "/fhir/r4", bundle)
		require.Equal(t, http.StatusOK, code, again)
		assert.Equal(t, first["entry"], again["entry"])
	})
	t.Run("another bundle with the same identifier is refused", func(t *testing.T) {
		other := bytes.Replace(bundle, []byte("C50.9"), []byte("C50.1"), 1)
		code, b := call(t, env, tok, "POST", "/fhir/r4", other)
		assert.Equal(t, http.StatusConflict, code)
		assert.Equal(t, string(domain.CodeIdempotencyKeyReused), outcomeCode(b))
	})
	t.Run("the case reads back as the insurer may see it", func(t *testing.T) {
		code, sr := call(t, env, tok, "GET", "/fhir/r4/"+loc, nil)
		require.Equal(t, http.StatusOK, code, sr)
		assert.Equal(t, "oncology", testenv.Get(sr, "code", "coding", 0, "code"))
		assert.Nil(t, sr["reasonCode"], "insurers never read the diagnosis")
		code, sr = call(t, env, env.Token(t, testenv.Persona("coordinator")), "GET", "/fhir/r4/"+loc, nil)
		require.Equal(t, http.StatusOK, code, sr)
		assert.Equal(t, "C50.9", testenv.Get(sr, "reasonCode", 0, "coding", 0, "code"))
	})
	t.Run("eligibility errors keep their code", func(t *testing.T) {
		b := readExample(t, "referral-bundle.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "someone-else", "{{BUNDLE}}": "ref-0002"})
		code, out := call(t, env, tok, "POST", "/fhir/r4", b)
		assert.Equal(t, http.StatusUnprocessableEntity, code, out)
		assert.Equal(t, string(domain.CodeNotEligible), outcomeCode(out))
	})
	t.Run("a provider may not import referrals", func(t *testing.T) {
		b := readExample(t, "referral-bundle.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": "ref-0003"})
		code, out := call(t, env, env.Token(t, testenv.Persona("provider")), "POST", "/fhir/r4", b)
		assert.Equal(t, http.StatusForbidden, code, out)
		assert.Equal(t, string(domain.CodeForbidden), outcomeCode(out))
	})
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"))
	withData := func(bundleID, data string) []byte {
		return readExample(t, "referral-bundle-records.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": bundleID, `"attachment": {`: `"attachment": { "data": "` + data + `",`})
	}
	t.Run("a file of a type the service does not store is refused and opens no case", func(t *testing.T) {
		before := total(t, env, "coordinator", "{}")
		exe := base64.StdEncoding.EncodeToString([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00 not a record"))
		code, out := call(t, env, env.Token(t, testenv.Persona("coordinator")), "POST", "/fhir/r4", withData("ref-0005", exe))
		assert.Equal(t, http.StatusBadRequest, code, out)
		assert.Equal(t, string(domain.CodeBadUserInput), outcomeCode(out))
		code, out = call(t, env, env.Token(t, testenv.Persona("coordinator")), "POST", "/fhir/r4", withData("ref-0006", "not base64!"))
		assert.Equal(t, http.StatusBadRequest, code, out)
		assert.Equal(t, before, total(t, env, "coordinator", "{}"))
	})
	t.Run("a file sent by an insurer is refused and opens no case", func(t *testing.T) {
		before := total(t, env, "coordinator", "{}")
		code, out := call(t, env, tok, "POST", "/fhir/r4", withData("ref-0007", pdf))
		assert.Equal(t, http.StatusForbidden, code, out)
		assert.Equal(t, string(domain.CodeForbidden), outcomeCode(out))
		assert.Equal(t, before, total(t, env, "coordinator", "{}"))
	})
	t.Run("a file given by url is refused: the gateway fetches nothing", func(t *testing.T) {
		b := readExample(t, "referral-bundle-records.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": "ref-0008", `"attachment": {`: `"attachment": { "url": "https://169.254.169.254/latest",`})
		code, out := call(t, env, env.Token(t, testenv.Persona("coordinator")), "POST", "/fhir/r4", b)
		assert.Equal(t, http.StatusBadRequest, code, out)
	})
	t.Run("control characters reach no stored text through FHIR either", func(t *testing.T) {
		before := total(t, env, "coordinator", "{}")
		for i, evil := range []string{`Carcinoma\u0000`, `Carcinoma \u202Eamonicrac`, `two\nlines`} {
			b := readExample(t, "referral-bundle.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": fmt.Sprintf("ref-ctl-%d", i)})
			var doc map[string]any
			require.NoError(t, json.Unmarshal(b, &doc))
			var evilText string
			require.NoError(t, json.Unmarshal([]byte(`"`+evil+`"`), &evilText))
			for _, e := range doc["entry"].([]any) {
				if r := e.(map[string]any)["resource"].(map[string]any); r["resourceType"] == "Condition" {
					r["code"].(map[string]any)["text"] = evilText
				}
			}
			b, _ = json.Marshal(doc)
			code, out := call(t, env, tok, "POST", "/fhir/r4", b)
			assert.Equal(t, http.StatusBadRequest, code, out)
			assert.Equal(t, string(domain.CodeBadUserInput), outcomeCode(out))
		}
		assert.Equal(t, before, total(t, env, "coordinator", "{}"))
	})
	t.Run("a file whose record is invalid is refused before the case opens", func(t *testing.T) {
		before := total(t, env, "coordinator", "{}")
		b := readExample(t, "referral-bundle-records.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": "ref-0010",
			`"attachment": {`: `"attachment": { "data": "` + pdf + `",`, `"description": "Core biopsy report",`: ``, `"title": "Core biopsy report"`: `"title": ""`})
		code, out := call(t, env, env.Token(t, testenv.Persona("coordinator")), "POST", "/fhir/r4", b)
		assert.Equal(t, http.StatusBadRequest, code, out)
		assert.Equal(t, string(domain.CodeBadUserInput), outcomeCode(out))
		code, out = call(t, env, env.Token(t, testenv.Persona("coordinator"), "cases:write"), "POST", "/fhir/r4", withData("ref-0011", pdf))
		assert.Equal(t, http.StatusForbidden, code, "a token that cannot read the case back cannot tell what a retry stored: %v", out)
		assert.Equal(t, before, total(t, env, "coordinator", "{}"))
	})
	t.Run("a coordinator's referral stores the file it carries, once, and it downloads", func(t *testing.T) {
		ctok := env.Token(t, testenv.Persona("coordinator"))
		b := withData("ref-0009", pdf)
		code, out := call(t, env, ctok, "POST", "/fhir/r4", b)
		require.Equal(t, http.StatusOK, code, out)
		docLoc := location(t, out, "DocumentReference")
		code, doc := call(t, env, ctok, "GET", "/fhir/r4/"+docLoc, nil)
		require.Equal(t, http.StatusOK, code, doc)
		assert.Equal(t, "application/pdf", testenv.Get(doc, "content", 0, "attachment", "contentType"))
		link, _ := testenv.Get(doc, "content", 0, "attachment", "url").(string)
		require.True(t, strings.HasPrefix(link, "http://example.com/files/"), "%v", doc)
		req := httptest.NewRequest("GET", strings.TrimPrefix(link, "http://example.com"), nil)
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		raw, _ := base64.StdEncoding.DecodeString(pdf)
		assert.Equal(t, string(raw), rec.Body.String())

		code, again := call(t, env, ctok, "POST", "/fhir/r4", b)
		require.Equal(t, http.StatusOK, code, again)
		assert.Equal(t, docLoc, location(t, again, "DocumentReference"), "a replay names the same record")
		code, sr := call(t, env, ctok, "GET", "/fhir/r4/"+location(t, out, "ServiceRequest"), nil)
		require.Equal(t, http.StatusOK, code, sr)
		assert.Len(t, sr["supportingInfo"], 1, "the file is stored once")
	})
	t.Run("a coordinator imports records with the referral", func(t *testing.T) {
		b := readExample(t, "referral-bundle-records.json", map[string]string{"{{POLICY}}": policyID, "{{MEMBER}}": "m-fhir-1", "{{BUNDLE}}": "ref-0004"})
		ctok := env.Token(t, testenv.Persona("coordinator"))
		code, out := call(t, env, ctok, "POST", "/fhir/r4", b)
		require.Equal(t, http.StatusOK, code, out)
		loc := location(t, out, "ServiceRequest")
		code, sr := call(t, env, ctok, "GET", "/fhir/r4/"+loc, nil)
		require.Equal(t, http.StatusOK, code, sr)
		assert.Len(t, sr["supportingInfo"], 1)
		docLoc := location(t, out, "DocumentReference")
		assert.Equal(t, testenv.Get(sr, "supportingInfo", 0, "reference"), docLoc)
		code, doc := call(t, env, ctok, "GET", "/fhir/r4/"+docLoc, nil)
		require.Equal(t, http.StatusOK, code, doc)
		assert.Equal(t, "current", doc["status"])
	})
}

// location is the response location of the transaction-response entry of
// type typ.
func location(t *testing.T, b map[string]any, typ string) string {
	t.Helper()
	for _, e := range b["entry"].([]any) {
		if l, ok := testenv.Get(e, "response", "location").(string); ok && strings.HasPrefix(l, typ+"/") {
			return l
		}
	}
	t.Fatalf("no %s in the transaction-response: %v", typ, b)
	return ""
}

// A referral Bundle fails exactly as requestSecondOpinion does with the
// same input and caller: one table, run through both doors.
func TestReferralImportFailsAsRequestSecondOpinion(t *testing.T) {
	env := testenv.Start(t)
	mkPolicy := func(number string, covered bool) string {
		r := env.As(t, "insurer", `mutation($n: String!, $c: Boolean!) { createPolicy(input: { policyNumber: $n, product: CRITICAL_ILLNESS, effectiveFrom: "2020-01-01",
			secondOpinion: { covered: $c, casesPerYear: 50, international: false },
			insured: [{ memberId: "m-errors", givenName: "Eve", familyName: "Errant", dateOfBirth: "1975-02-03", sex: FEMALE }] }) { policy { id } } }`, map[string]any{"n": number, "c": covered})
		require.Empty(t, r.Errors, r.Raw)
		_, raw, _ := graph.ParseGlobalID(testenv.Get(r.Data, "createPolicy", "policy", "id").(string))
		return raw
	}
	covered, uncovered := mkPolicy("NS-ERR-1", true), mkPolicy("NS-ERR-2", false)
	insurer := testenv.Persona("insurer")
	for i, tc := range []struct {
		name      string
		who       domain.Principal
		scope     []string
		policy    string
		member    string
		code      string
		specialty string
		want      string
	}{
		{name: "a valid referral opens a case", policy: covered, want: ""},
		{name: "a policy without the benefit is not eligible", policy: uncovered, want: "NOT_ELIGIBLE"},
		{name: "a member the policy does not insure is not eligible", policy: covered, member: "m-nobody", want: "NOT_ELIGIBLE"},
		{name: "an unknown policy is not found", policy: "6a0000000000000000000000", want: "NOT_FOUND"},
		{name: "another insurer's policy is not found", who: domain.Principal{Subject: "u-maple", Role: domain.RoleInsurer, Org: "ins-maple"}, policy: covered, want: "NOT_FOUND"},
		{name: "a malformed ICD-10 code is bad input", policy: covered, code: "not-icd", want: "BAD_USER_INPUT"},
		{name: "a missing specialty is bad input", policy: covered, specialty: " ", want: "BAD_USER_INPUT"},
		{name: "a provider may not refer", who: testenv.Persona("provider"), policy: covered, want: "FORBIDDEN"},
		{name: "a token without cases:write may not refer", scope: []string{"cases:read policies:read"}, policy: covered, want: "FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			who := tc.who
			if who.Role == "" {
				who = insurer
			}
			member, code, specialty := tc.member, tc.code, tc.specialty
			if member == "" {
				member = "m-errors"
			}
			if code == "" {
				code = "C50.9"
			}
			if specialty == "" {
				specialty = "oncology"
			}
			tok := env.Token(t, who, tc.scope...)
			gq := env.Do(t, tok, `mutation($input: RequestSecondOpinionInput!) { requestSecondOpinion(input: $input) { case { id } } }`, map[string]any{"input": map[string]any{
				"policyId": graph.GlobalID("Policy", tc.policy), "patientMemberId": member, "specialty": specialty,
				"diagnosis": map[string]any{"code": code, "description": "Malignant neoplasm of breast, unspecified"},
			}})
			viaGraphQL := ""
			if len(gq.Errors) > 0 {
				viaGraphQL = gq.Errors[0].Code()
			}
			require.Equal(t, tc.want, viaGraphQL, gq.Raw)

			bundle := readExample(t, "referral-bundle.json", map[string]string{"{{POLICY}}": tc.policy, "{{MEMBER}}": member, "{{BUNDLE}}": fmt.Sprintf("errors-%d", i), "C50.9": code, `"text": "oncology"`: `"text": "` + specialty + `"`})
			status, b := call(t, env, tok, "POST", "/fhir/r4", bundle)
			if tc.want == "" {
				assert.Equal(t, http.StatusOK, status, b)
				assert.Equal(t, "transaction-response", b["type"])
				return
			}
			assert.Equal(t, tc.want, outcomeCode(b), "%v", b)
			assert.Equal(t, "OperationOutcome", b["resourceType"])
			assert.GreaterOrEqual(t, status, 400)
		})
	}
}
