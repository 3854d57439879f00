package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

const createPolicyDoc = `mutation($in: CreatePolicyInput!) { createPolicy(input: $in) { policy { id version } } }`

const requestDoc = `mutation($in: RequestSecondOpinionInput!) {
  requestSecondOpinion(input: $in) { case { id status version reference dueAt submittedAt } } }`

const caseDoc = `query($id: ID!) { case(id: $id) { id status version specialist { id country } consents { kind active grantedAt revokedAt }
  events { type fromStatus toStatus actorRole } opinion { status deliveredAt memberSummary } decision } }`

// lifecycle is a case walked through its life by a member, a coordinator
// and a partner network, on a fresh policy.
type lifecycle struct {
	env      *testenv.Env
	member   string
	memberID string
	policyID string
	caseID   string
}

func newLifecycle(t testing.TB, env *testenv.Env, international bool, casesPerYear int) *lifecycle {
	t.Helper()
	memberID := fmt.Sprintf("m-%d", time.Now().UnixNano()%1_000_000_000)
	res := env.As(t, "insurer", createPolicyDoc, map[string]any{"in": map[string]any{
		"policyNumber": "LC-" + memberID, "product": "CRITICAL_ILLNESS", "effectiveFrom": "2025-01-01",
		"secondOpinion": map[string]any{"covered": true, "casesPerYear": casesPerYear, "international": international},
		"insured": []any{map[string]any{
			"memberId": memberID, "givenName": "Zoe", "familyName": "Lifecycle", "dateOfBirth": "1970-05-04",
			"country": "CA", "language": "en", "sex": "FEMALE",
		}},
	}})
	require.Empty(t, res.Errors, res.Raw)
	lc := &lifecycle{env: env, memberID: memberID, policyID: testenv.Get(res.Data, "createPolicy", "policy", "id").(string)}
	lc.member = env.Token(t, domain.Principal{Subject: memberID, Role: domain.RoleMember, Org: seed.InsurerNorthstar})
	return lc
}

func (lc *lifecycle) request(t testing.TB, extra map[string]any) testenv.Response {
	t.Helper()
	in := map[string]any{
		"policyId": lc.policyID, "specialty": "oncology", "preferredLanguage": "de",
		"diagnosis": map[string]any{"code": "C50.9", "description": "Malignant neoplasm of breast"},
		"questions": []any{"Is surgery needed?"},
	}
	for k, v := range extra {
		in[k] = v
	}
	return lc.env.Do(t, lc.member, requestDoc, map[string]any{"in": in})
}

func (lc *lifecycle) open(t testing.TB) {
	t.Helper()
	res := lc.request(t, nil)
	require.Empty(t, res.Errors, res.Raw)
	lc.caseID = testenv.Get(res.Data, "requestSecondOpinion", "case", "id").(string)
}

func (lc *lifecycle) read(t *testing.T, token string) testenv.Response {
	t.Helper()
	return lc.env.Do(t, token, caseDoc, map[string]any{"id": lc.caseID})
}

func (lc *lifecycle) status(t *testing.T) string {
	t.Helper()
	res := lc.env.As(t, "coordinator", caseDoc, map[string]any{"id": lc.caseID})
	require.Empty(t, res.Errors, res.Raw)
	return testenv.Get(res.Data, "case", "status").(string)
}

func (lc *lifecycle) version(t *testing.T) int {
	t.Helper()
	res := lc.env.As(t, "coordinator", caseDoc, map[string]any{"id": lc.caseID})
	require.Empty(t, res.Errors, res.Raw)
	return int(testenv.Get(res.Data, "case", "version").(float64))
}

func (lc *lifecycle) consent(t *testing.T, op, kind string) testenv.Response {
	t.Helper()
	return lc.env.Do(t, lc.member, fmt.Sprintf(`mutation($in: ConsentInput!) { %s(input: $in) { case { status } } }`, op),
		map[string]any{"in": map[string]any{"caseId": lc.caseID, "kind": kind}})
}

func (lc *lifecycle) addRecord(t *testing.T, token string) testenv.Response {
	t.Helper()
	return lc.env.Do(t, token, `mutation($in: AddMedicalRecordInput!) { addMedicalRecord(input: $in) { case { status } record { id title kind } } }`,
		map[string]any{"in": map[string]any{"caseId": lc.caseID, "title": "Biopsy", "kind": "PATHOLOGY", "recordedOn": "2026-01-10"}})
}

