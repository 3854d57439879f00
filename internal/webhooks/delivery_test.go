package webhooks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

const redeliverDoc = `mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) { delivery { id status attempts } } }`

// A failing endpoint is retried with growing, jittered waits; after the
// last attempt the delivery is a dead letter its owner can see and send
// again, under the same webhook-id.
func TestBackoffDeadLetterAndRedelivery(t *testing.T) {
	env := testenv.Start(t)
	o := fast() // 4 attempts; waits 50–100, 100–200, 200–400 ms
	dispatcher(t, env.Store, o)
	rc := newReceiver(t)
	rc.setRespond(func(*http.Request, string, int) int { return http.StatusInternalServerError })
	insurer := testenv.Persona("insurer")
	subscribe(t, env, insurer, rc, "SUBMITTED")

	newMember(t, env).open(t)
	var dead map[string]any
	eventually(t, 10*time.Second, "a dead letter", func() bool {
		for _, d := range deliveries(t, env, insurer) {
			if d["status"] == "DEAD_LETTER" {
				dead = d
				return true
			}
		}
		return false
	})
	assert.Equal(t, float64(4), dead["attempts"])
	assert.Equal(t, "HTTP 500", dead["lastError"])
	assert.Equal(t, float64(500), dead["lastStatusCode"])
	assert.Nil(t, dead["nextAttemptAt"])
	assert.Nil(t, dead["deliveredAt"])

	tries := rc.snapshot()
	require.Len(t, tries, 4)
	for i := 1; i < len(tries); i++ {
		assert.Equal(t, dead["id"], tries[i].ID, "every retry carries the same webhook-id")
		gap := tries[i].At.Sub(tries[i-1].At)
		floor := o.BackoffBase << (i - 1) / 2
		assert.GreaterOrEqual(t, gap, floor, "wait before attempt %d", i+1)
		t.Logf("attempt %d after %s (at least %s)", i+1, gap.Round(time.Millisecond), floor)
	}

	id := dead["id"].(string)
	t.Run("only its owner may redeliver it", func(t *testing.T) {
		for _, p := range []domain.Principal{
			{Subject: "u-other", Role: domain.RoleInsurer, Org: seed.InsurerMaple},
			testenv.Persona("partner"),
		} {
			res := env.Do(t, env.Token(t, p), redeliverDoc, map[string]any{"id": id})
			assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
		}
		res := env.As(t, "coordinator", redeliverDoc, map[string]any{"id": id})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
	})

	rc.setRespond(nil)
	res := env.Do(t, env.Token(t, insurer), redeliverDoc, map[string]any{"id": id})
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, "PENDING", testenv.Get(res.Data, "redeliverWebhook", "delivery", "status"))
	eventually(t, 10*time.Second, "the redelivery", func() bool { return len(rc.delivered()) == 1 })
	assert.Equal(t, id, rc.delivered()[0].ID)
	eventually(t, 5*time.Second, "the delivery shows as delivered", func() bool {
		d := deliveries(t, env, insurer)[id]
		return d["status"] == "DELIVERED" && d["deliveredAt"] != nil && d["lastError"] == nil
	})
	rc.checkClean(t)
}

// A redirect is a failure and is not followed; an endpoint that does not
// answer times out without holding up anyone else's deliveries.
func TestRedirectsAndSlowEndpoints(t *testing.T) {
	env := testenv.Start(t)
	o := fast()
	o.MaxAttempts = 1
	dispatcher(t, env.Store, o)
	insurer := testenv.Persona("insurer")

	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { followed.Add(1) }))
	t.Cleanup(target.Close)
	redirecting := newReceiver(t)
	redirecting.setRespond(func(*http.Request, string, int) int { return http.StatusTemporaryRedirect })

	release := make(chan struct{})
	var slowStarted, slowEnded atomic.Int64
	slow := newReceiver(t)
	slow.setRespond(func(r *http.Request, _ string, _ int) int {
		slowStarted.Store(time.Now().UnixNano())
		select {
		case <-r.Context().Done():
		case <-release:
		}
		slowEnded.Store(time.Now().UnixNano())
		return http.StatusNoContent
	})
	t.Cleanup(func() { close(release) })
	quick := newReceiver(t)
	subscribe(t, env, insurer, redirecting, "SUBMITTED")
	subscribe(t, env, insurer, slow, "SUBMITTED")
	subscribe(t, env, insurer, quick, "SUBMITTED")

	newMember(t, env).open(t)
	eventually(t, 5*time.Second, "the slow endpoint is called", func() bool { return slowStarted.Load() != 0 })
	eventually(t, 5*time.Second, "the quick endpoint is served", func() bool { return len(quick.delivered()) == 1 })
	assert.Zero(t, slowEnded.Load(), "the quick endpoint did not wait for the slow one")

	eventually(t, 5*time.Second, "both failures are recorded", func() bool {
		n := 0
		for _, d := range deliveries(t, env, insurer) {
			if d["status"] == "DEAD_LETTER" {
				n++
			}
		}
		return n == 2
	})
	var errs []string
	for _, d := range deliveries(t, env, insurer) {
		if e, ok := d["lastError"].(string); ok {
			errs = append(errs, e)
		}
	}
	assert.ElementsMatch(t, []string{"HTTP 307: redirects are not followed", "no answer within 1s"}, errs)
	assert.Zero(t, followed.Load(), "the redirect target is never called")
}

