package webhooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

func TestWebhookAPIStaysInsideTheCallersOrg(t *testing.T) {
	env := testenv.Start(t)
	rc := newReceiver(t)
	partner := testenv.Persona("partner")
	subID := subscribe(t, env, partner, rc, "STATUS_CHANGED", "consent_revoked")

	t.Run("the secret is shown once and never again", func(t *testing.T) {
		assert.True(t, strings.HasPrefix(rc.secret, "whsec_"))
		res := env.Do(t, env.Token(t, partner), listDoc, nil)
		require.Empty(t, res.Errors, res.Raw)
		assert.NotContains(t, res.Raw, strings.TrimPrefix(rc.secret, "whsec_"))
		assert.Equal(t, float64(1), testenv.Get(res.Data, "webhookSubscriptions", "totalCount"))
		node := testenv.Get(res.Data, "webhookSubscriptions", "edges", 0, "node")
		assert.Equal(t, subID, testenv.Get(node, "id"))
		assert.Equal(t, []any{"CONSENT_REVOKED", "STATUS_CHANGED"}, testenv.Get(node, "eventTypes"))
		res = env.Do(t, env.Token(t, partner), `query($id: ID!) { node(id: $id) { id ... on WebhookSubscription { url } } }`, map[string]any{"id": subID})
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, rc.URL(), testenv.Get(res.Data, "node", "url"))
	})

	require.NoError(t, env.Store.EnsureOrganization(context.Background(), domain.Organization{ID: "net-other", Name: "Other Network", Kind: domain.OrgNetwork, Country: "FR"}))
	other := domain.Principal{Subject: "u-other", Role: domain.RolePartner, Org: "net-other"}
	sameOrgOtherRole := domain.Principal{Subject: "u-x", Role: domain.RoleInsurer, Org: seed.NetworkEuro}
	t.Run("a role that does not fit the org's kind is refused outright", func(t *testing.T) {
		res := env.Do(t, env.Token(t, sameOrgOtherRole), listDoc, nil)
		assert.Equal(t, []string{"UNAUTHENTICATED"}, res.Codes(), res.Raw)
	})
	t.Run("another org sees nothing and cannot delete", func(t *testing.T) {
		for _, p := range []domain.Principal{other} {
			res := env.Do(t, env.Token(t, p), listDoc, nil)
			require.Empty(t, res.Errors, res.Raw)
			assert.Empty(t, testenv.Get(res.Data, "webhookSubscriptions", "edges"))
			assert.Equal(t, float64(0), testenv.Get(res.Data, "webhookSubscriptions", "totalCount"))
			res = env.Do(t, env.Token(t, p), `mutation($id: ID!) { deleteWebhookSubscription(input: {id: $id}) { deletedId } }`, map[string]any{"id": subID})
			assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
			res = env.Do(t, env.Token(t, p), `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": subID})
			assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
		}
	})

	t.Run("members and coordinators have no webhooks", func(t *testing.T) {
		for _, who := range []string{"member", "coordinator"} {
			res := env.As(t, who, createDoc, map[string]any{"in": map[string]any{"url": rc.URL()}})
			assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
			res = env.As(t, who, listDoc, nil)
			assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
		}
		res := env.Do(t, env.Token(t, partner, "specialists:read"), createDoc, map[string]any{"in": map[string]any{"url": rc.URL()}})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), "a token without cases:read: %s", res.Raw)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, in := range []map[string]any{
			{"url": "http://hooks.example.com/x"},
			{"url": "ftp://127.0.0.1/x"},
			{"url": "https://user:pw@hooks.example.com/"},
			{"url": rc.URL(), "eventTypes": []any{"DIAGNOSIS_READ"}},
		} {
			res := env.Do(t, env.Token(t, partner), createDoc, map[string]any{"in": in})
			assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), "%v: %s", in, res.Raw)
		}
	})

	t.Run("the owner deletes it", func(t *testing.T) {
		colleague := domain.Principal{Subject: "u-euro-other-desk", Role: domain.RolePartner, Org: seed.NetworkEuro}
		res := env.Do(t, env.Token(t, colleague), `mutation($id: ID!) { deleteWebhookSubscription(input: {id: $id}) { deletedId } }`, map[string]any{"id": subID})
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, subID, testenv.Get(res.Data, "deleteWebhookSubscription", "deletedId"))
		res = env.Do(t, env.Token(t, partner), listDoc, nil)
		assert.Empty(t, testenv.Get(res.Data, "webhookSubscriptions", "edges"))
	})
}

// Each role's endpoint gets exactly the events it could see over the
// socket, with admin fields only, signed, in order per case; a partner's
// stop when the member revokes international sharing.
func TestPayloadsFollowEachRolesVisibility(t *testing.T) {
	env := testenv.Start(t)
	dispatcher(t, env.Store, fast())
	insurerRC, providerRC, partnerRC := newReceiver(t), newReceiver(t), newReceiver(t)
	insurer, provider, partner := testenv.Persona("insurer"), testenv.Persona("provider"), testenv.Persona("partner")
	subscribe(t, env, insurer, insurerRC)
	subscribe(t, env, provider, providerRC)
	subscribe(t, env, partner, partnerRC)

	m := newMember(t, env)
	caseID := m.open(t)
	m.triage(t, caseID)
	m.consent(t, caseID, "grantConsent", "INTERNATIONAL_SHARING")
	assign(t, env, caseID, specialistIn(t, env, seed.NetworkEuro, "DE"))
	eventually(t, 10*time.Second, "the partner receives the assignment", func() bool { return len(partnerRC.delivered()) == 1 })
	m.consent(t, caseID, "revokeConsent", "INTERNATIONAL_SHARING")
	m.consent(t, caseID, "revokeConsent", "RECORDS_RELEASE")
	// Revoked already: a no-op, which records and sends nothing.
	m.consent(t, caseID, "revokeConsent", "INTERNATIONAL_SHARING")

	// SUBMITTED, CONSENT_GRANTED, RECORD_ADDED, STATUS_CHANGED (TRIAGE),
	// CONSENT_GRANTED, STATUS_CHANGED (ASSIGNED), CONSENT_REVOKED,
	// CONSENT_REVOKED.
	eventually(t, 10*time.Second, "the insurer receives all 8 events", func() bool { return len(insurerRC.delivered()) == 8 })

	got := insurerRC.delivered()
	var types []string
	version := 0
	for _, x := range got {
		assert.Equal(t, caseID, x.Payload.Data.CaseID)
		assert.GreaterOrEqual(t, x.Payload.Data.Version, version, "in order per case")
		version = x.Payload.Data.Version
		types = append(types, x.Payload.Type)
	}
	assert.Equal(t, []string{
		"SUBMITTED", "CONSENT_GRANTED:RECORDS_RELEASE", "RECORD_ADDED", "STATUS_CHANGED",
		"CONSENT_GRANTED:INTERNATIONAL_SHARING", "STATUS_CHANGED", "CONSENT_REVOKED:INTERNATIONAL_SHARING",
		"CONSENT_REVOKED:RECORDS_RELEASE",
	}, types, "in the order they happened")

	p := partnerRC.delivered()
	require.Len(t, p, 1, "the partner sees the case only while assigned to it with consent")
	assert.Equal(t, "STATUS_CHANGED", p[0].Payload.Type)
	assert.Equal(t, "ASSIGNED", p[0].Payload.Data.Status)
	assert.Len(t, deliveries(t, env, partner), 1, "nothing after the revocation was even queued for the partner")
	assert.Empty(t, providerRC.snapshot(), "the provider's org was never assigned the case")

	for _, rc := range []*receiver{insurerRC, partnerRC} {
		rc.checkClean(t)
		for _, x := range rc.snapshot() {
			assert.NotContains(t, x.Body, clinical)
			assert.NotContains(t, x.Body, "Mastectomy")
			assert.NotContains(t, x.Body, "surgery")
			assert.NotContains(t, x.Body, "Wanda")
			top, data := keys(t, x.Body)
			assert.Equal(t, []string{"data", "timestamp", "type"}, top)
			assert.Equal(t, []string{"at", "caseId", "eventType", "status", "version"}, data, "admin fields only")
		}
	}
	assert.Zero(t, insurerRC.duplicates())
}

// A partner's delivery still pending when consent is revoked is cancelled,
// never sent.
func TestRevocationCancelsPendingDeliveries(t *testing.T) {
	env := testenv.Start(t)
	o := fast()
	o.BackoffBase, o.BackoffMax = 300*time.Millisecond, 300*time.Millisecond
	dispatcher(t, env.Store, o)
	rc := newReceiver(t)
	rc.setRespond(func(*http.Request, string, int) int { return http.StatusServiceUnavailable })
	partner := testenv.Persona("partner")
	subscribe(t, env, partner, rc)

	m := newMember(t, env)
	caseID := m.open(t)
	m.triage(t, caseID)
	m.consent(t, caseID, "grantConsent", "INTERNATIONAL_SHARING")
	assign(t, env, caseID, specialistIn(t, env, seed.NetworkEuro, "DE"))
	eventually(t, 10*time.Second, "a first failed attempt", func() bool { return len(rc.snapshot()) >= 1 })
	m.consent(t, caseID, "revokeConsent", "INTERNATIONAL_SHARING")
	rc.setRespond(nil)
	eventually(t, 10*time.Second, "the delivery is cancelled", func() bool {
		for _, d := range deliveries(t, env, partner) {
			return d["status"] == "CANCELLED"
		}
		return false
	})
	assert.Empty(t, rc.delivered(), "never delivered after the revocation")
}

// keys returns the sorted keys of a JSON object and of its "data".
func keys(t *testing.T, body string) (top, data []string) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m))
	for k := range m {
		top = append(top, k)
	}
	for k := range m["data"].(map[string]any) {
		data = append(data, k)
	}
	sort.Strings(top)
	sort.Strings(data)
	return top, data
}
