package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

const noticeDoc = `subscription($id: ID) { caseEvents(caseId: $id) { caseId version event { type actorRole }
  access { organization { name kind } dataCategories at caseReference } } }`

const readCaseDoc = `query($id: ID!) { case(id: $id) { reference diagnosis { code } patient { givenName } } }`

// wsEvents collects a websocket's caseEvents messages.
type wsEvents struct {
	t  *testing.T
	ws *testenv.WS
}

// next returns the next caseEvents payload, or false after d.
func (w wsEvents) next(d time.Duration) (map[string]any, bool) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m, err := w.ws.Next(time.Until(deadline))
		if err != nil {
			return nil, false
		}
		switch m.Type {
		case "next":
			var p struct {
				Data   map[string]any `json:"data"`
				Errors []any          `json:"errors"`
			}
			require.NoError(w.t, json.Unmarshal(m.Payload, &p))
			require.Empty(w.t, p.Errors, string(m.Payload))
			return p.Data["caseEvents"].(map[string]any), true
		case "error", "complete":
			w.t.Fatalf("subscription ended: %s %s", m.Type, m.Payload)
		}
	}
	return nil, false
}

// until reads events until one of type typ arrives and returns the types
// seen before it.
func (w wsEvents) until(typ string) (before []string, got map[string]any) {
	w.t.Helper()
	for {
		ev, ok := w.next(5 * time.Second)
		require.True(w.t, ok, "no %s event in time (saw %v)", typ, before)
		et := testenv.Get(ev, "event", "type").(string)
		if et == typ {
			return before, ev
		}
		before = append(before, et)
	}
}

