package domain

import (
	"slices"
	"strings"
	"time"
)

// WebhookSubscription is an endpoint an organisation registered to receive
// case events (issue 6). It keeps the principal that created it: every event
// is judged against that principal's visibility, as a subscription over the
// socket would be.
type WebhookSubscription struct {
	ID           string
	Role         Role
	Org          string
	Subject      string
	SpecialistID string
	URL          string
	// EventTypes limits the events sent (empty: every type). A type matches
	// an event's type exactly or up to its ":" qualifier, so
	// CONSENT_REVOKED matches CONSENT_REVOKED:INTERNATIONAL_SHARING.
	EventTypes []string
	// Secret signs the deliveries ("whsec_" + base64). Only the dispatcher
	// reads it; it leaves the gateway once, in the creation's response.
	Secret string
	// StartSeq is the case-event sequence at creation: only later events
	// are delivered.
	StartSeq  int64
	CreatedAt time.Time
}

// Principal is the caller the subscription acts for.
func (s *WebhookSubscription) Principal() Principal {
	return Principal{Subject: s.Subject, Role: s.Role, Org: s.Org, SpecialistID: s.SpecialistID}
}

// Wants reports whether the subscription asked for events of type typ.
func (s *WebhookSubscription) Wants(typ string) bool {
	if len(s.EventTypes) == 0 {
		return true
	}
	base, _, _ := strings.Cut(typ, ":")
	return slices.Contains(s.EventTypes, typ) || slices.Contains(s.EventTypes, base)
}

// WebhookEventTypes are the case event types a subscription may name.
var WebhookEventTypes = []string{"SUBMITTED", "STATUS_CHANGED", "RECORD_ADDED", "CONSENT_GRANTED", "CONSENT_REVOKED",
	"FOLLOW_UP_ASKED", "FOLLOW_UP_ANSWERED", "OUTCOME_RECORDED", EventDataAccessedByNewOrg}

// WebhookRoles may register webhooks: the organisations with back-office
// systems. Members have none; coordinators work inside the gateway.
var WebhookRoles = []Role{RoleInsurer, RoleProvider, RolePartner}

// DeliveryStatus is where one webhook delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	// DeliveryPending: waiting for its first attempt or for a retry.
	DeliveryPending DeliveryStatus = "PENDING"
	// DeliveryDelivered: the endpoint answered 2xx.
	DeliveryDelivered DeliveryStatus = "DELIVERED"
	// DeliveryDeadLetter: every attempt failed; redeliverWebhook retries it.
	DeliveryDeadLetter DeliveryStatus = "DEAD_LETTER"
	// DeliveryCancelled: the case left the subscriber's view before the
	// event could be delivered.
	DeliveryCancelled DeliveryStatus = "CANCELLED"
)

// WebhookDelivery is one case event on its way to one subscription.
type WebhookDelivery struct {
	ID             string
	SubscriptionID string
	CaseID         string
	Seq            int64
	EventType      string
	// Payload is the JSON body, built once from the event's admin fields.
	Payload        string
	Status         DeliveryStatus
	Attempts       int
	LastError      string
	LastStatusCode int
	NextAttemptAt  *time.Time
	LastAttemptAt  *time.Time
	DeliveredAt    *time.Time
	CreatedAt      time.Time
	Version        int
}

// IsNode marks WebhookSubscription as a Node.
func (*WebhookSubscription) IsNode() {}

// GetID returns the raw id.
func (s *WebhookSubscription) GetID() string { return s.ID }

// IsNode marks WebhookDelivery as a Node.
func (*WebhookDelivery) IsNode() {}

// GetID returns the raw id.
func (d *WebhookDelivery) GetID() string { return d.ID }
