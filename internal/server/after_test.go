package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/testenv"
)

// deliveredAfterCase walks a fresh member's case to OPINION_DELIVERED with a
// Toronto provider specialist; it returns the lifecycle and the provider's
// token.
func deliveredAfterCase(t *testing.T, env *testenv.Env) (*lifecycle, string) {
	t.Helper()
	lc := newLifecycle(t, env, false, 5)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	provider := env.Token(t, testenv.Persona("provider"))
	res := lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil)
	require.Empty(t, res.Errors, res.Raw)
	res = caseMutation(env, t, provider, "startReview", lc.caseID, nil)
	require.Empty(t, res.Errors, res.Raw)
	res = env.Do(t, provider, draftDoc, draftInput(lc.caseID))
	require.Empty(t, res.Errors, res.Raw)
	res = env.Do(t, provider, deliverDoc, map[string]any{"in": map[string]any{"caseId": lc.caseID}})
	require.Empty(t, res.Errors, res.Raw)
	return lc, provider
}

const askDoc = `mutation($in: AskFollowUpInput!) { askFollowUp(input: $in) { followUp { id question askedAt dueAt overdue answer } } }`
const answerDoc = `mutation($in: AnswerFollowUpInput!) { answerFollowUp(input: $in) { followUp { id answer answeredAt } } }`
const opinionAfterDoc = `query($id: ID!) { case(id: $id) { status events { type } opinion { id memberSummary
  followUps { id question answer dueAt overdue } signature { jws keyId signedAt payload } } } }`

func ask(t *testing.T, env *testenv.Env, token, caseID, q string) testenv.Response {
	t.Helper()
	return env.Do(t, token, askDoc, map[string]any{"in": map[string]any{"caseId": caseID, "question": q}})
}

func errorMessages(r testenv.Response) string {
	var b strings.Builder
	for _, e := range r.Errors {
		b.WriteString(e.Message + "\n")
	}
	return b.String()
}

// rawCases opens the test's database directly, to set up what the API
// cannot (a delivery 31 days ago, a case from before recordsCompleteAt).
func rawCases(t *testing.T, env *testenv.Env) *mongo.Collection {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cl.Database(env.DB).Collection("cases")
}

func TestFollowUps(t *testing.T) {
	env := testenv.Start(t)
	lc, provider := deliveredAfterCase(t, env)

	var first string
	t.Run("the member asks a question after delivery, due in 3 working days", func(t *testing.T) {
		res := ask(t, env, lc.member, lc.caseID, "Can I wait a month before surgery?")
		require.Empty(t, res.Errors, res.Raw)
		fu := testenv.Get(res.Data, "askFollowUp", "followUp").(map[string]any)
		first = fu["id"].(string)
		asked := apiTime(t, fu["askedAt"])
		assert.Equal(t, domain.AddWorkingDays(asked, 3), apiTime(t, fu["dueAt"]))
		assert.Equal(t, false, fu["overdue"])
		assert.Nil(t, fu["answer"])
	})
	t.Run("an insurer, a provider or a coordinator may not ask", func(t *testing.T) {
		for _, who := range []string{"insurer", "provider", "coordinator"} {
			res := ask(t, env, env.Token(t, testenv.Persona(who)), lc.caseID, "Question?")
			assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), who)
		}
	})
	t.Run("another member cannot ask on the case: it is not found", func(t *testing.T) {
		res := ask(t, env, env.Token(t, testenv.Persona("member")), lc.caseID, "Question?")
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
	t.Run("a provider org other than the opinion's cannot answer", func(t *testing.T) {
		other := env.Token(t, domain.Principal{Subject: "u-vancouver", Role: domain.RoleProvider, Org: seed.ProviderVancouver})
		res := env.Do(t, other, answerDoc, map[string]any{"in": map[string]any{"followUpId": first, "answer": "No."}})
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes())
	})
	t.Run("the member cannot answer", func(t *testing.T) {
		res := env.Do(t, lc.member, answerDoc, map[string]any{"in": map[string]any{"followUpId": first, "answer": "No."}})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	t.Run("the opinion's provider answers; the opinion itself does not change", func(t *testing.T) {
		before := env.Do(t, lc.member, opinionAfterDoc, map[string]any{"id": lc.caseID})
		require.Empty(t, before.Errors, before.Raw)
		res := env.Do(t, provider, answerDoc, map[string]any{"in": map[string]any{"followUpId": first, "answer": "Up to four weeks is safe."}})
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, "Up to four weeks is safe.", testenv.Get(res.Data, "answerFollowUp", "followUp", "answer"))
		after := env.Do(t, lc.member, opinionAfterDoc, map[string]any{"id": lc.caseID})
		require.Empty(t, after.Errors, after.Raw)
		assert.Equal(t, testenv.Get(before.Data, "case", "opinion", "memberSummary"), testenv.Get(after.Data, "case", "opinion", "memberSummary"))
		assert.Equal(t, "Up to four weeks is safe.", testenv.Get(after.Data, "case", "opinion", "followUps", 0, "answer"))
		var types []any
		for _, e := range testenv.Get(after.Data, "case", "events").([]any) {
			types = append(types, e.(map[string]any)["type"])
		}
		assert.Contains(t, types, "FOLLOW_UP_ASKED")
		assert.Contains(t, types, "FOLLOW_UP_ANSWERED")
	})
	t.Run("an answer is not edited", func(t *testing.T) {
		res := env.Do(t, provider, answerDoc, map[string]any{"in": map[string]any{"followUpId": first, "answer": "Something else."}})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes())
	})
	t.Run("an insurer reads neither follow-ups nor the signature", func(t *testing.T) {
		res := env.As(t, "insurer", `query($id: ID!) { case(id: $id) { opinion { deliveredAt followUps { question } signature { jws } } } }`, map[string]any{"id": lc.caseID})
		assert.NotNil(t, testenv.Get(res.Data, "case", "opinion", "deliveredAt"))
		assert.Nil(t, testenv.Get(res.Data, "case", "opinion", "followUps"))
		assert.Nil(t, testenv.Get(res.Data, "case", "opinion", "signature"))
		assert.Equal(t, "FORBIDDEN", res.PathCodes()["case.opinion.followUps"])
	})
	t.Run("the fourth question is refused, naming the limit", func(t *testing.T) {
		require.Empty(t, ask(t, env, lc.member, lc.caseID, "Second?").Errors)
		require.Empty(t, ask(t, env, lc.member, lc.caseID, "Third?").Errors)
		res := ask(t, env, lc.member, lc.caseID, "Fourth?")
		assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes())
		assert.Contains(t, errorMessages(res), "at most 3 follow-up questions")
	})
}

