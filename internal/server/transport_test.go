package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/internal/testenv"
)

func send(env *testenv.Env, method, target, contentType, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	return rec
}

func TestTransportRefusesWhatTheContractDoesNotAllow(t *testing.T) {
	env := testenv.Start(t)
	tok := env.Token(t, testenv.Persona("coordinator"))
	const cancel = `{"query":"mutation { cancelCase(input: {caseId: \"x\", reason: \"csrf\"}) { case { id } } }"}`
	cases := []struct {
		name, method, contentType, body string
		status                          int
		mustNotContain                  string
	}{
		{"a text/plain body (a browser form's CSRF) is 415", http.MethodPost, "text/plain", cancel, http.StatusUnsupportedMediaType, ""},
		{"a urlencoded form is 415", http.MethodPost, "application/x-www-form-urlencoded", "query=mutation", http.StatusUnsupportedMediaType, ""},
		{"a multipart body without a preflight header is 400 (CSRF)", http.MethodPost, "multipart/form-data; boundary=x", "--x--", http.StatusBadRequest, ""},
		{"a JSON array batch is 400", http.MethodPost, "application/json", `[{"query":"{ viewer { role } }"},{"query":"{ viewer { role } }"}]`, http.StatusBadRequest, ""},
		{"malformed JSON holding PHI is 400 and not echoed", http.MethodPost, "application/json", `{"query": "{ viewer { role } }", "variables": {"name": "Alice Martin C50.9"`, http.StatusBadRequest, "Alice"},
		{"a body over 1 MiB is 413", http.MethodPost, "application/json", `{"query":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, ""},
		{"PUT is 405", http.MethodPut, "application/json", cancel, http.StatusMethodNotAllowed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := send(env, c.method, "/graphql", c.contentType, tok, c.body)
			assert.Equal(t, c.status, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), `"code":"BAD_USER_INPUT"`)
			if c.mustNotContain != "" {
				assert.NotContains(t, rec.Body.String(), c.mustNotContain)
			}
		})
	}
}

func TestGetServesQueriesButNeverMutations(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	tok := env.Token(t, testenv.Persona("coordinator"))

	q := url.Values{"query": {`{ viewer { role } }`}}
	rec := send(env, http.MethodGet, "/graphql?"+q.Encode(), "", tok, "")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "COORDINATOR")

	m := url.Values{"query": {`mutation($id: ID!) { cancelCase(input: {caseId: $id, reason: "via GET"}) { case { status } } }`},
		"variables": {`{"id":"` + lc.caseID + `"}`}}
	rec = send(env, http.MethodGet, "/graphql?"+m.Encode(), "", tok, "")
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "POST", rec.Header().Get("Allow"))
	assert.Equal(t, "SUBMITTED", lc.status(t), "the mutation did not run")
}
