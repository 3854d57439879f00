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

// What a prune cut short leaves (some rows of the verified day, its heads)
// fits the checkpoint; a row changed, moved past the head, relinked or of
// another chain does not.
func TestLeftoversFitTheirCheckpointOnlyAsTheyWere(t *testing.T) {
	sg, err := signing.Generate()
	require.NoError(t, err)
	at := time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC)
	ch := audit.NewChainer(func() time.Time { return at })
	events := make([]domain.AuditEvent, 5)
	for i := range events {
		events[i] = domain.AuditEvent{At: at, Subject: "s", Role: domain.RoleProvider, Operation: "CaseDetail", ResourceType: "Case", ResourceID: "c", RequestID: "r", Outcome: "ALLOWED"}
	}
	ch.Link(events)
	head := audit.ChainHead{Chain: events[0].Chain, Seq: 5, Hash: events[4].Hash}
	c, err := audit.NewCheckpoint("2019-03-01", []audit.ChainHead{head}, 5, at, sg)
	require.NoError(t, err)

	assert.Nil(t, c.Leftovers([]audit.ChainHead{head}, []domain.AuditEvent{events[4], events[1], events[2]}), "a cut-short prune's rows")
	assert.Nil(t, c.Leftovers(nil, nil))

	edited := events[2]
	edited.Operation = "Forged"
	relinked := events[3]
	relinked.Prev = events[1].Hash
	relinked.Hash = audit.Hash(relinked)
	beyond := events[4]
	beyond.Seq = 6
	beyond.Hash = audit.Hash(beyond)
	other := events[1]
	other.Chain = "gw-x/2019-03-01/0"
	other.Hash = audit.Hash(other)
	for name, tc := range map[string]struct {
		heads  []audit.ChainHead
		events []domain.AuditEvent
		reason string
	}{
		"an edited row":          {nil, []domain.AuditEvent{events[1], edited}, audit.BreakEdited},
		"a relinked row":         {nil, []domain.AuditEvent{events[2], relinked}, audit.BreakLink},
		"a row past the head":    {nil, []domain.AuditEvent{beyond}, audit.BreakBeyondHead},
		"a row of another chain": {nil, []domain.AuditEvent{other}, audit.BreakPrunedLeftover},
		"a head moved on":        {[]audit.ChainHead{{Chain: head.Chain, Seq: 6, Hash: "x"}}, nil, audit.BreakHead},
		"a second row at a seq":  {nil, []domain.AuditEvent{events[1], events[1]}, audit.BreakInserted},
	} {
		b := c.Leftovers(tc.heads, tc.events)
		require.NotNil(t, b, name)
		assert.Equal(t, tc.reason, b.Reason, name)
	}
}