func TestFollowUpAfter30DaysIsRefused(t *testing.T) {
	env := testenv.Start(t)
	lc, _ := deliveredAfterCase(t, env)
	raw := apiRaw(t, lc.caseID)
	cases := rawCases(t, env)
	set := func(days int) {
		at := time.Now().Add(-time.Duration(days)*24*time.Hour - time.Minute)
		_, err := cases.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: raw}}, bson.D{{Key: "$set", Value: bson.D{{Key: "deliveredAt", Value: at}}}})
		require.NoError(t, err)
	}
	set(31)
	res := ask(t, env, lc.member, lc.caseID, "Is it too late?")
	assert.Equal(t, []string{"NOT_ELIGIBLE"}, res.Codes())
	assert.Contains(t, errorMessages(res), "within 30 days of delivery")
	set(29)
	res = ask(t, env, lc.member, lc.caseID, "And now?")
	assert.Empty(t, res.Errors, res.Raw)
}

func jwksOf(t *testing.T, env *testenv.Env) jose.JSONWebKeySet {
	t.Helper()
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &set))
	require.NotEmpty(t, set.Keys)
	for _, k := range set.Keys {
		assert.True(t, k.IsPublic(), "only public keys are published")
	}
	return set
}

func TestDeliveredOpinionsAreSigned(t *testing.T) {
	env := testenv.Start(t)
	lc, provider := deliveredAfterCase(t, env)
	keys := jwksOf(t, env)

	read := func() map[string]any {
		res := env.Do(t, lc.member, opinionAfterDoc, map[string]any{"id": lc.caseID})
		require.Empty(t, res.Errors, res.Raw)
		return testenv.Get(res.Data, "case", "opinion", "signature").(map[string]any)
	}
	sig := read()
	payload := []byte(sig["payload"].(string))
	t.Run("the signature verifies with the published keys", func(t *testing.T) {
		kid, err := signing.Verify(sig["jws"].(string), payload, keys)
		require.NoError(t, err)
		assert.Equal(t, sig["keyId"], kid)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(payload, &doc))
		assert.Equal(t, "A less extensive operation is enough.", testenv.Get(doc, "content", "memberSummary"))
		assert.NotEmpty(t, doc["caseReference"])
		assert.NotEmpty(t, testenv.Get(doc, "specialist", "name"))
	})
	t.Run("the payload is canonical JSON (RFC 8785)", func(t *testing.T) {
		var v any
		require.NoError(t, json.Unmarshal(payload, &v))
		again, err := signing.Canonical(v)
		require.NoError(t, err)
		assert.Equal(t, string(payload), string(again))
	})
	t.Run("changing the content fails verification", func(t *testing.T) {
		tampered := strings.Replace(string(payload), "less extensive", "more extensive", 1)
		require.NotEqual(t, string(payload), tampered)
		_, err := signing.Verify(sig["jws"].(string), []byte(tampered), keys)
		assert.Error(t, err)
	})
	t.Run("an answered follow-up is signed in", func(t *testing.T) {
		res := ask(t, env, lc.member, lc.caseID, "How long is recovery?")
		require.Empty(t, res.Errors, res.Raw)
		id := testenv.Get(res.Data, "askFollowUp", "followUp", "id")
		res = env.Do(t, provider, answerDoc, map[string]any{"in": map[string]any{"followUpId": id, "answer": "About two weeks."}})
		require.Empty(t, res.Errors, res.Raw)
		resigned := read()
		assert.Contains(t, resigned["payload"], "About two weeks.")
		_, err := signing.Verify(resigned["jws"].(string), []byte(resigned["payload"].(string)), keys)
		require.NoError(t, err)
	})
}

