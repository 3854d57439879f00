package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// collReads counts reads per collection while on.
type collReads struct {
	mu     sync.Mutex
	on     bool
	counts map[string]int
}

func (c *collReads) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch e.CommandName {
		case "find", "aggregate", "count", "getMore":
		default:
			return
		}
		coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.on {
			c.counts[coll]++
		}
	}}
}

func (c *collReads) run(f func()) map[string]int {
	c.mu.Lock()
	c.on, c.counts = true, map[string]int{}
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.counts
}

const accessLogDoc = `query($first: Int, $after: String, $filter: AccessLogFilter) { myAccessLog(first: $first, after: $after, filter: $filter) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { at firstAt day count organization { orgId name kind } role dataCategories purpose actor caseReference } } } }`

// accessLines is a member's whole access log as "org role category case" lines.
func accessLines(t *testing.T, env *testenv.Env, token string) []string {
	t.Helper()
	res := env.Do(t, token, accessLogDoc, map[string]any{"first": 100})
	require.Empty(t, res.Errors, res.Raw)
	var out []string
	for _, e := range testenv.Get(res.Data, "myAccessLog", "edges").([]any) {
		n := e.(map[string]any)["node"].(map[string]any)
		cats := n["dataCategories"].([]any)
		if cats[0] == "CLINICAL" {
			// Patient reads name their case once the audit knows it there.
			assert.NotNil(t, n["caseReference"], "a clinical read is through a case")
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", testenv.Get(n, "organization", "orgId"), n["role"], n["purpose"], cats[0]))
	}
	sort.Strings(out)
	return out
}

// Issue 17: a provider, a partner and the insurer each read a member's
// data; the member's log shows exactly those organisations and categories,
// today, and nobody else's log shows any of it.
func TestMembersAccessLogShowsWhoReadTheirData(t *testing.T) {
	reads := &collReads{}
	env := testenv.Start(t, testenv.Options{Monitor: reads.monitor()})
	coordinator := env.Token(t, testenv.Persona("coordinator"))

	lc := newLifecycle(t, env, true, 5)
	var refs []string
	caseFor := func(org, country string) string {
		lc.open(t)
		require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
		require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
		require.Empty(t, lc.addRecord(t, lc.member).Errors)
		require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, org, country), nil).Errors)
		return lc.caseID
	}
	provCase := caseFor(seed.ProviderToronto, "CA")
	partCase := caseFor(seed.NetworkEuro, "DE")
	assert.Empty(t, accessLines(t, env, lc.member), "the member's own reads and the coordinator's admin writes are not listed")

	read := `query($id: ID!) { case(id: $id) { reference diagnosis { code } patient { givenName birthYear } } }`
	for _, r := range []struct{ persona, caseID string }{{"provider", provCase}, {"partner", partCase}, {"insurer", provCase}} {
		res := env.As(t, r.persona, read, map[string]any{"id": r.caseID})
		require.NotNil(t, testenv.Get(res.Data, "case"), res.Raw)
		refs = append(refs, testenv.Get(res.Data, "case", "reference").(string))
	}
	// The partner reads again: the same entry counts twice.
	env.As(t, "partner", read, map[string]any{"id": partCase})

	assert.Equal(t, []string{
		"ins-northstar INSURER INSURER_ADMINISTRATION DEMOGRAPHICS",
		"ins-northstar INSURER INSURER_ADMINISTRATION IDENTITY",
		"net-euro-experts PARTNER SPECIALIST_REVIEW CLINICAL",
		"net-euro-experts PARTNER SPECIALIST_REVIEW DEMOGRAPHICS",
		"prov-toronto-general PROVIDER SPECIALIST_REVIEW CLINICAL",
		"prov-toronto-general PROVIDER SPECIALIST_REVIEW DEMOGRAPHICS",
		"prov-toronto-general PROVIDER SPECIALIST_REVIEW IDENTITY",
	}, accessLines(t, env, lc.member), "the partner's denied identity read is no access; the insurer never reads clinical fields")

	res := env.Do(t, lc.member, accessLogDoc, map[string]any{"first": 100, "filter": map[string]any{"organizationKind": "NETWORK"}})
	require.Empty(t, res.Errors, res.Raw)
	edges := testenv.Get(res.Data, "myAccessLog", "edges").([]any)
	require.Len(t, edges, 2)
	for _, e := range edges {
		n := e.(map[string]any)["node"].(map[string]any)
		assert.Equal(t, env.Now.UTC().Format("2006-01-02"), n["day"])
		assert.Equal(t, "Euro Experts", testenv.Get(n, "organization", "name"))
		assert.Equal(t, "NETWORK", testenv.Get(n, "organization", "kind"))
		assert.Equal(t, "PERSON", n["actor"])
		if testenv.Get(n, "dataCategories", 0) == "CLINICAL" {
			assert.Equal(t, refs[1], n["caseReference"])
		}
		assert.EqualValues(t, 2, n["count"], "two reads that day")
	}

	t.Run("another member sees none of it", func(t *testing.T) {
		assert.Empty(t, accessLines(t, env, env.Token(t, testenv.Persona("member"))))
	})

	t.Run("no other role reads an access log, coordinators included", func(t *testing.T) {
		for _, role := range []string{"insurer", "provider", "partner", "coordinator"} {
			res := env.As(t, role, accessLogDoc, nil)
			assert.Contains(t, res.Codes(), "FORBIDDEN", role)
			assert.NotContains(t, res.Raw, "net-euro-experts", role)
		}
	})

	t.Run("no cursor pages into another member's log", func(t *testing.T) {
		first := env.Do(t, lc.member, accessLogDoc, map[string]any{"first": 1})
		theirs := testenv.Get(first.Data, "myAccessLog", "pageInfo", "endCursor").(string)
		other := env.Token(t, testenv.Persona("member"))
		raw, _ := base64.RawURLEncoding.DecodeString(theirs)
		forged := []string{
			theirs,
			store.EncodeCursor(strings.TrimPrefix(string(raw), "c1:")[:33] + "9999-12-31"),
			store.EncodeCursor("ffffffffffffffffffffffffffffffff;"),
			store.EncodeCursor("~"),
		}
		for _, c := range forged {
			res := env.Do(t, other, accessLogDoc, map[string]any{"first": 100, "after": c})
			assert.Contains(t, res.Codes(), "BAD_USER_INPUT", res.Raw)
			assert.NotContains(t, res.Raw, "net-euro-experts")
			assert.NotContains(t, res.Raw, "prov-toronto-general")
		}
	})

	t.Run("a page is one read of the access log", func(t *testing.T) {
		var seen []string
		var after any
		for {
			var res testenv.Response
			counts := reads.run(func() {
				res = env.Do(t, lc.member, strings.Replace(accessLogDoc, "totalCount ", "", 1), map[string]any{"first": 3, "after": after})
			})
			require.Empty(t, res.Errors, res.Raw)
			assert.Equal(t, 1, counts["access_log"], "%v", counts)
			for _, e := range testenv.Get(res.Data, "myAccessLog", "edges").([]any) {
				seen = append(seen, e.(map[string]any)["cursor"].(string))
			}
			if testenv.Get(res.Data, "myAccessLog", "pageInfo", "hasNextPage") != true {
				break
			}
			after = testenv.Get(res.Data, "myAccessLog", "pageInfo", "endCursor")
		}
		assert.Len(t, seen, 7)
	})
}
