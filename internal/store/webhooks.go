package store

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Webhooks: subscriptions (one small collection, read whole by the
// dispatcher each tick), deliveries (the outbox: one document per event and
// subscription, keyed so a repeated fan-out inserts nothing new), leases
// (which replica works a subscription) and the fan-out cursor over
// case_events (a counter document). Every change that must not happen twice
// is an insert on a unique _id or a compare-and-set through claims (cas.go).

type webhookSubDoc struct {
	ID           string    `bson:"_id"`
	Role         string    `bson:"role"`
	Org          string    `bson:"org"`
	Subject      string    `bson:"subject"`
	SpecialistID string    `bson:"specialistId,omitempty"`
	URL          string    `bson:"url"`
	EventTypes   []string  `bson:"eventTypes"`
	Secret       sealed    `bson:"secret,omitempty"`
	StartSeq     int64     `bson:"startSeq"`
	CreatedAt    time.Time `bson:"createdAt"`
}

func fromWebhookSub(s *domain.WebhookSubscription) webhookSubDoc {
	types := s.EventTypes
	if types == nil {
		types = []string{}
	}
	return webhookSubDoc{
		ID: s.ID, Role: string(s.Role), Org: s.Org, Subject: s.Subject, SpecialistID: s.SpecialistID,
		URL: s.URL, EventTypes: types, Secret: seal(s.Secret), StartSeq: s.StartSeq, CreatedAt: s.CreatedAt,
	}
}

func toWebhookSub(d *webhookSubDoc) *domain.WebhookSubscription {
	return &domain.WebhookSubscription{
		ID: d.ID, Role: domain.Role(d.Role), Org: d.Org, Subject: d.Subject, SpecialistID: d.SpecialistID,
		URL: d.URL, EventTypes: d.EventTypes, Secret: d.Secret.String(), StartSeq: d.StartSeq, CreatedAt: d.CreatedAt.UTC(),
	}
}

type webhookDeliveryDoc struct {
	ID             string     `bson:"_id"`
	SubscriptionID string     `bson:"subscriptionId"`
	CaseID         string     `bson:"caseId"`
	Seq            int64      `bson:"seq"`
	EventType      string     `bson:"eventType"`
	Payload        string     `bson:"payload"`
	Status         string     `bson:"status"`
	Attempts       int        `bson:"attempts"`
	LastError      string     `bson:"lastError,omitempty"`
	LastStatusCode int        `bson:"lastStatusCode,omitempty"`
	NextAttemptAt  *time.Time `bson:"nextAttemptAt"`
	LastAttemptAt  *time.Time `bson:"lastAttemptAt,omitempty"`
	DeliveredAt    *time.Time `bson:"deliveredAt,omitempty"`
	CreatedAt      time.Time  `bson:"createdAt"`
	Version        int        `bson:"version"`
}

func toWebhookDelivery(d *webhookDeliveryDoc) *domain.WebhookDelivery {
	return &domain.WebhookDelivery{
		ID: d.ID, SubscriptionID: d.SubscriptionID, CaseID: d.CaseID, Seq: d.Seq, EventType: d.EventType,
		Payload: d.Payload, Status: domain.DeliveryStatus(d.Status), Attempts: d.Attempts, LastError: d.LastError,
		LastStatusCode: d.LastStatusCode, NextAttemptAt: utcPtr(d.NextAttemptAt), LastAttemptAt: utcPtr(d.LastAttemptAt),
		DeliveredAt: utcPtr(d.DeliveredAt), CreatedAt: d.CreatedAt.UTC(), Version: d.Version,
	}
}

// WebhookDeliveryID is a fresh random delivery id: it tells a receiver
// nothing of the platform's event volume. A delivery stays unique per
// (subscription, event) by the unique index on (subscriptionId, seq), so a
// repeated fan-out keeps the first delivery and its id.
func WebhookDeliveryID() string { return "whd_" + rand.Text() }

// withoutSecret is the projection of every read made for the API.
var withoutSecret = bson.D{{Key: "secret", Value: 0}}

// CreateWebhookSubscription stores a new subscription, secret included.
func (s *Store) CreateWebhookSubscription(ctx context.Context, sub *domain.WebhookSubscription) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colWebhookSubs).InsertOne(ctx, fromWebhookSub(sub))
	return translate(err, "webhook subscription")
}

