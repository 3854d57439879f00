package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// The API contract of the README's "Who calls", §5 and §6, seen from a client: HTTP and
// authentication, pagination, eligibility and idempotency of
// requestSecondOpinion, the audit trail, and errors that never leak.

// ---- helpers

const (
	apiCreatePolicyDoc = `mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id policyNumber status version } } }`
	apiUpdatePolicyDoc = `mutation($in: UpdatePolicyInput!) { updatePolicy(input: $in) { policy { id status version secondOpinion { casesPerYear } } } }`
	apiPolicyDoc       = `query($id: ID!) { policy(id: $id) { id status version secondOpinion { covered casesPerYear casesUsed international } } }`
	apiRequestDoc      = `mutation($in: RequestSecondOpinionInput!) {
  requestSecondOpinion(input: $in) { case { id status reference urgency dueAt submittedAt } } }`
	apiUpsertSpecialistDoc = `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { id orgId } } }`
)

var apiSeq atomic.Int64

// apiPolicy is a fresh policy of the insurer persona insuring one new member.
type apiPolicy struct {
	id, number, memberID string
}

// apiUnique returns a string no other call in this test binary returns.
func apiUnique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000_000, apiSeq.Add(1))
}

func apiPolicyInput(number, memberID string, covered bool, casesPerYear int) map[string]any {
	return map[string]any{
		"policyNumber": number, "product": "EXTENDED_HEALTH", "effectiveFrom": "2025-01-01",
		"secondOpinion": map[string]any{"covered": covered, "casesPerYear": casesPerYear, "international": false},
		"insured": []any{map[string]any{
			"memberId": memberID, "givenName": "Nora", "familyName": "Apitest", "dateOfBirth": "1968-02-03",
			"sex": "FEMALE", "country": "CA", "language": "en",
		}},
	}
}

func newAPIPolicy(t *testing.T, env *testenv.Env, covered bool, casesPerYear int) apiPolicy {
	t.Helper()
	member := apiUnique("m-api")
	number := "API-" + member
	res := env.As(t, "insurer", apiCreatePolicyDoc, map[string]any{"in": apiPolicyInput(number, member, covered, casesPerYear)})
	require.Empty(t, res.Errors, res.Raw)
	id, ok := testenv.Get(res.Data, "createPolicy", "policy", "id").(string)
	require.True(t, ok, res.Raw)
	return apiPolicy{id: id, number: number, memberID: member}
}

func (p apiPolicy) memberToken(t *testing.T, env *testenv.Env) string {
	t.Helper()
	return env.Token(t, domain.Principal{Subject: p.memberID, Role: domain.RoleMember, Org: seed.InsurerNorthstar})
}

// read returns the policy as its insurer sees it.
func (p apiPolicy) read(t *testing.T, env *testenv.Env) map[string]any {
	t.Helper()
	res := env.As(t, "insurer", apiPolicyDoc, map[string]any{"id": p.id})
	require.Empty(t, res.Errors, res.Raw)
	pol, ok := testenv.Get(res.Data, "policy").(map[string]any)
	require.True(t, ok, res.Raw)
	return pol
}

func (p apiPolicy) casesUsed(t *testing.T, env *testenv.Env) int {
	t.Helper()
	return apiInt(t, testenv.Get(p.read(t, env), "secondOpinion", "casesUsed"))
}

// requestInput is a valid requestSecondOpinion input for the policy's member.
func (p apiPolicy) requestInput(extra map[string]any) map[string]any {
	in := map[string]any{
		"policyId": p.id, "patientMemberId": p.memberID, "specialty": "oncology",
		"diagnosis": map[string]any{"code": "C50.9", "description": "Malignant neoplasm of breast"},
		"questions": []any{"Is surgery needed?"},
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

func apiInt(t *testing.T, v any) int {
	t.Helper()
	f, ok := v.(float64)
	require.True(t, ok, "not a number: %#v", v)
	return int(f)
}

func apiTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "not a string: %#v", v)
	at, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return at
}

func apiRaw(t *testing.T, globalID any) string {
	t.Helper()
	s, ok := globalID.(string)
	require.True(t, ok, "not an id: %#v", globalID)
	_, raw, ok := graph.ParseGlobalID(s)
	require.True(t, ok, "not a global id: %s", s)
	return raw
}

func apiNodes(t *testing.T, data map[string]any, root string) []map[string]any {
	t.Helper()
	edges, ok := testenv.Get(data, root, "edges").([]any)
	require.True(t, ok, "no %s.edges in %#v", root, data)
	out := make([]map[string]any, 0, len(edges))
	for _, e := range edges {
		out = append(out, e.(map[string]any)["node"].(map[string]any))
	}
	return out
}

