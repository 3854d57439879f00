package audit

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/signing"
)

// A checkpoint the service's key did sign, but that names a chain of
// another day, vouches for nothing: retention deletes only the chains of
// the checkpoint's own day, and verification must not take a later day's
// chain as pruned on its word.
func TestASignedCheckpointNamingAnotherDaysChainIsRefused(t *testing.T) {
	sg, err := signing.Generate()
	require.NoError(t, err)
	c := Checkpoint{Day: "2019-03-01", Events: 2, PrunedAt: time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC),
		Chains: []ChainHead{{Chain: "gw-1/2019-03-01/0", Seq: 1, Hash: "a"}, {Chain: "gw-1/2025-06-01/0", Seq: 1, Hash: "b"}}}
	payload, err := c.signedPayload()
	require.NoError(t, err)
	jws, kid, err := sg.Sign(payload)
	require.NoError(t, err)
	c.Signature = &ExportSignature{Alg: string(signing.Algorithm), KeyID: kid, JWS: jws}
	keys := jose.JSONWebKeySet{Keys: sg.PublicKeys()}
	require.ErrorContains(t, c.Verify(keys), "another day")
	rep := VerifyPeriod(nil, nil, []Checkpoint{c}, keys)
	require.Zero(t, rep.Pruned)
	require.Equal(t, []Break{{Chain: "checkpoint/2019-03-01", Reason: BreakCheckpoint}}, rep.Breaks)
}
