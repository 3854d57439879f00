package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/secondopinion/gateway/internal/testenv"
)

// FuzzHTTPHandler throws arbitrary bodies at /graphql: the gateway must
// answer every one with JSON and a 2xx/4xx, never crash or a 5xx.
func FuzzHTTPHandler(f *testing.F) {
	for _, d := range hostileDocuments() {
		b, _ := json.Marshal(map[string]any{"query": d})
		f.Add(string(b))
	}
	f.Add(`{"query":"{ viewer { role } }"}`)
	f.Add(`[{"query":"{ viewer { role } }"}]`)
	f.Add(`{"query":"mutation { cancelCase(input: {caseId: \"x\", reason: \"y\"}) { case { id } } }"}`)
	f.Add(`{"query": "{", "variables": {"a": [1, {"b": null}]}}`)
	f.Add(`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`)
	f.Add("\x00\xff{")
	env := testenv.Start(f)
	tok := env.Token(f, testenv.Persona("coordinator"))
	f.Fuzz(func(t *testing.T, body string) {
		start := time.Now()
		rec := send(env, http.MethodPost, "/graphql", "application/json", tok, body)
		if d := time.Since(start); d > 8*time.Second {
			t.Fatalf("took %v for %q: %s", d, body, rec.Body.String())
		}
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("not JSON for %q: %s", body, rec.Body.String())
		}
	})
}

// variableDocuments are operations whose variables reach input coercion:
// scalars, enums, lists, nested input objects, custom scalars (Date).
var variableDocuments = []string{
	`query($first: Int, $after: String, $f: CaseFilter) { cases(first: $first, after: $after, filter: $f) { totalCount edges { node { id } } } }`,
	`query($f: AuditEventFilter, $first: Int) { auditEvents(first: $first, filter: $f) { totalCount } }`,
	`query($id: ID!) { node(id: $id) { id } }`,
	`mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id } } }`,
	`mutation($in: SaveOpinionDraftInput!) { saveOpinionDraft(input: $in) { opinion { id } } }`,
	`mutation($in: RequestSecondOpinionInput!) { requestSecondOpinion(input: $in) { case { id } } }`,
}

// FuzzVariables throws arbitrary variables at operations with typed
// arguments: every answer is JSON with a 2xx/4xx and no error is INTERNAL
// (a mistake in the variables is the client's).
func FuzzVariables(f *testing.F) {
	f.Add(uint8(0), `{"first": 5, "f": {"status": ["SUBMITTED", "SUBMITTED"]}}`)
	f.Add(uint8(0), `{"first": -1, "after": "\u0000", "f": {"status": "NOPE"}}`)
	f.Add(uint8(1), `{"f": {"caseId": "x"}, "first": 1e308}`)
	f.Add(uint8(2), `{"id": [1, {"a": null}]}`)
	f.Add(uint8(3), `{"in": {"policyNumber": "P", "effectiveFrom": "1990-13-45"}}`)
	f.Add(uint8(4), `{"in": {"caseId": "x", "clinicalTrials": [{"title": "t", "url": "javascript:alert(1)"}]}}`)
	f.Add(uint8(5), `{"in": {"diagnosis": {"icd10": "C50", "text": "\u0001"}}}`)
	env := testenv.Start(f)
	tok := env.Token(f, testenv.Persona("coordinator"))
	f.Fuzz(func(t *testing.T, which uint8, vars string) {
		var v any
		if json.Unmarshal([]byte(vars), &v) != nil {
			v = vars // not JSON: sent as a string, which is not an object
		}
		body, _ := json.Marshal(map[string]any{"query": variableDocuments[int(which)%len(variableDocuments)], "variables": v})
		rec := send(env, http.MethodPost, "/graphql", "application/json", tok, string(body))
		if rec.Code >= 500 {
			t.Fatalf("status %d for %s: %s", rec.Code, body, rec.Body.String())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("not JSON for %s: %s", body, rec.Body.String())
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(`"INTERNAL"`)) {
			t.Fatalf("INTERNAL for %s: %s", body, rec.Body.String())
		}
	})
}
