package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/webhooks"
)

// fast makes back-off and leases short enough for tests to run in seconds.
func fast() webhooks.Options {
	return webhooks.Options{
		GlobalID: graph.GlobalID, PollInterval: 20 * time.Millisecond, LeaseTTL: 2 * time.Second,
		Timeout: time.Second, BackoffBase: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond,
		MaxAttempts: 4, GapWait: 500 * time.Millisecond,
	}
}

// dispatcher runs a dispatcher until the returned stop is called (or the
// test ends); stop waits for it to return.
func dispatcher(t *testing.T, st *store.Store, o webhooks.Options) (stop func()) {
	t.Helper()
	d, err := webhooks.NewDispatcher(st, o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// received is one request a receiver got.
type received struct {
	ID      string
	Status  int
	Payload webhooks.Payload
	Body    string
	At      time.Time
}

// receiver is a partner's endpoint on 127.0.0.1: it verifies every
// signature, counts each webhook-id, notices two requests for one id (or two
// requests at all) at the same time, and answers what respond says.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	secret   string
	all      []received
	badSig   int
	inFlight map[string]bool
	overlap  int // a second request for an id still in flight
	busy     atomic.Int32
	parallel int // a second request to this endpoint while one was in flight
	// respond picks the status of the n-th request (1-based) for an id;
	// nil answers 204.
	respond func(r *http.Request, id string, n int) int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, inFlight: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hook" }

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secret = s
}

func (rc *receiver) setRespond(f func(r *http.Request, id string, n int) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	if rc.busy.Add(1) > 1 {
		rc.mu.Lock()
		rc.parallel++
		rc.mu.Unlock()
	}
	defer rc.busy.Add(-1)
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	if err := webhooks.Verify(rc.secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		rc.badSig++
	}
	if rc.inFlight[id] {
		rc.overlap++
	}
	rc.inFlight[id] = true
	n := 1
	for _, x := range rc.all {
		if x.ID == id {
			n++
		}
	}
	respond := rc.respond
	rc.mu.Unlock()
	status := http.StatusNoContent
	if respond != nil {
		status = respond(r, id, n)
	}
	var p webhooks.Payload
	_ = json.Unmarshal(body, &p)
	rc.mu.Lock()
	rc.inFlight[id] = false
	rc.all = append(rc.all, received{ID: id, Status: status, Payload: p, Body: string(body), At: time.Now()})
	rc.mu.Unlock()
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
}

func (rc *receiver) snapshot() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.all...)
}

// delivered returns the first successful receipt of each id, in arrival
// order.
func (rc *receiver) delivered() []received {
	var out []received
	seen := map[string]bool{}
	for _, x := range rc.snapshot() {
		if x.Status < 300 && !seen[x.ID] {
			seen[x.ID] = true
			out = append(out, x)
		}
	}
	return out
}

// duplicates counts successful receipts beyond the first of each id.
func (rc *receiver) duplicates() int {
	ok := 0
	for _, x := range rc.snapshot() {
		if x.Status < 300 {
			ok++
		}
	}
	return ok - len(rc.delivered())
}

func (rc *receiver) checkClean(t *testing.T) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Zero(t, rc.badSig, "every request carries a valid signature")
	require.Zero(t, rc.overlap, "one delivery is never in flight twice at once")
	require.Zero(t, rc.parallel, "an endpoint is never sent two requests at once")
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const createDoc = `mutation($in: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $in) { secret subscription { id url eventTypes createdBy createdAt } } }`

const listDoc = `query($status: WebhookDeliveryStatus) { webhookSubscriptions(first: 10) { totalCount pageInfo { hasNextPage endCursor }
  edges { node { id url eventTypes deliveries(first: 100, status: $status) { id eventType status attempts lastError lastStatusCode nextAttemptAt lastAttemptAt deliveredAt createdAt } } } } }`

// subscribe registers rc for a principal and gives rc the secret.
func subscribe(t *testing.T, env *testenv.Env, p domain.Principal, rc *receiver, types ...string) string {
	t.Helper()
	in := map[string]any{"url": rc.URL()}
	if len(types) > 0 {
		in["eventTypes"] = types
	}
	res := env.Do(t, env.Token(t, p), createDoc, map[string]any{"in": in})
	require.Empty(t, res.Errors, res.Raw)
	rc.setSecret(testenv.Get(res.Data, "createWebhookSubscription", "secret").(string))
	return testenv.Get(res.Data, "createWebhookSubscription", "subscription", "id").(string)
}

// deliveries lists the deliveries of p's subscriptions by webhook-id.
func deliveries(t *testing.T, env *testenv.Env, p domain.Principal) map[string]map[string]any {
	t.Helper()
	res := env.Do(t, env.Token(t, p), listDoc, nil)
	require.Empty(t, res.Errors, res.Raw)
	out := map[string]map[string]any{}
	for _, e := range testenv.Get(res.Data, "webhookSubscriptions", "edges").([]any) {
		for _, d := range testenv.Get(e, "node", "deliveries").([]any) {
			m := d.(map[string]any)
			out[m["id"].(string)] = m
		}
	}
	return out
}

