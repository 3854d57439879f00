package server_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// The authorization matrix of the API contract: for every role and every path
// into the data, exactly what comes back. The expected rows are derived from
// the coordinator's view of the demo data by the rules of the design, never
// from the code under test, so loosening a scope or a field rule fails here.

var authzRoles = []string{"member", "insurer", "provider", "partner", "coordinator"}

// Fixtures added on top of the demo data, because the demo data alone cannot
// tell a loosened rule from a correct one: the demo member shares no policy
// with anyone, and every demo case sent abroad has its consent.
const (
	authzRelative       = "m-9001"          // insured on a family policy with the demo member
	authzFamilyPolicy   = "NS-FAMILY-00001" // the demo member and authzRelative
	authzAbroadInReview = "SO-AUTHZ-000001" // partner's network, consent active, draft opinion
	authzAbroadRevoked  = "SO-AUTHZ-000002" // partner's network, consent revoked, delivered opinion
)

// ---- the table

// authzRow is one path into the data and, for every role, what comes back.
type authzRow struct {
	// what is asked, as the end of a sentence: "<role> <verb> <what>".
	what  string
	query string
	// target picks the id bound to $id for a role; nil when the query has none.
	target func(t *testing.T, w *authzWorld, role string) string
	want   map[string]authzExpect
}

var authzMatrix = []authzRow{
	{
		what:  "the cases in its scope",
		query: `{ cases(first: 100) { totalCount pageInfo { hasNextPage } edges { node { reference } } } }`,
		want:  everyRole(listsCases()),
	},
	{
		what: "the clinical fields of a delivered case in its scope",
		query: `query($id: ID!) { case(id: $id) { reference diagnosis { code description } proposedTreatment questions
			records { id title } } }`,
		target: deliveredCase,
		want: except(reads("case.reference", "case.diagnosis.code", "case.proposedTreatment", "case.questions", "case.records.0.title"),
			"insurer", refused("case.diagnosis", "case.proposedTreatment", "case.questions", "case.records")),
	},
	{
		what:   "the patient's identity on a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { patient { givenName familyName dateOfBirth email phone } } }`,
		target: deliveredCase,
		want: except(reads("case.patient.givenName", "case.patient.familyName", "case.patient.dateOfBirth", "case.patient.email", "case.patient.phone"),
			"partner", refused("case.patient.givenName", "case.patient.familyName", "case.patient.dateOfBirth", "case.patient.email", "case.patient.phone")),
	},
	{
		what:   "the patient's birth year, sex, country and language on a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { patient { birthYear sex country language } } }`,
		target: deliveredCase,
		want:   everyRole(reads("case.patient.birthYear", "case.patient.sex", "case.patient.country", "case.patient.language")),
	},
	{
		what:   "the patient id on a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { patient { id } } }`,
		target: deliveredCase,
		want:   except(seesMemberID(), "partner", seesStablePseudonym()),
	},
	{
		what:   "the opinion content of a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { opinion { report memberSummary diagnosisAssessment } } }`,
		target: deliveredCase,
		want: except(reads("case.opinion.report", "case.opinion.memberSummary", "case.opinion.diagnosisAssessment"),
			"insurer", refused("case.opinion.report", "case.opinion.memberSummary", "case.opinion.diagnosisAssessment")),
	},
	{
		what:   "that and when the opinion of a delivered case in its scope was delivered",
		query:  `query($id: ID!) { case(id: $id) { opinion { status deliveredAt } } }`,
		target: deliveredCase,
		want:   everyRole(reads("case.opinion.status=DELIVERED", "case.opinion.deliveredAt")),
	},
	{
		what:   "the draft opinion of a case in review in its scope",
		query:  `query($id: ID!) { case(id: $id) { status opinion { id status } } }`,
		target: caseInReview,
		want: map[string]authzExpect{
			"member":      noRow("case.opinion"),
			"insurer":     noRow("case.opinion"),
			"provider":    reads("case.status=IN_REVIEW", "case.opinion.status=DRAFT"),
			"partner":     reads("case.status=IN_REVIEW", "case.opinion.status=DRAFT"),
			"coordinator": reads("case.status=IN_REVIEW", "case.opinion.status=DRAFT"),
		},
	},
	{
		what:   "the draft opinion of a case in review in its scope, by id",
		query:  `query($id: ID!) { opinion(id: $id) { status memberSummary } }`,
		target: draftOpinion,
		want: map[string]authzExpect{
			"member":      notFoundLikeMissing("opinion", "Opinion"),
			"insurer":     notFoundLikeMissing("opinion", "Opinion"),
			"provider":    reads("opinion.status=DRAFT", "opinion.memberSummary"),
			"partner":     reads("opinion.status=DRAFT", "opinion.memberSummary"),
			"coordinator": reads("opinion.status=DRAFT", "opinion.memberSummary"),
		},
	},
	{
		what:  "the opinions in its scope",
		query: `{ opinions(first: 100) { totalCount pageInfo { hasNextPage } edges { node { id status } } } }`,
		want:  everyRole(listsOpinions()),
	},
	{
		what:   "the internal fields of the specialist on a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { specialist { orgId email activeCases } } }`,
		target: deliveredCase,
		want: map[string]authzExpect{
			"member":      refused("case.specialist.email", "case.specialist.activeCases"),
			"insurer":     refused("case.specialist.email", "case.specialist.activeCases"),
			"provider":    reads("case.specialist.orgId="+seed.ProviderToronto, "case.specialist.email", "case.specialist.activeCases"),
			"partner":     reads("case.specialist.orgId="+seed.NetworkEuro, "case.specialist.email", "case.specialist.activeCases"),
			"coordinator": reads("case.specialist.email", "case.specialist.activeCases"),
		},
	},
	{
		what:  "specialist emails in the specialists list",
		query: `{ specialists(first: 100) { pageInfo { hasNextPage } edges { node { orgId email } } } }`,
		want:  specialistInternalsByRole(),
	},
	{
		what:  "the policies in its scope, with their insured",
		query: `{ policies(first: 100) { totalCount pageInfo { hasNextPage } edges { node { id policyNumber insurerId insured { id } } } } }`,
		want: map[string]authzExpect{
			"member":      listsPolicies(),
			"insurer":     listsPolicies(),
			"provider":    refusedOperation("policies"),
			"partner":     refusedOperation("policies"),
			"coordinator": listsPolicies(),
		},
	},
	{
		what:   "the policy behind a delivered case in its scope",
		query:  `query($id: ID!) { case(id: $id) { policy { policyNumber } } }`,
		target: deliveredCase,
		want: map[string]authzExpect{
			"member":      reads("case.policy.policyNumber"),
			"insurer":     reads("case.policy.policyNumber"),
			"provider":    noRow("case.policy"),
			"partner":     noRow("case.policy"),
			"coordinator": reads("case.policy.policyNumber"),
		},
	},
	{
		what:   "a policy outside its scope, by id",
		query:  `query($id: ID!) { policy(id: $id) { policyNumber } }`,
		target: policyOutside,
		want: map[string]authzExpect{
			"member":      notFoundLikeMissing("policy", "Policy"),
			"insurer":     notFoundLikeMissing("policy", "Policy"),
			"provider":    refusedOperation("policy"),
			"partner":     refusedOperation("policy"),
			"coordinator": notFoundLikeMissing("policy", "Policy"),
		},
	},
	{
		what:   "a case outside its scope, by id",
		query:  `query($id: ID!) { case(id: $id) { reference diagnosis { code } } }`,
		target: caseOutside,
		want:   everyRole(notFoundLikeMissing("case", "Case")),
	},
	{
		what:   "a case outside its scope, by node id",
		query:  `query($id: ID!) { node(id: $id) { id ... on Case { reference } } }`,
		target: caseOutside,
		want:   everyRole(notFoundLikeMissing("node", "Case")),
	},
	{
		what:   "an opinion and the case behind it, both outside its scope",
		query:  `query($id: ID!) { opinion(id: $id) { status case { reference } } }`,
		target: opinionOutside,
		want:   everyRole(notFoundLikeMissing("opinion", "Opinion")),
	},
	{
		what:   "the opinions of a case outside its scope",
		query:  `query($id: ID) { opinions(first: 10, filter: { caseId: $id }) { totalCount edges { node { id } } } }`,
		target: caseOutside,
		want:   everyRole(emptyList("opinions")),
	},
	{
		what:   "a patient outside its scope, by node id",
		query:  `query($id: ID!) { node(id: $id) { id ... on Patient { birthYear } } }`,
		target: patientOutside,
		want:   everyRole(notFoundLikeMissing("node", "Patient")),
	},
	{
		what:   "a case of the partner's network whose international sharing was revoked",
		query:  `query($id: ID!) { case(id: $id) { reference } }`,
		target: fixtureCase(authzAbroadRevoked),
		want: map[string]authzExpect{
			"member":      notFoundLikeMissing("case", "Case"),
			"insurer":     reads("case.reference=" + authzAbroadRevoked),
			"provider":    notFoundLikeMissing("case", "Case"),
			"partner":     notFoundLikeMissing("case", "Case"),
			"coordinator": reads("case.reference=" + authzAbroadRevoked),
		},
	},
	{
		what:   "the opinion of a case of the partner's network whose international sharing was revoked",
		query:  `query($id: ID!) { opinion(id: $id) { status case { reference } } }`,
		target: fixtureOpinion(authzAbroadRevoked),
		want: map[string]authzExpect{
			"member":      notFoundLikeMissing("opinion", "Opinion"),
			"insurer":     reads("opinion.status=DELIVERED", "opinion.case.reference="+authzAbroadRevoked),
			"provider":    notFoundLikeMissing("opinion", "Opinion"),
			"partner":     notFoundLikeMissing("opinion", "Opinion"),
			"coordinator": reads("opinion.status=DELIVERED", "opinion.case.reference="+authzAbroadRevoked),
		},
	},
	{
		what:  "the audit trail",
		query: `{ auditEvents(first: 5) { totalCount edges { node { id } } } }`,
		want: map[string]authzExpect{
			"member":      refusedOperation("auditEvents"),
			"insurer":     refusedOperation("auditEvents"),
			"provider":    refusedOperation("auditEvents"),
			"partner":     refusedOperation("auditEvents"),
			"coordinator": reads("auditEvents.totalCount"),
		},
	},
}

