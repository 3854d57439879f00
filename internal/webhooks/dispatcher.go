package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Options tune the Dispatcher. Zero values take the defaults below.
type Options struct {
	// Production refuses connections to loopback too; every other
	// special-purpose address is refused in every mode.
	Production bool
	// Resolver looks endpoint hosts up (net.DefaultResolver when nil); every
	// address it returns is checked before any is dialled.
	Resolver Resolver
	// GlobalID makes API ids (graph.GlobalID); required.
	GlobalID func(typ, raw string) string
	// PollInterval: how often new events and due retries are looked for
	// (default 1s).
	PollInterval time.Duration
	// LeaseTTL: how long a replica's hold on a subscription (or on the
	// fan-out) outlives it if it dies (default 30s). It is renewed at a
	// third of its life.
	LeaseTTL time.Duration
	// Timeout bounds one delivery attempt, connection included (default 5s).
	Timeout time.Duration
	// BackoffBase is the wait after the first failure; it doubles with each
	// further failure up to BackoffMax, and the actual wait is drawn
	// between half of it and all of it (defaults 30s and 4h).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAttempts before a delivery becomes a dead letter (default 12:
	// about 12 hours with the default back-off).
	MaxAttempts int
	// Retention keeps delivered and cancelled deliveries visible this long
	// (default 72h); dead letters stay until redelivered.
	Retention time.Duration
	// GapWait is how long a hole in the event sequence (a writer that took
	// a number but has not inserted yet) holds the fan-out back before it is
	// skipped (default 5s).
	GapWait time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, time.Second)
	def(&o.LeaseTTL, 30*time.Second)
	def(&o.Timeout, 5*time.Second)
	def(&o.BackoffBase, 30*time.Second)
	def(&o.BackoffMax, 4*time.Hour)
	def(&o.Retention, 72*time.Hour)
	// Longer than one database call may take (store.DefaultOpTimeout): a
	// slow insert of an event whose number was taken lands before the
	// dispatcher gives up on it.
	def(&o.GapWait, 2*store.DefaultOpTimeout)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// inFlightGrace is added to the timeout when an attempt is claimed: no one
// else tries the delivery before its claimed attempt must have ended.
const inFlightGrace = 2 * time.Second

const (
	fanoutLease  = "webhook-fanout"
	fanoutCursor = "webhook-fanout"
	batchSize    = 200
	maxBodyRead  = 64 << 10
	pruneEvery   = time.Minute
)

// Dispatcher turns case events into deliveries and sends them.
type Dispatcher struct {
	st     *store.Store
	o      Options
	holder string
	client *http.Client

	mu      sync.Mutex
	workers map[string]chan struct{}
	wg      sync.WaitGroup

	fanoutUntil time.Time
	gapSince    time.Time
	lastPrune   time.Time
}

// NewDispatcher returns a dispatcher over st; Run starts it.
func NewDispatcher(st *store.Store, o Options) (*Dispatcher, error) {
	if o.GlobalID == nil {
		return nil, errors.New("webhooks: Options.GlobalID is required")
	}
	o.defaults()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tr := o.Transport
	if tr == nil {
		// Outside production loopback stays reachable, for local receivers.
		dialer := newGuardedDialer(&net.Dialer{Timeout: o.Timeout}, o.Resolver, !o.Production)
		tr = &http.Transport{
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   o.Timeout,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	return &Dispatcher{
		st: st, o: o, holder: hex.EncodeToString(b),
		client: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			// Never follow a redirect: a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		workers: map[string]chan struct{}{},
	}, nil
}

// Run dispatches until ctx ends, then waits for its workers to stop and
// gives their leases up.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	defer func() {
		d.wg.Wait()
		if !d.fanoutUntil.IsZero() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = d.st.ReleaseLease(rctx, fanoutLease, d.holder)
			cancel()
		}
	}()
	for {
		d.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dispatcher) tick(ctx context.Context) {
	subs, err := d.st.AllWebhookSubscriptions(ctx)
	if err != nil {
		d.warn(ctx, "webhooks: cannot list subscriptions", err)
		return
	}
	if len(subs) == 0 {
		return
	}
	if d.holdLease(ctx, fanoutLease, &d.fanoutUntil) {
		if err := d.fanOut(ctx, subs); err != nil {
			d.warn(ctx, "webhooks: fan-out failed", err)
		}
		d.prune(ctx)
	}
	for _, s := range subs {
		d.startWorker(ctx, s.ID)
	}
}