// apiHTTP sends one raw request to the handler.
func apiHTTP(env *testenv.Env, method, target, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	return rec
}

// ---- 1. HTTP and authentication

func TestHTTPRefusesRequestsWithoutAValidToken(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	claims := func(role, org string) auth.Claims {
		c := auth.Claims{Role: role, Org: org}
		c.Subject = "u-api"
		return c
	}
	mint := func(secret []byte, c auth.Claims, now time.Time) string {
		tok, err := auth.MintHS256(secret, c, time.Hour, now)
		require.NoError(t, err)
		return tok
	}
	// The probe names PHI-looking values; a refusal must echo none of them.
	const probe = `query LeakProbeOperation($name: String) { case(id: "Q2FzZTpzZWNyZXQ") { diagnosis { code } } }`
	probeVars := map[string]any{"name": "Alice Martin C50.9"}

	cases := []struct {
		name  string
		token string
		query string
	}{
		{"a request without a token is refused", "", probe},
		{"a garbage token is refused", "not.a.jwt", probe},
		{"an expired token is refused", mint(env.Secret, claims("coordinator", seed.Operator), time.Now().Add(-3*time.Hour)), probe},
		{"a token signed with another secret is refused", mint([]byte(strings.Repeat("x", 48)), claims("coordinator", seed.Operator), time.Now()), probe},
		{"a token with an unknown role is refused", mint(env.Secret, claims("superuser", seed.Operator), time.Now()), probe},
		{"a syntactically invalid document without a token is refused before parsing", "", `{ cases(first: `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := env.Do(t, c.token, c.query, probeVars)
			assert.Equal(t, http.StatusUnauthorized, res.Status, res.Raw)
			require.Len(t, res.Errors, 1, res.Raw)
			assert.Equal(t, "UNAUTHENTICATED", res.Errors[0].Code())
			assert.Nil(t, res.Data)
			for _, leak := range []string{"LeakProbe", "Alice", "C50.9", "Q2FzZTpzZWNyZXQ", "diagnosis", "cases("} {
				assert.NotContains(t, res.Raw, leak)
			}
			if c.token != "" {
				assert.NotContains(t, res.Raw, c.token)
			}
		})
	}

	t.Run("a valid token of the same issuer is accepted", func(t *testing.T) {
		res := env.Do(t, mint(env.Secret, claims("coordinator", seed.Operator), time.Now()), `{ viewer { role } }`, nil)
		assert.Equal(t, http.StatusOK, res.Status, res.Raw)
		assert.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "COORDINATOR", testenv.Get(res.Data, "viewer", "role"))
	})
}

func TestHTTPHealthReadinessAndGraphiQL(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})

	t.Run("healthz answers 200 without a token", func(t *testing.T) {
		rec := apiHTTP(env, http.MethodGet, "/healthz", "", "")
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	})
	t.Run("readyz answers 200 with the store up", func(t *testing.T) {
		rec := apiHTTP(env, http.MethodGet, "/readyz", "", "")
		assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Body.String(), `"database":true`)
	})
	t.Run("GraphiQL is served at / in development", func(t *testing.T) {
		rec := apiHTTP(env, http.MethodGet, "/", "", "")
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Contains(t, rec.Header().Get("Content-Type"), "text/html")
	})
	t.Run("introspection works in development", func(t *testing.T) {
		res := env.As(t, "coordinator", `{ __schema { types { name } } }`, nil)
		assert.Empty(t, res.Errors, res.Raw)
		assert.Contains(t, res.Raw, `"Case"`)
	})

	prod := testenv.Start(t, testenv.Options{NoSeed: true, Production: true})
	t.Run("GraphiQL is not served in production", func(t *testing.T) {
		rec := apiHTTP(prod, http.MethodGet, "/", "", "")
		assert.Equal(t, http.StatusNotFound, rec.Code)
		assert.NotContains(t, rec.Body.String(), "graphiql")
	})
	t.Run("introspection is refused in production", func(t *testing.T) {
		res := prod.As(t, "coordinator", `{ __schema { types { name } } }`, nil)
		assert.NotEmpty(t, res.Errors, res.Raw)
		assert.Nil(t, testenv.Get(res.Data, "__schema"), res.Raw)
		assert.NotContains(t, res.Raw, `"SpecialistConnection"`)
	})
	t.Run("an introspection refusal is a client error, not an internal one", func(t *testing.T) {
		res := prod.As(t, "coordinator", `{ __schema { types { name } } }`, nil)
		require.NotEmpty(t, res.Errors, res.Raw)
		for _, e := range res.Errors {
			assert.Contains(t, []string{"BAD_USER_INPUT", "FORBIDDEN"}, e.Code(), "a probe for the schema is the caller's doing: %s", res.Raw)
		}
		assert.NotContains(t, prod.Logs.String(), "internal error", "a refused introspection is not logged as an internal error")
	})
	t.Run("healthz and readyz still answer in production", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, apiHTTP(prod, http.MethodGet, "/healthz", "", "").Code)
		assert.Equal(t, http.StatusOK, apiHTTP(prod, http.MethodGet, "/readyz", "", "").Code)
	})
}

