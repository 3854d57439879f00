package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/testenv"
)

const integrityDoc = `query($from: DateTime!, $to: DateTime!) { auditIntegrity(from: $from, to: $to) { ok chains events breaks { chain position eventId reason } } }`

// The coordinator's auditIntegrity recomputes the chains the gateway wrote
// and names a link deleted behind its back.
func TestAuditIntegrityFindsADeletedEvent(t *testing.T) {
	env := testenv.Start(t)
	for range 3 {
		res := env.As(t, "provider", `{ cases(first: 5) { edges { node { diagnosis { code } patient { birthYear } } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
	}
	day := env.Now.UTC().Format("2006-01-02T00:00:00Z")
	vars := map[string]any{"from": day, "to": day}
	res := env.As(t, "coordinator", integrityDoc, vars)
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, true, testenv.Get(res.Data, "auditIntegrity", "ok"), res.Raw)
	assert.EqualValues(t, 1, testenv.Get(res.Data, "auditIntegrity", "chains"))

	for _, role := range []string{"member", "insurer", "provider", "partner"} {
		assert.Contains(t, env.As(t, role, integrityDoc, vars).Codes(), "FORBIDDEN", role)
	}
	// A year at once was read whole into memory: the export's 31 days.
	long := map[string]any{"from": env.Now.UTC().AddDate(0, 0, -40).Format("2006-01-02T00:00:00Z"), "to": day}
	assert.Equal(t, []string{"BAD_USER_INPUT"}, env.As(t, "coordinator", integrityDoc, long).Codes())

	client, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	defer func() { _ = client.Disconnect(context.Background()) }()
	_, err = client.Database(env.DB).Collection("audit_events").DeleteOne(context.Background(), bson.D{{Key: "seq", Value: 2}})
	require.NoError(t, err)

	res = env.As(t, "coordinator", integrityDoc, vars)
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, false, testenv.Get(res.Data, "auditIntegrity", "ok"), res.Raw)
	assert.Equal(t, "MISSING", testenv.Get(res.Data, "auditIntegrity", "breaks", 0, "reason"), res.Raw)
	assert.EqualValues(t, 2, testenv.Get(res.Data, "auditIntegrity", "breaks", 0, "position"), res.Raw)
}
