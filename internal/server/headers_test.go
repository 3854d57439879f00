package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	for _, production := range []bool{false, true} {
		env := testenv.Start(t, testenv.Options{Production: production, NoSeed: true})
		tok := env.Token(t, testenv.Persona("coordinator"))
		for name, rec := range map[string]*http.Response{
			"a GraphQL answer":                send(env, http.MethodPost, "/graphql", "application/json", tok, `{"query":"{ viewer { role } }"}`).Result(),
			"a GraphQL GET":                   send(env, http.MethodGet, "/graphql?query=%7Bviewer%7Brole%7D%7D", "", tok, "").Result(),
			"a refusal before authentication": send(env, http.MethodPost, "/graphql", "application/json", "", `{"query":"{ viewer { role } }"}`).Result(),
			"a refused content type":          send(env, http.MethodPost, "/graphql", "text/plain", tok, `x`).Result(),
			"health":                          send(env, http.MethodGet, "/healthz", "", "", "").Result(),
			"a missing page":                  send(env, http.MethodGet, "/nope", "", "", "").Result(),
		} {
			t.Run(name, func(t *testing.T) {
				assert.Equal(t, "nosniff", rec.Header.Get("X-Content-Type-Options"))
				assert.Equal(t, "no-referrer", rec.Header.Get("Referrer-Policy"))
				assert.Equal(t, "no-store", rec.Header.Get("Cache-Control"))
			})
		}
	}
}

// The GraphiQL page may load exactly what it names, nothing else: no
// injected script runs, nothing frames it, and its requests stay home.
func TestGraphiQLRunsUnderAStrictContentSecurityPolicy(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	rec := send(env, http.MethodGet, "/", "", "", "")
	require.Equal(t, http.StatusOK, rec.Code)
	csp := rec.Header().Get("Content-Security-Policy")
	require.NotEmpty(t, csp)
	page := rec.Body.String()

	directives := map[string][]string{}
	for d := range strings.SplitSeq(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[f[0]] = f[1:]
		}
	}
	assert.Equal(t, []string{"'none'"}, directives["default-src"])
	assert.Equal(t, []string{"'none'"}, directives["frame-ancestors"])
	assert.Equal(t, []string{"'none'"}, directives["base-uri"])
	assert.Equal(t, []string{"'none'"}, directives["object-src"])
	assert.Equal(t, "'self'", directives["connect-src"][0])
	for _, d := range []string{"script-src", "style-src", "connect-src", "img-src", "font-src"} {
		for _, src := range directives[d] {
			assert.NotContains(t, []string{"*", "'unsafe-inline'", "'unsafe-eval'", "https:", "http:", "'strict-dynamic'"},
				src, "%s allows %s", d, src)
			if d == "script-src" || d == "style-src" {
				assert.NotEqual(t, "data:", src, "%s allows data:", d)
			}
			if (d == "script-src" || d == "style-src") && !strings.HasPrefix(src, "'") {
				assert.Contains(t, page, `"`+src+`"`, "%s allows %s, which the page does not load", d, src)
			}
		}
	}

	// Everything the page loads is allowed, by exact URL or by hash.
	scripts := regexp.MustCompile(`(?s)<script\s[^>]*?src="([^"]+)"`).FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, scripts)
	for _, m := range scripts {
		assert.Contains(t, directives["script-src"], m[1])
		assert.True(t, strings.HasPrefix(m[1], "https://cdn.jsdelivr.net/"), m[1])
	}
	inline := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, inline)
	for _, m := range inline {
		sum := sha256.Sum256([]byte(m[1]))
		assert.Contains(t, directives["script-src"], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	assert.Len(t, directives["script-src"], len(scripts)+len(inline), "nothing more than the page's own scripts")
}
