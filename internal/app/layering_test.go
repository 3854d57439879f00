package app

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/secondopinion/gateway/"

// Imports point one way (README, Layout): the HTTP layer speaks HTTP, the
// GraphQL layer speaks GraphQL, and only the use cases reach the store.
func TestImportsPointOneWay(t *testing.T) {
	forbidden := map[string][]string{
		"graph":           {"internal/store"},
		"graph/model":     {"internal/store"},
		"internal/server": {"graph", "internal/store", "internal/workflow", "docs"},
		"internal/domain": {"graph", "internal/store", "internal/workflow", "internal/server"},
		"internal/store":  {"graph", "internal/workflow", "internal/server"},
		"internal/fhir":   {"internal/store"},
		// The audit export is HTTP over a use case, like the FHIR door.
		"internal/auditexport": {"graph", "internal/store", "internal/server"},
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for pkg, bad := range forbidden {
		imports := packageImports(t, filepath.Join(root, pkg))
		require.NotEmpty(t, imports, pkg)
		for _, b := range bad {
			assert.NotContains(t, imports, module+b, "%s must not import %s", pkg, b)
		}
	}
}

// packageImports lists what the non-test files of the package in dir import.
func packageImports(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			out = append(out, path)
		}
	}
	return out
}

// The README's Layout names every package, so a reader finds what owns what.
func TestTheReadmeNamesEveryPackage(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || path == root || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		if dir != "." {
			assert.Contains(t, string(readme), "`"+filepath.ToSlash(dir), "README's Layout does not name %s", dir)
		}
		return nil
	})
	require.NoError(t, err)
}
