// Package authtest makes signing keys, JWKS documents and signed tokens for
// tests of any package that needs a verified caller.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Key is a signing key pair with its kid and the one algorithm it signs with.
type Key struct {
	// Kid is the key id written in the JWKS and in tokens' headers; empty
	// leaves it out of both.
	Kid string
	// Alg is RS256, ES256 or EdDSA.
	Alg string
	// Private signs tokens.
	Private crypto.Signer
}

// NewRSAKey returns a fresh 2048-bit RSA key (RS256) with a random kid.
func NewRSAKey(t testing.TB) *Key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return &Key{Kid: randomKid(t), Alg: "RS256", Private: k}
}

// NewECKey returns a fresh P-256 key (ES256) with a random kid.
func NewECKey(t testing.TB) *Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return &Key{Kid: randomKid(t), Alg: "ES256", Private: k}
}

// NewEd25519Key returns a fresh Ed25519 key (EdDSA) with a random kid.
func NewEd25519Key(t testing.TB) *Key {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &Key{Kid: randomKid(t), Alg: "EdDSA", Private: k}
}

func randomKid(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// WithKid returns a copy of k that uses kid.
func (k *Key) WithKid(kid string) *Key {
	c := *k
	c.Kid = kid
	return &c
}

// Public returns the public half of k.
func (k *Key) Public() crypto.PublicKey { return k.Private.Public() }

// PublicPEM returns the public key as a PKIX PEM block, as published by some
// issuers (and abused in key-confusion attacks as an HS256 secret).
func (k *Key) PublicPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWK returns the public key as an RFC 7517 JSON Web Key.
func (k *Key) JWK() map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"use": "sig", "alg": k.Alg}
	if k.Kid != "" {
		m["kid"] = k.Kid
	}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(err)
		}
		m["kty"] = "EC"
		m["crv"] = "P-256"
		m["x"] = b64(raw[1:33])
		m["y"] = b64(raw[33:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(pub)
	default:
		panic("authtest: unsupported key type")
	}
	return m
}

// JWKS returns a JWK Set document holding the public halves of keys.
func JWKS(keys ...*Key) []byte {
	set := struct {
		Keys []map[string]any `json:"keys"`
	}{Keys: make([]map[string]any, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// WriteJWKS writes a JWK Set of keys to path.
func WriteJWKS(t testing.TB, path string, keys ...*Key) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, JWKS(keys...), 0o600))
}

// Sign signs claims with k, putting k.Kid in the header when set.
func (k *Key) Sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	if k.Kid != "" {
		tok.Header["kid"] = k.Kid
	}
	s, err := tok.SignedString(k.Private)
	require.NoError(t, err)
	return s
}

// JWKSServer serves a JWK Set over HTTP on 127.0.0.1 and counts its hits.
type JWKSServer struct {
	// URL is the JWKS endpoint.
	URL string

	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
	fail bool
}

// NewJWKSServer starts a JWKS server for keys, closed when the test ends.
func NewJWKSServer(t testing.TB, keys ...*Key) *JWKSServer {
	t.Helper()
	s := &JWKSServer{doc: JWKS(keys...)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc, fail := s.doc, s.fail
		s.mu.Unlock()
		if fail {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/.well-known/jwks.json"
	return s
}

// SetKeys replaces the served key set.
func (s *JWKSServer) SetKeys(keys ...*Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = JWKS(keys...)
}

// SetFailing makes the server answer 503 (true) or serve keys again (false).
func (s *JWKSServer) SetFailing(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Hits returns how many requests the server has answered.
func (s *JWKSServer) Hits() int64 { return s.hits.Load() }
