package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

// Issue 14, finding 10: a receiver reading delivery ids learns nothing of
// the platform's event sequence, and a fan-out repeated after a crash (or
// by a second replica) still stores one delivery per (subscription, event).
func TestWebhookDeliveryIdsAreRandomAndDeliveriesStayOnePerEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "whids")
	const seq = 123456
	first := &domain.WebhookDelivery{ID: WebhookDeliveryID(), SubscriptionID: "sub-1", CaseID: "c1", Seq: seq, EventType: "CASE_SUBMITTED", Payload: "{}", CreatedAt: s.Now()}
	again := *first
	again.ID = WebhookDeliveryID()
	require.NotEqual(t, first.ID, again.ID)
	assert.NotContains(t, first.ID, strconv.Itoa(seq), "the id carries no sequence number")

	require.NoError(t, s.EnqueueWebhookDelivery(ctx, first))
	require.NoError(t, s.EnqueueWebhookDelivery(ctx, &again), "a repeated fan-out is not an error")
	n, err := s.c(colWebhookDeliveries).CountDocuments(ctx, bson.D{{Key: "subscriptionId", Value: "sub-1"}, {Key: "seq", Value: seq}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, n, "one delivery per (subscription, event)")
	var kept webhookDeliveryDoc
	require.NoError(t, s.c(colWebhookDeliveries).FindOne(ctx, bson.D{{Key: "subscriptionId", Value: "sub-1"}}).Decode(&kept))
	assert.Equal(t, first.ID, kept.ID, "the first delivery and its id are kept")
}