// ---- 2. Pagination

const apiSpecialistsPageDoc = `query($first: Int, $after: String) { specialists(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`

func TestPaginationSurvivesInsertsBetweenPages(t *testing.T) {
	env := testenv.Start(t)
	coord := env.Token(t, testenv.Persona("coordinator"))

	before := env.Do(t, coord, apiSpecialistsPageDoc, map[string]any{"first": 100})
	require.Empty(t, before.Errors, before.Raw)
	require.Equal(t, false, testenv.Get(before.Data, "specialists", "pageInfo", "hasNextPage"), "the demo data fits one page of 100")
	existing := map[string]bool{}
	for _, n := range apiNodes(t, before.Data, "specialists") {
		existing[n["id"].(string)] = true
	}
	require.Len(t, existing, seed.DemoSize.Specialists)

	seen := map[string]int{}
	inserted := map[string]bool{}
	var after any
	pages, total := 0, -1
	for ; pages < 100; pages++ {
		res := env.Do(t, coord, apiSpecialistsPageDoc, map[string]any{"first": 5, "after": after})
		require.Empty(t, res.Errors, res.Raw)
		nodes := apiNodes(t, res.Data, "specialists")
		assert.LessOrEqual(t, len(nodes), 5)
		edges := testenv.Get(res.Data, "specialists", "edges").([]any)
		for i, n := range nodes {
			seen[n["id"].(string)]++
			if i == len(nodes)-1 {
				assert.Equal(t, testenv.Get(res.Data, "specialists", "pageInfo", "endCursor"), edges[i].(map[string]any)["cursor"],
					"endCursor is the last edge's cursor")
			}
		}
		total = apiInt(t, testenv.Get(res.Data, "specialists", "totalCount"))
		if testenv.Get(res.Data, "specialists", "pageInfo", "hasNextPage") != true {
			break
		}
		after = testenv.Get(res.Data, "specialists", "pageInfo", "endCursor")
		require.NotNil(t, after, res.Raw)
		// Someone adds specialists while the client pages.
		for k := 0; k < 2 && len(inserted) < 12; k++ {
			ins := env.Do(t, coord, apiUpsertSpecialistDoc, map[string]any{"in": map[string]any{
				"name": "Dr. " + apiUnique("Inserted"), "specialties": []any{"oncology"}, "languages": []any{"en"},
				"country": "CA", "orgId": seed.ProviderToronto,
			}})
			require.Empty(t, ins.Errors, ins.Raw)
			inserted[testenv.Get(ins.Data, "upsertSpecialist", "specialist", "id").(string)] = true
		}
	}
	require.Less(t, pages, 100, "paging never ended")
	require.NotEmpty(t, inserted)

	for id, n := range seen {
		assert.Equal(t, 1, n, "specialist %s appeared %d times", id, n)
	}
	for id := range existing {
		assert.Equal(t, 1, seen[id], "a specialist that existed before the first page is seen exactly once: %s", id)
	}
	for id := range seen {
		assert.True(t, existing[id] || inserted[id], "unknown specialist %s", id)
	}
	assert.Equal(t, len(seen), total, "totalCount matches what paging returned")
	assert.Equal(t, len(existing)+len(inserted), total)
}

func TestPaginationRefusesBadArguments(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	foreign := base64.RawURLEncoding.EncodeToString([]byte("offset:20"))
	cases := []struct {
		name string
		vars map[string]any
	}{
		{"first above 100 is refused", map[string]any{"first": 101}},
		{"first of zero is refused", map[string]any{"first": 0}},
		{"a negative first is refused", map[string]any{"first": -1}},
		{"an after that is not a cursor at all is refused", map[string]any{"after": "%%garbage%%"}},
		{"an after in base64 that the API never issued is refused", map[string]any{"after": foreign}},
	}
	for _, root := range []string{"specialists", "cases", "policies"} {
		for _, c := range cases {
			t.Run(root+": "+c.name, func(t *testing.T) {
				doc := fmt.Sprintf(`query($first: Int, $after: String) { %s(first: $first, after: $after) { totalCount } }`, root)
				res := env.As(t, "coordinator", doc, c.vars)
				assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
			})
		}
	}
	t.Run("first of 100 is accepted", func(t *testing.T) {
		res := env.As(t, "coordinator", `{ specialists(first: 100) { totalCount } }`, nil)
		assert.Empty(t, res.Errors, res.Raw)
	})
}

