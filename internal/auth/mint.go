package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintHS256 signs c with an HS256 secret, for development tokens and tests.
// It sets iat to now when unset and, when ttl > 0, exp to now+ttl; with ttl
// <= 0 and no ExpiresAt the token has no exp (and the Verifier refuses it).
func MintHS256(secret []byte, c Claims, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: MintHS256 needs a secret")
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now)
	}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
