package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/testenv"
)

func TestProductionModeGivesNothingAway(t *testing.T) {
	prod := testenv.Start(t, testenv.Options{Production: true})
	dev := testenv.Start(t)
	typo := `{ viewer { rol } }`

	t.Run("no field suggestions in production", func(t *testing.T) {
		res := prod.As(t, "member", typo, nil)
		require.NotEmpty(t, res.Errors)
		assert.NotContains(t, res.Raw, "Did you mean")
		assert.Equal(t, "BAD_USER_INPUT", res.Errors[0].Code())
	})
	t.Run("development suggests, to help integrators", func(t *testing.T) {
		assert.Contains(t, dev.As(t, "member", typo, nil).Raw, "Did you mean")
	})
	t.Run("no introspection in production", func(t *testing.T) {
		res := prod.As(t, "member", `{ __schema { types { name } } }`, nil)
		require.NotEmpty(t, res.Errors)
		assert.NotContains(t, res.Raw, "Viewer")
	})
	t.Run("no GraphiQL in production", func(t *testing.T) {
		rec := send(prod, http.MethodGet, "/", "", "", "")
		assert.Equal(t, http.StatusNotFound, rec.Code)
		assert.Equal(t, http.StatusOK, send(dev, http.MethodGet, "/", "", "", "").Code)
	})
}