// CountWebhookSubscriptions counts the subscriptions p's organisation holds.
func (s *Store) CountWebhookSubscriptions(ctx context.Context, p domain.Principal) (int, error) {
	sc := webhookScope(p)
	if sc.none {
		return 0, nil
	}
	n, err := count(ctx, s, colWebhookSubs, sc.filter)
	return n, translate(err, "webhook subscriptions")
}

// WebhookSubscriptions lists p's organisation's subscriptions, oldest first,
// without their secrets.
func (s *Store) WebhookSubscriptions(ctx context.Context, p domain.Principal, pg Page) ([]*domain.WebhookSubscription, bool, error) {
	sc := webhookScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[webhookSubDoc](ctx, s, colWebhookSubs, sc.filter, pg, false, withoutSecret)
	if err != nil {
		return nil, false, translate(err, "webhook subscriptions")
	}
	out := make([]*domain.WebhookSubscription, len(docs))
	for i, d := range docs {
		out[i] = toWebhookSub(d)
	}
	return out, more, nil
}

// WebhookSubscription reads one of p's organisation's subscriptions,
// without its secret; any other is NOT_FOUND.
func (s *Store) WebhookSubscription(ctx context.Context, p domain.Principal, id string) (*domain.WebhookSubscription, error) {
	sc := webhookScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("webhook subscription")
	}
	d, err := findByID[webhookSubDoc](ctx, s, colWebhookSubs, id, withoutSecret)
	if err != nil {
		return nil, translate(err, "webhook subscription")
	}
	sub := toWebhookSub(d)
	if !sc.allow(sub) {
		return nil, domain.ErrNotFound("webhook subscription")
	}
	return sub, nil
}

// DeleteWebhookSubscription deletes one of p's organisation's subscriptions
// and its deliveries; any other is NOT_FOUND.
func (s *Store) DeleteWebhookSubscription(ctx context.Context, p domain.Principal, id string) error {
	if _, err := s.WebhookSubscription(ctx, p, id); err != nil {
		return err
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colWebhookSubs).DeleteOne(cctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return translate(err, "webhook subscription")
	}
	// A worker holding the subscription's lease notices it is gone on its
	// next tick; attempts in flight find no delivery to update.
	_, err := s.c(colWebhookDeliveries).DeleteMany(cctx, bson.D{{Key: "subscriptionId", Value: id}})
	return translate(err, "webhook deliveries")
}

// WebhookDeliveries lists the latest deliveries of one of p's
// organisation's subscriptions, newest first, optionally of one status.
func (s *Store) WebhookDeliveries(ctx context.Context, p domain.Principal, subID string, status *domain.DeliveryStatus, limit int) ([]*domain.WebhookDelivery, error) {
	if _, err := s.WebhookSubscription(ctx, p, subID); err != nil {
		return nil, err
	}
	f := bson.D{{Key: "subscriptionId", Value: subID}}
	if status != nil {
		f = append(f, bson.E{Key: "status", Value: string(*status)})
	}
	docs, err := findAll[webhookDeliveryDoc](ctx, s, colWebhookDeliveries, f,
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, translate(err, "webhook deliveries")
	}
	out := make([]*domain.WebhookDelivery, len(docs))
	for i, d := range docs {
		out[i] = toWebhookDelivery(d)
	}
	return out, nil
}

// WebhookDelivery reads one delivery of p's organisation's subscriptions;
// any other is NOT_FOUND.
func (s *Store) WebhookDelivery(ctx context.Context, p domain.Principal, id string) (*domain.WebhookDelivery, error) {
	d, err := findByID[webhookDeliveryDoc](ctx, s, colWebhookDeliveries, id, nil)
	if err != nil {
		return nil, translate(err, "webhook delivery")
	}
	if _, err := s.WebhookSubscription(ctx, p, d.SubscriptionID); err != nil {
		return nil, domain.ErrNotFound("webhook delivery")
	}
	return toWebhookDelivery(d), nil
}

// The dispatcher's reads and writes below are not scoped: the dispatcher
// judges each event against each subscription's own principal before it
// creates a delivery, and again against the case before each attempt.

// AllWebhookSubscriptions returns every subscription, secrets included.
func (s *Store) AllWebhookSubscriptions(ctx context.Context) ([]*domain.WebhookSubscription, error) {
	docs, err := findAll[webhookSubDoc](ctx, s, colWebhookSubs, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, translate(err, "webhook subscriptions")
	}
	out := make([]*domain.WebhookSubscription, len(docs))
	for i, d := range docs {
		out[i] = toWebhookSub(d)
	}
	return out, nil
}

