package webhooks

import (
	"context"
	"slices"
	"strings"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Limits of the API side.
const (
	// DefaultMaxPerOrg bounds the subscriptions of one organisation (and so
	// the workers its endpoints can occupy).
	DefaultMaxPerOrg = 10
	// MaxRecentDeliveries bounds a subscription's delivery list.
	MaxRecentDeliveries = 100
)

// Service registers, lists and deletes subscriptions and redelivers
// deliveries, always within the caller's own organisation.
type Service struct {
	store      *store.Store
	production bool
	maxPerOrg  int
}

// NewService returns the API side of webhooks. In production endpoints must
// be https and public.
func NewService(st *store.Store, production bool) *Service {
	return &Service{store: st, production: production, maxPerOrg: DefaultMaxPerOrg}
}

// authorize: the organisations with back-office systems, with the right to
// read cases (deliveries carry case admin fields).
func authorize(p domain.Principal) error {
	if err := p.RequireRole(domain.WebhookRoles...); err != nil {
		return err
	}
	if p.Org == "" {
		return domain.Errorf(domain.CodeForbidden, "the token names no organisation")
	}
	return p.Require(domain.ScopeCasesRead)
}

// Create registers an endpoint for p's organisation and returns it with its
// signing secret, which is never shown again.
func (s *Service) Create(ctx context.Context, p domain.Principal, rawURL string, eventTypes []string) (*domain.WebhookSubscription, string, error) {
	if err := authorize(p); err != nil {
		return nil, "", err
	}
	u, err := ValidateEndpoint(strings.TrimSpace(rawURL), s.production)
	if err != nil {
		return nil, "", err
	}
	types, err := normalizeTypes(eventTypes)
	if err != nil {
		return nil, "", err
	}
	n, err := s.store.CountWebhookSubscriptions(ctx, p)
	if err != nil {
		return nil, "", err
	}
	if n >= s.maxPerOrg {
		return nil, "", domain.Errorf(domain.CodeBadUserInput, "your organisation has %d webhook subscriptions, the most allowed", n)
	}
	head, err := s.store.LastCaseEventSeq(ctx)
	if err != nil {
		return nil, "", err
	}
	now := s.store.Now()
	sub := &domain.WebhookSubscription{
		ID: store.NewIDAt(now), Role: p.Role, Org: p.Org, Subject: p.Subject, SpecialistID: p.SpecialistID,
		URL: u.String(), EventTypes: types, Secret: NewSecret(), StartSeq: head, CreatedAt: now,
	}
	if err := s.store.CreateWebhookSubscription(ctx, sub); err != nil {
		return nil, "", err
	}
	secret := sub.Secret
	sub.Secret = ""
	return sub, secret, nil
}

func normalizeTypes(in []string) ([]string, error) {
	out := []string{}
	for _, t := range in {
		t = strings.ToUpper(strings.TrimSpace(t))
		if !slices.Contains(domain.WebhookEventTypes, t) {
			return nil, domain.Errorf(domain.CodeBadUserInput, "eventTypes: unknown type %q (known: %s)", t, strings.Join(domain.WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Delete removes one of p's organisation's subscriptions and its
// deliveries.
func (s *Service) Delete(ctx context.Context, p domain.Principal, id string) error {
	if err := authorize(p); err != nil {
		return err
	}
	return s.store.DeleteWebhookSubscription(ctx, p, id)
}

// List returns a page of p's organisation's subscriptions.
func (s *Service) List(ctx context.Context, p domain.Principal, pg store.Page) ([]*domain.WebhookSubscription, bool, error) {
	if err := authorize(p); err != nil {
		return nil, false, err
	}
	return s.store.WebhookSubscriptions(ctx, p, pg)
}

// Get returns one of p's organisation's subscriptions.
func (s *Service) Get(ctx context.Context, p domain.Principal, id string) (*domain.WebhookSubscription, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	return s.store.WebhookSubscription(ctx, p, id)
}

// Deliveries returns a subscription's latest deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, p domain.Principal, subID string, status *domain.DeliveryStatus, first *int) ([]*domain.WebhookDelivery, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	n := 20
	if first != nil {
		if *first < 1 || *first > MaxRecentDeliveries {
			return nil, domain.Errorf(domain.CodeBadUserInput, "first must be between 1 and %d", MaxRecentDeliveries)
		}
		n = *first
	}
	return s.store.WebhookDeliveries(ctx, p, subID, status, n)
}

// Delivery returns one delivery of p's organisation.
func (s *Service) Delivery(ctx context.Context, p domain.Principal, id string) (*domain.WebhookDelivery, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	return s.store.WebhookDelivery(ctx, p, id)
}

// Redeliver queues a dead letter (or a delivered message, to replay it)
// again with a fresh budget of attempts. It keeps its webhook-id, so a
// receiver that already processed it can tell.
func (s *Service) Redeliver(ctx context.Context, p domain.Principal, id string) (*domain.WebhookDelivery, error) {
	if err := authorize(p); err != nil {
		return nil, err
	}
	for range 5 {
		d, err := s.store.WebhookDelivery(ctx, p, id)
		if err != nil {
			return nil, err
		}
		switch d.Status {
		case domain.DeliveryDeadLetter, domain.DeliveryDelivered:
		case domain.DeliveryPending:
			return d, nil // already on its way
		default:
			return nil, domain.Errorf(domain.CodeBadUserInput, "the case is no longer visible to this subscription")
		}
		now := s.store.Now()
		pending, zero := domain.DeliveryPending, 0
		ok, err := s.store.UpdateWebhookDelivery(ctx, d.ID, d.Version, store.DeliveryChange{
			Status: &pending, Attempts: &zero, NextAttemptAt: &now,
		})
		if err != nil {
			return nil, err
		}
		if ok {
			return s.store.WebhookDelivery(ctx, p, id)
		}
	}
	return nil, domain.Errorf(domain.CodeConflict, "the delivery changed meanwhile; try again")
}