func TestPaginationListsCasesNewestFirst(t *testing.T) {
	env := testenv.Start(t)
	coord := env.Token(t, testenv.Persona("coordinator"))
	const doc = `query($after: String) { cases(first: 7, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { id submittedAt } } } }`
	var (
		after any
		last  time.Time
		ids   = map[string]bool{}
		pages int
		total int
	)
	for ; pages < 50; pages++ {
		res := env.Do(t, coord, doc, map[string]any{"after": after})
		require.Empty(t, res.Errors, res.Raw)
		for _, n := range apiNodes(t, res.Data, "cases") {
			at := apiTime(t, n["submittedAt"])
			if !last.IsZero() {
				assert.False(t, at.After(last), "case %s submitted %s comes after one submitted %s", n["id"], at, last)
			}
			last = at
			assert.False(t, ids[n["id"].(string)], "case %s listed twice", n["id"])
			ids[n["id"].(string)] = true
		}
		total = apiInt(t, testenv.Get(res.Data, "cases", "totalCount"))
		if testenv.Get(res.Data, "cases", "pageInfo", "hasNextPage") != true {
			break
		}
		after = testenv.Get(res.Data, "cases", "pageInfo", "endCursor")
	}
	assert.Greater(t, pages, 1, "the demo cases span several pages of 7")
	assert.Len(t, ids, seed.DemoSize.Cases)
	assert.Equal(t, len(ids), total)
}

// ---- 3. Eligibility

func TestEligibilityOfSecondOpinionRequests(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	insurer := env.Token(t, testenv.Persona("insurer"))

	one := newAPIPolicy(t, env, true, 1)
	t.Run("an insurer's request on a covered policy is submitted with a routine due date", func(t *testing.T) {
		res := env.Do(t, insurer, apiRequestDoc, map[string]any{"in": one.requestInput(map[string]any{"urgency": "ROUTINE"})})
		require.Empty(t, res.Errors, res.Raw)
		c := testenv.Get(res.Data, "requestSecondOpinion", "case").(map[string]any)
		assert.Equal(t, "SUBMITTED", c["status"])
		assert.True(t, strings.HasPrefix(c["reference"].(string), "SO-"), c["reference"])
		assert.Equal(t, 10*24*time.Hour, apiTime(t, c["dueAt"]).Sub(apiTime(t, c["submittedAt"])))
		assert.Equal(t, 1, one.casesUsed(t, env))
	})
	t.Run("an urgent request is due three days after submission", func(t *testing.T) {
		other := newAPIPolicy(t, env, true, 1)
		res := env.Do(t, insurer, apiRequestDoc, map[string]any{"in": other.requestInput(map[string]any{"urgency": "URGENT"})})
		require.Empty(t, res.Errors, res.Raw)
		c := testenv.Get(res.Data, "requestSecondOpinion", "case").(map[string]any)
		assert.Equal(t, "URGENT", c["urgency"])
		assert.Equal(t, 3*24*time.Hour, apiTime(t, c["dueAt"]).Sub(apiTime(t, c["submittedAt"])))
	})
	t.Run("a second request on a one-case policy is not eligible", func(t *testing.T) {
		res := env.Do(t, insurer, apiRequestDoc, map[string]any{"in": one.requestInput(nil)})
		assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes(), res.Raw)
		assert.Equal(t, 1, one.casesUsed(t, env), "a refused request takes nothing")
	})
	t.Run("a policy that does not cover second opinions is not eligible", func(t *testing.T) {
		uncovered := newAPIPolicy(t, env, false, 3)
		res := env.Do(t, insurer, apiRequestDoc, map[string]any{"in": uncovered.requestInput(nil)})
		assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes(), res.Raw)
		assert.Equal(t, 0, uncovered.casesUsed(t, env))
	})
	t.Run("a lapsed policy is not eligible", func(t *testing.T) {
		lapsed := newAPIPolicy(t, env, true, 3)
		up := env.Do(t, insurer, apiUpdatePolicyDoc, map[string]any{"in": map[string]any{"id": lapsed.id, "status": "LAPSED"}})
		require.Empty(t, up.Errors, up.Raw)
		require.Equal(t, "LAPSED", testenv.Get(up.Data, "updatePolicy", "policy", "status"))
		res := env.Do(t, lapsed.memberToken(t, env), apiRequestDoc, map[string]any{"in": lapsed.requestInput(nil)})
		assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes(), res.Raw)
	})
	t.Run("a member may not request for another member", func(t *testing.T) {
		mine, theirs := newAPIPolicy(t, env, true, 3), newAPIPolicy(t, env, true, 3)
		for _, in := range []map[string]any{
			mine.requestInput(map[string]any{"patientMemberId": theirs.memberID}),
			theirs.requestInput(nil),
		} {
			res := env.Do(t, mine.memberToken(t, env), apiRequestDoc, map[string]any{"in": in})
			assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
		}
		assert.Equal(t, 0, mine.casesUsed(t, env))
		assert.Equal(t, 0, theirs.casesUsed(t, env))
	})
	t.Run("a member may request for themselves without naming themselves", func(t *testing.T) {
		self := newAPIPolicy(t, env, true, 3)
		in := self.requestInput(nil)
		delete(in, "patientMemberId")
		res := env.Do(t, self.memberToken(t, env), apiRequestDoc, map[string]any{"in": in})
		assert.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, 1, self.casesUsed(t, env))
	})
	t.Run("an ICD-10 code that is not one is bad user input", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 3)
		for _, code := range []string{"not-a-code", "50.9", "C5", "C50.99999", ""} {
			res := env.Do(t, insurer, apiRequestDoc, map[string]any{"in": pol.requestInput(map[string]any{
				"diagnosis": map[string]any{"code": code, "description": "Something"},
			})})
			assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), "code %q: %s", code, res.Raw)
		}
		assert.Equal(t, 0, pol.casesUsed(t, env))
	})
}