// holdLease takes or renews a lease when a third of its life has passed.
func (d *Dispatcher) holdLease(ctx context.Context, name string, until *time.Time) bool {
	if until.Sub(d.st.Now()) > d.o.LeaseTTL*2/3 {
		return true
	}
	ok, u, err := d.st.AcquireLease(ctx, name, d.holder, d.o.LeaseTTL)
	if err != nil {
		d.warn(ctx, "webhooks: lease "+name, err)
	}
	if !ok {
		*until = time.Time{}
		return false
	}
	*until = u
	return true
}

// fanOut turns the events after the cursor into deliveries, one per
// subscription that may see the event and asked for its type.
func (d *Dispatcher) fanOut(ctx context.Context, subs []*domain.WebhookSubscription) error {
	cur, version, found, err := d.st.WebhookCursor(ctx, fanoutCursor)
	if err != nil {
		return err
	}
	minStart := subs[0].StartSeq
	for _, s := range subs {
		minStart = min(minStart, s.StartSeq)
	}
	if !found {
		if err := d.st.InitWebhookCursor(ctx, fanoutCursor, minStart); err != nil {
			return err
		}
		if cur, version, _, err = d.st.WebhookCursor(ctx, fanoutCursor); err != nil {
			return err
		}
	}
	from := max(cur, minStart)
	recs, err := d.st.CaseEventsAfter(ctx, from, batchSize)
	if err != nil || len(recs) == 0 {
		return err
	}
	// Read the subscriptions again after the events: one created since the
	// first read started at a sequence no lower than any event read.
	if subs, err = d.st.AllWebhookSubscriptions(ctx); err != nil {
		return err
	}
	last := from
	for _, r := range recs {
		if r.Seq != last+1 {
			if d.gapSince.IsZero() {
				d.gapSince = time.Now()
			}
			if time.Since(d.gapSince) < d.o.GapWait {
				break
			}
			d.o.Logger.WarnContext(ctx, "webhooks: skipping a gap in the event sequence", "after", last, "next", r.Seq)
		}
		d.gapSince = time.Time{}
		for _, s := range subs {
			if r.Seq <= s.StartSeq || !s.Wants(r.Type) || !r.VisibleTo(s.Principal()) {
				continue
			}
			if err := d.st.EnqueueWebhookDelivery(ctx, d.delivery(s, r)); err != nil {
				d.advance(ctx, cur, version, last)
				return err
			}
			d.wake(s.ID)
		}
		last = r.Seq
	}
	d.advance(ctx, cur, version, last)
	return nil
}

func (d *Dispatcher) advance(ctx context.Context, cur int64, version int, last int64) {
	if last <= cur {
		return
	}
	if _, err := d.st.AdvanceWebhookCursor(ctx, fanoutCursor, version, last); err != nil {
		d.warn(ctx, "webhooks: cannot advance the cursor", err)
	}
}

// Payload is the JSON body of a delivery: admin fields of the case only,
// never clinical content, whatever the subscriber's role.
type Payload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      PayloadData `json:"data"`
}

// PayloadData describes the case after the event.
type PayloadData struct {
	CaseID    string    `json:"caseId"`
	EventType string    `json:"eventType"`
	Status    string    `json:"status"`
	At        time.Time `json:"at"`
	Version   int       `json:"version"`
}

// AccessPayload is the body of a DATA_ACCESSED_BY_NEW_ORGANIZATION
// delivery (to the member's insurer only), so its app can tell the member:
// who read (the organisation's registered name and kind), which categories
// of data, when, and through which case. No PHI: not the member, not the
// data read.
type AccessPayload struct {
	Type      string            `json:"type"`
	Timestamp time.Time         `json:"timestamp"`
	Data      AccessPayloadData `json:"data"`
}

// AccessPayloadData describes one organisation's first read.
type AccessPayloadData struct {
	CaseID         string     `json:"caseId"`
	CaseReference  string     `json:"caseReference"`
	EventType      string     `json:"eventType"`
	At             time.Time  `json:"at"`
	Version        int        `json:"version"`
	Organization   PayloadOrg `json:"organization"`
	DataCategories []string   `json:"dataCategories"`
}

// PayloadOrg names an organisation as registered.
type PayloadOrg struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

func (d *Dispatcher) body(r *store.CaseEventRecord) []byte {
	at := r.At.UTC()
	if a := r.Access; a != nil && r.Type == domain.EventDataAccessedByNewOrg {
		body, _ := json.Marshal(AccessPayload{Type: r.Type, Timestamp: at, Data: AccessPayloadData{
			CaseID: d.o.GlobalID("Case", r.CaseID), CaseReference: a.Reference, EventType: r.Type, At: at, Version: r.Version,
			Organization: PayloadOrg{Name: a.OrgName, Kind: a.OrgKind}, DataCategories: a.Categories,
		}})
		return body
	}
	body, _ := json.Marshal(Payload{Type: r.Type, Timestamp: at, Data: PayloadData{
		CaseID: d.o.GlobalID("Case", r.CaseID), EventType: r.Type, Status: r.Status, At: at, Version: r.Version,
	}})
	return body
}

