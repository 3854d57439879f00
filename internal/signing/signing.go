// Package signing signs delivered opinions: a detached JWS (RFC 7515
// appendix F, ES256) over the opinion's canonical JSON (RFC 8785, JCS), and
// the public keys that verify it, published as a JWKS. The crypto is
// go-jose's and the canonical form gowebpki/jcs's: nothing here is hand-rolled.
package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"
	"github.com/gowebpki/jcs"
)

// Algorithm is the one signature algorithm opinions are signed and verified
// with (pinned on both sides).
const Algorithm = jose.ES256

// ErrNoKey means a key file holds no private key to sign with.
var ErrNoKey = errors.New("signing: the key file holds no EC P-256 private key")

// Signer signs with its current key and publishes every key it knows.
type Signer struct {
	current *ecdsa.PrivateKey
	kid     string
	public  []jose.JSONWebKey
}

// Canonical returns v's JSON in RFC 8785 canonical form: the bytes signed.
func Canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("signing: marshal: %w", err)
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("signing: canonicalise: %w", err)
	}
	return out, nil
}

// KeyID is the key's RFC 7638 thumbprint (SHA-256, base64url).
func KeyID(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signing: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func publicJWK(pub crypto.PublicKey) (jose.JSONWebKey, error) {
	kid, err := KeyID(pub)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(Algorithm), Use: "sig"}, nil
}

// New returns a signer that signs with current and also publishes retired
// (public keys of earlier keys, kept so earlier signatures still verify).
func New(current *ecdsa.PrivateKey, retired ...crypto.PublicKey) (*Signer, error) {
	if current == nil || current.Curve != elliptic.P256() {
		return nil, ErrNoKey
	}
	s := &Signer{current: current}
	seen := map[string]bool{}
	for _, pub := range append([]crypto.PublicKey{&current.PublicKey}, retired...) {
		jwk, err := publicJWK(pub)
		if err != nil {
			return nil, err
		}
		if seen[jwk.KeyID] {
			continue
		}
		seen[jwk.KeyID] = true
		s.public = append(s.public, jwk)
	}
	s.kid = s.public[0].KeyID
	return s, nil
}

// Generate returns a signer with a fresh in-memory key (tests, and a
// development gateway without a key file).
func Generate() (*Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate: %w", err)
	}
	return New(k)
}

// Load reads a PEM key file: the first private key (PKCS #8 or SEC 1, EC
// P-256) signs; every later private or public key is a retired one that
// stays published. Rotating is prepending a new key and keeping the old.
func Load(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: read key file: %w", err)
	}
	return Parse(b)
}

// Parse reads keys as Load does, from the file's bytes.
func Parse(b []byte) (*Signer, error) {
	var current *ecdsa.PrivateKey
	var retired []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var key any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("signing: parse %s: %w", blk.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			if current == nil {
				current = k
			} else {
				retired = append(retired, &k.PublicKey)
			}
		case *ecdsa.PublicKey:
			retired = append(retired, k)
		default:
			return nil, fmt.Errorf("signing: a %T is not an EC P-256 key", key)
		}
	}
	return New(current, retired...)
}

// EncodePrivate returns k as a PKCS #8 PEM block.
func EncodePrivate(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("signing: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadOrCreate loads path, creating it with a fresh key (mode 0600) when it
// does not exist: development only; production requires the file.
func LoadOrCreate(path string) (*Signer, error) {
	if _, err := os.Stat(path); err == nil {
		return Load(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("signing: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate: %w", err)
	}
	b, err := EncodePrivate(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("signing: write key file: %w", err)
	}
	return New(k)
}

// KeyID names the current signing key.
func (s *Signer) KeyID() string { return s.kid }

// PublicKeys returns the published keys, current first.
func (s *Signer) PublicKeys() []jose.JSONWebKey { return append([]jose.JSONWebKey(nil), s.public...) }

// Sign returns a detached compact JWS over payload (header..signature).
func (s *Signer) Sign(payload []byte) (jws, kid string, err error) {
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: jose.JSONWebKey{Key: s.current, KeyID: s.kid}},
		(&jose.SignerOptions{}).WithType("JOSE"))
	if err != nil {
		return "", "", fmt.Errorf("signing: %w", err)
	}
	obj, err := sg.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("signing: sign: %w", err)
	}
	jws, err = obj.DetachedCompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("signing: serialise: %w", err)
	}
	return jws, s.kid, nil
}

// Verify checks a detached compact JWS over payload against the key set
// (the JWKS published at /.well-known/jwks.json), by the header's kid, with
// the algorithm pinned. It returns the kid that verified.
func Verify(jws string, payload []byte, keys jose.JSONWebKeySet) (string, error) {
	obj, err := jose.ParseDetached(jws, payload, []jose.SignatureAlgorithm{Algorithm})
	if err != nil {
		return "", fmt.Errorf("signing: parse: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return "", errors.New("signing: expected exactly one signature")
	}
	kid := obj.Signatures[0].Header.KeyID
	found := keys.Key(kid)
	if len(found) == 0 {
		return "", fmt.Errorf("signing: no published key %q", kid)
	}
	if err := obj.DetachedVerify(payload, found[0].Key); err != nil {
		return "", fmt.Errorf("signing: signature does not verify: %w", err)
	}
	return kid, nil
}