func TestEligibilityPolicyWritesAreGuarded(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	insurer := env.Token(t, testenv.Persona("insurer"))

	t.Run("an update with a stale expectedVersion conflicts and changes nothing", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 3)
		first := env.Do(t, insurer, apiUpdatePolicyDoc, map[string]any{"in": map[string]any{
			"id": pol.id, "expectedVersion": 1,
			"secondOpinion": map[string]any{"covered": true, "casesPerYear": 4, "international": false},
		}})
		require.Empty(t, first.Errors, first.Raw)
		v := apiInt(t, testenv.Get(first.Data, "updatePolicy", "policy", "version"))
		require.Greater(t, v, 1)

		stale := env.Do(t, insurer, apiUpdatePolicyDoc, map[string]any{"in": map[string]any{
			"id": pol.id, "expectedVersion": 1, "status": "CANCELLED",
			"secondOpinion": map[string]any{"covered": false, "casesPerYear": 0, "international": true},
		}})
		assert.Equal(t, []string{"CONFLICT"}, stale.Codes(), stale.Raw)
		now := pol.read(t, env)
		assert.Equal(t, "ACTIVE", now["status"])
		assert.Equal(t, float64(v), now["version"])
		assert.Equal(t, map[string]any{"covered": true, "casesPerYear": float64(4), "casesUsed": float64(0), "international": false}, now["secondOpinion"])
	})
	t.Run("a member may not create a policy", func(t *testing.T) {
		member := apiUnique("m-api")
		tok := env.Token(t, domain.Principal{Subject: member, Role: domain.RoleMember, Org: seed.InsurerNorthstar})
		res := env.Do(t, tok, apiCreatePolicyDoc, map[string]any{"in": apiPolicyInput("API-"+member, member, true, 3)})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
		assert.Nil(t, res.Data, res.Raw)
	})
	t.Run("a duplicate policy number of the same insurer conflicts", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 3)
		res := env.Do(t, insurer, apiCreatePolicyDoc, map[string]any{"in": apiPolicyInput(pol.number, apiUnique("m-api"), true, 3)})
		assert.Equal(t, []string{"CONFLICT"}, res.Codes(), res.Raw)
	})
}

func TestEligibilityRaceForTheLastCaseHasOneWinner(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	pol := newAPIPolicy(t, env, true, 1)
	tok := pol.memberToken(t, env)
	const n = 8
	codes := make([]string, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			res := env.Do(t, tok, apiRequestDoc, map[string]any{"in": pol.requestInput(nil)})
			codes[i] = strings.Join(res.Codes(), ",")
			ids[i], _ = testenv.Get(res.Data, "requestSecondOpinion", "case", "id").(string)
		}(i)
	}
	close(start)
	wg.Wait()

	wins := 0
	for i, c := range codes {
		switch c {
		case "":
			wins++
			assert.NotEmpty(t, ids[i])
		default:
			assert.Equal(t, "NOT_ELIGIBLE", c)
		}
	}
	assert.Equal(t, 1, wins, "codes: %v", codes)
	assert.Equal(t, 1, pol.casesUsed(t, env))
	res := env.Do(t, tok, `{ cases(first: 100) { totalCount } }`, nil)
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, float64(1), testenv.Get(res.Data, "cases", "totalCount"))
}

