package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/keys"
)

// testKeyring is a fresh master keyring, as a new DATA_KEY_FILE holds.
func testKeyring(t testing.TB) *keys.Keyring {
	t.Helper()
	text, err := keys.Generate()
	require.NoError(t, err)
	kr, err := keys.Parse(strings.NewReader(text))
	require.NoError(t, err)
	return kr
}