func TestAuthzMatrix(t *testing.T) {
	for _, row := range authzMatrix {
		for _, role := range authzRoles {
			require.Contains(t, row.want, role, "the matrix must say what %s gets for %q", role, row.what)
		}
	}
	for _, role := range authzRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel() // each role has its own database
			w := newAuthzWorld(t)
			for _, row := range authzMatrix {
				exp := row.want[role]
				t.Run(role+" "+exp.verb+" "+row.what, func(t *testing.T) {
					c := authzCall{w: w, role: role, query: row.query}
					if row.target != nil {
						c.id = row.target(t, w, role)
					}
					c.res = c.send(t, c.id)
					exp.check(t, c)
				})
			}
		})
	}
}

// ---- scope claims

func TestAuthzScopeClaimNarrowsAndNeverWidens(t *testing.T) {
	env := testenv.Start(t)
	for _, tc := range []struct {
		name     string
		persona  string
		scope    string
		query    string
		wantCode string // empty: the operation succeeds
	}{
		{"an insurer token scoped to cases:read cannot list policies", "insurer", "cases:read",
			`{ policies(first: 1) { totalCount } }`, "FORBIDDEN"},
		{"an insurer token scoped to cases:read cannot fetch a policy by id", "insurer", "cases:read",
			`{ policy(id: "` + graph.GlobalID("Policy", store.NewID()) + `") { policyNumber } }`, "FORBIDDEN"},
		{"an insurer token scoped to cases:read still lists its cases", "insurer", "cases:read",
			`{ cases(first: 1) { totalCount } }`, ""},
		{"a member token that claims audit:read still cannot read the audit trail", "member", "cases:read audit:read",
			`{ auditEvents(first: 1) { totalCount } }`, "FORBIDDEN"},
		{"a member token scoped to cases:read cannot list opinions", "member", "cases:read audit:read",
			`{ opinions(first: 1) { totalCount } }`, "FORBIDDEN"},
		{"a provider token that claims policies:read still cannot list policies", "provider", "cases:read policies:read",
			`{ policies(first: 1) { totalCount } }`, "FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := env.Do(t, env.Token(t, testenv.Persona(tc.persona), tc.scope), tc.query, nil)
			if tc.wantCode == "" {
				assert.Empty(t, res.Errors, res.Raw)
				return
			}
			require.Len(t, res.Errors, 1, res.Raw)
			assert.Equal(t, tc.wantCode, res.Errors[0].Code(), res.Raw)
			for field, v := range res.Data {
				assert.Nil(t, v, "nothing of the refused %s comes back", field)
			}
		})
	}

	t.Run("the viewer's scopes are the role's rights narrowed by the claim", func(t *testing.T) {
		res := env.Do(t, env.Token(t, testenv.Persona("member"), "cases:read audit:read"), `{ viewer { scopes } }`, nil)
		require.Empty(t, res.Errors, res.Raw)
		assert.Equal(t, []any{"cases:read"}, testenv.Get(res.Data, "viewer", "scopes"))
	})
}

