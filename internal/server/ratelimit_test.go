package server_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/testenv"
)

func TestRateLimits(t *testing.T) {
	env := testenv.Start(t, testenv.Options{RateLimits: server.RateLimits{
		PerAddress: 1, AddressBurst: 8, PerPrincipal: 1, PrincipalBurst: 3,
		MaxTrackedKeys: 100, IdleForgetAfter: time.Minute,
	}})
	post := func(token, addr, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = addr
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		return rec
	}
	member := env.Token(t, testenv.Persona("member"))
	const q = `{"query":"{ viewer { role } }"}`

	t.Run("a principal past its burst gets 429 RATE_LIMITED with Retry-After", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			require.Equal(t, http.StatusOK, post(member, "10.0.0.1:1000", q).Code)
		}
		rec := post(member, "10.0.0.2:1000", q) // another address does not help
		assert.Equal(t, http.StatusTooManyRequests, rec.Code)
		assert.Contains(t, rec.Body.String(), `"code":"RATE_LIMITED"`)
		secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, secs, 1)
	})
	t.Run("aliases do not buy more work per request", func(t *testing.T) {
		// The alias count is bounded by the document guard; one request is
		// one token whatever it holds.
		other := env.Token(t, testenv.Persona("insurer"))
		rec := post(other, "10.0.0.3:1000", `{"query":"{ a: viewer { role } b: viewer { role } c: viewer { role } d: viewer { role } }"}`)
		assert.Equal(t, http.StatusOK, rec.Code)
	})
	t.Run("an address flooding bad tokens is limited before authentication", func(t *testing.T) {
		codes := map[int]int{}
		for i := 0; i < 12; i++ {
			codes[post("garbage", "10.9.9.9:1", q).Code]++
		}
		assert.Equal(t, 8, codes[http.StatusUnauthorized], "%v", codes)
		assert.Equal(t, 4, codes[http.StatusTooManyRequests], "%v", codes)
	})
}