// ---- Idempotency

func TestIdempotencyOfSecondOpinionRequests(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	memberCases := func(t *testing.T, tok string) int {
		t.Helper()
		res := env.Do(t, tok, `{ cases(first: 100) { totalCount } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		return apiInt(t, testenv.Get(res.Data, "cases", "totalCount"))
	}

	t.Run("a retry with the same key and input returns the first case", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 5)
		tok := pol.memberToken(t, env)
		in := pol.requestInput(map[string]any{"idempotencyKey": apiUnique("key")})
		first := env.Do(t, tok, apiRequestDoc, map[string]any{"in": in})
		again := env.Do(t, tok, apiRequestDoc, map[string]any{"in": in})
		require.Empty(t, first.Errors, first.Raw)
		require.Empty(t, again.Errors, again.Raw)
		assert.Equal(t, testenv.Get(first.Data, "requestSecondOpinion", "case", "id"), testenv.Get(again.Data, "requestSecondOpinion", "case", "id"))
		assert.Equal(t, testenv.Get(first.Data, "requestSecondOpinion", "case", "reference"), testenv.Get(again.Data, "requestSecondOpinion", "case", "reference"))
		assert.Equal(t, 1, pol.casesUsed(t, env))
		assert.Equal(t, 1, memberCases(t, tok))
	})
	t.Run("the same key with another input is refused", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 5)
		tok := pol.memberToken(t, env)
		key := apiUnique("key")
		first := env.Do(t, tok, apiRequestDoc, map[string]any{"in": pol.requestInput(map[string]any{"idempotencyKey": key})})
		require.Empty(t, first.Errors, first.Raw)
		other := env.Do(t, tok, apiRequestDoc, map[string]any{"in": pol.requestInput(map[string]any{
			"idempotencyKey": key, "questions": []any{"A different question?"},
		})})
		assert.Equal(t, []string{"IDEMPOTENCY_KEY_REUSED"}, other.Codes(), other.Raw)
		assert.Equal(t, 1, pol.casesUsed(t, env))
		assert.Equal(t, 1, memberCases(t, tok))
	})
	t.Run("concurrent retries with one key all get the one case", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 5)
		tok := pol.memberToken(t, env)
		in := pol.requestInput(map[string]any{"idempotencyKey": apiUnique("key")})
		const n = 6
		ids := make([]string, n)
		codes := make([]string, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				res := env.Do(t, tok, apiRequestDoc, map[string]any{"in": in})
				codes[i] = strings.Join(res.Codes(), ",")
				ids[i], _ = testenv.Get(res.Data, "requestSecondOpinion", "case", "id").(string)
			}(i)
		}
		close(start)
		wg.Wait()
		for i := range ids {
			assert.Empty(t, codes[i], "retry %d failed", i)
			assert.NotEmpty(t, ids[i])
			assert.Equal(t, ids[0], ids[i])
		}
		assert.Equal(t, 1, pol.casesUsed(t, env))
		assert.Equal(t, 1, memberCases(t, tok))
	})
}

// ---- 4. Audit

const apiAuditDoc = `query($subject: String) { auditEvents(first: 100, filter: {subject: $subject}) {
  edges { node { subject role org operation resourceType resourceId fieldGroup requestId outcome at } } } }`

// apiAuditOf returns the audit events caused by subject, as a coordinator reads them.
func apiAuditOf(t *testing.T, env *testenv.Env, subject string) []map[string]any {
	t.Helper()
	res := env.As(t, "coordinator", apiAuditDoc, map[string]any{"subject": subject})
	require.Empty(t, res.Errors, res.Raw)
	return apiNodes(t, res.Data, "auditEvents")
}

// apiFind returns the events matching every key of want.
func apiFind(events []map[string]any, want map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		ok := true
		for k, v := range want {
			if e[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

// apiMemberCaseIDs lists the demo member's case ids.
func apiMemberCaseIDs(t *testing.T, env *testenv.Env) []string {
	t.Helper()
	res := env.As(t, "member", `{ cases(first: 100) { edges { node { id } } } }`, nil)
	require.Empty(t, res.Errors, res.Raw)
	var ids []string
	for _, n := range apiNodes(t, res.Data, "cases") {
		ids = append(ids, n["id"].(string))
	}
	require.NotEmpty(t, ids, "the demo member has cases")
	return ids
}

func TestAuditRecordsReadsDenialsMissesAndWrites(t *testing.T) {
	env := testenv.Start(t)
	caseID := apiMemberCaseIDs(t, env)[0]
	caseRaw := apiRaw(t, caseID)

	t.Run("a member's read of clinical fields and identity is recorded as allowed", func(t *testing.T) {
		body := fmt.Sprintf(`{"query":"query memberReadsCase($id: ID!) { case(id: $id) { diagnosis { code } patient { id givenName } } }","variables":{"id":%q}}`, caseID)
		rec := apiHTTP(env, http.MethodPost, "/graphql", env.Token(t, testenv.Persona("member")), body)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.NotContains(t, rec.Body.String(), `"errors"`)
		require.Contains(t, rec.Body.String(), "Alice")
		rid := rec.Header().Get("X-Request-Id")
		require.NotEmpty(t, rid)
		var decoded struct {
			Data map[string]any `json:"data"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &decoded))
		patientRaw := apiRaw(t, testenv.Get(decoded.Data, "case", "patient", "id"))

		events := apiAuditOf(t, env, seed.DemoMember)
		for _, want := range []map[string]any{
			{"fieldGroup": "case.clinical", "resourceType": "Case", "resourceId": caseRaw},
			{"fieldGroup": "patient.identity", "resourceType": "Patient", "resourceId": patientRaw},
		} {
			want["outcome"] = audit.OutcomeAllowed
			got := apiFind(events, want)
			if !assert.Len(t, got, 1, "want one event %v among %v", want, events) {
				continue
			}
			e := got[0]
			assert.Equal(t, "MEMBER", e["role"])
			assert.Equal(t, seed.DemoMember, e["subject"])
			assert.NotEmpty(t, e["requestId"])
			assert.Equal(t, rid, e["requestId"], "the event names the response's request id")
			assert.NotEmpty(t, e["operation"])
			assert.Contains(t, e["operation"], "memberReadsCase")
			assert.WithinDuration(t, time.Now(), apiTime(t, e["at"]), time.Minute)
		}
	})
	t.Run("an insurer's refused read of a diagnosis is recorded as denied", func(t *testing.T) {
		persona := testenv.Persona("insurer")
		res := env.As(t, "insurer", `query($id: ID!) { case(id: $id) { id diagnosis { code } } }`, map[string]any{"id": caseID})
		require.Equal(t, "FORBIDDEN", res.PathCodes()["case.diagnosis"], res.Raw)
		got := apiFind(apiAuditOf(t, env, persona.Subject), map[string]any{
			"fieldGroup": "case.clinical", "resourceType": "Case", "resourceId": caseRaw, "outcome": audit.OutcomeDenied,
		})
		require.Len(t, got, 1)
		assert.Equal(t, "INSURER", got[0]["role"])
		assert.Equal(t, persona.Org, got[0]["org"])
		assert.NotEmpty(t, got[0]["requestId"])
	})
	t.Run("a lookup of a case outside the caller's scope is recorded as not found", func(t *testing.T) {
		mine := map[string]bool{}
		for _, id := range apiMemberCaseIDs(t, env) {
			mine[id] = true
		}
		all := env.As(t, "coordinator", `{ cases(first: 100) { edges { node { id } } } }`, nil)
		require.Empty(t, all.Errors, all.Raw)
		var foreign string
		for _, n := range apiNodes(t, all.Data, "cases") {
			if !mine[n["id"].(string)] {
				foreign = n["id"].(string)
				break
			}
		}
		require.NotEmpty(t, foreign)
		res := env.As(t, "member", `query($id: ID!) { case(id: $id) { id diagnosis { code } } }`, map[string]any{"id": foreign})
		assert.Nil(t, testenv.Get(res.Data, "case"), res.Raw)
		got := apiFind(apiAuditOf(t, env, seed.DemoMember), map[string]any{
			"resourceType": "Case", "resourceId": apiRaw(t, foreign), "outcome": audit.OutcomeNotFound,
		})
		require.Len(t, got, 1)
		assert.Equal(t, "MEMBER", got[0]["role"])
	})
	t.Run("a request for a second opinion is recorded as written", func(t *testing.T) {
		pol := newAPIPolicy(t, env, true, 2)
		res := env.Do(t, pol.memberToken(t, env), apiRequestDoc, map[string]any{"in": pol.requestInput(nil)})
		require.Empty(t, res.Errors, res.Raw)
		newRaw := apiRaw(t, testenv.Get(res.Data, "requestSecondOpinion", "case", "id"))
		got := apiFind(apiAuditOf(t, env, pol.memberID), map[string]any{
			"resourceType": "Case", "resourceId": newRaw, "outcome": "WRITTEN",
		})
		require.Len(t, got, 1)
		assert.Equal(t, "case.clinical", got[0]["fieldGroup"])
		assert.Equal(t, "MEMBER", got[0]["role"])
		assert.Contains(t, got[0]["operation"], "mutation")
	})
}

