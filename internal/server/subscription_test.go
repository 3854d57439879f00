package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

const caseEventsDoc = `subscription($id: ID) { caseEvents(caseId: $id) { caseId status version event { type toStatus actorRole } } }`

// nextEvent waits for the next "next" message of subscription id.
func nextEvent(t *testing.T, ws *testenv.WS, d time.Duration) (map[string]any, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m, err := ws.Next(time.Until(deadline))
		if err != nil {
			return nil, false
		}
		if m.Type == "next" {
			var p struct {
				Data   map[string]any `json:"data"`
				Errors []any          `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(m.Payload, &p))
			require.Empty(t, p.Errors)
			return p.Data["caseEvents"].(map[string]any), true
		}
		if m.Type == "error" || m.Type == "complete" {
			t.Fatalf("subscription ended: %s %s", m.Type, m.Payload)
		}
	}
	return nil, false
}

func ack(t *testing.T, ws *testenv.WS) {
	t.Helper()
	m, err := ws.Next(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "connection_ack", m.Type, "payload: %s", m.Payload)
}

func TestEventsWrittenThroughOneReplicaReachSubscribersOfAnother(t *testing.T) {
	a := testenv.Start(t)
	b := a.Replica(t)
	urlA := a.Serve(t)

	lc := newLifecycle(t, b, true, 3)
	lc.env = b
	lc.open(t)

	member, err := testenv.DialWS(t, urlA, lc.member)
	require.NoError(t, err)
	ack(t, member)
	member.Subscribe(t, "1", caseEventsDoc, map[string]any{"id": lc.caseID})

	partner, err := testenv.DialWS(t, urlA, a.Token(t, testenv.Persona("partner")))
	require.NoError(t, err)
	ack(t, partner)
	partner.Subscribe(t, "p", caseEventsDoc, nil)

	insurer, err := testenv.DialWS(t, urlA, a.Token(t, testenv.Persona("insurer")))
	require.NoError(t, err)
	ack(t, insurer)
	insurer.Subscribe(t, "i", caseEventsDoc, nil)

	// Every write goes through replica B. A subscribe message has no
	// acknowledgement in graphql-transport-ws, so the first write is repeated
	// until the subscription is live; from then on nothing may be missed.
	var (
		ev map[string]any
		ok bool
	)
	// (A grant already in force is a no-op with no event: the warm-up
	// revokes and grants in turn, each a real change.)
	for i := 0; i < 10 && !ok; i++ {
		if i > 0 {
			require.Empty(t, lc.consent(t, "revokeConsent", "RECORDS_RELEASE").Errors)
		}
		require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
		ev, ok = nextEvent(t, member, time.Second)
	}
	require.True(t, ok, "the member's subscriber on A sees B's write")
	assert.Equal(t, lc.caseID, ev["caseId"])
	assert.Contains(t, testenv.Get(ev, "event", "type"), "RECORDS_RELEASE")
	for { // drain repeats of the warm-up write
		ev, ok = nextEvent(t, member, 300*time.Millisecond)
		if !ok {
			break
		}
	}

	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	ev, ok = nextEvent(t, member, 5*time.Second)
	require.True(t, ok)
	assert.Equal(t, "RECORD_ADDED", testenv.Get(ev, "event", "type"))
	ev, ok = nextEvent(t, member, 5*time.Second)
	require.True(t, ok)
	assert.Equal(t, "TRIAGE", testenv.Get(ev, "event", "toStatus"))

	// The policy is ins-northstar's: its insurer sees the case's events.
	ev, ok = nextEvent(t, insurer, 5*time.Second)
	require.True(t, ok, "the insurer sees events of cases on its policies")
	assert.Equal(t, lc.caseID, ev["caseId"])

	// Assign abroad: the partner starts seeing the case's events.
	require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
	res := lc.assign(t, b.Token(t, testenv.Persona("coordinator")), specialistIn(t, b, seed.NetworkEuro, "DE"), nil)
	require.Empty(t, res.Errors, res.Raw)
	ev, ok = nextEvent(t, partner, 5*time.Second)
	require.True(t, ok, "the partner sees the assignment")
	assert.Equal(t, "ASSIGNED", testenv.Get(ev, "event", "toStatus"))

	// Revoke: the revocation itself and everything after are invisible to the partner.
	require.Empty(t, lc.consent(t, "revokeConsent", "INTERNATIONAL_SHARING").Errors)
	require.Empty(t, lc.consent(t, "revokeConsent", "RECORDS_RELEASE").Errors)
	ev, ok = nextEvent(t, member, 5*time.Second)
	require.True(t, ok)
	for ok && testenv.Get(ev, "event", "type") != "CONSENT_REVOKED:RECORDS_RELEASE" {
		ev, ok = nextEvent(t, member, 5*time.Second)
	}
	require.True(t, ok, "the member saw the last write, so the hub has dispatched it")
	_, got := nextEvent(t, partner, 500*time.Millisecond)
	assert.False(t, got, "a revoked partner receives nothing more")
}

func TestSubscriptionsRefuseBadTokensAndForeignCases(t *testing.T) {
	env := testenv.Start(t)
	url := env.Serve(t)

	t.Run("no token closes the socket with 4401", func(t *testing.T) {
		ws, err := testenv.DialWS(t, url, "")
		require.NoError(t, err)
		_, err = ws.Next(5 * time.Second)
		for err == nil {
			_, err = ws.Next(5 * time.Second)
		}
		assert.Equal(t, websocket.StatusCode(4401), websocket.CloseStatus(err))
	})
	t.Run("an expired token closes the socket with 4401", func(t *testing.T) {
		c := auth.Claims{Role: "member", Org: seed.InsurerNorthstar}
		c.Subject = seed.DemoMember
		tok, err := auth.MintHS256(env.Secret, c, time.Minute, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		ws, err := testenv.DialWS(t, url, tok)
		require.NoError(t, err)
		_, err = ws.Next(5 * time.Second)
		for err == nil {
			_, err = ws.Next(5 * time.Second)
		}
		assert.Equal(t, websocket.StatusCode(4401), websocket.CloseStatus(err))
	})
	t.Run("the connection ends when the token expires", func(t *testing.T) {
		c := auth.Claims{Role: "member", Org: seed.InsurerNorthstar}
		c.Subject = seed.DemoMember
		tok, err := auth.MintHS256(env.Secret, c, 2*time.Second, time.Now())
		require.NoError(t, err)
		ws, err := testenv.DialWS(t, url, tok)
		require.NoError(t, err)
		ack(t, ws)
		ws.Subscribe(t, "e", caseEventsDoc, nil)
		start := time.Now()
		for err == nil {
			_, err = ws.Next(10 * time.Second)
		}
		assert.NotErrorIs(t, err, testenv.ErrTimeout, "the server closed the socket")
		assert.Less(t, time.Since(start), 9*time.Second)
	})
	t.Run("another member's case is not found", func(t *testing.T) {
		lc := newLifecycle(t, env, true, 3)
		lc.open(t)
		ws, err := testenv.DialWS(t, url, env.Token(t, testenv.Persona("member")))
		require.NoError(t, err)
		ack(t, ws)
		ws.Subscribe(t, "x", caseEventsDoc, map[string]any{"id": lc.caseID})
		m, err := ws.Next(5 * time.Second)
		require.NoError(t, err)
		// gqlgen reports a resolver error as a "next" carrying only errors.
		assert.Contains(t, []string{"error", "next"}, m.Type)
		assert.Contains(t, string(m.Payload), "NOT_FOUND")
		assert.NotContains(t, string(m.Payload), "caseId")
	})
}
