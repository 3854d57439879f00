package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

// Each kind of typo an attacker can send to map the schema with
// introspection off: production names nothing back.
func TestProductionSuggestsNoNameOfAnyKind(t *testing.T) {
	prod := testenv.Start(t, testenv.Options{Production: true})
	dev := testenv.Start(t)
	for _, c := range []struct {
		name string
		doc  string
		vars map[string]any
		// devSuggests: development answers this typo with a suggestion,
		// which shows the attack would work without the refusal.
		devSuggests bool
	}{
		{"an unknown field", `{ viewer { rol } }`, nil, true},
		{"an unknown argument", `{ cases(firs: 1) { totalCount } }`, nil, true},
		{"an unknown enum value", `{ cases(filter: {status: [SUBMITED]}) { totalCount } }`, nil, true},
		{"an unknown input field", `{ cases(filter: {statu: [SUBMITTED]}) { totalCount } }`, nil, true},
		{"an unknown type", `{ viewer { ...V } } fragment V on Viewr { role }`, nil, true},
		{"a missing selection", `{ viewer }`, nil, false},
		{"an unknown enum value in variables", `query($s: [CaseStatus!]) { cases(filter: {status: $s}) { totalCount } }`,
			map[string]any{"s": []any{"SUBMITED"}}, false},
		{"an unknown input field in variables", `query($f: CaseFilter) { cases(filter: $f) { totalCount } }`,
			map[string]any{"f": map[string]any{"statu": []any{"SUBMITTED"}}}, false},
	} {
		t.Run(c.name+" gets no suggestion in production", func(t *testing.T) {
			if c.devSuggests {
				require.Contains(t, dev.As(t, "coordinator", c.doc, c.vars).Raw, "Did you mean")
			}
			res := prod.As(t, "coordinator", c.doc, c.vars)
			require.NotEmpty(t, res.Errors, res.Raw)
			assert.NotContains(t, res.Raw, "Did you mean")
			assert.NotContains(t, res.Raw, `"SUBMITTED"`)
			assert.NotContains(t, res.Raw, `"status"`)
			assert.NotContains(t, res.Raw, `"first"`)
			assert.NotContains(t, res.Raw, `"role"`)
			assert.NotContains(t, res.Raw, `"Viewer"`)
			for _, code := range res.Codes() {
				assert.Equal(t, "BAD_USER_INPUT", code, res.Raw)
			}
		})
	}
}
