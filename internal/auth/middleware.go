package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
)

// The only messages a client sees for a refused token.
const (
	msgAuthRequired = "authentication required"
	msgInvalidToken = "invalid token"
)

// Middleware requires a valid bearer token on every request and puts the
// principal in the request context (domain.WithPrincipal). A refused request
// gets 401 with a GraphQL-shaped UNAUTHENTICATED error and never reaches next.
// A websocket upgrade without an Authorization header passes through: its
// token rides in connection_init (see VerifyInitPayload).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return v.MiddlewareWith(nil)(next)
}

// RefusedFunc is told why a request's token was refused (Reason's value),
// for metrics and the access log; it never sees the token.
type RefusedFunc func(r *http.Request, reason string)

// MiddlewareWith is Middleware that also tells onRefused (when not nil) about
// every refused request.
func (v *Verifier) MiddlewareWith(onRefused RefusedFunc) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return v.middleware(next, onRefused) }
}

func (v *Verifier) middleware(next http.Handler, onRefused RefusedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) == 0 && isWebsocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		p, err := v.Authenticate(r)
		if Reason(err) == "org_lookup" {
			// The registry could not be read: the token is refused (fail
			// closed), but as the server's failure, not the client's, so a
			// client does not throw a good token away.
			v.log.WarnContext(r.Context(), "auth: organisation lookup failed", "error", domain.Scrub(err.Error()))
			writeError(w, http.StatusServiceUnavailable, domain.CodeInternal, "internal error: the request could not be completed; retry")
			return
		}
		if err != nil {
			v.log.InfoContext(r.Context(), "auth: request refused", "reason", Reason(err), "method", r.Method, "path", r.URL.Path)
			if onRefused != nil {
				onRefused(r, Reason(err))
			}
			WriteUnauthenticated(w, domain.ErrorMessage(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(domain.WithPrincipal(r.Context(), p)))
	})
}

// Authenticate verifies the request's "Authorization: Bearer <jwt>" header
// (the scheme is case-insensitive).
func (v *Verifier) Authenticate(r *http.Request) (domain.Principal, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return domain.Principal{}, reject("missing_token", nil)
	case 1:
	default:
		return domain.Principal{}, reject("malformed", errors.New("several Authorization headers"))
	}
	raw, err := bearer(values[0])
	if err != nil {
		return domain.Principal{}, err
	}
	return v.Verify(r.Context(), raw)
}

// VerifyInitPayload verifies the token of a graphql-transport-ws
// connection_init payload, read from its "Authorization" (or
// "authorization") entry as "Bearer <jwt>". It also returns the token's
// expiry so the connection can be closed when the token lapses.
func (v *Verifier) VerifyInitPayload(ctx context.Context, payload map[string]any) (domain.Principal, time.Time, error) {
	val, ok := payload["Authorization"]
	if !ok {
		val, ok = payload["authorization"]
	}
	if !ok || val == nil {
		return domain.Principal{}, time.Time{}, reject("missing_token", nil)
	}
	s, ok := val.(string)
	if !ok {
		return domain.Principal{}, time.Time{}, reject("malformed", errors.New("authorization is not a string"))
	}
	raw, err := bearer(s)
	if err != nil {
		return domain.Principal{}, time.Time{}, err
	}
	return v.verify(ctx, raw)
}

// bearer extracts the token of a "Bearer <jwt>" credential.
func bearer(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", reject("missing_token", nil)
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", reject("malformed", errors.New("not a bearer credential"))
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", reject("missing_token", nil)
	}
	return token, nil
}

// isWebsocketUpgrade reports whether r asks to switch to the websocket
// protocol.
func isWebsocketUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}

// WriteUnauthenticated writes the 401 response for a refused request: a
// GraphQL error with extensions.code UNAUTHENTICATED and the given
// client-safe message (never the token or the reason).
func WriteUnauthenticated(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, http.StatusUnauthorized, domain.CodeUnauthenticated, message)
}

// writeError answers with one GraphQL-shaped error.
func writeError(w http.ResponseWriter, status int, code domain.Code, message string) {
	type extensions struct {
		Code domain.Code `json:"code"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, _ := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{Errors: []gqlError{{Message: message, Extensions: extensions{Code: code}}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
