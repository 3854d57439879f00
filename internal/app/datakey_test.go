package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/keys"
)

// writeDataKey writes a fresh master data key under dir and returns its path.
func writeDataKey(t *testing.T, dir string) string {
	t.Helper()
	text, err := keys.Generate()
	require.NoError(t, err)
	path := filepath.Join(dir, "data-key.txt")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}
