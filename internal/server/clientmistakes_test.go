package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

// A client's mistake is BAD_USER_INPUT (or gqlgen's persisted-query code),
// never INTERNAL, and it does not page anyone: nothing is logged at ERROR.
func TestClientMistakesAreBadUserInputAndNotLoggedAsErrors(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Production: true})
	member := env.Token(t, testenv.Persona("member"))
	noErrorLogged := func(t *testing.T) {
		t.Helper()
		assert.NotContains(t, env.Logs.String(), "level=ERROR")
	}

	t.Run("a malformed Date in variables", func(t *testing.T) {
		for _, d := range []any{"1990-13-45", "yesterday", 19901345} {
			res := env.Do(t, member, `mutation($in: AddMedicalRecordInput!) { addMedicalRecord(input: $in) { record { id } } }`,
				map[string]any{"in": map[string]any{"caseId": "Q2FzZTox", "title": "x", "kind": "LAB", "recordedOn": d}})
			require.NotEmpty(t, res.Errors, res.Raw)
			assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
			assert.Contains(t, res.Errors[0].Message, "Date", res.Raw)
		}
		noErrorLogged(t)
	})

	t.Run("an APQ hash that does not match the query text", func(t *testing.T) {
		query := `{ viewer { role } }`
		other := sha256.Sum256([]byte(query + " "))
		res := env.DoRaw(t, member, map[string]any{"query": query, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(other[:])},
		}})
		require.NotEmpty(t, res.Errors, res.Raw)
		assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
		assert.Nil(t, res.Data["viewer"], "the mismatched text is not run")

		res = env.DoRaw(t, member, map[string]any{"query": query, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 2, "sha256Hash": "00"},
		}})
		assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), "an unknown APQ version: %s", res.Raw)

		res = env.DoRaw(t, member, map[string]any{"extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("ab", 32)},
		}})
		require.NotEmpty(t, res.Errors, res.Raw)
		assert.NotEqual(t, "INTERNAL", res.Errors[0].Code(), "an unknown hash: %s", res.Raw)
		noErrorLogged(t)
	})
}