// member is a new insured member of a Northstar policy and their cases.
type member struct {
	env      *testenv.Env
	token    string
	policyID string
}

var memberSeq atomic.Int64

func newMember(t *testing.T, env *testenv.Env) *member {
	t.Helper()
	id := fmt.Sprintf("wh-%d-%d", time.Now().UnixNano()%1_000_000_000, memberSeq.Add(1))
	res := env.As(t, "insurer", `mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id } } }`, map[string]any{"in": map[string]any{
		"policyNumber": "WH-" + id, "product": "CRITICAL_ILLNESS", "effectiveFrom": "2025-01-01",
		"secondOpinion": map[string]any{"covered": true, "casesPerYear": 50, "international": true},
		"insured": []any{map[string]any{
			"memberId": id, "givenName": "Wanda", "familyName": "Hook", "dateOfBirth": "1970-05-04",
			"country": "CA", "language": "en", "sex": "FEMALE",
		}},
	}})
	require.Empty(t, res.Errors, res.Raw)
	return &member{
		env: env, policyID: testenv.Get(res.Data, "createPolicy", "policy", "id").(string),
		token: env.Token(t, domain.Principal{Subject: id, Role: domain.RoleMember, Org: seed.InsurerNorthstar}),
	}
}

// clinical is a phrase only the case's clinical fields hold.
const clinical = "Malignant neoplasm of breast"

// open requests a second opinion (one SUBMITTED event).
func (m *member) open(t *testing.T) string {
	t.Helper()
	res := m.env.Do(t, m.token, `mutation($in: RequestSecondOpinionInput!) { requestSecondOpinion(input: $in) { case { id } } }`,
		map[string]any{"in": map[string]any{
			"policyId": m.policyID, "specialty": "oncology", "preferredLanguage": "de",
			"diagnosis": map[string]any{"code": "C50.9", "description": clinical},
			"questions": []any{"Is surgery needed?"}, "proposedTreatment": "Mastectomy",
		}})
	require.Empty(t, res.Errors, res.Raw)
	return testenv.Get(res.Data, "requestSecondOpinion", "case", "id").(string)
}

func (m *member) consent(t *testing.T, caseID, op, kind string) {
	t.Helper()
	res := m.env.Do(t, m.token, fmt.Sprintf(`mutation($in: ConsentInput!) { %s(input: $in) { case { status } } }`, op),
		map[string]any{"in": map[string]any{"caseId": caseID, "kind": kind}})
	require.Empty(t, res.Errors, res.Raw)
}

// triage adds a record and the records-release consent: RECORD_ADDED,
// CONSENT_GRANTED and STATUS_CHANGED to TRIAGE.
func (m *member) triage(t *testing.T, caseID string) {
	t.Helper()
	m.consent(t, caseID, "grantConsent", "RECORDS_RELEASE")
	res := m.env.Do(t, m.token, `mutation($in: AddMedicalRecordInput!) { addMedicalRecord(input: $in) { case { status } } }`,
		map[string]any{"in": map[string]any{"caseId": caseID, "title": "Biopsy", "kind": "PATHOLOGY", "recordedOn": "2026-01-10"}})
	require.Empty(t, res.Errors, res.Raw)
	require.Equal(t, "TRIAGE", testenv.Get(res.Data, "addMedicalRecord", "case", "status"))
}

func assign(t *testing.T, env *testenv.Env, caseID, specialistID string) {
	t.Helper()
	res := env.As(t, "coordinator", `mutation($in: AssignSpecialistInput!) { assignSpecialist(input: $in) { case { status } } }`,
		map[string]any{"in": map[string]any{"caseId": caseID, "specialistId": specialistID}})
	require.Empty(t, res.Errors, res.Raw)
}

func specialistIn(t *testing.T, env *testenv.Env, org, country string) string {
	t.Helper()
	res := env.As(t, "coordinator", `query($c: String) { specialists(first: 100, filter: {specialty: "oncology", country: $c}) { edges { node { id orgId acceptingCases } } } }`,
		map[string]any{"c": country})
	require.Empty(t, res.Errors, res.Raw)
	for _, e := range testenv.Get(res.Data, "specialists", "edges").([]any) {
		n := e.(map[string]any)["node"].(map[string]any)
		if n["orgId"] == org && n["acceptingCases"] == true {
			return n["id"].(string)
		}
	}
	t.Fatalf("no accepting oncology specialist of %s in %s", org, country)
	return ""
}

func graphParse(id string) (string, string, bool) { return graph.ParseGlobalID(id) }
