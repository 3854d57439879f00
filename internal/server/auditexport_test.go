package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
)

func getExport(t *testing.T, env *testenv.Env, token, query string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/audit/export"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	return rec
}

// Issue 17, item 4: only a coordinator holding audit:read exports the
// audit; everyone else gets the same 403 whatever they ask for, and the
// export is itself audited.
func TestOnlyACoordinatorExportsTheAudit(t *testing.T) {
	env := testenv.Start(t)
	today := time.Now().UTC().Format(time.DateOnly)
	valid := "?from=" + today + "&to=" + today

	t.Run("no token is 401", func(t *testing.T) {
		assert.Equal(t, http.StatusUnauthorized, getExport(t, env, "", valid).Code)
	})
	t.Run("every other role is 403, and the answer does not depend on the query", func(t *testing.T) {
		var bodies []string
		for _, who := range []string{"member", "insurer", "provider", "partner"} {
			tok := env.Token(t, testenv.Persona(who))
			for _, q := range []string{valid, "?from=2001-01-01&to=2001-01-01", "?from=bad", ""} {
				rec := getExport(t, env, tok, q)
				assert.Equal(t, http.StatusForbidden, rec.Code, "%s %s", who, q)
				assert.NotContains(t, rec.Body.String(), `"event"`)
				bodies = append(bodies, rec.Body.String())
			}
		}
		for _, b := range bodies[1:] {
			assert.Equal(t, bodies[0], b)
		}
		assert.Contains(t, bodies[0], `"FORBIDDEN"`)
	})
	t.Run("a coordinator token without audit:read is 403", func(t *testing.T) {
		tok := env.Token(t, testenv.Persona("coordinator"), "cases:read")
		assert.Equal(t, http.StatusForbidden, getExport(t, env, tok, valid).Code)
	})
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	t.Run("the period is whole days, bounded", func(t *testing.T) {
		for _, q := range []string{"", "?from=" + today, "?from=2026-03-01T00:00:00Z&to=2026-03-02", "?from=2026-03-02&to=2026-03-01", "?from=2026-01-01&to=2026-03-01"} {
			rec := getExport(t, env, coordinator, q)
			assert.Equal(t, http.StatusBadRequest, rec.Code, q)
			assert.Contains(t, rec.Body.String(), `"BAD_USER_INPUT"`, q)
		}
	})
	t.Run("a coordinator gets the day's audit as NDJSON, its own export included", func(t *testing.T) {
		res := env.As(t, "insurer", `{ cases(first: 3) { edges { node { patient { givenName } } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		rec := getExport(t, env, coordinator, valid)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Equal(t, "application/x-ndjson", rec.Header().Get("Content-Type"))
		assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
		var first, last audit.ExportLine
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
		require.NotNil(t, first.Export)
		assert.Equal(t, audit.ExportFormat, first.Export.Format)
		require.NotNil(t, last.End)
		var insurerReads, exports int
		for _, l := range lines[1 : len(lines)-1] {
			var x audit.ExportLine
			require.NoError(t, json.Unmarshal([]byte(l), &x))
			if x.Event == nil {
				continue
			}
			if x.Event.Role == string(domain.RoleInsurer) && x.Event.PatientID != "" {
				insurerReads++
			}
			if x.Event.ResourceType == "AuditExport" {
				exports++
				assert.Equal(t, today+".."+today, x.Event.ResourceID)
			}
		}
		assert.Equal(t, 3, insurerReads, "one record per patient read")
		assert.Equal(t, 1, exports, "the export is audited before it is streamed")
		jwks := httptest.NewRecorder()
		env.Handler.ServeHTTP(jwks, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
		var keys jose.JSONWebKeySet
		require.NoError(t, json.Unmarshal(jwks.Body.Bytes(), &keys))
		heads, events, err := audit.ReadExport(strings.NewReader(rec.Body.String()), keys)
		require.NoError(t, err, "signed by the key published at /.well-known/jwks.json")
		assert.True(t, audit.Verify(heads, events).OK())
	})
}
