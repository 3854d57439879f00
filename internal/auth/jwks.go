package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"
)

// maxJWKSBytes bounds a key set read from a file or URL.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// verifyKey is one public key (or the HS256 secret) and the one algorithm it
// may verify.
type verifyKey struct {
	kid string
	alg string
	pub any
}

// keySource is a set of verification keys that may change over time.
type keySource interface {
	// lookup returns the key for kid; with no kid, the only key that
	// verifies alg.
	lookup(kid, alg string) (verifyKey, bool)
	// refetchOnMiss reloads the set after a lookup miss when allowed, and
	// reports whether it did.
	refetchOnMiss(ctx context.Context) bool
	// retryIfEmpty reloads a set that has no key yet, when allowed.
	retryIfEmpty(ctx context.Context)
	// loaded reports whether at least one key is loaded.
	loaded() bool
}

// jwk is the part of an RFC 7517 JSON Web Key we read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys for encryption, of an unsupported type or
// broken are skipped (and logged); only a set that is not JSON is an error.
func parseJWKS(data []byte, log *slog.Logger) ([]verifyKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := make([]verifyKey, 0, len(set.Keys))
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			log.Warn("auth: skipping unreadable JWK", "index", i, "err", err)
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		vk, err := k.verifyKey()
		if err != nil {
			log.Warn("auth: skipping JWK", "index", i, "kid", k.Kid, "err", err)
			continue
		}
		keys = append(keys, vk)
	}
	return keys, nil
}

// verifyKey converts a JWK to a public key pinned to one algorithm.
func (k jwk) verifyKey() (verifyKey, error) {
	var (
		alg string
		pub any
		err error
	)
	switch k.Kty {
	case "RSA":
		alg = algRS256
		pub, err = k.rsa()
	case "EC":
		alg = algES256
		pub, err = k.ec()
	case "OKP":
		alg = algEdDSA
		pub, err = k.ed25519()
	default:
		return verifyKey{}, fmt.Errorf("unsupported kty %q", k.Kty)
	}
	if err != nil {
		return verifyKey{}, err
	}
	if k.Alg != "" && k.Alg != alg {
		return verifyKey{}, fmt.Errorf("unsupported alg %q for kty %q", k.Alg, k.Kty)
	}
	return verifyKey{kid: k.Kid, alg: alg, pub: pub}, nil
}

func (k jwk) rsa() (*rsa.PublicKey, error) {
	n, err := b64(k.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad RSA modulus")
	}
	e, err := b64(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad RSA exponent")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits is too small", pub.N.BitLen())
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return nil, errors.New("bad RSA exponent")
	}
	return pub, nil
}

func (k jwk) ec() (*ecdsa.PublicKey, error) {
	if k.Crv != "P-256" {
		return nil, fmt.Errorf("unsupported curve %q", k.Crv)
	}
	x, errX := b64(k.X)
	y, errY := b64(k.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("bad P-256 coordinates")
	}
	// ParseUncompressedPublicKey also checks the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("bad P-256 point: %w", err)
	}
	return pub, nil
}

func (k jwk) ed25519() (ed25519.PublicKey, error) {
	if k.Crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported curve %q", k.Crv)
	}
	x, err := b64(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("bad Ed25519 key")
	}
	return ed25519.PublicKey(x), nil
}

// b64 decodes base64url, tolerating padding some issuers add.
func b64(s string) ([]byte, error) {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// find picks the key for kid; with no kid, the only key for alg.
func find(keys []verifyKey, kid, alg string) (verifyKey, bool) {
	if kid != "" {
		for _, k := range keys {
			if k.kid == kid {
				return k, true
			}
		}
		return verifyKey{}, false
	}
	var found verifyKey
	n := 0
	for _, k := range keys {
		if k.alg == alg {
			found = k
			n++
		}
	}
	return found, n == 1
}

// fileSource is a JWKS file, re-read whenever its modification time or size
// changes, so keys rotate without a restart.
type fileSource struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    []verifyKey
}

// reload reads the file unconditionally.
func (s *fileSource) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("JWKS file: %w", err)
	}
	return s.readLocked(fi)
}

func (s *fileSource) readLocked(fi os.FileInfo) error {
	if fi.Size() > maxJWKSBytes {
		return fmt.Errorf("JWKS file %s is larger than %d bytes", s.path, maxJWKSBytes)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("JWKS file: %w", err)
	}
	keys, err := parseJWKS(data, s.log)
	if err != nil {
		return fmt.Errorf("JWKS file %s: %w", s.path, err)
	}
	s.keys, s.modTime, s.size = keys, fi.ModTime(), fi.Size()
	return nil
}

// current returns the keys, re-reading the file when it changed. A file that
// is briefly missing or half-written keeps the previous keys.
func (s *fileSource) current() []verifyKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		s.log.Warn("auth: JWKS file unavailable, keeping previous keys", "path", s.path, "err", err)
		return s.keys
	}
	if !fi.ModTime().Equal(s.modTime) || fi.Size() != s.size {
		if err := s.readLocked(fi); err != nil {
			s.log.Warn("auth: JWKS file unreadable, keeping previous keys", "path", s.path, "err", err)
		}
	}
	return s.keys
}

func (s *fileSource) lookup(kid, alg string) (verifyKey, bool) { return find(s.current(), kid, alg) }
func (s *fileSource) refetchOnMiss(context.Context) bool       { return false }
func (s *fileSource) retryIfEmpty(context.Context)             { s.current() }
func (s *fileSource) loaded() bool                             { return len(s.current()) > 0 }

// urlSource is a JWKS URL, cached. A lookup miss refetches it at most once per
// interval, so forged kids cannot make us hammer the issuer.
type urlSource struct {
	url      string
	client   *http.Client
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	fetchMu sync.Mutex // one download at a time

	mu          sync.Mutex
	keys        []verifyKey
	lastRefetch time.Time // zero until the first miss-triggered fetch
}

// emptyRetry is the longest wait before retrying a key set that has no key,
// so a gateway that started while its issuer was down becomes ready soon.
const emptyRetry = 10 * time.Second

func (s *urlSource) lookup(kid, alg string) (verifyKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return find(s.keys, kid, alg)
}

func (s *urlSource) loaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys) > 0
}

// claim takes the refetch slot if the interval allows it.
func (s *urlSource) claim() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	interval := s.interval
	if len(s.keys) == 0 {
		interval = min(interval, emptyRetry)
	}
	now := s.now()
	if !s.lastRefetch.IsZero() && now.Sub(s.lastRefetch) < interval {
		return false
	}
	s.lastRefetch = now
	return true
}

func (s *urlSource) refetchOnMiss(ctx context.Context) bool {
	if !s.claim() {
		return false
	}
	if err := s.fetch(ctx); err != nil {
		s.log.Warn("auth: JWKS refetch failed", "url", s.url, "err", err)
		return false
	}
	return true
}

func (s *urlSource) retryIfEmpty(ctx context.Context) {
	if s.loaded() {
		return
	}
	s.refetchOnMiss(ctx)
}

// fetch downloads and replaces the key set. A failed download keeps the
// previous keys.
func (s *urlSource) fetch(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// The request's cancellation must not waste the rate-limited slot.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s: HTTP %d", s.url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(data) > maxJWKSBytes {
		return fmt.Errorf("JWKS %s is larger than %d bytes", s.url, maxJWKSBytes)
	}
	keys, err := parseJWKS(data, s.log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}
