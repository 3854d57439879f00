package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/trusted"
)

const (
	trustedList   = "query PartnerCases($first: Int) { cases(first: $first) { edges { node { id status } } } }\n"
	trustedViewer = "query Me { viewer { role org } }\n"
)

func trustedRegistry(t *testing.T) *trusted.Registry {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "ops"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ops", "cases.graphql"), []byte(trustedList), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ops", "viewer.graphql"), []byte(trustedViewer), 0o600))
	bindings := `{"clients": {"euro-backoffice": ["ops/*.graphql"]}}`
	path := filepath.Join(dir, "trusted.json")
	require.NoError(t, os.WriteFile(path, []byte(bindings), 0o600))
	r, err := trusted.Load(path)
	require.NoError(t, err)
	return r
}

func TestTrustedDocumentsBindAClientToItsOperations(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Trusted: trustedRegistry(t)})
	bound := testenv.Persona("partner")
	bound.ClientID = "euro-backoffice"
	tok := env.Token(t, bound)
	free := testenv.Persona("partner")
	free.ClientID = "euro-analytics"
	unbound := env.Token(t, free)

	t.Run("a registered text is accepted", func(t *testing.T) {
		res := env.Do(t, tok, trustedList, map[string]any{"first": 5})
		assert.Empty(t, res.Errors, res.Raw)
		assert.NotNil(t, testenv.Get(res.Data, "cases", "edges"))
	})
	t.Run("a registered hash alone is accepted", func(t *testing.T) {
		res := env.DoRaw(t, tok, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": trusted.Hash(trustedViewer)}}})
		assert.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "PARTNER", testenv.Get(res.Data, "viewer", "role"))
	})
	t.Run("any other text is FORBIDDEN and never runs", func(t *testing.T) {
		res := env.Do(t, tok, `mutation { upsertSpecialist(input: {name: "Mallory", specialties: ["oncology"], languages: ["en"], country: "DE"}) { specialist { id } } }`, nil)
		require.Len(t, res.Errors, 1)
		assert.Equal(t, "FORBIDDEN", res.Errors[0].Code())
		assert.Nil(t, res.Data["upsertSpecialist"])
		list := env.As(t, "coordinator", `{ specialists(first: 100) { edges { node { name } } } }`, nil)
		assert.NotContains(t, list.Raw, "Mallory")
	})
	t.Run("a registered text with one more space is another document", func(t *testing.T) {
		res := env.Do(t, tok, " "+trustedViewer, nil)
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	t.Run("an unknown hash is FORBIDDEN", func(t *testing.T) {
		res := env.DoRaw(t, tok, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": trusted.Hash("{ viewer { role } }")}}})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	// Finding 6: an upper-case hash of a registered document answered INTERNAL.
	t.Run("an upper-case hash of a registered document is accepted", func(t *testing.T) {
		res := env.DoRaw(t, tok, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.ToUpper(trusted.Hash(trustedViewer))}}})
		assert.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "PARTNER", testenv.Get(res.Data, "viewer", "role"))
	})
	t.Run("an unbound client's text with its upper-case hash is accepted", func(t *testing.T) {
		q := "{ viewer { org } }"
		res := env.DoRaw(t, unbound, map[string]any{"query": q, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.ToUpper(trusted.Hash(q))}}})
		assert.Empty(t, res.Errors, res.Raw)
		assert.NotContains(t, res.Raw, "INTERNAL")
	})
	t.Run("an unbound client keeps the ordinary rules", func(t *testing.T) {
		res := env.Do(t, unbound, `{ viewer { role } }`, nil)
		assert.Empty(t, res.Errors, res.Raw)
	})
}