// A narrowed token reaches no more through an edge than through a query:
// seen on a running server, a token with only opinions:read read the case
// and the patient identity behind an opinion (opinion.case.patient), and
// one with only cases:read read the opinion's content through case.opinion.
func TestAuthzANarrowedTokenReachesNoMoreThroughAnEdge(t *testing.T) {
	env := testenv.Start(t)
	coordinator := testenv.Persona("coordinator")

	res := env.Do(t, env.Token(t, coordinator, "opinions:read"), `{ opinions(first: 5) { edges { node {
		status case { reference diagnosis { code } patient { givenName familyName } } } } } }`, nil)
	edges, _ := testenv.Get(res.Data, "opinions", "edges").([]any)
	require.NotEmpty(t, edges, res.Raw)
	for i := range edges {
		assert.NotNil(t, testenv.Get(res.Data, "opinions", "edges", i, "node", "status"), "the opinion itself is in the token's scope")
		assert.Nil(t, testenv.Get(res.Data, "opinions", "edges", i, "node", "case"), "the case behind it is not: %s", res.Raw)
	}
	require.NotEmpty(t, res.Errors, res.Raw)
	for _, e := range res.Errors {
		assert.Equal(t, "FORBIDDEN", e.Code(), res.Raw)
	}
	assert.NotContains(t, res.Raw, `"givenName"`)
	assert.NotContains(t, res.Raw, `"diagnosis":{`)

	res = env.Do(t, env.Token(t, coordinator, "cases:read"), `{ cases(first: 5, filter: {status: [OPINION_DELIVERED, CLOSED]}) {
		edges { node { reference opinion { status memberSummary } } } } }`, nil)
	edges, _ = testenv.Get(res.Data, "cases", "edges").([]any)
	require.NotEmpty(t, edges, res.Raw)
	for i := range edges {
		assert.NotNil(t, testenv.Get(res.Data, "cases", "edges", i, "node", "reference"))
		assert.Nil(t, testenv.Get(res.Data, "cases", "edges", i, "node", "opinion", "memberSummary"), "no opinion content without opinions:read: %s", res.Raw)
		assert.Nil(t, testenv.Get(res.Data, "cases", "edges", i, "node", "opinion", "status"))
	}
	require.NotEmpty(t, res.Errors, res.Raw)
	for _, e := range res.Errors {
		assert.Equal(t, "FORBIDDEN", e.Code(), res.Raw)
	}
}

// A token that may write cases but not read them: seen in review, its
// addMedicalRecord stored the record and then answered INTERNAL (the case
// it read back had no clinical part to find the record in), so a client
// retrying added it twice.
func TestAuthzAWriteOnlyTokenAddsARecordOnce(t *testing.T) {
	env := testenv.Start(t)
	res := env.As(t, "coordinator", `{ cases(first: 1, filter: {status: [SUBMITTED]}) { edges { node { id records { id } } } } }`, nil)
	require.Empty(t, res.Errors, res.Raw)
	id := testenv.Get(res.Data, "cases", "edges", 0, "node", "id")
	before := len(testenv.Get(res.Data, "cases", "edges", 0, "node", "records").([]any))

	tok := env.Token(t, testenv.Persona("coordinator"), "cases:write")
	res = env.Do(t, tok, `mutation($id: ID!) { addMedicalRecord(input: {caseId: $id, title: "Echo report", kind: IMAGING}) { __typename } }`, map[string]any{"id": id})
	assert.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, "AddMedicalRecordPayload", testenv.Get(res.Data, "addMedicalRecord", "__typename"), res.Raw)

	res = env.As(t, "coordinator", `query($id: ID!) { case(id: $id) { records { title } } }`, map[string]any{"id": id})
	require.Empty(t, res.Errors, res.Raw)
	records := testenv.Get(res.Data, "case", "records").([]any)
	assert.Len(t, records, before+1)
}

// A provider token narrowed to one specialist (specialist_id) reads only
// that specialist's cases; seen in review, it could still rewrite a
// colleague's profile, country included (which decides who may read the
// colleague's cases), and register new specialists.
func TestAuthzAOneSpecialistTokenWritesOnlyThatSpecialist(t *testing.T) {
	env := testenv.Start(t)
	provider := env.Token(t, testenv.Persona("provider"))
	register := func(tok, name string) testenv.Response {
		return env.Do(t, tok, `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { id country } } }`,
			map[string]any{"in": map[string]any{"name": name, "specialties": []any{"oncology"}, "languages": []any{"en"}, "country": "CA"}})
	}
	res := register(provider, "Dr Self")
	require.Empty(t, res.Errors, res.Raw)
	self := testenv.Get(res.Data, "upsertSpecialist", "specialist", "id").(string)
	res = register(provider, "Dr Colleague")
	require.Empty(t, res.Errors, res.Raw)
	colleague := testenv.Get(res.Data, "upsertSpecialist", "specialist", "id").(string)
	_, selfRaw, ok := graph.ParseGlobalID(self)
	require.True(t, ok)
	p := testenv.Persona("provider")
	p.SpecialistID = selfRaw
	narrowed := env.Token(t, p)

	move := func(id string) testenv.Response {
		return env.Do(t, narrowed, `mutation($in: UpsertSpecialistInput!) { upsertSpecialist(input: $in) { specialist { id country } } }`,
			map[string]any{"in": map[string]any{"id": id, "name": "Moved", "specialties": []any{"oncology"}, "languages": []any{"en"}, "country": "US"}})
	}
	res = move(colleague)
	require.Len(t, res.Errors, 1, res.Raw)
	assert.Equal(t, "NOT_FOUND", res.Errors[0].Code(), "a colleague is out of this token's reach, as for its reads")
	res = env.As(t, "coordinator", `query($id: ID!) { node(id: $id) { ... on Specialist { country name } } }`, map[string]any{"id": colleague})
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, "CA", testenv.Get(res.Data, "node", "country"), "the colleague's profile is unchanged")

	res = move(self)
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, "US", testenv.Get(res.Data, "upsertSpecialist", "specialist", "country"), "its own profile it may change")

	res = register(narrowed, "Dr New")
	require.Len(t, res.Errors, 1, res.Raw)
	assert.Equal(t, "FORBIDDEN", res.Errors[0].Code())
}