// A gateway stopped in the middle of an attempt: the next one (another
// process over the same database) delivers everything, in order per case;
// only the interrupted attempt may arrive twice.
func TestRestartInTheMiddle(t *testing.T) {
	env := testenv.Start(t)
	rc := newReceiver(t)
	blocked := make(chan struct{})
	var first atomic.Bool
	rc.setRespond(func(r *http.Request, _ string, _ int) int {
		if first.CompareAndSwap(false, true) {
			close(blocked)
			<-r.Context().Done() // the gateway goes away mid-request
		}
		return http.StatusNoContent
	})
	insurer := testenv.Persona("insurer")
	subID := subscribe(t, env, insurer, rc)

	stopA := dispatcher(t, env.Store, fast())
	m := newMember(t, env)
	var cases []string
	for range 3 {
		c := m.open(t)
		m.triage(t, c)
		cases = append(cases, c)
	}
	<-blocked
	stopA()

	// A crashed holder would not release its lease: simulate one, so the
	// next process also has to wait for the lease to expire.
	b := env.Replica(t)
	_, raw, _ := graphParse(subID)
	ok, _, err := b.Store.AcquireLease(context.Background(), "webhook-sub:"+raw, "crashed", time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	started := time.Now()
	dispatcher(t, b.Store, fast())

	// 3 cases × SUBMITTED, CONSENT_GRANTED, RECORD_ADDED, STATUS_CHANGED.
	eventually(t, 20*time.Second, "all 12 events delivered", func() bool { return len(rc.delivered()) == 12 })
	t.Logf("recovered in %s; duplicates: %d", time.Since(started).Round(10*time.Millisecond), rc.duplicates())
	assert.LessOrEqual(t, rc.duplicates(), 1, "only the interrupted attempt may repeat")
	byCase := map[string][]string{}
	for _, x := range rc.delivered() {
		byCase[x.Payload.Data.CaseID] = append(byCase[x.Payload.Data.CaseID], x.Payload.Type)
	}
	for _, c := range cases {
		assert.Equal(t, []string{"SUBMITTED", "CONSENT_GRANTED:RECORDS_RELEASE", "RECORD_ADDED", "STATUS_CHANGED"}, byCase[c], "in order per case")
	}
	rc.checkClean(t)
}

// Two replicas dispatch at once over one database: every event arrives
// once, never concurrently, in order per case.
func TestTwoReplicasDeliverEachEventOnce(t *testing.T) {
	env := testenv.Start(t)
	b := env.Replica(t)
	insurer := testenv.Persona("insurer")
	rcs := []*receiver{newReceiver(t), newReceiver(t), newReceiver(t)}
	for _, rc := range rcs {
		subscribe(t, env, insurer, rc)
	}
	// Every endpoint fails its first try of each event, so retries race too.
	for _, rc := range rcs {
		rc.setRespond(func(_ *http.Request, _ string, n int) int {
			if n == 1 {
				return http.StatusBadGateway
			}
			return http.StatusOK
		})
	}
	dispatcher(t, env.Store, fast())
	dispatcher(t, b.Store, fast())

	m := newMember(t, env)
	var cases []string
	for i := range 4 {
		writer := env
		if i%2 == 1 {
			writer = b
		}
		mm := *m
		mm.env = writer
		c := mm.open(t)
		mm.triage(t, c)
		cases = append(cases, c)
	}
	for _, rc := range rcs {
		eventually(t, 20*time.Second, "16 events at each endpoint", func() bool { return len(rc.delivered()) == 16 })
	}
	for _, rc := range rcs {
		rc.checkClean(t)
		assert.Zero(t, rc.duplicates(), "each event is delivered once")
		assert.Len(t, rc.snapshot(), 32, "one failure and one success per event")
		byCase := map[string][]string{}
		for _, x := range rc.delivered() {
			byCase[x.Payload.Data.CaseID] = append(byCase[x.Payload.Data.CaseID], x.Payload.Type)
		}
		for _, c := range cases {
			assert.Equal(t, []string{"SUBMITTED", "CONSENT_GRANTED:RECORDS_RELEASE", "RECORD_ADDED", "STATUS_CHANGED"}, byCase[c])
		}
	}
}
