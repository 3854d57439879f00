package workflow_test

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// The demo's delivered opinions are written as is; `make run` signs them
// with the gateway's key, so their signatures (and reports) verify.
func TestSignUnsignedOpinionsSignsTheSeededOnes(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	sg, err := signing.Generate()
	require.NoError(t, err)
	svc := workflow.New(env.Store, workflow.WithSigner(sg))

	before, err := env.Store.UnsignedDeliveredOpinions(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, before, "fixture: the seed's delivered opinions are unsigned")
	n, err := svc.SignUnsignedOpinions(ctx, "operator")
	require.NoError(t, err)
	assert.Equal(t, len(before), n)
	after, err := env.Store.UnsignedDeliveredOpinions(ctx)
	require.NoError(t, err)
	assert.Empty(t, after)

	o, err := svc.Opinion(ctx, testenv.Persona("coordinator"), workflow.OpinionIDForCase(before[0]))
	require.NoError(t, err)
	require.NotNil(t, o.Sig)
	kid, err := signing.Verify(o.Sig.JWS, []byte(o.Sig.Payload), jose.JSONWebKeySet{Keys: sg.PublicKeys()})
	require.NoError(t, err)
	assert.Equal(t, sg.KeyID(), kid)
}
