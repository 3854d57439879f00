package docs_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

// TestREADMEFHIRExamplesRunAsWritten runs every curl command of the
// README's FHIR section, in order, against the seeded gateway: the tokens
// are the demo personas', and each <…> is filled in from the answers before
// it, as the README's text says.
func TestREADMEFHIRExamplesRunAsWritten(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	section := string(readme)
	start := strings.Index(section, "\n## FHIR\n")
	require.GreaterOrEqual(t, start, 0, "the README has a FHIR section")
	section = section[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	var commands []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		for _, line := range strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				require.True(t, strings.HasPrefix(line, "curl "), "only curl commands in the FHIR examples: %q", line)
				commands = append(commands, line)
			}
		}
	}
	require.GreaterOrEqual(t, len(commands), 3)

	env := testenv.Start(t)
	tokens := map[string]string{}
	for _, persona := range []string{"member", "insurer", "provider", "partner", "coordinator"} {
		tokens["$"+strings.ToUpper(persona)+"_TOKEN"] = env.Token(t, testenv.Persona(persona))
	}
	fill := map[string]string{"<referral id>": "urn:uuid:0b5e7c4e-readme-example"}
	replace := func(s string) string {
		for k, v := range fill {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	seen := map[string]bool{}
	for _, line := range commands {
		req := curlRequest(t, line, tokens)
		for _, ph := range regexp.MustCompile(`<[a-z ]+>`).FindAllString(req.url+string(req.body), -1) {
			_, ok := fill[ph]
			require.True(t, ok, "%s: nothing the README ran before tells %s", line, ph)
		}
		r := httptest.NewRequest(req.method, replace(req.url), bytes.NewReader([]byte(replace(string(req.body)))))
		for k, v := range req.headers {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, r)
		require.Equal(t, http.StatusOK, rec.Code, "%s:\n%s", line, rec.Body.String())
		assert.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/fhir+json"), line)
		var b map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b))
		require.Equal(t, "Bundle", b["resourceType"], line)
		seen[b["type"].(string)] = true
		learn(t, env, req, b, fill)
	}
	// The three things the issue asks the README to show.
	assert.True(t, seen["searchset"] && seen["document"] && seen["transaction-response"], "%v", seen)
}

type curlReq struct {
	method, url string
	headers     map[string]string
	body        []byte
}

// curlRequest reads the few curl options the README uses.
func curlRequest(t *testing.T, line string, tokens map[string]string) curlReq {
	t.Helper()
	words := shellWords(t, line)
	req := curlReq{method: http.MethodGet, headers: map[string]string{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch w {
		case "-s":
		case "-X":
			i++
			req.method = words[i]
		case "-H":
			i++
			k, v, ok := strings.Cut(words[i], ":")
			require.True(t, ok, words[i])
			v = strings.TrimSpace(v)
			for name, tok := range tokens {
				v = strings.ReplaceAll(v, name, tok)
			}
			require.NotContains(t, v, "$", "%s: an unknown variable", line)
			req.headers[k] = v
		case "--data":
			i++
			file, ok := strings.CutPrefix(words[i], "@")
			require.True(t, ok, "the README posts files: %s", words[i])
			b, err := os.ReadFile(filepath.Join("..", file))
			require.NoError(t, err, line)
			req.body = b
		default:
			require.True(t, strings.HasPrefix(w, "http://localhost:8080/"), "%s: unknown curl word %q", line, w)
			req.url = strings.TrimPrefix(w, "http://localhost:8080")
		}
	}
	require.NotEmpty(t, req.url, line)
	if req.body != nil {
		req.method = http.MethodPost
	}
	return req
}

// shellWords splits a command line as sh does for the quoting the README
// uses: single and double quotes, no escapes inside them.
func shellWords(t *testing.T, line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unbalanced quotes: %s", line)
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// learn fills in the placeholders the README says an answer tells: a
// completed case's id from a ServiceRequest search, and a policy with cases
// left and its beneficiary's member id from a Coverage search.
func learn(t *testing.T, env *testenv.Env, req curlReq, b map[string]any, fill map[string]string) {
	t.Helper()
	var resources []map[string]any
	for _, e := range asAnyList(b["entry"]) {
		if r, ok := e.(map[string]any)["resource"].(map[string]any); ok {
			resources = append(resources, r)
		}
	}
	for _, r := range resources {
		switch r["resourceType"] {
		case "ServiceRequest":
			if _, done := fill["<case id>"]; !done && r["status"] == "completed" {
				fill["<case id>"] = r["id"].(string)
			}
		case "Coverage":
			if _, done := fill["<policy id>"]; done || !casesLeft(r) {
				continue
			}
			ref, _ := testenv.Get(r, "beneficiary", "reference").(string)
			if ref == "" {
				continue
			}
			rq := httptest.NewRequest(http.MethodGet, "/fhir/r4/"+ref, nil)
			rq.Header.Set("Authorization", req.headers["Authorization"])
			rec := httptest.NewRecorder()
			env.Handler.ServeHTTP(rec, rq)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var pt map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &pt))
			for _, id := range asAnyList(pt["identifier"]) {
				if strings.HasSuffix(testenv.Get(id, "system").(string), "/sid/member-id") {
					fill["<policy id>"] = r["id"].(string)
					fill["<member id>"] = testenv.Get(id, "value").(string)
				}
			}
		}
	}
}

// casesLeft reads the second-opinion benefit extension of a Coverage.
func casesLeft(cov map[string]any) bool {
	benefit := map[string]any{}
	for _, ext := range asAnyList(cov["extension"]) {
		for _, x := range asAnyList(ext.(map[string]any)["extension"]) {
			m := x.(map[string]any)
			for k, v := range m {
				if k != "url" {
					benefit[m["url"].(string)] = v
				}
			}
		}
	}
	used, _ := benefit["casesUsed"].(float64)
	per, _ := benefit["casesPerYear"].(float64)
	return benefit["covered"] == true && used < per
}

func asAnyList(v any) []any { l, _ := v.([]any); return l }
