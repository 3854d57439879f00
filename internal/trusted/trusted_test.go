package trusted_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/trusted"
)

const viewer = "query Me { viewer { role org } }\n"

func registry(t *testing.T) *trusted.Registry {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "viewer.graphql"), []byte(viewer), 0o600))
	path := filepath.Join(dir, "trusted.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"clients": {"euro-backoffice": ["viewer.graphql"]}}`), 0o600))
	r, err := trusted.Load(path)
	require.NoError(t, err)
	return r
}

func apq(hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
}

func TestHashesAreComparedInOneForm(t *testing.T) {
	ext := trusted.Extension{Registry: registry(t)}
	bound := domain.WithPrincipal(context.Background(), domain.Principal{Subject: "u", Role: domain.RolePartner, Org: "net", ClientID: "euro-backoffice"})
	upper := strings.ToUpper(trusted.Hash(viewer))

	t.Run("an upper-case hash alone resolves to the registered text", func(t *testing.T) {
		raw := &graphql.RawParams{Extensions: apq(upper)}
		require.Nil(t, ext.MutateOperationParameters(bound, raw))
		assert.Equal(t, viewer, raw.Query)
		assert.Equal(t, trusted.Hash(viewer), raw.Extensions["persistedQuery"].(map[string]any)["sha256Hash"],
			"the APQ extension after this one sees the lower-case hash of the text")
	})
	t.Run("an upper-case hash with its text is accepted and normalised", func(t *testing.T) {
		raw := &graphql.RawParams{Query: viewer, Extensions: apq(upper)}
		require.Nil(t, ext.MutateOperationParameters(bound, raw))
		assert.Equal(t, trusted.Hash(viewer), raw.Extensions["persistedQuery"].(map[string]any)["sha256Hash"])
	})
	t.Run("an unbound caller's upper-case hash is normalised too", func(t *testing.T) {
		raw := &graphql.RawParams{Query: "{ viewer { role } }", Extensions: apq(strings.ToUpper(trusted.Hash("{ viewer { role } }")))}
		free := domain.WithPrincipal(context.Background(), domain.Principal{Subject: "u", Role: domain.RolePartner, Org: "net"})
		require.Nil(t, trusted.Extension{}.MutateOperationParameters(free, raw))
		assert.Equal(t, trusted.Hash("{ viewer { role } }"), raw.Extensions["persistedQuery"].(map[string]any)["sha256Hash"])
	})
	t.Run("a bound client's text with another document's hash is FORBIDDEN", func(t *testing.T) {
		raw := &graphql.RawParams{Query: viewer, Extensions: apq(strings.ToUpper(trusted.Hash("{ other }")))}
		err := ext.MutateOperationParameters(bound, raw)
		require.NotNil(t, err)
		assert.Equal(t, "FORBIDDEN", err.Extensions["code"])
	})
	t.Run("the client id is matched exactly: Euro-Backoffice is another (unbound) client", func(t *testing.T) {
		assert.True(t, ext.Registry.Bound("euro-backoffice"))
		assert.False(t, ext.Registry.Bound("Euro-Backoffice"))
	})
}

func TestEveryBoundClientBelongsToAnIssuer(t *testing.T) {
	r := registry(t)
	assert.Equal(t, []string{"euro-backoffice"}, r.Clients())

	t.Run("a bound client no issuer lists is a start-up error", func(t *testing.T) {
		err := r.CheckIssuers(func(string) (string, bool) { return "", false })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "euro-backoffice")
	})
	t.Run("a bound client its issuer lists passes", func(t *testing.T) {
		err := r.CheckIssuers(func(c string) (string, bool) { return "https://idp.euro.test", c == "euro-backoffice" })
		assert.NoError(t, err)
	})
}