func (lc *lifecycle) assign(t *testing.T, token, specialistID string, version *int) testenv.Response {
	t.Helper()
	in := map[string]any{"caseId": lc.caseID, "specialistId": specialistID}
	if version != nil {
		in["expectedVersion"] = *version
	}
	return lc.env.Do(t, token, `mutation($in: AssignSpecialistInput!) { assignSpecialist(input: $in) { case { status version specialist { id } } } }`,
		map[string]any{"in": in})
}

func caseMutation(env *testenv.Env, t *testing.T, token, name, caseID string, extra map[string]any) testenv.Response {
	t.Helper()
	in := map[string]any{"caseId": caseID}
	for k, v := range extra {
		in[k] = v
	}
	inputType := map[string]string{
		"startReview": "StartReviewInput", "recordDecision": "RecordDecisionInput", "cancelCase": "CancelCaseInput",
	}[name]
	return env.Do(t, token, fmt.Sprintf(`mutation($in: %s!) { %s(input: $in) { case { status version decision } } }`, inputType, name),
		map[string]any{"in": in})
}

const draftDoc = `mutation($in: SaveOpinionDraftInput!) { saveOpinionDraft(input: $in) { opinion { id status memberSummary } } }`

const deliverDoc = `mutation($in: DeliverOpinionInput!) { deliverOpinion(input: $in) {
  case { status deliveredAt } opinion { id status deliveredAt } } }`

func draftInput(caseID string) map[string]any {
	return map[string]any{"in": map[string]any{
		"caseId": caseID, "diagnosisAssessment": "MODIFIED", "treatmentAssessment": "ALTERNATIVE",
		"revisedDiagnosis": map[string]any{"code": "C50.4", "description": "Upper-outer quadrant"},
		"clinicalImpact":   "MAJOR",
		"treatmentOptions": []any{map[string]any{"name": "Lumpectomy", "invasiveness": "MEDIUM"}},
		"answers":          []any{map[string]any{"question": "Is surgery needed?", "answer": "A smaller one."}},
		"memberSummary":    "A less extensive operation is enough.", "report": "Full report.",
	}}
}

// specialistIn returns the id of a specialist of org in country practising oncology.
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