func (d *Dispatcher) delivery(s *domain.WebhookSubscription, r *store.CaseEventRecord) *domain.WebhookDelivery {
	body := d.body(r)
	return &domain.WebhookDelivery{
		ID: store.WebhookDeliveryID(), SubscriptionID: s.ID, CaseID: r.CaseID, Seq: r.Seq,
		EventType: r.Type, Payload: string(body), CreatedAt: d.st.Now(),
	}
}

func (d *Dispatcher) prune(ctx context.Context) {
	now := d.st.Now()
	if now.Sub(d.lastPrune) < pruneEvery {
		return
	}
	d.lastPrune = now
	if err := d.st.PruneWebhookDeliveries(ctx, now.Add(-d.o.Retention)); err != nil {
		d.warn(ctx, "webhooks: prune failed", err)
	}
}

func (d *Dispatcher) wake(subID string) {
	d.mu.Lock()
	ch := d.workers[subID]
	d.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// startWorker starts a worker for the subscription if this replica wins its
// lease and has none running yet.
func (d *Dispatcher) startWorker(ctx context.Context, subID string) {
	d.mu.Lock()
	_, running := d.workers[subID]
	d.mu.Unlock()
	if running || ctx.Err() != nil {
		return
	}
	var until time.Time
	if !d.holdLease(ctx, leaseName(subID), &until) {
		return
	}
	wake := make(chan struct{}, 1)
	d.mu.Lock()
	d.workers[subID] = wake
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.work(ctx, subID, until, wake)
	}()
}

func leaseName(subID string) string { return "webhook-sub:" + subID }