// Issue 17, item 2: the first time a provider reads a member's case, the
// member's subscription and the insurer's webhook are told (the webhook
// without PHI, exactly these keys); a second read is not announced, the
// insurer's and the operator's reads never are, and the reading
// organisation's own webhook never hears of it.
func TestAnOrganisationsFirstReadIsAnnouncedOnceToTheMemberAndTheInsurer(t *testing.T) {
	env := testenv.Start(t)
	insurerHook, providerHook := newReceiver(t), newReceiver(t)
	subscribe(t, env, testenv.Persona("insurer"), insurerHook)
	subscribe(t, env, testenv.Persona("provider"), providerHook)
	dispatcher(t, env.Store, fast())

	m := newMember(t, env)
	caseID := m.open(t)
	m.triage(t, caseID)
	assign(t, env, caseID, specialistIn(t, env, seed.ProviderToronto, "CA"))

	ws, err := testenv.DialWS(t, env.Serve(t), m.token)
	require.NoError(t, err)
	first, err := ws.Next(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "connection_ack", first.Type, string(first.Payload))
	ws.Subscribe(t, "1", noticeDoc, map[string]any{"id": caseID})
	member := wsEvents{t: t, ws: ws}
	// A subscribe has no acknowledgement: toggle a consent until the
	// subscription is live, then drain the warm-up.
	live := false
	for i := 0; i < 20 && !live; i++ {
		op := "grantConsent"
		if i%2 == 1 {
			op = "revokeConsent"
		}
		m.consent(t, caseID, op, "INTERNATIONAL_SHARING")
		_, live = member.next(500 * time.Millisecond)
	}
	require.True(t, live, "the member's subscription is live")
	for _, ok := member.next(300 * time.Millisecond); ok; _, ok = member.next(300 * time.Millisecond) {
	}

	// The insurer and the operator read: no notice.
	for _, who := range []string{"insurer", "coordinator"} {
		res := env.As(t, who, readCaseDoc, map[string]any{"id": caseID})
		require.NotNil(t, testenv.Get(res.Data, "case"), res.Raw)
	}
	// The provider reads, twice.
	res := env.As(t, "provider", readCaseDoc, map[string]any{"id": caseID})
	require.Empty(t, res.Errors, res.Raw)
	ref := testenv.Get(res.Data, "case", "reference").(string)
	env.As(t, "provider", readCaseDoc, map[string]any{"id": caseID})
	// The insurer and the operator read again, then a sentinel event: every
	// notice those reads could cause is published before it.
	for _, who := range []string{"insurer", "coordinator"} {
		env.As(t, who, readCaseDoc, map[string]any{"id": caseID})
	}
	m.consent(t, caseID, "revokeConsent", "RECORDS_RELEASE")

	before, ev := member.until(domain.EventDataAccessedByNewOrg)
	for _, typ := range before {
		// Only a straggler of the warm-up's consent toggling may come
		// first (on a busy machine one can outlast the drain).
		assert.Contains(t, []string{"CONSENT_GRANTED", "CONSENT_REVOKED"}, typ, "nothing but the warm-up comes before the provider's first read")
	}
	assert.Equal(t, "PROVIDER", testenv.Get(ev, "event", "actorRole"))
	access := ev["access"].(map[string]any)
	assert.Equal(t, map[string]any{"name": "Toronto General", "kind": "PROVIDER"}, access["organization"])
	assert.Equal(t, []any{"CLINICAL", "IDENTITY"}, access["dataCategories"])
	assert.Equal(t, ref, access["caseReference"])
	after, _ := member.until("CONSENT_REVOKED:RECORDS_RELEASE")
	assert.Empty(t, after, "the provider's second read, and the insurer's and the operator's reads, are not announced")

	// The insurer's webhook: the notice once, then the sentinel.
	eventually(t, 10*time.Second, "the insurer receives the sentinel", func() bool {
		for _, d := range insurerHook.delivered() {
			if d.Payload.Type == "CONSENT_REVOKED:RECORDS_RELEASE" {
				return true
			}
		}
		return false
	})
	var notices []received
	for _, d := range insurerHook.delivered() {
		if d.Payload.Type == domain.EventDataAccessedByNewOrg {
			notices = append(notices, d)
		}
	}
	require.Len(t, notices, 1, "one notice per new organisation")
	top, dataKeys := keys(t, notices[0].Body)
	assert.Equal(t, []string{"data", "timestamp", "type"}, top)
	assert.Equal(t, []string{"at", "caseId", "caseReference", "dataCategories", "eventType", "organization", "version"}, dataKeys)
	var body struct{ Data map[string]any }
	require.NoError(t, json.Unmarshal([]byte(notices[0].Body), &body))
	data := body.Data
	assert.Equal(t, caseID, data["caseId"])
	assert.Equal(t, ref, data["caseReference"])
	assert.Equal(t, []any{"CLINICAL", "IDENTITY"}, data["dataCategories"])
	assert.Equal(t, map[string]any{"name": "Toronto General", "kind": "PROVIDER"}, data["organization"])
	for _, phi := range []string{"Wanda", "Hook", "1970", clinical, "C50", "Mastectomy", seed.InsurerNorthstar + ":"} {
		assert.NotContains(t, notices[0].Body, phi, "the webhook carries no PHI")
	}
	insurerHook.checkClean(t)

	eventually(t, 10*time.Second, "the provider receives the sentinel", func() bool {
		for _, d := range providerHook.delivered() {
			if d.Payload.Type == "CONSENT_REVOKED:RECORDS_RELEASE" {
				return true
			}
		}
		return false
	})
	for _, d := range providerHook.snapshot() {
		assert.NotEqual(t, domain.EventDataAccessedByNewOrg, d.Payload.Type, "the reader's own webhook never hears of it")
	}
}

// Two gateway processes that each see an organisation's first read of a
// member at the same time announce it once: the insert on the pair's _id
// decides.
func TestAFirstReadThroughTwoReplicasAtOnceIsAnnouncedOnce(t *testing.T) {
	a := testenv.Start(t)
	b := a.Replica(t)
	m := newMember(t, a)
	caseID := m.open(t)
	m.triage(t, caseID)
	assign(t, a, caseID, specialistIn(t, a, seed.ProviderToronto, "CA"))

	// Tokens and bodies are made here: require may not run on the
	// goroutines below.
	tokA, tokB := a.Token(t, testenv.Persona("provider")), b.Token(t, testenv.Persona("provider"))
	body, err := json.Marshal(map[string]any{"query": readCaseDoc, "variables": map[string]any{"id": caseID}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		env, tok := a, tokA
		if i%2 == 1 {
			env, tok = b, tokB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			env.Handler.ServeHTTP(rec, req)
			assert.Equal(t, http.StatusOK, rec.Code)
			assert.NotContains(t, rec.Body.String(), `"errors"`)
		}()
	}
	wg.Wait()
	recs, err := a.Store.CaseEventsAfter(context.Background(), 0, 10_000)
	require.NoError(t, err)
	n := 0
	for _, r := range recs {
		if r.Type == domain.EventDataAccessedByNewOrg {
			n++
			assert.Equal(t, seed.ProviderToronto, r.Access.Org)
		}
	}
	assert.Equal(t, 1, n, "one notice for the pair, whichever replica read first")
}