// WebhookSubscriptionForDispatch reads one subscription, secret included;
// nil when it is gone.
func (s *Store) WebhookSubscriptionForDispatch(ctx context.Context, id string) (*domain.WebhookSubscription, error) {
	d, err := findByID[webhookSubDoc](ctx, s, colWebhookSubs, id, nil)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err, "webhook subscription")
	}
	return toWebhookSub(d), nil
}

// EnqueueWebhookDelivery inserts a pending delivery; one that exists already
// (a fan-out repeated after a crash, or by two replicas) is left as it is.
func (s *Store) EnqueueWebhookDelivery(ctx context.Context, d *domain.WebhookDelivery) error {
	next := d.CreatedAt
	doc := webhookDeliveryDoc{
		ID: d.ID, SubscriptionID: d.SubscriptionID, CaseID: d.CaseID, Seq: d.Seq, EventType: d.EventType,
		Payload: d.Payload, Status: string(domain.DeliveryPending), NextAttemptAt: &next, CreatedAt: d.CreatedAt,
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colWebhookDeliveries).InsertOne(cctx, doc)
	if isDuplicate(err) {
		return nil
	}
	return translate(err, "webhook delivery")
}

// PendingWebhookDeliveries returns up to limit pending deliveries of a
// subscription in event order.
func (s *Store) PendingWebhookDeliveries(ctx context.Context, subID string, limit int) ([]*domain.WebhookDelivery, error) {
	docs, err := findAll[webhookDeliveryDoc](ctx, s, colWebhookDeliveries,
		bson.D{{Key: "subscriptionId", Value: subID}, {Key: "status", Value: string(domain.DeliveryPending)}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, translate(err, "webhook deliveries")
	}
	out := make([]*domain.WebhookDelivery, len(docs))
	for i, d := range docs {
		out[i] = toWebhookDelivery(d)
	}
	return out, nil
}

// DeliveryChange is a compare-and-set on a delivery.
type DeliveryChange struct {
	Status         *domain.DeliveryStatus
	Attempts       *int
	LastError      *string
	LastStatusCode *int
	NextAttemptAt  *time.Time
	// ClearNextAttempt stores no next attempt (a final state).
	ClearNextAttempt bool
	LastAttemptAt    *time.Time
	DeliveredAt      *time.Time
}

// UpdateWebhookDelivery applies ch if the delivery is still at version and
// this writer won it (cas.go); it reports whether it did.
func (s *Store) UpdateWebhookDelivery(ctx context.Context, id string, version int, ch DeliveryChange) (bool, error) {
	set := bson.D{}
	if ch.Status != nil {
		set = append(set, bson.E{Key: "status", Value: string(*ch.Status)})
	}
	if ch.Attempts != nil {
		set = append(set, bson.E{Key: "attempts", Value: *ch.Attempts})
	}
	if ch.LastError != nil {
		set = append(set, bson.E{Key: "lastError", Value: *ch.LastError})
	}
	if ch.LastStatusCode != nil {
		set = append(set, bson.E{Key: "lastStatusCode", Value: *ch.LastStatusCode})
	}
	switch {
	case ch.ClearNextAttempt:
		set = append(set, bson.E{Key: "nextAttemptAt", Value: nil})
	case ch.NextAttemptAt != nil:
		set = append(set, bson.E{Key: "nextAttemptAt", Value: *ch.NextAttemptAt})
	}
	if ch.LastAttemptAt != nil {
		set = append(set, bson.E{Key: "lastAttemptAt", Value: *ch.LastAttemptAt})
	}
	if ch.DeliveredAt != nil {
		set = append(set, bson.E{Key: "deliveredAt", Value: *ch.DeliveredAt})
	}
	ok, err := s.casUpdate(ctx, colWebhookDeliveries, id, version, set)
	return ok, translate(err, "webhook delivery")
}

// PruneWebhookDeliveries deletes delivered and cancelled deliveries created
// before cutoff; dead letters stay until redelivered or their subscription
// is deleted. Each is deleted only at the version it was found at, so a
// delivery redelivered meanwhile stays.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, cutoff time.Time) error {
	docs, err := findAll[versionedID](ctx, s, colWebhookDeliveries, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{string(domain.DeliveryDelivered), string(domain.DeliveryCancelled)}}}},
		{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: cutoff}}},
	}, options.Find().SetProjection(bson.D{{Key: "version", Value: 1}}).SetLimit(10_000))
	if err != nil {
		return translate(err, "webhook deliveries")
	}
	for _, d := range docs {
		if _, err := s.casDelete(ctx, colWebhookDeliveries, d.ID, d.Version); err != nil {
			return translate(err, "webhook deliveries")
		}
	}
	return nil
}

