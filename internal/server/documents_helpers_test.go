package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/testenv"
)

func rawID(t *testing.T, id string) string {
	t.Helper()
	_, raw, ok := graph.ParseGlobalID(id)
	require.True(t, ok)
	return raw
}

// rawCase reads a case document as the driver sees it, as extended JSON.
func rawCase(t *testing.T, env *testenv.Env, caseID string) string {
	t.Helper()
	return rawFind(t, env, "cases", bson.D{{Key: "_id", Value: rawID(t, caseID)}})[0]
}

// rawFind reads documents straight through the driver.
func rawFind(t *testing.T, env *testenv.Env, coll string, filter bson.D) []string {
	t.Helper()
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	defer func() { _ = c.Disconnect(ctx) }()
	cur, err := c.Database(env.DB).Collection(coll).Find(ctx, filter)
	require.NoError(t, err)
	var docs []bson.M
	require.NoError(t, cur.All(ctx, &docs))
	var out []string
	for _, d := range docs {
		b, err := bson.MarshalExtJSON(d, false, false)
		require.NoError(t, err)
		out = append(out, string(b))
	}
	require.NotEmpty(t, out, "no %s matched", coll)
	return out
}

func eventTypes(res testenv.Response) []string {
	var out []string
	evs, _ := testenv.Get(res.Data, "case", "events").([]any)
	for _, e := range evs {
		out = append(out, fmt.Sprint(e.(map[string]any)["type"]))
	}
	return out
}

// auditOf lists "resourceType/outcome" of the case's audit events.
func auditOf(t *testing.T, env *testenv.Env, caseID string) []string {
	t.Helper()
	res := env.As(t, "coordinator", `query($c: ID) { auditEvents(first: 100, filter: {caseId: $c}) { edges { node { resourceType outcome } } } }`,
		map[string]any{"c": caseID})
	require.Empty(t, res.Errors, res.Raw)
	var out []string
	for _, e := range testenv.Get(res.Data, "auditEvents", "edges").([]any) {
		n := e.(map[string]any)["node"].(map[string]any)
		out = append(out, fmt.Sprint(n["resourceType"], "/", n["outcome"]))
	}
	return out
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	require.NoError(t, err)
	return string(b)
}

func encodeB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustDir(t *testing.T, env *testenv.Env) blob.Store {
	t.Helper()
	d, err := blob.NewDir(env.BlobDir)
	require.NoError(t, err)
	return d
}
