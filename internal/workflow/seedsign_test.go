package workflow_test

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// `make run` signs the demo's delivered opinions before writing them (the
// demo bypasses delivery, which signs): as stored, they verify against the
// gateway's key, follow-up answers included.
func TestSignDemoSignsTheDeliveredOpinions(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	ctx := context.Background()
	sg, err := signing.Generate()
	require.NoError(t, err)
	svc := workflow.New(env.Store, workflow.WithSigner(sg))
	demo := seed.Build(seed.RunSize, env.Store.Now())
	require.NoError(t, svc.SignDemo(&demo))
	require.NoError(t, env.Store.InsertDemo(ctx, demo))

	coordinator := testenv.Persona("coordinator")
	checked, withFollowUp := 0, 0
	for _, o := range demo.Opinions {
		if o.Status != domain.OpinionDelivered {
			assert.Nil(t, o.Sig, "a draft is not signed")
			continue
		}
		stored, err := svc.Opinion(ctx, coordinator, workflow.OpinionIDForCase(o.CaseID))
		require.NoError(t, err)
		require.NotNil(t, stored.Sig)
		kid, err := signing.Verify(stored.Sig.JWS, []byte(stored.Sig.Payload), jose.JSONWebKeySet{Keys: sg.PublicKeys()})
		require.NoError(t, err)
		assert.Equal(t, sg.KeyID(), kid)
		if checked++; checked > 40 {
			break
		}
	}
	for _, c := range demo.Cases {
		if len(c.FollowUps) == 0 {
			continue
		}
		stored, err := svc.Opinion(ctx, coordinator, workflow.OpinionIDForCase(c.ID))
		require.NoError(t, err)
		assert.Contains(t, stored.Sig.Payload, *c.FollowUps[0].Answer, "the answer is signed with the opinion")
		assert.Equal(t, *c.FollowUps[0].AnsweredAt, stored.Sig.SignedAt)
		withFollowUp++
		break
	}
	assert.NotZero(t, checked)
	assert.NotZero(t, withFollowUp)
}