func TestRecordOutcomeClosesTheCase(t *testing.T) {
	env := testenv.Start(t)
	lc, _ := deliveredAfterCase(t, env)
	doc := `mutation($in: RecordOutcomeInput!) { recordOutcome(input: $in) { case { status decision outcome { decision treatmentChanged satisfaction note } } } }`
	t.Run("satisfaction outside 1-5 is BAD_USER_INPUT", func(t *testing.T) {
		res := env.Do(t, lc.member, doc, map[string]any{"in": map[string]any{"caseId": lc.caseID, "decision": "FOLLOW_OPINION", "satisfaction": 6}})
		assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes())
	})
	t.Run("only the member records it", func(t *testing.T) {
		res := env.As(t, "coordinator", doc, map[string]any{"in": map[string]any{"caseId": lc.caseID, "decision": "FOLLOW_OPINION"}})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes())
	})
	t.Run("the member records the outcome and the case closes", func(t *testing.T) {
		res := env.Do(t, lc.member, doc, map[string]any{"in": map[string]any{"caseId": lc.caseID, "decision": "FOLLOW_OPINION", "treatmentChanged": true, "satisfaction": 5, "note": "Thanks"}})
		require.Empty(t, res.Errors, res.Raw)
		c := testenv.Get(res.Data, "recordOutcome", "case").(map[string]any)
		assert.Equal(t, "CLOSED", c["status"])
		assert.Equal(t, "FOLLOW_OPINION", c["decision"])
		assert.Equal(t, map[string]any{"decision": "FOLLOW_OPINION", "treatmentChanged": true, "satisfaction": float64(5), "note": "Thanks"}, c["outcome"])
	})
	t.Run("the insurer sees the decision but never the outcome's detail", func(t *testing.T) {
		res := env.As(t, "insurer", `query($id: ID!) { case(id: $id) { status outcome { satisfaction } } }`, map[string]any{"id": lc.caseID})
		assert.Equal(t, "CLOSED", testenv.Get(res.Data, "case", "status"))
		assert.Equal(t, "FORBIDDEN", res.PathCodes()["case.outcome"])
	})
	t.Run("a closed case still takes follow-up questions", func(t *testing.T) {
		assert.Empty(t, ask(t, env, lc.member, lc.caseID, "One more?").Errors)
	})
}

func TestSLAClockStartsWhenRecordsAreComplete(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 5)
	lc.open(t)
	doc := `query($id: ID!) { case(id: $id) { status dueAt overdue submittedAt recordsCompleteAt } }`
	res := env.As(t, "coordinator", doc, map[string]any{"id": lc.caseID})
	require.Empty(t, res.Errors, res.Raw)
	assert.Nil(t, testenv.Get(res.Data, "case", "recordsCompleteAt"), "not before TRIAGE")

	// The member took 5 days to bring the records: backdate the submission.
	raw := apiRaw(t, lc.caseID)
	cases := rawCases(t, env)
	submitted := time.Now().UTC().Add(-5 * 24 * time.Hour).Truncate(time.Millisecond)
	_, err := cases.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: raw}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "submittedAt", Value: submitted}, {Key: "dueAt", Value: submitted.Add(domain.UrgencyRoutine.SLA())}}}})
	require.NoError(t, err)
	res = env.As(t, "coordinator", doc, map[string]any{"id": lc.caseID})
	assert.Equal(t, false, testenv.Get(res.Data, "case", "overdue"), "the clock does not run while records are missing")

	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	require.Empty(t, lc.addRecord(t, lc.member).Errors)
	res = env.As(t, "coordinator", doc, map[string]any{"id": lc.caseID})
	require.Empty(t, res.Errors, res.Raw)
	c := res.Data["case"].(map[string]any)
	assert.Equal(t, "TRIAGE", c["status"])
	complete := apiTime(t, c["recordsCompleteAt"])
	assert.WithinDuration(t, time.Now(), complete, time.Minute)
	assert.Equal(t, complete.Add(domain.UrgencyRoutine.SLA()), apiTime(t, c["dueAt"]), "dueAt counts from records complete, not submission")
	assert.Equal(t, 5*24*time.Hour, complete.Sub(apiTime(t, c["submittedAt"])).Round(time.Hour), "the time before is shown apart")

	t.Run("a case that entered triage before the field keeps its dates", func(t *testing.T) {
		res := env.As(t, "coordinator", `{ cases(first: 100, filter: {status: [ASSIGNED]}) { edges { node { id dueAt submittedAt urgency recordsCompleteAt } } } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		nodes := apiNodes(t, res.Data, "cases")
		require.NotEmpty(t, nodes)
		for _, n := range nodes {
			assert.Nil(t, n["recordsCompleteAt"])
			sla := domain.Urgency(n["urgency"].(string)).SLA()
			assert.Equal(t, apiTime(t, n["submittedAt"]).Add(sla), apiTime(t, n["dueAt"]), "seeded dueAt unchanged")
		}
	})
}