// ---- consent

func TestAuthzPartnerLosesACaseTheMomentInternationalSharingIsRevoked(t *testing.T) {
	w := newAuthzWorld(t)
	c := w.byRef(t, authzAbroadInReview)
	require.True(t, authzSees("partner", c), "fixture: the partner sees the case before the revocation")
	caseQuery := `query($id: ID!) { case(id: $id) { reference } }`
	opinionQuery := `query($id: ID!) { opinion(id: $id) { status } }`
	listQuery := `{ cases(first: 100) { edges { node { reference } } } opinions(first: 100) { edges { node { id } } } }`

	before := w.env.As(t, "partner", caseQuery, map[string]any{"id": c.id})
	require.Empty(t, before.Errors, before.Raw)
	before = w.env.As(t, "partner", opinionQuery, map[string]any{"id": c.opinionID})
	require.Empty(t, before.Errors, before.Raw)

	insurer, memberID := domain.SplitMemberKey(c.patient)
	member := w.env.Token(t, domain.Principal{Subject: memberID, Role: domain.RoleMember, Org: insurer})
	res := w.env.Do(t, member, `mutation($in: ConsentInput!) { revokeConsent(input: $in) { case { consents { kind active } } } }`,
		map[string]any{"in": map[string]any{"caseId": c.id, "kind": "INTERNATIONAL_SHARING"}})
	require.Empty(t, res.Errors, res.Raw)

	t.Run("the case by id is not found", func(t *testing.T) {
		res := w.env.As(t, "partner", caseQuery, map[string]any{"id": c.id})
		assert.Nil(t, testenv.Get(res.Data, "case"))
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
	})
	t.Run("the opinion by id is not found", func(t *testing.T) {
		res := w.env.As(t, "partner", opinionQuery, map[string]any{"id": c.opinionID})
		assert.Nil(t, testenv.Get(res.Data, "opinion"))
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
	})
	t.Run("the case and its opinion leave the partner's lists", func(t *testing.T) {
		res := w.env.As(t, "partner", listQuery, nil)
		require.Empty(t, res.Errors, res.Raw)
		assert.NotContains(t, edgeValues(res.Data, "cases", "reference"), c.ref)
		assert.NotContains(t, edgeValues(res.Data, "opinions", "id"), c.opinionID)
	})
	t.Run("the insurer and the coordinator still see the case", func(t *testing.T) {
		for _, role := range []string{"insurer", "coordinator"} {
			res := w.env.As(t, role, caseQuery, map[string]any{"id": c.id})
			assert.Empty(t, res.Errors, "%s: %s", role, res.Raw)
			assert.Equal(t, c.ref, testenv.Get(res.Data, "case", "reference"), role)
		}
	})
}

// ---- expectations

// authzCall is one request of the matrix, kept so an expectation can judge
// the answer and ask again.
type authzCall struct {
	w     *authzWorld
	role  string
	query string
	id    string
	res   testenv.Response
}

func (c authzCall) send(t *testing.T, id string) testenv.Response {
	t.Helper()
	var vars map[string]any
	if id != "" {
		vars = map[string]any{"id": id}
	}
	return c.w.env.As(t, c.role, c.query, vars)
}

// authzExpect is what one role gets on one row; verb completes the sentence
// that names the sub-test.
type authzExpect struct {
	verb  string
	check func(t *testing.T, c authzCall)
}

func everyRole(e authzExpect) map[string]authzExpect {
	m := map[string]authzExpect{}
	for _, r := range authzRoles {
		m[r] = e
	}
	return m
}

func except(e authzExpect, role string, other authzExpect) map[string]authzExpect {
	m := everyRole(e)
	m[role] = other
	return m
}

// at reads a dotted path ("case.records.0.title") of the response data.
func at(data map[string]any, path string) any {
	var keys []any
	for _, p := range strings.Split(path, ".") {
		if n, err := strconv.Atoi(p); err == nil {
			keys = append(keys, n)
		} else {
			keys = append(keys, p)
		}
	}
	return testenv.Get(data, keys...)
}

func parentOf(path string) string { return path[:strings.LastIndex(path, ".")] }

// reads: no error, and every path has a value ("path=value" pins it).
func reads(paths ...string) authzExpect {
	return authzExpect{"reads", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		for _, p := range paths {
			path, want, pinned := strings.Cut(p, "=")
			v := at(c.res.Data, path)
			if assert.NotNil(t, v, "%s has no value: %s", path, c.res.Raw) && pinned {
				assert.Equal(t, want, fmt.Sprint(v), path)
			}
		}
	}}
}

// refused: each field is null with FORBIDDEN at its path, while the object
// holding it is there; no other error.
func refused(paths ...string) authzExpect {
	return authzExpect{"is refused", func(t *testing.T, c authzCall) {
		codes := c.res.PathCodes()
		for _, p := range paths {
			assert.Nil(t, at(c.res.Data, p), "%s must not come back", p)
			assert.Equal(t, "FORBIDDEN", codes[p], "error at %s: %s", p, c.res.Raw)
			assert.NotNil(t, at(c.res.Data, parentOf(p)), "the object holding %s stays visible: %s", p, c.res.Raw)
		}
		assert.Len(t, c.res.Errors, len(paths), "one FORBIDDEN per withheld field: %s", c.res.Raw)
	}}
}

