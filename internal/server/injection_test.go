package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

func TestOperatorsInArgumentsAreJustStrings(t *testing.T) {
	env := testenv.Start(t)
	for _, hostile := range []string{`{"$ne": null}`, `{"$gt": ""}`, `$where`, `oncology"}, {"x": "y`} {
		t.Run(hostile+" matches nothing", func(t *testing.T) {
			res := env.As(t, "coordinator", `query($s: String) { cases(first: 100, filter: {specialty: $s}) { totalCount edges { node { id } } }
			  specialists(first: 100, filter: {specialty: $s}) { totalCount } }`, map[string]any{"s": hostile})
			require.Empty(t, res.Errors, res.Raw)
			assert.Equal(t, float64(0), testenv.Get(res.Data, "cases", "totalCount"))
			assert.Equal(t, float64(0), testenv.Get(res.Data, "specialists", "totalCount"))
		})
	}
	t.Run("an operator where a country or language code belongs is refused by its cap", func(t *testing.T) {
		res := env.As(t, "coordinator", `query($s: String) { specialists(first: 100, filter: {country: $s}) { totalCount } }`, map[string]any{"s": `{"$ne": null}`})
		require.Len(t, res.Errors, 1, res.Raw)
		assert.Equal(t, "BAD_USER_INPUT", res.Errors[0].Code())
		assert.Equal(t, "filter.country", res.Errors[0].Extensions["field"])
	})
	t.Run("an object where a string belongs is refused by the schema", func(t *testing.T) {
		res := env.As(t, "coordinator", `query($s: String) { cases(filter: {specialty: $s}) { totalCount } }`, map[string]any{"s": map[string]any{"$ne": nil}})
		require.NotEmpty(t, res.Errors)
		assert.Equal(t, "BAD_USER_INPUT", res.Errors[0].Code())
		assert.Nil(t, res.Data["cases"])
	})
}