// versionedID is a document's _id and version.
type versionedID struct {
	ID      string `bson:"_id"`
	Version int    `bson:"version"`
}

// CaseVisibleTo reports whether p may see the case now (false when it is
// gone). It reads the case by _id without its clinical part or history.
func (s *Store) CaseVisibleTo(ctx context.Context, p domain.Principal, caseID string) (bool, error) {
	sc := caseScope(p)
	if sc.none {
		return false, nil
	}
	d, err := findByID[caseDoc](ctx, s, colCases, caseID, bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, translate(err, "case")
	}
	return sc.allow(toCase(d)), nil
}

// Leases: a named lease is held by one holder until it expires. Taking one
// over or renewing it is a compare-and-set on the lease's version, so two
// replicas can never both win it.

type leaseDoc struct {
	ID        string    `bson:"_id"`
	Holder    string    `bson:"holder"`
	ExpiresAt time.Time `bson:"expiresAt"`
	Version   int       `bson:"version"`
}

// AcquireLease takes or renews the lease name for holder until now+ttl. It
// reports whether holder has it, and until when.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, time.Time, error) {
	now := s.Now()
	until := now.Add(ttl)
	d, err := findByID[leaseDoc](ctx, s, colWebhookLeases, name, nil)
	if errors.Is(err, mongo.ErrNoDocuments) {
		cctx, cancel := s.op(ctx)
		defer cancel()
		_, err = s.c(colWebhookLeases).InsertOne(cctx, leaseDoc{ID: name, Holder: holder, ExpiresAt: until})
		if isDuplicate(err) {
			return false, time.Time{}, nil
		}
		if err != nil {
			return false, time.Time{}, translate(err, "lease")
		}
		return true, until, nil
	}
	if err != nil {
		return false, time.Time{}, translate(err, "lease")
	}
	if d.Holder != holder && now.Before(d.ExpiresAt) {
		return false, time.Time{}, nil
	}
	ok, err := s.casUpdate(ctx, colWebhookLeases, name, d.Version, bson.D{
		{Key: "holder", Value: holder}, {Key: "expiresAt", Value: until},
	})
	if err != nil || !ok {
		return false, time.Time{}, translate(err, "lease")
	}
	return true, until, nil
}

// ReleaseLease gives the lease up if holder still has it, so another replica
// may take it at once.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	d, err := findByID[leaseDoc](ctx, s, colWebhookLeases, name, nil)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return translate(err, "lease")
	}
	if d.Holder != holder {
		return nil
	}
	_, err = s.casUpdate(ctx, colWebhookLeases, name, d.Version, bson.D{
		{Key: "holder", Value: ""}, {Key: "expiresAt", Value: time.Time{}},
	})
	return translate(err, "lease")
}

// The fan-out cursor is a counter document: the last case-event sequence
// turned into deliveries.

// WebhookCursor returns the fan-out cursor and its version; found is false
// when there is none yet.
func (s *Store) WebhookCursor(ctx context.Context, name string) (seq int64, version int, found bool, err error) {
	d, err := findByID[counterDoc](ctx, s, colCounters, name, nil)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, translate(err, "cursor")
	}
	return d.Seq, d.Version, true, nil
}

// InitWebhookCursor creates the cursor at seq unless it exists.
func (s *Store) InitWebhookCursor(ctx context.Context, name string, seq int64) error {
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colCounters).InsertOne(cctx, counterDoc{ID: name, Seq: seq})
	if isDuplicate(err) {
		return nil
	}
	return translate(err, "cursor")
}

// AdvanceWebhookCursor moves the cursor to seq if it is still at version.
func (s *Store) AdvanceWebhookCursor(ctx context.Context, name string, version int, seq int64) (bool, error) {
	ok, err := s.casUpdate(ctx, colCounters, name, version, bson.D{{Key: "seq", Value: seq}})
	return ok, translate(err, "cursor")
}