// work sends one subscription's deliveries while this replica holds its
// lease: each case's oldest pending delivery first, one attempt at a time,
// so an endpoint sees a case's events in order and is never sent two
// requests at once; a slow endpoint holds up only its own worker.
func (d *Dispatcher) work(ctx context.Context, subID string, until time.Time, wake chan struct{}) {
	name := leaseName(subID)
	defer func() {
		d.mu.Lock()
		delete(d.workers, subID)
		d.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = d.st.ReleaseLease(rctx, name, d.holder)
		cancel()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-timer.C:
		}
		if !d.holdLease(ctx, name, &until) {
			return
		}
		sub, err := d.st.WebhookSubscriptionForDispatch(ctx, subID)
		if err != nil {
			d.warn(ctx, "webhooks: cannot read a subscription", err)
		}
		if sub == nil && err == nil {
			return // deleted
		}
		wait := d.o.PollInterval
		if sub != nil {
			next, progress, keep := d.process(ctx, sub, &until)
			if !keep {
				return
			}
			if progress {
				wait = 0
			} else if !next.IsZero() {
				wait = min(wait, max(0, next.Sub(d.st.Now())))
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// process makes the due attempts of one pass; it returns when the next
// pending attempt falls due, whether any attempt succeeded (so the next in
// its case may go at once), and false when the lease was lost.
func (d *Dispatcher) process(ctx context.Context, sub *domain.WebhookSubscription, until *time.Time) (next time.Time, progress, keep bool) {
	pending, err := d.st.PendingWebhookDeliveries(ctx, sub.ID, 500)
	if err != nil {
		d.warn(ctx, "webhooks: cannot read pending deliveries", err)
		return time.Time{}, false, true
	}
	heads := map[string]bool{}
	for _, del := range pending {
		if heads[del.CaseID] {
			continue // a case's later events wait for its earlier one
		}
		heads[del.CaseID] = true
		now := d.st.Now()
		if del.NextAttemptAt != nil && del.NextAttemptAt.After(now) {
			if next.IsZero() || del.NextAttemptAt.Before(next) {
				next = *del.NextAttemptAt
			}
			continue
		}
		if ctx.Err() != nil {
			return next, progress, false
		}
		// The lease must outlast the attempt.
		if until.Sub(now) < d.o.Timeout+inFlightGrace+d.o.LeaseTTL/3 {
			*until = time.Time{}
			if !d.holdLease(ctx, leaseName(sub.ID), until) {
				return next, progress, false
			}
		}
		if d.attempt(ctx, sub, del) {
			progress = true
		}
	}
	return next, progress, true
}

// attempt sends one delivery once; it reports whether it was delivered.
func (d *Dispatcher) attempt(ctx context.Context, sub *domain.WebhookSubscription, del *domain.WebhookDelivery) bool {
	visible, err := d.st.CaseVisibleTo(ctx, sub.Principal(), del.CaseID)
	if err != nil {
		d.warn(ctx, "webhooks: cannot check the case", err)
		return false
	}
	if !visible {
		st, msg := domain.DeliveryCancelled, "the case is no longer visible to this subscription"
		_, err := d.st.UpdateWebhookDelivery(ctx, del.ID, del.Version, store.DeliveryChange{Status: &st, LastError: &msg, ClearNextAttempt: true})
		if err != nil {
			d.warn(ctx, "webhooks: cannot cancel a delivery", err)
		}
		return false
	}
	// Claim the attempt: only the writer that moves the delivery to its
	// next version sends it, and no one retries before it must be over.
	now := d.st.Now()
	attempts := del.Attempts + 1
	inFlight := now.Add(d.o.Timeout + inFlightGrace)
	won, err := d.st.UpdateWebhookDelivery(ctx, del.ID, del.Version, store.DeliveryChange{
		Attempts: &attempts, LastAttemptAt: &now, NextAttemptAt: &inFlight,
	})
	if err != nil || !won {
		if err != nil {
			d.warn(ctx, "webhooks: cannot claim an attempt", err)
		}
		return false
	}
	// Check once more right before sending: a consent revoked while the
	// attempt was being claimed must stop it.
	if visible, err = d.st.CaseVisibleTo(ctx, sub.Principal(), del.CaseID); err != nil || !visible {
		if err == nil {
			st, msg := domain.DeliveryCancelled, "the case is no longer visible to this subscription"
			if _, err := d.st.UpdateWebhookDelivery(ctx, del.ID, del.Version+1, store.DeliveryChange{Status: &st, LastError: &msg, ClearNextAttempt: true}); err != nil {
				d.warn(ctx, "webhooks: cannot cancel a delivery", err)
			}
		}
		return false
	}
	code, sendErr := d.send(ctx, sub, del, now)
	if ctx.Err() != nil {
		// Shutting down: the outcome is unknown, and the claimed attempt
		// makes the next holder retry it once it must be over.
		return false
	}
	ch := store.DeliveryChange{LastStatusCode: &code}
	delivered := sendErr == nil
	done := d.st.Now()
	switch {
	case delivered:
		st, none := domain.DeliveryDelivered, ""
		ch.Status, ch.LastError, ch.DeliveredAt, ch.ClearNextAttempt = &st, &none, &done, true
	case attempts >= d.o.MaxAttempts:
		st, msg := domain.DeliveryDeadLetter, sendErr.Error()
		ch.Status, ch.LastError, ch.ClearNextAttempt = &st, &msg, true
	default:
		msg := sendErr.Error()
		at := done.Add(d.backoff(attempts))
		ch.LastError, ch.NextAttemptAt = &msg, &at
	}
	if _, err := d.st.UpdateWebhookDelivery(ctx, del.ID, del.Version+1, ch); err != nil {
		d.warn(ctx, "webhooks: cannot record an attempt", err)
	}
	if !delivered {
		d.o.Logger.InfoContext(ctx, "webhook attempt failed", "subscription", sub.ID, "delivery", del.ID,
			"attempt", attempts, "error", sendErr.Error())
	}
	return delivered
}

// backoff is the wait after the n-th failed attempt: BackoffBase·2^(n-1),
// at most BackoffMax, drawn between half of it and all of it.
func (d *Dispatcher) backoff(n int) time.Duration {
	w := d.o.BackoffBase
	for i := 1; i < n && w < d.o.BackoffMax; i++ {
		w *= 2
	}
	w = min(w, d.o.BackoffMax)
	half := w / 2
	return half + mrand.N(w-half+1)
}

// send POSTs the delivery, signed; a 2xx answer is success, anything else
// (3xx included: redirects are never followed) an error safe to show the
// subscriber.
func (d *Dispatcher) send(ctx context.Context, sub *domain.WebhookSubscription, del *domain.WebhookDelivery, now time.Time) (int, error) {
	id := d.o.GlobalID("WebhookDelivery", del.ID)
	ts := now.Unix()
	body := []byte(del.Payload)
	sig, err := Sign(sub.Secret, id, ts, body)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, sub.URL, strings.NewReader(del.Payload))
	if err != nil {
		return 0, errors.New("invalid endpoint URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SecondOpinion-Webhooks/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, describe(err, d.o.Timeout)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyRead))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Errorf("HTTP %d: redirects are not followed", resp.StatusCode)
	default:
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
}

// describe turns a transport error into a short message for the
// subscriber, without the gateway's internals.
func describe(err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Errorf("no answer within %s", timeout)
	case errors.Is(err, errPrivateAddr):
		return errPrivateAddr
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("connection failed: %s", oe.Op)
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return errors.New("request failed: " + msg)
}

func (d *Dispatcher) warn(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	d.o.Logger.WarnContext(ctx, msg, "error", domain.Scrub(err.Error()))
}
