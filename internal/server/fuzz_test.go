package server_test

import (
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