// refusedOperation: the root field fails with FORBIDDEN (the role lacks the
// scope), and nothing of it comes back.
func refusedOperation(root string) authzExpect {
	return authzExpect{"is refused", func(t *testing.T, c authzCall) {
		assert.Nil(t, at(c.res.Data, root))
		require.Len(t, c.res.Errors, 1, c.res.Raw)
		assert.Equal(t, "FORBIDDEN", c.res.Errors[0].Code(), c.res.Raw)
		assert.Equal(t, []any{root}, c.res.Errors[0].Path)
	}}
}

// noRow: an edge to a row outside the scope is simply null, no error.
func noRow(path string) authzExpect {
	return authzExpect{"gets null for", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		assert.NotNil(t, at(c.res.Data, parentOf(path)), c.res.Raw)
		assert.Nil(t, at(c.res.Data, path), "%s must be null: %s", path, c.res.Raw)
	}}
}

// notFoundLikeMissing: the root is null with NOT_FOUND, and the answer is
// byte for byte the one for a random id that exists nowhere, so an object
// outside the scope cannot be told from a missing one.
func notFoundLikeMissing(root, typ string) authzExpect {
	return authzExpect{"gets NOT_FOUND, as for a missing id, for", func(t *testing.T, c authzCall) {
		assert.Nil(t, at(c.res.Data, root), c.res.Raw)
		require.Len(t, c.res.Errors, 1, c.res.Raw)
		got := c.res.Errors[0]
		assert.Equal(t, "NOT_FOUND", got.Code())
		assert.Equal(t, []any{root}, got.Path)
		assert.NotContains(t, c.res.Raw, "SO-", "no case reference may leak")

		missing := c.send(t, graph.GlobalID(typ, missingRawID(typ)))
		require.Len(t, missing.Errors, 1, missing.Raw)
		assert.Equal(t, missing.Errors[0].Message, got.Message, "the message must not tell an existing object from a missing one")
		assert.Equal(t, missing.Errors[0].Extensions, got.Extensions)
		assert.Equal(t, missing.Data, c.res.Data)
	}}
}

func missingRawID(typ string) string {
	switch typ {
	case "Opinion":
		return store.OpinionIDForCase(store.NewID())
	case "Patient":
		return fmt.Sprintf("m-%d", time.Now().UnixNano()%1_000_000_000+100_000)
	}
	return store.NewID()
}

// emptyList: a connection with no edges and a zero count.
func emptyList(root string) authzExpect {
	return authzExpect{"gets an empty list for", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		assert.Empty(t, at(c.res.Data, root+".edges"), c.res.Raw)
		assert.EqualValues(t, 0, at(c.res.Data, root+".totalCount"))
	}}
}

// listsCases: exactly the references the design's rules give the role.
func listsCases() authzExpect {
	return authzExpect{"lists exactly", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		var want []string
		for _, x := range c.w.cases {
			if authzSees(c.role, x) {
				want = append(want, x.ref)
			}
		}
		c.w.notVacuous(t, c.role, len(want), len(c.w.cases))
		got := edgeValues(c.res.Data, "cases", "reference")
		assert.ElementsMatch(t, want, got)
		assert.EqualValues(t, len(want), at(c.res.Data, "cases.totalCount"))
		assert.Equal(t, false, at(c.res.Data, "cases.pageInfo.hasNextPage"))
	}}
}

// listsOpinions: the opinions of the role's cases; members and insurers only
// delivered ones.
func listsOpinions() authzExpect {
	return authzExpect{"lists exactly", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		var want []string
		all := 0
		for _, x := range c.w.cases {
			if x.opinionID == "" {
				continue
			}
			all++
			if authzSeesOpinion(c.role, x) {
				want = append(want, x.opinionID)
			}
		}
		c.w.notVacuous(t, c.role, len(want), all)
		assert.ElementsMatch(t, want, edgeValues(c.res.Data, "opinions", "id"))
		assert.EqualValues(t, len(want), at(c.res.Data, "opinions.totalCount"))
		if c.role == "member" || c.role == "insurer" {
			assert.NotContains(t, edgeValues(c.res.Data, "opinions", "status"), "DRAFT")
		}
	}}
}

// listsPolicies: exactly the role's policies; a member sees only themself
// among the insured, others every insured person.
func listsPolicies() authzExpect {
	return authzExpect{"lists exactly", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		var want []string
		for _, p := range c.w.policies {
			if authzSeesPolicy(c.role, p) {
				want = append(want, p.number)
			}
		}
		c.w.notVacuous(t, c.role, len(want), len(c.w.policies))
		assert.ElementsMatch(t, want, edgeValues(c.res.Data, "policies", "policyNumber"))
		assert.EqualValues(t, len(want), at(c.res.Data, "policies.totalCount"))
		if c.role == "member" {
			assert.Contains(t, want, c.w.firstPolicy, "the demo member holds the first policy")
			assert.Contains(t, want, authzFamilyPolicy)
		}
		edges, _ := at(c.res.Data, "policies.edges").([]any)
		for _, e := range edges {
			number := testenv.Get(e, "node", "policyNumber")
			var insured []string
			for _, pt := range asList(testenv.Get(e, "node", "insured")) {
				insured = append(insured, decodeRaw(t, testenv.Get(pt, "id")))
			}
			wantInsured := []string{seed.DemoMemberKey}
			if c.role != "member" {
				wantInsured = c.w.policyByNumber(t, fmt.Sprint(number)).insured
			}
			assert.ElementsMatch(t, wantInsured, insured, "insured of %v", number)
		}
	}}
}

func specialistInternalsByRole() map[string]authzExpect {
	return map[string]authzExpect{
		"member":      specialistInternals("reads none of the", func(string) bool { return false }),
		"insurer":     specialistInternals("reads none of the", func(string) bool { return false }),
		"provider":    specialistInternals("reads only its own org's", func(org string) bool { return org == seed.ProviderToronto }),
		"partner":     specialistInternals("reads only its own network's", func(org string) bool { return org == seed.NetworkEuro }),
		"coordinator": specialistInternals("reads all of the", func(string) bool { return true }),
	}
}

