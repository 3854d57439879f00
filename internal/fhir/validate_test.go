package fhir_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMain runs the suite, then validates every resource the door emitted
// against the official FHIR R4 JSON schema when the npm tool is installed
// (`make fhir-tools`, part of `make test`).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = validateEmitted()
	}
	os.Exit(code)
}

func toolDir() string { return filepath.Join("..", "..", "tools", "fhir") }

func validateEmitted() int {
	if _, err := os.Stat(filepath.Join(toolDir(), "node_modules", "@asymmetrik", "fhir-json-schema-validator")); err != nil {
		println("fhir: schema validation skipped: run `make fhir-tools`")
		return 0
	}
	if os.Getenv("FHIR_SCHEMA_SKIP") != "" || len(emitted.all) == 0 {
		return 0
	}
	f, err := os.CreateTemp("", "fhir-emitted-*.json")
	if err != nil {
		return 1
	}
	defer os.Remove(f.Name())
	_ = json.NewEncoder(f).Encode(emitted.all)
	f.Close()
	cmd := exec.Command("node", "validate.js", f.Name())
	cmd.Dir = toolDir()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		println("fhir: emitted resources fail the FHIR R4 JSON schema")
		return 1
	}
	return 0
}

func TestValidatorSeesInvalidResources(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolDir(), "node_modules", "@asymmetrik", "fhir-json-schema-validator")); err != nil {
		t.Skip("run `make fhir-tools`")
	}
	f := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(f, []byte(`[{"resourceType":"Task","status":"nonsense","intent":"order"}]`), 0o600))
	abs, _ := filepath.Abs(f)
	cmd := exec.Command("node", "validate.js", abs)
	cmd.Dir = toolDir()
	require.Error(t, cmd.Run(), "the validator must refuse an invalid Task")
}
