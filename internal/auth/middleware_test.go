package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/auth/authtest"
	"github.com/secondopinion/gateway/internal/domain"
)

const (
	bodyAuthRequired = `{"errors":[{"message":"authentication required","extensions":{"code":"UNAUTHENTICATED"}}]}`
	bodyInvalidToken = `{"errors":[{"message":"invalid token","extensions":{"code":"UNAUTHENTICATED"}}]}`
)

func TestMiddleware(t *testing.T) {
	key := authtest.NewRSAKey(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), key)
	good := key.Sign(t, insurerClaims())
	expired := key.Sign(t, insurerClaims(func(c *auth.Claims) { c.ExpiresAt.Time = t0.Add(-time.Hour) }))

	tests := []struct {
		name    string
		headers map[string]string
		status  int
		body    string
		reached bool
		authed  bool
	}{
		{"a request without a token gets 401", nil, http.StatusUnauthorized, bodyAuthRequired, false, false},
		{"a request with a bad token gets 401", map[string]string{"Authorization": "Bearer " + expired}, http.StatusUnauthorized, bodyInvalidToken, false, false},
		{"a non-bearer scheme gets 401", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, http.StatusUnauthorized, bodyInvalidToken, false, false},
		{"a valid token reaches the handler with its principal", map[string]string{"Authorization": "Bearer " + good}, http.StatusOK, "", true, true},
		{"the bearer scheme is case-insensitive", map[string]string{"Authorization": "bearer " + good}, http.StatusOK, "", true, true},
		{"a websocket upgrade without a token passes through unauthenticated", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}, http.StatusOK, "", true, false},
		{"a websocket upgrade with a bad token gets 401", map[string]string{"Upgrade": "websocket", "Authorization": "Bearer junk"}, http.StatusUnauthorized, bodyInvalidToken, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached, authed := false, false
			var got domain.Principal
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				got, authed = domain.PrincipalFrom(r.Context())
				w.WriteHeader(http.StatusOK)
			}))
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			for k, val := range tt.headers {
				req.Header.Set(k, val)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.reached, reached)
			assert.Equal(t, tt.authed, authed)
			if tt.status == http.StatusUnauthorized {
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				assert.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"))
				assert.JSONEq(t, tt.body, rec.Body.String())
			}
			if tt.authed {
				assert.Equal(t, domain.Principal{Subject: "user-42", Role: domain.RoleInsurer, Org: "ins-1"}, got)
			}
		})
	}
}

func TestVerifyInitPayload(t *testing.T) {
	key := authtest.NewECKey(t)
	v := fileVerifier(t, auth.Options{}, standardIssuer(), key)
	token := key.Sign(t, insurerClaims())

	tests := []struct {
		name    string
		payload map[string]any
		reason  string
	}{
		{"Authorization is read", map[string]any{"Authorization": "Bearer " + token}, ""},
		{"lowercase authorization is read", map[string]any{"authorization": "Bearer " + token}, ""},
		{"an empty payload has no token", map[string]any{}, "missing_token"},
		{"a nil payload has no token", nil, "missing_token"},
		{"a token without the Bearer scheme is malformed", map[string]any{"Authorization": token}, "malformed"},
		{"a non-string value is malformed", map[string]any{"Authorization": 42}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, exp, err := v.VerifyInitPayload(context.Background(), tt.payload)
			assert.Equal(t, tt.reason, auth.Reason(err))
			if tt.reason == "" {
				assert.Equal(t, "user-42", p.Subject)
				assert.True(t, exp.Equal(t0.Add(time.Hour)))
			}
		})
	}
}

func TestReason(t *testing.T) {
	t.Run("nil has no reason", func(t *testing.T) { assert.Empty(t, auth.Reason(nil)) })
	t.Run("a foreign error is internal", func(t *testing.T) { assert.Equal(t, "internal", auth.Reason(errors.New("boom"))) })
	t.Run("a missing token asks for authentication", func(t *testing.T) {
		err := error(&auth.VerifyError{Reason: "missing_token"})
		require.Equal(t, domain.CodeUnauthenticated, domain.ErrorCode(err))
		assert.Equal(t, "authentication required", domain.ErrorMessage(err))
	})
}