// specialistInternals: the email comes back exactly for the orgs own says,
// and is FORBIDDEN on every other specialist. (One internal field only: the
// server caps the number of errors in a response, and the load is covered on
// a case's specialist.)
func specialistInternals(verb string, own func(org string) bool) authzExpect {
	return authzExpect{verb, func(t *testing.T, c authzCall) {
		for _, e := range c.res.Errors {
			require.Equal(t, "FORBIDDEN", e.Code(), "only withheld fields may fail: %s", c.res.Raw)
		}
		codes := c.res.PathCodes()
		edges := asList(at(c.res.Data, "specialists.edges"))
		require.Len(t, edges, len(c.w.specialists), c.res.Raw)
		assert.Equal(t, false, at(c.res.Data, "specialists.pageInfo.hasNextPage"))
		withheld := 0
		for i, e := range edges {
			org := fmt.Sprint(testenv.Get(e, "node", "orgId"))
			for _, f := range []string{"email"} {
				path := fmt.Sprintf("specialists.edges.%d.node.%s", i, f)
				if own(org) {
					assert.NotNil(t, at(c.res.Data, path), "%s of %s", f, org)
					assert.Empty(t, codes[path], path)
					continue
				}
				withheld++
				assert.Nil(t, at(c.res.Data, path), "%s of %s", f, org)
				assert.Equal(t, "FORBIDDEN", codes[path], path)
			}
		}
		assert.Len(t, c.res.Errors, withheld, "one FORBIDDEN per withheld field")
	}}
}

// seesMemberID: the patient id is the member's own id.
func seesMemberID() authzExpect {
	return authzExpect{"sees the member id as", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		assert.Equal(t, c.w.byID(t, c.id).patient, decodeRaw(t, at(c.res.Data, "case.patient.id")))
	}}
}

// seesStablePseudonym: the partner's patient id is a pseudonym, not the
// member id, and the same on every request.
func seesStablePseudonym() authzExpect {
	return authzExpect{"sees a stable pseudonym as", func(t *testing.T, c authzCall) {
		require.Empty(t, c.res.Errors, c.res.Raw)
		first := at(c.res.Data, "case.patient.id")
		raw := decodeRaw(t, first)
		assert.True(t, strings.HasPrefix(raw, "pt_"), "pseudonym %q", raw)
		assert.NotContains(t, raw, "m-")
		assert.NotContains(t, raw, c.w.byID(t, c.id).patient)
		again := c.send(t, c.id)
		require.Empty(t, again.Errors, again.Raw)
		assert.Equal(t, first, at(again.Data, "case.patient.id"), "the pseudonym is stable")
	}}
}

// ---- targets

func deliveredCase(t *testing.T, w *authzWorld, role string) string {
	return w.pick(t, role, func(c authzCase) bool { return c.status == "OPINION_DELIVERED" }).id
}

func caseInReview(t *testing.T, w *authzWorld, role string) string {
	return w.pick(t, role, func(c authzCase) bool { return c.status == "IN_REVIEW" && c.opinionStatus == "DRAFT" }).id
}

func draftOpinion(t *testing.T, w *authzWorld, role string) string {
	return w.pick(t, role, func(c authzCase) bool { return c.status == "IN_REVIEW" && c.opinionStatus == "DRAFT" }).opinionID
}

// caseOutside is a real case the role may not see; the coordinator sees
// every case, so for it the only case outside is one that does not exist.
func caseOutside(t *testing.T, w *authzWorld, role string) string {
	for _, c := range w.cases {
		if !authzSees(role, c) {
			return c.id
		}
	}
	require.Equal(t, "coordinator", role, "%s sees every case", role)
	return graph.GlobalID("Case", missingRawID("Case"))
}

func opinionOutside(t *testing.T, w *authzWorld, role string) string {
	for _, c := range w.cases {
		if c.opinionID != "" && c.opinionStatus == "DELIVERED" && !authzSees(role, c) {
			return c.opinionID
		}
	}
	require.Equal(t, "coordinator", role)
	return graph.GlobalID("Opinion", missingRawID("Opinion"))
}

func policyOutside(t *testing.T, w *authzWorld, role string) string {
	for _, p := range w.policies {
		if !authzSeesPolicy(role, p) {
			return p.id
		}
	}
	require.Equal(t, "coordinator", role)
	return graph.GlobalID("Policy", missingRawID("Policy"))
}

// patientOutside is a member id the role may not read: for the member, the
// relative on its own family policy; for the partner, the real member id of
// a patient it knows only by pseudonym.
func patientOutside(t *testing.T, w *authzWorld, role string) string {
	switch role {
	case "member":
		return graph.GlobalID("Patient", authzRelative)
	case "partner":
		return graph.GlobalID("Patient", w.pick(t, role, func(authzCase) bool { return true }).patient)
	case "coordinator":
		return graph.GlobalID("Patient", missingRawID("Patient"))
	}
	for _, p := range w.policies {
		for _, m := range p.insured {
			if !w.patientVisible(role, m) {
				return graph.GlobalID("Patient", m)
			}
		}
	}
	require.Fail(t, "no patient outside the scope of "+role)
	return ""
}

func fixtureCase(ref string) func(*testing.T, *authzWorld, string) string {
	return func(t *testing.T, w *authzWorld, _ string) string { return w.byRef(t, ref).id }
}

func fixtureOpinion(ref string) func(*testing.T, *authzWorld, string) string {
	return func(t *testing.T, w *authzWorld, _ string) string { return w.byRef(t, ref).opinionID }
}

// ---- the world as the coordinator sees it

type authzCase struct {
	id, ref, status          string
	patient                  string // raw member id
	insurer                  string
	specialistOrg            string
	intlConsent              bool
	opinionID, opinionStatus string
}

type authzPolicy struct {
	id, number, insurer string
	insured             []string // raw member ids
}

type authzWorld struct {
	env         *testenv.Env
	cases       []authzCase
	policies    []authzPolicy
	firstPolicy string // the seed's first policy number
	specialists []authzSpecialist
}

type authzSpecialist struct{ id, org string }

// The rules of the API contract, written out independently of internal/store.

func authzSees(role string, c authzCase) bool {
	switch role {
	case "member":
		return c.patient == seed.DemoMemberKey
	case "insurer":
		return c.insurer == seed.InsurerNorthstar
	case "provider":
		return c.specialistOrg == seed.ProviderToronto
	case "partner":
		return c.specialistOrg == seed.NetworkEuro && c.intlConsent
	case "coordinator":
		return true
	}
	return false
}

