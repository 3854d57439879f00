package embedded_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/embedded"
)

func TestStartServesTheWireProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Options{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Stop()

	c, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	require.NoError(t, err)
	defer func() { _ = c.Disconnect(ctx) }()
	coll := c.Database("t").Collection("c")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "a", "n": 1})
	require.NoError(t, err)
	var got struct {
		N int `bson:"n"`
	}
	require.NoError(t, coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got))
	assert.Equal(t, 1, got.N)
}
