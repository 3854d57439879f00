package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/telemetry"
	"github.com/secondopinion/gateway/internal/testenv"
)

// Marker values: PHI that must never reach the log.
const (
	mGiven     = "Zebulonqx"
	mFamily    = "Quintessaplum"
	mBirth     = "1933-03-07"
	mEmail     = "zeb.marker@phi.example"
	mPhone     = "+1-555-0199-77"
	mDiagnosis = "Xylophonitis markeroma"
	mTreatment = "Glockenspiel resection"
	mQuestion  = "Is the marimba lobe involved?"
	mNote      = "Decision note violetmarker"
)

const createPolicy = `mutation CreatePolicy($input: CreatePolicyInput!) { createPolicy(input: $input) { policy { id insured { id givenName familyName dateOfBirth email phone } } } }`

const requestCase = `mutation RequestSecondOpinion($input: RequestSecondOpinionInput!) { requestSecondOpinion(input: $input) { case { id } } }`

const readCase = `query MyCase($id: ID!) { case(id: $id) { id diagnosis { description } proposedTreatment questions patient { givenName familyName dateOfBirth email phone } } }`

func TestTheLogCarriesOneLinePerRequestAndNoPHI(t *testing.T) {
	env := testenv.Start(t)
	res := env.As(t, "insurer", createPolicy, map[string]any{"input": map[string]any{
		"policyNumber": "NS-77001", "product": "CRITICAL_ILLNESS", "effectiveFrom": "2026-01-01",
		"secondOpinion": map[string]any{"covered": true, "casesPerYear": 2, "international": false},
		"insured": []any{map[string]any{"memberId": "m-7701", "givenName": mGiven, "familyName": mFamily,
			"dateOfBirth": mBirth, "sex": "FEMALE", "email": mEmail, "phone": mPhone, "country": "CA"}},
	}})
	require.Empty(t, res.Errors, res.Raw)
	policyID := testenv.Get(res.Data, "createPolicy", "policy", "id")

	res = env.As(t, "insurer", requestCase, map[string]any{"input": map[string]any{
		"policyId": policyID, "patientMemberId": "m-7701", "specialty": "oncology",
		"diagnosis":         map[string]any{"code": "C50.9", "description": mDiagnosis},
		"proposedTreatment": mTreatment, "questions": []any{mQuestion},
	}})
	require.Empty(t, res.Errors, res.Raw)
	caseID := testenv.Get(res.Data, "requestSecondOpinion", "case", "id")

	// Read it back in full, and as roles that may not see all of it.
	res = env.As(t, "coordinator", readCase, map[string]any{"id": caseID})
	require.Empty(t, res.Errors, res.Raw)
	require.Contains(t, res.Raw, mDiagnosis)
	require.Contains(t, res.Raw, mGiven)
	res = env.As(t, "insurer", readCase, map[string]any{"id": caseID})
	require.Contains(t, res.Codes(), "FORBIDDEN", "the insurer never reads the diagnosis")

	// Provoke errors that quote the values back in several ways.
	env.As(t, "coordinator", `query Broken { case(id: "`+mDiagnosis+`") { id } }`, nil)
	env.As(t, "coordinator", `query Typo($id: ID!) { case(id: $id) { id diagnoses } } # `+mGiven, map[string]any{"id": mFamily})
	env.As(t, "coordinator", `query Vars($first: Int) { cases(first: $first) { totalCount } }`, map[string]any{"first": mEmail})
	env.As(t, "coordinator", `{ case(id: "`+mPhone, nil) // does not parse
	env.As(t, "member", `mutation { recordDecision(input: { caseId: "`+mBirth+`", decision: FOLLOW_OPINION, note: "`+mNote+`" }) { case { id } } }`, nil)
	env.Do(t, "not-a-token-"+mGiven, `{ viewer { role } }`, nil)

	logs := env.Logs.String()
	for _, marker := range []string{mGiven, mFamily, mBirth, mEmail, mPhone, mDiagnosis, mTreatment, mQuestion, mNote, "markeroma", "Zebulon"} {
		assert.NotContains(t, logs, marker, "PHI in the log")
	}

	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=request ") && strings.Contains(l, "path=/graphql") {
			lines = append(lines, l)
		}
	}
	assert.Len(t, lines, 10, "one line per request:\n%s", strings.Join(lines, "\n"))
	first := lines[0]
	for _, want := range []string{"request_id=", "principal.sub=u-northstar-claims", "principal.role=insurer", "principal.org=ins-northstar",
		"operation=CreatePolicy", "operation_type=mutation", "duration=", "outcome=ok", "status=200"} {
		assert.Contains(t, first, want)
	}
	assert.Contains(t, logs, "operation=Broken operation_type=query")
	assert.Contains(t, logs, "error_codes=[NOT_FOUND]")
	assert.Contains(t, logs, "error_codes=[BAD_USER_INPUT]")
	assert.Contains(t, logs, "auth_failure=")
	assert.Contains(t, logs, "outcome=refused")
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func TestMetricsCountOperationsErrorsRefusalsAndCommands(t *testing.T) {
	env := testenv.Start(t)
	env.As(t, "member", `query Viewer { viewer { role } }`, nil)
	env.As(t, "member", `query Viewer { viewer { role } }`, nil)
	env.As(t, "member", `query SomePartnerInventedName7 { viewer { role } }`, nil)
	env.As(t, "coordinator", `query CaseAudit { case(id: "nope") { id } }`, nil)
	env.Do(t, "", `{ viewer { role } }`, nil)
	env.Do(t, "x.y.z", `{ viewer { role } }`, nil)

	base := env.Serve(t)
	ws, err := testenv.DialWS(t, base, env.Token(t, testenv.Persona("coordinator")))
	require.NoError(t, err)
	expectType(t, ws, "connection_ack")
	ws.Subscribe(t, "1", `subscription { caseEvents { caseId } }`, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(scrape(t, env.Handler), "gateway_subscriptions_active 1") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	m := scrape(t, env.Handler)
	for _, want := range []string{
		`gateway_graphql_requests_total{operation="Viewer",outcome="ok",type="query"} 2`,
		`gateway_graphql_requests_total{operation="other",outcome="ok",type="query"} 1`,
		`gateway_graphql_requests_total{operation="CaseAudit",outcome="partial",type="query"} 1`,
		`gateway_graphql_requests_total{operation="other",outcome="refused",type="none"} 2`,
		`gateway_graphql_request_duration_seconds_bucket{operation="Viewer",type="query",le="+Inf"} 2`,
		`gateway_graphql_errors_total{code="NOT_FOUND"} 1`,
		`gateway_graphql_errors_total{code="UNAUTHENTICATED"} 2`,
		`gateway_auth_failures_total{reason="missing_token",transport="http"} 1`,
		`gateway_subscriptions_active 1`,
		`gateway_db_command_duration_seconds_count{command="find",outcome="ok"}`,
		`gateway_db_command_duration_seconds_bucket{command="insert",outcome="ok",le="+Inf"}`,
		`go_goroutines`,
	} {
		assert.True(t, strings.Contains(m, want), "no %s in /metrics", want)
	}
	assert.NotContains(t, m, "SomePartnerInventedName7", "unknown names fold into other")

	// A bad websocket token counts too.
	bad, err := testenv.DialWS(t, base, "garbage")
	require.NoError(t, err)
	expectClose(t, bad, 4401)
	assert.Contains(t, scrape(t, env.Handler), `transport="websocket"`)
}

func TestMetricsCountRateLimitRefusals(t *testing.T) {
	env := testenv.Start(t, testenv.Options{RateLimits: server.RateLimits{
		PerAddress: 1e6, AddressBurst: 1e6, PerPrincipal: 0.001, PrincipalBurst: 1, MaxTrackedKeys: 100, IdleForgetAfter: time.Hour,
	}})
	tok := env.Token(t, testenv.Persona("member"))
	env.Do(t, tok, `query Viewer { viewer { role } }`, nil)
	res := env.Do(t, tok, `query Viewer { viewer { role } }`, nil)
	require.Equal(t, http.StatusTooManyRequests, res.Status)
	m := scrape(t, env.Handler)
	assert.Contains(t, m, `gateway_rate_limited_total{scope="principal"} 1`)
	assert.Contains(t, m, `gateway_graphql_errors_total{code="RATE_LIMITED"} 1`)
	assert.Contains(t, env.Logs.String(), "principal.role=member")
}

type failingSink struct{}

func (failingSink) AppendAudit(context.Context, []domain.AuditEvent) error {
	return errors.New("audit store down")
}

func TestTracesCoverOperationsResolversAndCommands(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	env := testenv.Start(t, testenv.Options{Tracer: tp})

	res := env.As(t, "coordinator", `query InsurerCases { cases(first: 3) { edges { node { id patient { givenName } } } } }`, nil)
	require.Empty(t, res.Errors, res.Raw)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	root, op, field, cmd := byName["POST /graphql"], byName["query InsurerCases"], byName["Query.cases"], byName["mongodb.find"]
	require.NotNil(t, root, "spans: %v", names(rec.Ended()))
	require.NotNil(t, op)
	require.NotNil(t, field)
	require.NotNil(t, cmd)
	assert.Equal(t, root.SpanContext().SpanID(), op.Parent().SpanID(), "the operation is under the HTTP span")
	assert.Equal(t, op.SpanContext().SpanID(), field.Parent().SpanID(), "the root field is under the operation")
	assert.Equal(t, root.SpanContext().TraceID(), cmd.SpanContext().TraceID(), "database commands join the request's trace")
	for _, s := range rec.Ended() {
		for _, a := range s.Attributes() {
			assert.NotContains(t, a.Value.Emit(), "Alice", "no values on spans")
		}
	}
	assert.Contains(t, env.Logs.String(), "trace_id="+root.SpanContext().TraceID().String())

	// An INTERNAL error names the request and the trace.
	failing := testenv.Start(t, testenv.Options{Tracer: tp, AuditSink: func(*store.Store) audit.Sink { return failingSink{} }})
	res = failing.As(t, "coordinator", `{ cases(first: 1) { edges { node { diagnosis { description } } } } }`, nil)
	require.Equal(t, []string{"INTERNAL"}, res.Codes(), res.Raw)
	assert.NotEmpty(t, res.Errors[0].Extensions["requestId"])
	assert.Len(t, res.Errors[0].Extensions["traceId"], 32)
}

func expectType(t *testing.T, ws *testenv.WS, typ string) {
	t.Helper()
	m, err := ws.Next(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, typ, m.Type, string(m.Payload))
}

func expectClose(t *testing.T, ws *testenv.WS, code websocket.StatusCode) {
	t.Helper()
	for {
		_, err := ws.Next(5 * time.Second)
		require.NotErrorIs(t, err, testenv.ErrTimeout)
		if err != nil {
			require.Equal(t, code, websocket.CloseStatus(err), "%v", err)
			return
		}
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func TestOperationNamesFoldUnknownNames(t *testing.T) {
	n := telemetry.NewOperationNames("Viewer")
	assert.Equal(t, "Viewer", n.Label("Viewer"))
	assert.Equal(t, telemetry.OtherOperation, n.Label("viewer"))
	assert.Equal(t, telemetry.OtherOperation, n.Label(""))
}