// apiFailingSink refuses every audit write.
type apiFailingSink struct{ calls atomic.Int64 }

func (s *apiFailingSink) AppendAudit(context.Context, []domain.AuditEvent) error {
	s.calls.Add(1)
	return errors.New("audit store unavailable")
}

func TestAuditFailsClosedWhenTheTrailCannotBeWritten(t *testing.T) {
	sink := &apiFailingSink{}
	env := testenv.Start(t, testenv.Options{AuditSink: func(*store.Store) audit.Sink { return sink }})

	// Listing ids reads no PHI, so it needs no audit and succeeds.
	caseIDs := apiMemberCaseIDs(t, env)
	require.Zero(t, sink.calls.Load())

	t.Run("a member's read of a diagnosis returns no PHI and one internal error", func(t *testing.T) {
		res := env.As(t, "member", `query($id: ID!) { case(id: $id) { reference diagnosis { code description } patient { givenName familyName } } }`,
			map[string]any{"id": caseIDs[0]})
		assert.Greater(t, sink.calls.Load(), int64(0), "the audit write was attempted")
		assert.Nil(t, res.Data, res.Raw)
		require.Len(t, res.Errors, 1, res.Raw)
		assert.Equal(t, "INTERNAL", res.Errors[0].Code())
		assert.Contains(t, res.Errors[0].Message, "request")
		for _, phi := range []string{"Alice", "Martin", "C50.9", "I25.10", "G20", "M51.26", "M06.9", "SO-DEMO", "neoplasm", "disease", "arthritis", "herniation"} {
			assert.NotContains(t, res.Raw, phi)
		}
		assert.NotContains(t, res.Raw, "audit store unavailable")
	})
	t.Run("a write whose audit fails is reported as failed", func(t *testing.T) {
		open := env.As(t, "member", `{ cases(first: 100, filter: {status: [SUBMITTED, TRIAGE]}) { edges { node { id } } } }`, nil)
		require.Empty(t, open.Errors, open.Raw)
		nodes := apiNodes(t, open.Data, "cases")
		require.NotEmpty(t, nodes, "the demo member has an open case")
		res := env.As(t, "member", `mutation($in: ConsentInput!) { grantConsent(input: $in) { case { id } } }`,
			map[string]any{"in": map[string]any{"caseId": nodes[0]["id"], "kind": "INTERNATIONAL_SHARING"}})
		assert.Nil(t, res.Data, res.Raw)
		assert.Equal(t, []string{"INTERNAL"}, res.Codes(), res.Raw)
	})
	t.Run("a query that touches no PHI still succeeds", func(t *testing.T) {
		res := env.As(t, "member", `{ viewer { subject role } }`, nil)
		assert.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, seed.DemoMember, testenv.Get(res.Data, "viewer", "subject"))
		assert.Equal(t, "MEMBER", testenv.Get(res.Data, "viewer", "role"))
	})
}