func TestLifecycleFromRequestToDecision(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	partner := env.Token(t, testenv.Persona("partner"))
	provider := env.Token(t, testenv.Persona("provider"))
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	euro := specialistIn(t, env, seed.NetworkEuro, "DE")

	t.Run("a new case is submitted with its first event", func(t *testing.T) {
		assert.Equal(t, "SUBMITTED", lc.status(t))
	})
	t.Run("a consent alone does not start triage", func(t *testing.T) {
		res := lc.consent(t, "grantConsent", "RECORDS_RELEASE")
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "SUBMITTED", testenv.Get(res.Data, "grantConsent", "case", "status"))
	})
	t.Run("a record with the records-release consent moves the case to triage by itself", func(t *testing.T) {
		res := lc.addRecord(t, lc.member)
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "TRIAGE", testenv.Get(res.Data, "addMedicalRecord", "case", "status"))
		assert.Equal(t, "Biopsy", testenv.Get(res.Data, "addMedicalRecord", "record", "title"))
	})
	t.Run("an insurer may not add records", func(t *testing.T) {
		res := lc.addRecord(t, env.Token(t, testenv.Persona("insurer")))
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	t.Run("matching offers no specialist abroad without the international consent", func(t *testing.T) {
		res := env.As(t, "coordinator", `query($id: ID!) { specialistMatches(caseId: $id, first: 50) { score reasons specialist { id country specialties } } }`, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		ms := testenv.Get(res.Data, "specialistMatches").([]any)
		require.NotEmpty(t, ms)
		for _, m := range ms {
			sp := m.(map[string]any)["specialist"].(map[string]any)
			assert.Equal(t, "CA", sp["country"])
			assert.Contains(t, sp["specialties"], "oncology")
		}
	})
	t.Run("assigning a specialist abroad without consent is CONSENT_REQUIRED", func(t *testing.T) {
		res := lc.assign(t, coordinator, euro, nil)
		assert.Equal(t, []string{"CONSENT_REQUIRED"}, res.Codes())
		assert.Equal(t, "TRIAGE", lc.status(t))
	})
	t.Run("with the consent, matching ranks specialists abroad too, best first", func(t *testing.T) {
		require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
		res := env.As(t, "coordinator", `query($id: ID!) { specialistMatches(caseId: $id, first: 50) { score reasons specialist { id country } } }`, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		ms := testenv.Get(res.Data, "specialistMatches").([]any)
		countries := map[any]bool{}
		last := 1e9
		for _, m := range ms {
			mm := m.(map[string]any)
			countries[mm["specialist"].(map[string]any)["country"]] = true
			score := mm["score"].(float64)
			assert.LessOrEqual(t, score, last, "best first")
			last = score
			assert.NotEmpty(t, mm["reasons"])
		}
		assert.True(t, countries["DE"] || countries["FR"] || countries["ES"] || countries["IT"] || countries["US"], "some specialist abroad: %v", countries)
	})
	t.Run("a stale expectedVersion is CONFLICT and changes nothing", func(t *testing.T) {
		stale := lc.version(t) - 1
		res := lc.assign(t, coordinator, euro, &stale)
		assert.Equal(t, []string{"CONFLICT"}, res.Codes())
		assert.Equal(t, "TRIAGE", lc.status(t))
	})
	t.Run("only a coordinator assigns", func(t *testing.T) {
		res := lc.assign(t, lc.member, euro, nil)
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	t.Run("the coordinator assigns the partner network's specialist", func(t *testing.T) {
		v := lc.version(t)
		res := lc.assign(t, coordinator, euro, &v)
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "ASSIGNED", testenv.Get(res.Data, "assignSpecialist", "case", "status"))
	})
	t.Run("the partner now sees the case and a provider org does not", func(t *testing.T) {
		assert.Empty(t, lc.read(t, partner).Errors)
		res := lc.read(t, provider)
		assert.Nil(t, testenv.Get(res.Data, "case"))
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
	t.Run("an opinion cannot be drafted before the review starts", func(t *testing.T) {
		res := env.Do(t, partner, draftDoc, draftInput(lc.caseID))
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("a provider org cannot start a review of a case not assigned to it", func(t *testing.T) {
		res := caseMutation(env, t, provider, "startReview", lc.caseID, nil)
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
	t.Run("the partner starts the review", func(t *testing.T) {
		res := caseMutation(env, t, partner, "startReview", lc.caseID, nil)
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "IN_REVIEW", testenv.Get(res.Data, "startReview", "case", "status"))
	})
	t.Run("a case in review cannot be reassigned", func(t *testing.T) {
		res := lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil)
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("the partner saves a draft the member cannot see", func(t *testing.T) {
		res := env.Do(t, partner, draftDoc, draftInput(lc.caseID))
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "DRAFT", testenv.Get(res.Data, "saveOpinionDraft", "opinion", "status"))
		mine := lc.read(t, lc.member)
		require.Empty(t, mine.Errors, mine.Raw)
		assert.Nil(t, testenv.Get(mine.Data, "case", "opinion"), "a draft is never the member's")
	})
	t.Run("delivering twice with one idempotency key delivers once", func(t *testing.T) {
		in := map[string]any{"in": map[string]any{"caseId": lc.caseID, "idempotencyKey": "deliver-1"}}
		first := env.Do(t, partner, deliverDoc, in)
		require.Empty(t, first.Errors, first.Raw)
		second := env.Do(t, partner, deliverDoc, in)
		require.Empty(t, second.Errors, second.Raw)
		assert.Equal(t, "OPINION_DELIVERED", testenv.Get(first.Data, "deliverOpinion", "case", "status"))
		assert.Equal(t, "DELIVERED", testenv.Get(first.Data, "deliverOpinion", "opinion", "status"))
		assert.NotNil(t, testenv.Get(first.Data, "deliverOpinion", "opinion", "deliveredAt"))
		assert.Equal(t, testenv.Get(first.Data, "deliverOpinion", "opinion", "deliveredAt"), testenv.Get(second.Data, "deliverOpinion", "opinion", "deliveredAt"))
	})
	t.Run("a delivered opinion is frozen", func(t *testing.T) {
		res := env.Do(t, partner, draftDoc, draftInput(lc.caseID))
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("the member reads the delivered opinion; the insurer only that and when", func(t *testing.T) {
		mine := lc.read(t, lc.member)
		require.Empty(t, mine.Errors, mine.Raw)
		assert.Equal(t, "A less extensive operation is enough.", testenv.Get(mine.Data, "case", "opinion", "memberSummary"))
		ins := env.As(t, "insurer", `query($id: ID!) { case(id: $id) { opinion { status deliveredAt memberSummary } } }`, map[string]any{"id": lc.caseID})
		assert.Equal(t, "DELIVERED", testenv.Get(ins.Data, "case", "opinion", "status"))
		assert.NotNil(t, testenv.Get(ins.Data, "case", "opinion", "deliveredAt"))
		assert.Nil(t, testenv.Get(ins.Data, "case", "opinion", "memberSummary"))
		assert.Equal(t, map[string]string{"case.opinion.memberSummary": "FORBIDDEN"}, ins.PathCodes())
	})
	t.Run("a delivered case cannot be cancelled", func(t *testing.T) {
		res := caseMutation(env, t, lc.member, "cancelCase", lc.caseID, map[string]any{"reason": "changed my mind"})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("the member records a decision and the case closes", func(t *testing.T) {
		res := caseMutation(env, t, lc.member, "recordDecision", lc.caseID, map[string]any{"decision": "FOLLOW_OPINION"})
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "CLOSED", testenv.Get(res.Data, "recordDecision", "case", "status"))
		assert.Equal(t, "FOLLOW_OPINION", testenv.Get(res.Data, "recordDecision", "case", "decision"))
	})
	t.Run("the history holds every move in order", func(t *testing.T) {
		res := lc.read(t, coordinator)
		var moves []string
		for _, e := range testenv.Get(res.Data, "case", "events").([]any) {
			ev := e.(map[string]any)
			if ev["toStatus"] != nil {
				moves = append(moves, ev["toStatus"].(string))
			}
		}
		assert.Equal(t, []string{"SUBMITTED", "TRIAGE", "ASSIGNED", "IN_REVIEW", "OPINION_DELIVERED", "CLOSED"}, moves)
	})
	t.Run("revoking international sharing removes the case from the partner's view at once", func(t *testing.T) {
		require.Empty(t, lc.consent(t, "revokeConsent", "INTERNATIONAL_SHARING").Errors)
		res := lc.read(t, partner)
		assert.Nil(t, testenv.Get(res.Data, "case"))
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
		list := env.Do(t, partner, `{ cases(first: 100) { edges { node { id } } } }`, nil)
		assert.NotContains(t, list.Raw, lc.caseID)
		cons := lc.read(t, lc.member)
		for _, c := range testenv.Get(cons.Data, "case", "consents").([]any) {
			cm := c.(map[string]any)
			if cm["kind"] == "INTERNATIONAL_SHARING" {
				assert.Equal(t, false, cm["active"])
				assert.NotNil(t, cm["grantedAt"], "the grant is kept as history")
				assert.NotNil(t, cm["revokedAt"])
			}
		}
	})
}

func TestAbroadNeedsAnInternationalBenefit(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 3)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	require.Empty(t, lc.consent(t, "grantConsent", "INTERNATIONAL_SHARING").Errors)
	res := lc.assign(t, env.Token(t, testenv.Persona("coordinator")), specialistIn(t, env, seed.NetworkEuro, "DE"), nil)
	assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes())
	domestic := lc.assign(t, env.Token(t, testenv.Persona("coordinator")), specialistIn(t, env, seed.ProviderToronto, "CA"), nil)
	assert.Empty(t, domestic.Errors, domestic.Raw)
}

func TestMovesOutOfOrderAreInvalidTransitions(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	t.Run("assigning a submitted case is refused", func(t *testing.T) {
		res := lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil)
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("deciding before delivery is refused", func(t *testing.T) {
		res := caseMutation(env, t, lc.member, "recordDecision", lc.caseID, map[string]any{"decision": "UNDECIDED"})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("a member cancels their submitted case, with a reason", func(t *testing.T) {
		res := caseMutation(env, t, lc.member, "cancelCase", lc.caseID, map[string]any{"reason": " "})
		assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes())
		res = caseMutation(env, t, lc.member, "cancelCase", lc.caseID, map[string]any{"reason": "treated elsewhere"})
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "CANCELLED", testenv.Get(res.Data, "cancelCase", "case", "status"))
	})
	t.Run("a cancelled case stays cancelled", func(t *testing.T) {
		res := caseMutation(env, t, coordinator, "cancelCase", lc.caseID, map[string]any{"reason": "again"})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("another member's case is not found", func(t *testing.T) {
		res := caseMutation(env, t, env.Token(t, testenv.Persona("member")), "cancelCase", lc.caseID, map[string]any{"reason": "x"})
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
}

func TestConcurrentAssignmentsOnOneVersionHaveOneWinner(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	v := lc.version(t)
	res := env.As(t, "coordinator", `{ specialists(first: 100, filter: {specialty: "oncology", country: "CA", acceptingCases: true}) { edges { node { id } } } }`, nil)
	edges := testenv.Get(res.Data, "specialists", "edges").([]any)
	require.GreaterOrEqual(t, len(edges), 2)
	const n = 6
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sp := edges[i%len(edges)].(map[string]any)["node"].(map[string]any)["id"].(string)
			r := lc.assign(t, coordinator, sp, &v)
			codes[i] = strings.Join(r.Codes(), ",")
		}(i)
	}
	wg.Wait()
	wins, conflicts := 0, 0
	for _, c := range codes {
		switch c {
		case "":
			wins++
		case "CONFLICT":
			conflicts++
		}
	}
	assert.Equal(t, 1, wins, "codes: %v", codes)
	assert.Equal(t, n-1, conflicts, "codes: %v", codes)
	assert.Equal(t, v+1, lc.version(t))
}

func TestSLADueDatesAndOverdueFilter(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 5)
	routine := lc.request(t, nil)
	urgent := lc.request(t, map[string]any{"urgency": "URGENT"})
	require.Empty(t, routine.Errors, routine.Raw)
	require.Empty(t, urgent.Errors, urgent.Raw)
	due := func(r testenv.Response) time.Duration {
		c := testenv.Get(r.Data, "requestSecondOpinion", "case").(map[string]any)
		sub, err := time.Parse(time.RFC3339, c["submittedAt"].(string))
		require.NoError(t, err)
		d, err := time.Parse(time.RFC3339, c["dueAt"].(string))
		require.NoError(t, err)
		return d.Sub(sub)
	}
	assert.Equal(t, 10*24*time.Hour, due(routine))
	assert.Equal(t, 3*24*time.Hour, due(urgent))

	// The demo data has open cases submitted weeks ago: overdue ones.
	over := env.As(t, "coordinator", `{ cases(first: 100, filter: {overdue: true}) { totalCount edges { node { id overdue status } } } }`, nil)
	require.Empty(t, over.Errors, over.Raw)
	edges := testenv.Get(over.Data, "cases", "edges").([]any)
	require.NotEmpty(t, edges)
	for _, e := range edges {
		n := e.(map[string]any)["node"].(map[string]any)
		assert.Equal(t, true, n["overdue"])
		assert.Contains(t, []any{"SUBMITTED", "TRIAGE", "ASSIGNED", "IN_REVIEW"}, n["status"])
	}
	notOver := env.As(t, "coordinator", `{ cases(first: 100, filter: {overdue: false}) { totalCount edges { node { id overdue } } } }`, nil)
	all := env.As(t, "coordinator", `{ cases(first: 100) { totalCount } }`, nil)
	for _, e := range testenv.Get(notOver.Data, "cases", "edges").([]any) {
		assert.Equal(t, false, e.(map[string]any)["node"].(map[string]any)["overdue"])
	}
	assert.Equal(t, testenv.Get(all.Data, "cases", "totalCount"),
		testenv.Get(over.Data, "cases", "totalCount").(float64)+testenv.Get(notOver.Data, "cases", "totalCount").(float64))
}

func TestLastCaseOfTheYearGoesToExactlyOneOfTwoRacingRequests(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 1)
	const n = 2
	codes := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = strings.Join(lc.request(t, nil).Codes(), ",")
		}(i)
	}
	wg.Wait()
	assert.ElementsMatch(t, []string{"", "NOT_ELIGIBLE"}, codes)
	res := env.As(t, "coordinator", `query($id: ID!) { policy(id: $id) { secondOpinion { casesUsed } } }`, map[string]any{"id": lc.policyID})
	assert.Equal(t, float64(1), testenv.Get(res.Data, "policy", "secondOpinion", "casesUsed"))
}

func TestIdsOfOneTypeDoNotOpenAnother(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, true, 3)
	res := env.Do(t, lc.member, `query($id: ID!) { case(id: $id) { id } }`, map[string]any{"id": lc.policyID})
	assert.Nil(t, testenv.Get(res.Data, "case"))
	assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	_, raw, ok := graph.ParseGlobalID(lc.policyID)
	require.True(t, ok)
	assert.NotEmpty(t, raw)
}
