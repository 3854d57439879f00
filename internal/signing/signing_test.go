package signing_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/signing"
)

func jwks(t *testing.T, s *signing.Signer) jose.JSONWebKeySet {
	t.Helper()
	// Round-trip through JSON as a verifier downloading the JWKS would.
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: s.PublicKeys()})
	require.NoError(t, err)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(b, &set))
	return set
}

func TestSignatures(t *testing.T) {
	s, err := signing.Generate()
	require.NoError(t, err)
	payload, err := signing.Canonical(map[string]any{"b": "é", "a": 1.0, "c": []int{3, 1}})
	require.NoError(t, err)
	assert.Equal(t, `{"a":1,"b":"é","c":[3,1]}`, string(payload), "RFC 8785: sorted keys, shortest numbers")

	jws, kid, err := s.Sign(payload)
	require.NoError(t, err)
	assert.Equal(t, s.KeyID(), kid)

	t.Run("a signature round-trips through the published keys", func(t *testing.T) {
		got, err := signing.Verify(jws, payload, jwks(t, s))
		require.NoError(t, err)
		assert.Equal(t, kid, got)
	})
	t.Run("the JWS is detached: its payload part is empty", func(t *testing.T) {
		assert.Regexp(t, `^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$`, jws)
	})
	t.Run("changing one byte of the content fails verification", func(t *testing.T) {
		for i := range payload {
			tampered := append([]byte(nil), payload...)
			tampered[i] ^= 0x01
			_, err := signing.Verify(jws, tampered, jwks(t, s))
			require.Error(t, err, "byte %d", i)
		}
	})
	t.Run("another key does not verify", func(t *testing.T) {
		other, err := signing.Generate()
		require.NoError(t, err)
		_, err = signing.Verify(jws, payload, jwks(t, other))
		assert.Error(t, err)
	})
}

func TestRotationKeepsOldKeysVerifying(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opinion-signing.pem")
	old, err := signing.LoadOrCreate(path)
	require.NoError(t, err)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the private key is the owner's alone")
	payload := []byte(`{"opinion":"before rotation"}`)
	oldJWS, oldKid, err := old.Sign(payload)
	require.NoError(t, err)

	// Rotate: a new key first, the old key kept (here only its public half).
	fresh, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	newPEM, err := signing.EncodePrivate(fresh)
	require.NoError(t, err)
	oldFile, err := os.ReadFile(path)
	require.NoError(t, err)
	blk, _ := pem.Decode(oldFile)
	oldKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&oldKey.(*ecdsa.PrivateKey).PublicKey)
	require.NoError(t, err)
	rotated := append(newPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})...)
	require.NoError(t, os.WriteFile(path, rotated, 0o600))

	cur, err := signing.LoadOrCreate(path)
	require.NoError(t, err)
	assert.NotEqual(t, oldKid, cur.KeyID(), "the new key signs")
	assert.Len(t, cur.PublicKeys(), 2)

	kid, err := signing.Verify(oldJWS, payload, jwks(t, cur))
	require.NoError(t, err, "an opinion signed before the rotation still verifies")
	assert.Equal(t, oldKid, kid)
	newJWS, _, err := cur.Sign(payload)
	require.NoError(t, err)
	kid, err = signing.Verify(newJWS, payload, jwks(t, cur))
	require.NoError(t, err)
	assert.Equal(t, cur.KeyID(), kid)
}
