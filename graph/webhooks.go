package graph

import (
	"context"

	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/domain"
)

// Webhook resolvers' work: the webhooks.Service decides who may act (the
// caller's own organisation only; anything else is NOT_FOUND).

func (r *Resolver) webhookService() error {
	if r.Webhooks == nil {
		return domain.Errorf(domain.CodeInternal, "webhooks are not available")
	}
	return nil
}

func (r *mutationResolver) createWebhookSubscription(ctx context.Context, in model.CreateWebhookSubscriptionInput) (*model.CreateWebhookSubscriptionPayload, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	sub, secret, err := r.Webhooks.Create(ctx, p, in.URL, in.EventTypes)
	if err != nil {
		return nil, err
	}
	return &model.CreateWebhookSubscriptionPayload{Subscription: sub, Secret: secret}, nil
}

func (r *mutationResolver) deleteWebhookSubscription(ctx context.Context, in model.DeleteWebhookSubscriptionInput) (*model.DeleteWebhookSubscriptionPayload, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	id, err := rawID(in.ID, "WebhookSubscription")
	if err != nil {
		return nil, err
	}
	if err := r.Webhooks.Delete(ctx, p, id); err != nil {
		return nil, err
	}
	return &model.DeleteWebhookSubscriptionPayload{DeletedID: in.ID}, nil
}

func (r *mutationResolver) redeliverWebhook(ctx context.Context, in model.RedeliverWebhookInput) (*model.RedeliverWebhookPayload, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	id, err := rawID(in.DeliveryID, "WebhookDelivery")
	if err != nil {
		return nil, err
	}
	d, err := r.Webhooks.Redeliver(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return &model.RedeliverWebhookPayload{Delivery: d}, nil
}

func (r *queryResolver) webhookSubscriptions(ctx context.Context, first *int, after *string) (*model.WebhookSubscriptionConnection, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	pg, err := page(first, after)
	if err != nil {
		return nil, err
	}
	subs, more, err := r.Webhooks.List(ctx, p, pg)
	if err != nil {
		return nil, err
	}
	edges, pi := pageOf(subs, more, pg, func(c string, n *domain.WebhookSubscription) model.WebhookSubscriptionEdge {
		return model.WebhookSubscriptionEdge{Cursor: c, Node: n}
	})
	return &model.WebhookSubscriptionConnection{Edges: edges, PageInfo: &pi}, nil
}

func (r *webhookSubscriptionConnectionResolver) totalCount(ctx context.Context) (int, error) {
	p, err := principal(ctx)
	if err != nil {
		return 0, err
	}
	return r.Workflow.CountWebhookSubscriptions(ctx, p)
}

func (r *webhookSubscriptionResolver) deliveries(ctx context.Context, obj *domain.WebhookSubscription, first *int, status *domain.DeliveryStatus) ([]domain.WebhookDelivery, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	ds, err := r.Webhooks.Deliveries(ctx, p, obj.ID, status, first)
	if err != nil {
		return nil, err
	}
	out := make([]domain.WebhookDelivery, len(ds))
	for i, d := range ds {
		out[i] = *d
	}
	return out, nil
}

// webhookNode resolves node(id) for the webhook types.
func (r *queryResolver) webhookNode(ctx context.Context, typ, id string) (model.Node, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.webhookService(); err != nil {
		return nil, err
	}
	raw, err := rawID(id, typ)
	if err != nil {
		return nil, err
	}
	if typ == "WebhookSubscription" {
		s, err := r.Webhooks.Get(ctx, p, raw)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	d, err := r.Webhooks.Delivery(ctx, p, raw)
	if err != nil {
		return nil, err
	}
	return d, nil
}