func authzSeesOpinion(role string, c authzCase) bool {
	if c.opinionID == "" || !authzSees(role, c) {
		return false
	}
	return c.opinionStatus == "DELIVERED" || role == "provider" || role == "partner" || role == "coordinator"
}

func authzSeesPolicy(role string, p authzPolicy) bool {
	switch role {
	case "member":
		return slices.Contains(p.insured, seed.DemoMemberKey)
	case "insurer":
		return p.insurer == seed.InsurerNorthstar
	case "coordinator":
		return true
	}
	return false
}

func (w *authzWorld) patientVisible(role, member string) bool {
	switch role {
	case "insurer":
		for _, p := range w.policies {
			if p.insurer == seed.InsurerNorthstar && slices.Contains(p.insured, member) {
				return true
			}
		}
	case "provider":
		for _, c := range w.cases {
			if c.patient == member && authzSees(role, c) {
				return true
			}
		}
	}
	return false
}

const authzWorldQuery = `{
  cases(first: 100) { pageInfo { hasNextPage } edges { node {
    id reference status patient { id } policy { insurerId } specialist { orgId }
    consents { kind active } opinion { id status } } } }
  policies(first: 100) { pageInfo { hasNextPage } edges { node { id policyNumber insurerId insured { id } } } }
  accepting: specialists(first: 100, filter: { acceptingCases: true }) { pageInfo { hasNextPage } edges { node { id orgId } } }
  resting: specialists(first: 100, filter: { acceptingCases: false }) { pageInfo { hasNextPage } edges { node { id orgId } } }
}`

// authzSpecialistsQuery lists every specialist in two filtered halves: the
// unfiltered list is itself under test.
const authzSpecialistsQuery = `{
  accepting: specialists(first: 100, filter: { acceptingCases: true }) { pageInfo { hasNextPage } edges { node { id orgId } } }
  resting: specialists(first: 100, filter: { acceptingCases: false }) { pageInfo { hasNextPage } edges { node { id orgId } } }
}`

// newAuthzWorld starts a fresh gateway, adds the fixtures and reads back
// everything as the coordinator.
func newAuthzWorld(t *testing.T) *authzWorld {
	t.Helper()
	env := testenv.Start(t)
	addAuthzFixtures(t, env)
	res := env.As(t, "coordinator", authzWorldQuery, nil)
	require.Empty(t, res.Errors, res.Raw)
	for _, root := range []string{"cases", "policies", "accepting", "resting"} {
		require.Equal(t, false, at(res.Data, root+".pageInfo.hasNextPage"), "the demo data fits one page of %s", root)
	}
	w := &authzWorld{env: env}
	for _, e := range asList(at(res.Data, "cases.edges")) {
		n := testenv.Get(e, "node")
		c := authzCase{
			id: fmt.Sprint(testenv.Get(n, "id")), ref: fmt.Sprint(testenv.Get(n, "reference")),
			status:  fmt.Sprint(testenv.Get(n, "status")),
			patient: decodeRaw(t, testenv.Get(n, "patient", "id")),
			insurer: fmt.Sprint(testenv.Get(n, "policy", "insurerId")),
		}
		if org, ok := testenv.Get(n, "specialist", "orgId").(string); ok {
			c.specialistOrg = org
		}
		for _, k := range asList(testenv.Get(n, "consents")) {
			if testenv.Get(k, "kind") == "INTERNATIONAL_SHARING" && testenv.Get(k, "active") == true {
				c.intlConsent = true
			}
		}
		if id, ok := testenv.Get(n, "opinion", "id").(string); ok {
			c.opinionID, c.opinionStatus = id, fmt.Sprint(testenv.Get(n, "opinion", "status"))
		}
		w.cases = append(w.cases, c)
	}
	for _, e := range asList(at(res.Data, "policies.edges")) {
		n := testenv.Get(e, "node")
		p := authzPolicy{id: fmt.Sprint(testenv.Get(n, "id")), number: fmt.Sprint(testenv.Get(n, "policyNumber")),
			insurer: fmt.Sprint(testenv.Get(n, "insurerId"))}
		for _, pt := range asList(testenv.Get(n, "insured")) {
			p.insured = append(p.insured, decodeRaw(t, testenv.Get(pt, "id")))
		}
		w.policies = append(w.policies, p)
	}
	slices.SortFunc(w.policies, func(a, b authzPolicy) int { return strings.Compare(a.number, b.number) })
	w.specialists = specialistsOf(t, res.Data)

	// The coordinator's view is the oracle: check it against the seed, whose
	// references are deterministic, so the oracle cannot itself be narrowed.
	demo := seed.Build(seed.DemoSize, env.Now)
	w.firstPolicy = demo.Policies[0].PolicyNumber
	wantRefs := []string{authzAbroadInReview, authzAbroadRevoked}
	for _, c := range demo.Cases {
		wantRefs = append(wantRefs, c.Reference)
	}
	var gotRefs []string
	for _, c := range w.cases {
		gotRefs = append(gotRefs, c.ref)
	}
	require.ElementsMatch(t, wantRefs, gotRefs, "the coordinator sees every case")
	require.Len(t, w.policies, len(demo.Policies)+1, "the coordinator sees every policy")
	require.Len(t, w.specialists, len(demo.Specialists), "the coordinator sees every specialist")
	return w
}