// ---- 5. Errors never leak

func TestLeakFreeInternalErrorsWhenTheStoreIsGone(t *testing.T) {
	env := testenv.Start(t)
	caseID := apiMemberCaseIDs(t, env)[0]
	require.NoError(t, env.Store.Close(context.Background()))

	queries := []struct {
		name, persona, query string
		vars                 map[string]any
	}{
		{"a coordinator's case list fails as internal", "coordinator", `{ cases(first: 5) { edges { node { id reference } } } }`, nil},
		{"a member's case lookup fails as internal", "member", `query($id: ID!) { case(id: $id) { id diagnosis { code } } }`, map[string]any{"id": caseID}},
		{"a specialist list fails as internal", "insurer", `{ specialists(first: 5) { totalCount edges { node { id } } } }`, nil},
		{"a policy list fails as internal", "insurer", `{ policies(first: 5) { edges { node { id } } } }`, nil},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			res := env.As(t, q.persona, q.query, q.vars)
			require.NotEmpty(t, res.Errors, res.Raw)
			for _, e := range res.Errors {
				assert.Equal(t, "INTERNAL", e.Code(), res.Raw)
				assert.Contains(t, e.Message, "request")
			}
			lower := strings.ToLower(res.Raw)
			// "c50.9", not "c50": a random hex request id may hold "c50".
			for _, leak := range []string{"mongo", "store:", "disconnected", "client", "ferret", "cases:", "c50.9"} {
				assert.NotContains(t, lower, leak)
			}
		})
	}
}
