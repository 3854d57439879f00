package audit_test

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
)

// A checkpoint vouches for its day's chains only when the service signed it
// as it stands: another key, an edit, or a chain of another day slipped in
// makes it a CHECKPOINT break, and its chains count for nothing.
func TestACheckpointVouchesOnlyAsSigned(t *testing.T) {
	sg, err := signing.Generate()
	require.NoError(t, err)
	other, err := signing.Generate()
	require.NoError(t, err)
	keys := jose.JSONWebKeySet{Keys: sg.PublicKeys()}
	heads := []audit.ChainHead{{Chain: "gw-1/2019-03-01/0", Seq: 3, Hash: "h1"}, {Chain: "gw-2/2019-03-01/0", Seq: 1, Hash: "h2"}}
	at := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

	good, err := audit.NewCheckpoint("2019-03-01", heads, 4, at, sg)
	require.NoError(t, err)
	rep := audit.VerifyPeriod(nil, nil, []audit.Checkpoint{good}, keys)
	assert.True(t, rep.OK(), rep)
	assert.Equal(t, 2, rep.Pruned)
	// A row found in a pruned chain is not vouched for: a prune cut short,
	// or a row put there since.
	leftovers := []domain.AuditEvent{{ID: "y", Chain: "gw-1/2019-03-01/0", Seq: 3, Hash: "h1"}, {ID: "x", Chain: "gw-1/2019-03-01/0", Seq: 2, Hash: "forged"}}
	rep = audit.VerifyPeriod(nil, leftovers, []audit.Checkpoint{good}, keys)
	assert.Equal(t, []audit.Break{{Chain: "gw-1/2019-03-01/0", Position: 2, EventID: "x", Reason: audit.BreakPrunedLeftover}}, rep.Breaks)
	rep = audit.VerifyPeriod([]audit.ChainHead{heads[1]}, nil, []audit.Checkpoint{good}, keys)
	assert.Equal(t, []audit.Break{{Chain: "gw-2/2019-03-01/0", Position: 1, Reason: audit.BreakPrunedLeftover}}, rep.Breaks, "a head left")

	_, err = audit.NewCheckpoint("2019-03-01", append(heads, audit.ChainHead{Chain: "gw-1/2025-01-01/0", Seq: 1, Hash: "h9"}), 5, at, sg)
	require.Error(t, err, "a chain of another day is never signed into a day's checkpoint")

	byOther, err := audit.NewCheckpoint("2019-03-01", heads, 4, at, other)
	require.NoError(t, err)
	edited := good
	edited.Events = 3
	foreign := good
	foreign.Chains = append([]audit.ChainHead{{Chain: "gw-1/2019-03-02/0", Seq: 1, Hash: "h3"}}, good.Chains...)
	unsigned := good
	unsigned.Signature = nil
	for name, c := range map[string]audit.Checkpoint{"another key": byOther, "edited": edited, "a chain of another day": foreign, "unsigned": unsigned} {
		rep := audit.VerifyPeriod(nil, nil, []audit.Checkpoint{c}, keys)
		assert.False(t, rep.OK(), name)
		assert.Zero(t, rep.Pruned, name)
		assert.Equal(t, []audit.Break{{Chain: "checkpoint/2019-03-01", Reason: audit.BreakCheckpoint}}, rep.Breaks, name)
	}
}