// addAuthzFixtures writes, as is, a family policy shared by the demo member
// and a relative, and two of the relative's cases sent to a specialist of the
// partner's network: one in review with a draft and the consent active, one
// delivered whose consent was revoked since.
func addAuthzFixtures(t *testing.T, env *testenv.Env) {
	t.Helper()
	res := env.As(t, "coordinator", authzSpecialistsQuery, nil)
	require.Empty(t, res.Errors, res.Raw)
	var euro string
	for _, s := range specialistsOf(t, res.Data) {
		if s.org == seed.NetworkEuro {
			euro = s.id
			break
		}
	}
	require.NotEmpty(t, euro, "the demo data has a specialist of the partner's network")

	now := env.Now
	policy := &domain.Policy{
		ID: store.NewIDAt(now.AddDate(0, 0, -60)), PolicyNumber: authzFamilyPolicy, Product: domain.ProductCriticalIllness,
		Status: domain.PolicyActive, EffectiveFrom: time.Date(now.Year()-1, 1, 1, 0, 0, 0, 0, time.UTC),
		InsurerID: seed.InsurerNorthstar, InsuredIDs: []string{seed.DemoMemberKey, domain.MemberKey(seed.InsurerNorthstar, authzRelative)},
		SecondOpinion: domain.Benefit{Covered: true, CasesPerYear: 5, International: true},
	}
	relative := store.DemoPatient{NewInsured: store.NewInsured{
		MemberID: authzRelative, GivenName: "Bea", FamilyName: "Martin", DateOfBirth: time.Date(1961, 3, 14, 0, 0, 0, 0, time.UTC),
		Sex: domain.SexFemale, Email: authzRelative + "@example.org", Phone: "+1-555-0199", Country: "CA", Language: "en",
	}, InsurerID: seed.InsurerNorthstar}

	abroadCase := func(ref string, status domain.CaseStatus, age time.Duration, intlActive bool) *domain.Case {
		submitted := now.Add(-age)
		granted := submitted.Add(time.Hour)
		intl := domain.Consent{Kind: domain.ConsentInternationalSharing, Active: true, GrantedAt: &granted}
		if !intlActive {
			revoked := submitted.Add(90 * time.Hour)
			intl.Active, intl.RevokedAt = false, &revoked
		}
		return &domain.Case{
			ID: store.NewIDAt(submitted), Reference: ref, Status: status, PolicyID: policy.ID, PatientID: domain.MemberKey(seed.InsurerNorthstar, authzRelative),
			InsurerID: seed.InsurerNorthstar, Specialty: "oncology", Urgency: domain.UrgencyRoutine, PreferredLanguage: "en",
			DueAt: submitted.Add(domain.UrgencyRoutine.SLA()), SubmittedAt: submitted, UpdatedAt: submitted.Add(time.Hour), Version: 3,
			SpecialistID: euro, SpecialistOrgID: seed.NetworkEuro,
			Consents: []domain.Consent{{Kind: domain.ConsentRecordsRelease, Active: true, GrantedAt: &granted}, intl},
			Clinical: &domain.CaseClinical{
				Diagnosis:         domain.Diagnosis{Code: "C50.9", Description: "Malignant neoplasm of breast"},
				ProposedTreatment: "Mastectomy", Questions: []string{"Is surgery needed?"},
				Records: []domain.Record{{ID: "r-" + ref, Title: "Biopsy", Kind: domain.RecordPathology, RecordedOn: &granted}},
			},
		}
	}
	opinion := func(c *domain.Case, status domain.OpinionStatus) *domain.Opinion {
		o := &domain.Opinion{
			CaseID: c.ID, SpecialistID: c.SpecialistID, OrgID: c.SpecialistOrgID, Status: status, UpdatedAt: c.UpdatedAt,
			Content: &domain.OpinionContent{
				DiagnosisAssessment: domain.DiagnosisConfirmed, TreatmentAssessment: domain.TreatmentAgree,
				MemberSummary: "Summary for " + c.Reference, Report: "Report for " + c.Reference,
			},
		}
		if status == domain.OpinionDelivered {
			at := c.SubmittedAt.Add(72 * time.Hour)
			o.DeliveredAt, c.DeliveredAt = &at, &at
		}
		return o
	}
	inReview := abroadCase(authzAbroadInReview, domain.StatusInReview, 30*time.Hour, true)
	revoked := abroadCase(authzAbroadRevoked, domain.StatusOpinionDelivered, 200*time.Hour, false)
	demo := store.Demo{
		Patients: []store.DemoPatient{relative},
		Policies: []*domain.Policy{policy},
		Cases:    []*domain.Case{inReview, revoked},
		Opinions: []*domain.Opinion{opinion(inReview, domain.OpinionDraft), opinion(revoked, domain.OpinionDelivered)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, env.Store.InsertDemo(ctx, demo))
}

// pick returns the first case the role sees that matches.
func (w *authzWorld) pick(t *testing.T, role string, match func(authzCase) bool) authzCase {
	t.Helper()
	for _, c := range w.cases {
		if authzSees(role, c) && match(c) {
			return c
		}
	}
	require.FailNow(t, "the data has no matching case in the scope of "+role)
	return authzCase{}
}

func (w *authzWorld) byID(t *testing.T, id string) authzCase {
	t.Helper()
	for _, c := range w.cases {
		if c.id == id {
			return c
		}
	}
	require.FailNow(t, "no case "+id)
	return authzCase{}
}

func (w *authzWorld) byRef(t *testing.T, ref string) authzCase {
	t.Helper()
	for _, c := range w.cases {
		if c.ref == ref {
			return c
		}
	}
	require.FailNow(t, "no case "+ref)
	return authzCase{}
}

func (w *authzWorld) policyByNumber(t *testing.T, number string) authzPolicy {
	t.Helper()
	for _, p := range w.policies {
		if p.number == number {
			return p
		}
	}
	require.FailNow(t, "no policy "+number)
	return authzPolicy{}
}

// notVacuous guards a list expectation: a role other than the coordinator
// must see some rows but not all, or the check proves nothing.
func (w *authzWorld) notVacuous(t *testing.T, role string, n, all int) {
	t.Helper()
	require.NotZero(t, n, "%s should see something", role)
	if role != "coordinator" {
		require.Less(t, n, all, "%s should not see everything", role)
	}
}

// ---- JSON helpers

func specialistsOf(t *testing.T, data map[string]any) []authzSpecialist {
	t.Helper()
	var out []authzSpecialist
	for _, half := range []string{"accepting", "resting"} {
		for _, e := range asList(at(data, half+".edges")) {
			out = append(out, authzSpecialist{
				id:  decodeRaw(t, testenv.Get(e, "node", "id")),
				org: fmt.Sprint(testenv.Get(e, "node", "orgId")),
			})
		}
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func edgeValues(data map[string]any, root, field string) []string {
	var out []string
	for _, e := range asList(at(data, root+".edges")) {
		out = append(out, fmt.Sprint(testenv.Get(e, "node", field)))
	}
	return out
}

func decodeRaw(t *testing.T, id any) string {
	t.Helper()
	s, ok := id.(string)
	require.True(t, ok, "id %v", id)
	_, raw, ok := graph.ParseGlobalID(s)
	require.True(t, ok, "id %q is not a global id", s)
	return raw
}
