package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/internal/testenv"
)

func TestMetricsAreNotPublicInProduction(t *testing.T) {
	prod := testenv.Start(t, testenv.Options{Production: true, NoSeed: true})
	dev := testenv.Start(t, testenv.Options{NoSeed: true})

	t.Run("an anonymous scrape of the production listener is 404", func(t *testing.T) {
		assert.Equal(t, http.StatusNotFound, send(prod, http.MethodGet, "/metrics", "", "", "").Code)
	})
	t.Run("the metrics handler serves them, and nothing else", func(t *testing.T) {
		rec := httptest.NewRecorder()
		prod.Gateway.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Contains(t, rec.Body.String(), "gateway_")
		rec = httptest.NewRecorder()
		prod.Gateway.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graphql", nil))
		assert.Equal(t, http.StatusNotFound, rec.Code)
	})
	t.Run("development keeps them on the public listener without METRICS_ADDR", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, send(dev, http.MethodGet, "/metrics", "", "", "").Code)
	})
}
