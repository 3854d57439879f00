package fhir_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/fhir"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// The FHIR door is another door into the same rooms (issue 18): for every
// caller below, everything FHIR shows of every resource type is compared,
// case by case and field by field, with what GraphQL shows the same caller
// of the same data; and no protected value any caller could not read
// through GraphQL appears anywhere in what FHIR answered it.

// caller is one row of the table both doors are checked against. The flags
// say what the caller must see somewhere (so neither door can pass by
// showing nothing); what exactly it sees is whatever GraphQL shows it.
type caller struct {
	name      string
	principal domain.Principal
	// scope narrows the token (none: the role's full rights).
	scope string
	// cases: some case; identity: some patient's name; clinical: some
	// diagnosis; document: some record's download link; opinion: some
	// opinion document; coverage: some policy.
	cases, identity, clinical, document, opinion, coverage bool
}

const (
	oldMember   = "m-parity-old" // 92 years old: no birth year for a partner
	youngMember = "m-parity-young"
)

func callers() []caller {
	persona := testenv.Persona
	member := func(id string) domain.Principal {
		return domain.Principal{Subject: id, Role: domain.RoleMember, Org: seed.InsurerNorthstar}
	}
	return []caller{
		{name: "the demo member", principal: persona("member"), cases: true, identity: true, clinical: true, opinion: true, coverage: true},
		{name: "a 92-year-old member", principal: member(oldMember), cases: true, identity: true, clinical: true, document: true, opinion: true, coverage: true},
		{name: "a member whose reviewer lost the records release", principal: member(youngMember), cases: true, identity: true, clinical: true, document: true, coverage: true},
		{name: "the insurer", principal: persona("insurer"), cases: true, identity: true, coverage: true},
		{name: "another insurer", principal: domain.Principal{Subject: "u-maple", Role: domain.RoleInsurer, Org: seed.InsurerMaple}, cases: true, identity: true, coverage: true},
		{name: "the provider", principal: persona("provider"), cases: true, identity: true, clinical: true, opinion: true},
		{name: "the partner", principal: persona("partner"), cases: true, clinical: true, document: true, opinion: true},
		{name: "the coordinator", principal: persona("coordinator"), cases: true, identity: true, clinical: true, document: true, opinion: true, coverage: true},
		// Scopes narrow both doors alike.
		{name: "a coordinator token with cases:read only", principal: persona("coordinator"), scope: "cases:read", cases: true, identity: true, clinical: true, document: true},
		{name: "an insurer token with policies:read only", principal: persona("insurer"), scope: "policies:read", coverage: true},
		{name: "a partner token with opinions:read only", principal: persona("partner"), scope: "opinions:read specialists:read", opinion: true},
	}
}

// parityFixture adds to the demo data what the demo lacks: a partner case of
// a 92-year-old with an uploaded document and a delivered opinion, and a
// provider case whose member revoked the records release after upload.
type parityFixture struct {
	partnerCase, providerCase string // raw case ids
}

func setUpParity(t *testing.T, env *testenv.Env) parityFixture {
	t.Helper()
	ok := func(r testenv.Response) testenv.Response {
		t.Helper()
		require.Empty(t, r.Errors, r.Raw)
		return r
	}
	pol := ok(env.As(t, "insurer", `mutation { createPolicy(input: { policyNumber: "NS-PARITY", product: CRITICAL_ILLNESS, effectiveFrom: "2020-01-01",
		secondOpinion: { covered: true, casesPerYear: 5, international: true },
		insured: [
			{ memberId: "`+oldMember+`", givenName: "Evelyn", familyName: "Paritysmith", dateOfBirth: "1934-03-04", sex: FEMALE, email: "evelyn.parity@example.org", phone: "+1 416 555 0199", country: "CA", language: "fr" },
			{ memberId: "`+youngMember+`", givenName: "Noah", familyName: "Paritywright", dateOfBirth: "1988-11-12", sex: MALE, email: "noah.parity@example.org", country: "CA", language: "en" }
		] }) { policy { id } } }`, nil))
	policyID := testenv.Get(pol.Data, "createPolicy", "policy", "id").(string)

	specialists := ok(env.As(t, "coordinator", `{ specialists(first: 100) { edges { node { id orgId country acceptingCases } } } }`, nil))
	pick := func(org string) string {
		for _, e := range testenv.Get(specialists.Data, "specialists", "edges").([]any) {
			n := e.(map[string]any)["node"].(map[string]any)
			if n["orgId"] == org && n["acceptingCases"] == true && (org != seed.NetworkEuro || n["country"] != "CA") {
				return n["id"].(string)
			}
		}
		t.Fatalf("the demo has no specialist of %s to assign", org)
		return ""
	}

	open := func(member, diagnosis, treatment, question string) (string, string) {
		r := ok(env.As(t, "insurer", `mutation($input: RequestSecondOpinionInput!) { requestSecondOpinion(input: $input) { case { id } } }`, map[string]any{"input": map[string]any{
			"policyId": policyID, "patientMemberId": member, "specialty": "oncology",
			"diagnosis":         map[string]any{"code": "C61", "description": diagnosis},
			"proposedTreatment": treatment, "questions": []string{question},
		}}))
		gid := testenv.Get(r.Data, "requestSecondOpinion", "case", "id").(string)
		_, raw, _ := graph.ParseGlobalID(gid)
		return gid, raw
	}
	as := func(member string) string {
		return env.Token(t, domain.Principal{Subject: member, Role: domain.RoleMember, Org: seed.InsurerNorthstar})
	}
	upload := func(member, caseID, title string) {
		p := domain.Principal{Subject: member, Role: domain.RoleMember, Org: seed.InsurerNorthstar}
		_, _, err := env.Documents.Upload(context.Background(), p, caseID, workflow.RecordInput{Title: title, Kind: domain.RecordImaging},
			strings.NewReader("%PDF-1.4\n% parity\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"))
		require.NoError(t, err)
	}
	consent := func(member, gid, kind string, grant bool) {
		m := "grantConsent"
		if !grant {
			m = "revokeConsent"
		}
		ok(env.Do(t, as(member), `mutation($c: ID!, $k: ConsentKind!) { `+m+`(input: { caseId: $c, kind: $k }) { case { id } } }`, map[string]any{"c": gid, "k": kind}))
	}
	assign := func(caseGID, specialistID string) {
		ok(env.As(t, "coordinator", `mutation($c: ID!, $s: ID!) { assignSpecialist(input: { caseId: $c, specialistId: $s }) { case { status } } }`, map[string]any{"c": caseGID, "s": specialistID}))
	}

	// The partner's case: abroad, with both consents, reviewed and delivered.
	aGID, aRaw := open(oldMember, "Prostate neoplasm parity-diagnosis-A", "Parity radical prostatectomy", "Is parity surgery needed?")
	upload(oldMember, aRaw, "Parity MRI pelvis")
	consent(oldMember, aGID, "RECORDS_RELEASE", true)
	consent(oldMember, aGID, "INTERNATIONAL_SHARING", true)
	assign(aGID, pick(seed.NetworkEuro))
	ok(env.As(t, "partner", `mutation($c: ID!) { startReview(input: { caseId: $c }) { case { status } } }`, map[string]any{"c": aGID}))
	ok(env.As(t, "partner", `mutation($input: SaveOpinionDraftInput!) { saveOpinionDraft(input: $input) { opinion { id } } }`, map[string]any{"input": map[string]any{
		"caseId": aGID, "diagnosisAssessment": "CONFIRMED", "treatmentAssessment": "ALTERNATIVE",
		"treatmentOptions": []any{map[string]any{"name": "Parity active surveillance", "description": "Parity watchful waiting", "invasiveness": "LOW"}},
		"clinicalTrials":   []any{map[string]any{"registryId": "NCT09999999", "title": "Parity trial", "url": "https://clinicaltrials.gov/study/NCT09999999"}},
		"answers":          []any{map[string]any{"question": "Is parity surgery needed?", "answer": "Parity answer: not yet."}},
		"memberSummary":    "Parity summary for the member.", "report": "Parity detailed report.",
	}}))
	ok(env.As(t, "partner", `mutation($c: ID!) { deliverOpinion(input: { caseId: $c }) { opinion { id } } }`, map[string]any{"c": aGID}))

	// The provider's case: assigned with the records released, then the
	// release revoked: the provider keeps the admin fields only.
	bGID, bRaw := open(youngMember, "Prostate neoplasm parity-diagnosis-B", "Parity radiotherapy", "Is parity radiotherapy enough?")
	upload(youngMember, bRaw, "Parity biopsy report")
	consent(youngMember, bGID, "RECORDS_RELEASE", true)
	assign(bGID, pick(seed.ProviderToronto))
	consent(youngMember, bGID, "RECORDS_RELEASE", false)
	return parityFixture{partnerCase: aRaw, providerCase: bRaw}
}

// ---- what GraphQL shows

// caseSeen is one case as a door showed it, in terms both doors share.
type caseSeen struct {
	Reference, Status, Specialty string
	Policy, Patient, Specialist  string   // FHIR ids, "" when not shown
	Diagnosis, Proposed          string   // code|description; text
	Questions, Consents, Records []string // sorted
	RecordRefs                   []string // the ServiceRequest's supportingInfo; sorted
}

type patientSeen struct {
	Name, BirthDate, Sex, Country, Language, AgeBand string
	Telecom                                          []string
}

type seen struct {
	cases       map[string]caseSeen    // by FHIR case id
	patients    map[string]patientSeen // by FHIR patient id
	policies    []string               // FHIR ids, sorted
	specialists []string               // FHIR ids, sorted
	opinions    map[string]int         // FHIR opinion id -> status of $document (GraphQL: 200 content, 403 meta only, 404 none)
	docPatients map[string]patientSeen // FHIR opinion id -> the patient its document shows
	values      map[string]bool        // every protected string shown
}

func rawOf(t *testing.T, globalID string) string {
	_, raw, ok := graph.ParseGlobalID(globalID)
	require.True(t, ok, globalID)
	return raw
}

// forbiddenOnly fails on any GraphQL error but FORBIDDEN (a field the role
// may not read), NOT_FOUND (a lookup of an object out of scope) and the
// note that the error list was cut.
func forbiddenOnly(t *testing.T, r testenv.Response) {
	t.Helper()
	for _, e := range r.Errors {
		if e.Code() == "FORBIDDEN" || e.Code() == "NOT_FOUND" || (len(e.Path) == 0 && strings.HasSuffix(e.Message, "more errors not shown")) {
			continue
		}
		t.Fatalf("unexpected GraphQL error %s: %s", e.Code(), r.Raw)
	}
}

func str(v any) string { s, _ := v.(string); return s }

func throughGraphQL(t *testing.T, env *testenv.Env, token string, deliveredOpinions []string) seen {
	s := seen{cases: map[string]caseSeen{}, patients: map[string]patientSeen{}, opinions: map[string]int{}, docPatients: map[string]patientSeen{}, values: map[string]bool{}}
	note := func(vals ...string) {
		for _, v := range vals {
			if v != "" {
				s.values[v] = true
			}
		}
	}
	after := ""
	for {
		r := env.Do(t, token, `query($after: String) { cases(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node {
			id reference status specialty policy { id } patient { id } specialist { id }
			diagnosis { code description } proposedTreatment questions consents { kind active }
			records { id title kind document { contentType downloadUrl } } } } } }`, map[string]any{"after": after})
		forbiddenOnly(t, r)
		for _, e := range asList(testenv.Get(r.Data, "cases", "edges")) {
			n := e.(map[string]any)["node"].(map[string]any)
			caseRaw := rawOf(t, n["id"].(string))
			c := caseSeen{Reference: str(n["reference"]), Status: str(n["status"]), Specialty: str(n["specialty"])}
			if v, ok := n["policy"].(map[string]any); ok {
				c.Policy = fhir.ID(rawOf(t, v["id"].(string)))
			}
			if v, ok := n["patient"].(map[string]any); ok {
				c.Patient = fhir.ID(rawOf(t, v["id"].(string)))
			}
			if v, ok := n["specialist"].(map[string]any); ok {
				c.Specialist = fhir.ID(rawOf(t, v["id"].(string)))
			}
			if d, ok := n["diagnosis"].(map[string]any); ok {
				c.Diagnosis = str(d["code"]) + "|" + str(d["description"])
				note(str(d["description"]))
			}
			c.Proposed = str(n["proposedTreatment"])
			note(c.Proposed)
			for _, q := range asList(n["questions"]) {
				c.Questions = append(c.Questions, str(q))
				note(str(q))
			}
			for _, x := range asList(n["consents"]) {
				m := x.(map[string]any)
				c.Consents = append(c.Consents, fmt.Sprintf("%s=%v", m["kind"], m["active"]))
			}
			for _, x := range asList(n["records"]) {
				m := x.(map[string]any)
				link := false
				if d, ok := m["document"].(map[string]any); ok {
					link = str(d["downloadUrl"]) != ""
				}
				c.Records = append(c.Records, fmt.Sprintf("%s|%s|%s|link=%v", fhir.ID(caseRaw+"."+str(m["id"])), m["title"], m["kind"], link))
				c.RecordRefs = append(c.RecordRefs, fhir.ID(caseRaw+"."+str(m["id"])))
				note(str(m["title"]))
			}
			sort.Strings(c.Questions)
			sort.Strings(c.Consents)
			sort.Strings(c.Records)
			sort.Strings(c.RecordRefs)
			s.cases[fhir.ID(caseRaw)] = c
			if c.Patient != "" {
				s.patients[c.Patient] = patientSeen{}
			}
		}
		if testenv.Get(r.Data, "cases", "pageInfo", "hasNextPage") != true {
			break
		}
		after = testenv.Get(r.Data, "cases", "pageInfo", "endCursor").(string)
	}
	// Every patient the cases name, as the node query shows it.
	for id := range s.patients {
		raw, _ := fhir.RawID(id)
		r := env.Do(t, token, `query($id: ID!) { node(id: $id) { ... on Patient { `+patientFields+` } } }`,
			map[string]any{"id": graph.GlobalID("Patient", raw)})
		forbiddenOnly(t, r)
		n, _ := testenv.Get(r.Data, "node").(map[string]any)
		require.NotNil(t, n, "a case's patient reads back: %s", r.Raw)
		s.patients[id] = graphqlPatient(n, note)
	}
	for _, list := range []struct {
		field string
		into  *[]string
	}{{"policies", &s.policies}, {"specialists", &s.specialists}} {
		after := ""
		for {
			r := env.Do(t, token, `query($after: String) { `+list.field+`(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id } } } }`, map[string]any{"after": after})
			forbiddenOnly(t, r)
			for _, e := range asList(testenv.Get(r.Data, list.field, "edges")) {
				*list.into = append(*list.into, fhir.ID(rawOf(t, testenv.Get(e, "node", "id").(string))))
			}
			if testenv.Get(r.Data, list.field, "pageInfo", "hasNextPage") != true {
				break
			}
			after = testenv.Get(r.Data, list.field, "pageInfo", "endCursor").(string)
		}
		sort.Strings(*list.into)
	}
	for _, id := range deliveredOpinions {
		raw, _ := fhir.RawID(id)
		r := env.Do(t, token, `query($id: ID!) { node(id: $id) { ... on Opinion { id memberSummary report
			revisedDiagnosis { description } treatmentOptions { name description } clinicalTrials { title } answers { question answer }
			case { patient { `+patientFields+` } } } } }`, map[string]any{"id": graph.GlobalID("Opinion", raw)})
		forbiddenOnly(t, r)
		n, _ := testenv.Get(r.Data, "node").(map[string]any)
		switch {
		case n == nil && slices.Contains(r.Codes(), "FORBIDDEN"):
			s.opinions[id] = http.StatusForbidden // a token without opinions:read
		case n == nil:
			s.opinions[id] = http.StatusNotFound
		case n["memberSummary"] == nil:
			s.opinions[id] = http.StatusForbidden
		default:
			s.opinions[id] = http.StatusOK
			note(str(n["memberSummary"]), str(n["report"]), str(testenv.Get(n, "revisedDiagnosis", "description")))
			for _, x := range append(append(asList(n["treatmentOptions"]), asList(n["clinicalTrials"])...), asList(n["answers"])...) {
				for _, v := range x.(map[string]any) {
					note(str(v))
				}
			}
			// The document's patient is the opinion's case's patient.
			if pt, ok := testenv.Get(n, "case", "patient").(map[string]any); ok {
				s.docPatients[id] = graphqlPatient(pt, note)
			}
		}
	}
	return s
}

func asList(v any) []any { l, _ := v.([]any); return l }

const patientFields = `id givenName familyName dateOfBirth birthYear ageBand sex email phone country language`

// graphqlPatient is a GraphQL Patient in the terms both doors share; note
// collects its protected values.
func graphqlPatient(n map[string]any, note func(...string)) patientSeen {
	var p patientSeen
	if g := str(n["givenName"]); g != "" {
		p.Name = g + " " + str(n["familyName"])
		note(g, str(n["familyName"]))
	}
	switch {
	case str(n["dateOfBirth"]) != "":
		p.BirthDate = str(n["dateOfBirth"])
		note(p.BirthDate)
	case n["birthYear"] != nil:
		p.BirthDate = strconv.Itoa(int(n["birthYear"].(float64)))
	}
	p.Sex, p.Country, p.Language, p.AgeBand = strings.ToLower(str(n["sex"])), str(n["country"]), str(n["language"]), str(n["ageBand"])
	for _, k := range []string{"email", "phone"} {
		if v := str(n[k]); v != "" {
			p.Telecom = append(p.Telecom, k+":"+v)
			note(v)
		}
	}
	return p
}

// fhirPatient is a FHIR Patient in the same terms.
func fhirPatient(pt map[string]any) patientSeen {
	var p patientSeen
	if n := testenv.Get(pt, "name", 0); n != nil {
		p.Name = strings.Join(toStrings(testenv.Get(n, "given")), " ") + " " + str(testenv.Get(n, "family"))
	}
	p.BirthDate, p.Sex, p.Country = str(pt["birthDate"]), str(pt["gender"]), str(testenv.Get(pt, "address", 0, "country"))
	p.Language = str(testenv.Get(pt, "communication", 0, "language", "coding", 0, "code"))
	p.AgeBand = str(testenv.Get(pt, "extension", 0, "valueString"))
	for _, tc := range asList(pt["telecom"]) {
		p.Telecom = append(p.Telecom, str(tc.(map[string]any)["system"])+":"+str(tc.(map[string]any)["value"]))
	}
	return p
}

// ---- what FHIR shows

// searchAll follows a search's next links and returns every resource and
// every body answered.
func searchAll(t *testing.T, env *testenv.Env, token, path string) (status int, resources []map[string]any, bodies []string) {
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 100, "paging does not end")
		code, b := call(t, env, token, "GET", path, nil)
		raw, _ := json.Marshal(b)
		bodies = append(bodies, string(raw))
		if code != http.StatusOK {
			return code, nil, bodies
		}
		resources = append(resources, entries(b)...)
		path = ""
		for _, l := range asList(b["link"]) {
			if l.(map[string]any)["relation"] == "next" {
				u := l.(map[string]any)["url"].(string)
				path = u[strings.Index(u, fhir.Prefix):]
			}
		}
	}
	return http.StatusOK, resources, bodies
}

func refID(v any, typ string) string {
	r := str(testenv.Get(v, "reference"))
	if id, ok := strings.CutPrefix(r, typ+"/"); ok {
		return id
	}
	return ""
}

func concept(v any) string {
	return str(testenv.Get(v, "coding", 0, "code")) + "|" + str(testenv.Get(v, "coding", 0, "display"))
}

// statuses maps our case status to ServiceRequest.status.
var requestStatusOf = map[string]string{
	"SUBMITTED": "active", "TRIAGE": "active", "ASSIGNED": "active", "IN_REVIEW": "active",
	"OPINION_DELIVERED": "completed", "CLOSED": "completed", "CANCELLED": "revoked",
}

func throughFHIR(t *testing.T, env *testenv.Env, token string, deliveredOpinions []string) (seen, map[string]int, []string) {
	s := seen{cases: map[string]caseSeen{}, patients: map[string]patientSeen{}, opinions: map[string]int{}, docPatients: map[string]patientSeen{}}
	statuses := map[string]int{}
	var all []string
	search := func(typ string) []map[string]any {
		code, res, bodies := searchAll(t, env, token, fhir.Prefix+"/"+typ+"?_count=100")
		statuses[typ] = code
		all = append(all, bodies...)
		for _, r := range res {
			require.Equal(t, typ, r["resourceType"])
		}
		return res
	}
	for _, sr := range search("ServiceRequest") {
		id := sr["id"].(string)
		c := caseSeen{Reference: str(testenv.Get(sr, "identifier", 0, "value")), Specialty: str(testenv.Get(sr, "code", "coding", 0, "code"))}
		c.Status = str(sr["status"]) // checked against the Task below
		c.Patient = refID(sr["subject"], "Patient")
		c.Policy = refID(testenv.Get(sr, "insurance", 0), "Coverage")
		c.Specialist = refID(testenv.Get(sr, "performer", 0), "Practitioner")
		if rc := testenv.Get(sr, "reasonCode", 0); rc != nil {
			c.Diagnosis = concept(rc)
		}
		c.Proposed = strings.TrimPrefix(str(testenv.Get(sr, "orderDetail", 0, "text")), "proposed treatment: ")
		for _, n := range asList(sr["note"]) {
			c.Questions = append(c.Questions, str(n.(map[string]any)["text"]))
		}
		sort.Strings(c.Questions)
		for _, x := range asList(sr["supportingInfo"]) {
			c.RecordRefs = append(c.RecordRefs, refID(x, "DocumentReference"))
		}
		sort.Strings(c.RecordRefs)
		s.cases[id] = c
		if c.Patient != "" {
			s.patients[c.Patient] = patientSeen{}
		}
	}
	for _, tk := range search("Task") {
		id := tk["id"].(string)
		c, ok := s.cases[id]
		require.True(t, ok, "Task %s has a ServiceRequest", id)
		our := str(testenv.Get(tk, "businessStatus", "coding", 0, "code"))
		assert.Equal(t, requestStatusOf[our], c.Status, "ServiceRequest.status of %s follows its Task", id)
		assert.Equal(t, id, refID(tk["focus"], "ServiceRequest"))
		assert.Equal(t, c.Patient, refID(tk["for"], "Patient"))
		assert.Equal(t, c.Specialist, refID(tk["owner"], "Practitioner"))
		c.Status = our
		s.cases[id] = c
	}
	conditions := map[string]string{}
	for _, cd := range search("Condition") {
		conditions[cd["id"].(string)] = concept(cd["code"])
		assert.Equal(t, s.cases[cd["id"].(string)].Patient, refID(cd["subject"], "Patient"))
	}
	for id, c := range s.cases {
		assert.Equal(t, c.Diagnosis, conditions[id], "Condition %s is the ServiceRequest's reason", id)
	}
	for _, cs := range search("Consent") {
		id := refID(testenv.Get(cs, "provision", "data", 0, "reference"), "ServiceRequest")
		c := s.cases[id]
		c.Consents = append(c.Consents, fmt.Sprintf("%s=%v", testenv.Get(cs, "category", 1, "coding", 0, "code"), cs["status"] == "active"))
		sort.Strings(c.Consents)
		s.cases[id] = c
	}
	for _, d := range search("DocumentReference") {
		id := refID(testenv.Get(d, "context", "related", 0), "ServiceRequest")
		c := s.cases[id]
		link := str(testenv.Get(d, "content", 0, "attachment", "url")) != ""
		c.Records = append(c.Records, fmt.Sprintf("%s|%s|%s|link=%v", d["id"], d["description"], testenv.Get(d, "type", "coding", 0, "code"), link))
		sort.Strings(c.Records)
		s.cases[id] = c
	}
	for id := range s.patients {
		code, pt := call(t, env, token, "GET", fhir.Prefix+"/Patient/"+id, nil)
		require.Equal(t, http.StatusOK, code, "a case's subject reads back: %v", pt)
		raw, _ := json.Marshal(pt)
		all = append(all, string(raw))
		s.patients[id] = fhirPatient(pt)
	}
	for _, cov := range search("Coverage") {
		s.policies = append(s.policies, cov["id"].(string))
	}
	sort.Strings(s.policies)
	for _, pr := range search("Practitioner") {
		assert.Nil(t, pr["telecom"], "a Practitioner is the public profile: no contact")
		s.specialists = append(s.specialists, pr["id"].(string))
	}
	sort.Strings(s.specialists)
	for _, id := range deliveredOpinions {
		code, b := call(t, env, token, "GET", fhir.Prefix+"/Composition/"+id+"/$document", nil)
		raw, _ := json.Marshal(b)
		all = append(all, string(raw))
		s.opinions[id] = code
		for _, e := range entries(b) {
			if e["resourceType"] == "Patient" {
				s.docPatients[id] = fhirPatient(e)
			}
		}
	}
	return s, statuses, all
}

func toStrings(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, str(x))
	}
	return out
}

func TestEveryRoleSeesNothingThroughFHIRItCouldNotSeeThroughGraphQL(t *testing.T) {
	env := testenv.Start(t)
	fx := setUpParity(t, env)

	// Every delivered opinion, and everything protected, as the coordinator
	// reads it through GraphQL.
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	ops := env.Do(t, coordinator, `{ opinions(first: 100) { edges { node { id status } } } }`, nil)
	require.Empty(t, ops.Errors, ops.Raw)
	var delivered []string
	for _, e := range asList(testenv.Get(ops.Data, "opinions", "edges")) {
		if testenv.Get(e, "node", "status") == "DELIVERED" {
			delivered = append(delivered, fhir.ID(rawOf(t, testenv.Get(e, "node", "id").(string))))
		}
	}
	require.NotEmpty(t, delivered)
	everything := throughGraphQL(t, env, coordinator, delivered)
	// Specialists' contact is internal: never in a Practitioner. Their
	// public profile is anyone's: a patient's name that is also part of a
	// specialist's (the demo draws both from one list) proves nothing.
	sps := env.Do(t, coordinator, `{ specialists(first: 100) { edges { node { email name institution } } } }`, nil)
	require.Empty(t, sps.Errors, sps.Raw)
	var public []string
	for _, e := range asList(testenv.Get(sps.Data, "specialists", "edges")) {
		if v := str(testenv.Get(e, "node", "email")); v != "" {
			everything.values[v] = true
		}
		public = append(public, str(testenv.Get(e, "node", "name")), str(testenv.Get(e, "node", "institution")))
	}
	for v := range everything.values {
		if slices.ContainsFunc(public, func(p string) bool { return strings.Contains(p, v) }) {
			delete(everything.values, v)
		}
	}
	require.Contains(t, everything.values, "Parity MRI pelvis")
	require.Contains(t, everything.values, "Parity summary for the member.")

	for _, c := range callers() {
		t.Run(c.name+" sees the same through both doors", func(t *testing.T) {
			var scope []string
			if c.scope != "" {
				scope = []string{c.scope}
			}
			token := env.Token(t, c.principal, scope...)
			viaGraphQL := throughGraphQL(t, env, token, delivered)
			viaFHIR, statuses, bodies := throughFHIR(t, env, token, delivered)

			// The same cases, field by field, and the same parts of them.
			assert.Equal(t, viaGraphQL.cases, viaFHIR.cases)
			assert.Equal(t, viaGraphQL.patients, viaFHIR.patients)
			assert.Equal(t, viaGraphQL.policies, viaFHIR.policies)
			assert.Equal(t, viaGraphQL.specialists, viaFHIR.specialists)
			assert.Equal(t, viaGraphQL.opinions, viaFHIR.opinions)
			assert.Equal(t, viaGraphQL.docPatients, viaFHIR.docPatients)

			// Roles that never read clinical fields are refused the
			// resources made of them.
			wantClinical := http.StatusOK
			if !domain.CanRead(c.principal, domain.GroupCaseClinical) || (c.scope != "" && !strings.Contains(c.scope, "cases:read")) {
				wantClinical = http.StatusForbidden
			}
			assert.Equal(t, wantClinical, statuses["Condition"])
			assert.Equal(t, wantClinical, statuses["DocumentReference"])

			// Nothing protected that GraphQL does not show this caller
			// appears anywhere in what FHIR answered it.
			shown := func(v string) bool {
				for w := range viaGraphQL.values {
					if strings.Contains(w, v) {
						return true // part of a value GraphQL shows (a report naming the diagnosis)
					}
				}
				return false
			}
			for v := range everything.values {
				if len(v) < 4 || shown(v) {
					continue
				}
				for _, b := range bodies {
					if strings.Contains(b, jsonText(v)) {
						t.Errorf("FHIR shows %q, which GraphQL does not show %s", v, c.name)
						break
					}
				}
			}

			// Not vacuous: what the table says the caller sees, it sees.
			has := func(pred func(caseSeen) bool) bool {
				for _, x := range viaFHIR.cases {
					if pred(x) {
						return true
					}
				}
				return false
			}
			assert.Equal(t, c.cases, len(viaFHIR.cases) > 0, "cases")
			assert.Equal(t, c.clinical, has(func(x caseSeen) bool { return x.Diagnosis != "" }), "clinical")
			assert.Equal(t, c.document, has(func(x caseSeen) bool {
				return slices.ContainsFunc(x.Records, func(r string) bool { return strings.HasSuffix(r, "link=true") })
			}), "document links")
			assert.Equal(t, c.coverage, len(viaFHIR.policies) > 0, "coverage")
			named := false
			for _, p := range viaFHIR.patients {
				named = named || p.Name != ""
			}
			assert.Equal(t, c.identity, named, "identity")
			assert.Equal(t, c.opinion, slices.Contains(mapsValues(viaFHIR.opinions), http.StatusOK), "opinion documents")
		})
	}

	t.Run("the partner's 92-year-old patient has no birth year, through both doors", func(t *testing.T) {
		token := env.Token(t, testenv.Persona("partner"))
		code, sr := call(t, env, token, "GET", fhir.Prefix+"/ServiceRequest/"+fhir.ID(fx.partnerCase), nil)
		require.Equal(t, http.StatusOK, code, sr)
		pid := refID(sr["subject"], "Patient")
		require.NotEmpty(t, pid)
		_, pt := call(t, env, token, "GET", fhir.Prefix+"/Patient/"+pid, nil)
		assert.Nil(t, pt["birthDate"])
		assert.Nil(t, pt["name"])
		assert.Nil(t, pt["telecom"])
		assert.Equal(t, "90+", testenv.Get(pt, "extension", 0, "valueString"))
		assert.NotContains(t, pid, oldMember, "the partner's patient id is a pseudonym")
	})
	t.Run("a DocumentReference's URL downloads the record's file, for whoever may read it", func(t *testing.T) {
		token := env.Token(t, testenv.Persona("partner"))
		code, res, _ := searchAll(t, env, token, fhir.Prefix+"/DocumentReference?_count=100")
		require.Equal(t, http.StatusOK, code)
		var link string
		for _, d := range res {
			if d["description"] == "Parity MRI pelvis" {
				link = str(testenv.Get(d, "content", 0, "attachment", "url"))
				assert.Equal(t, "application/pdf", testenv.Get(d, "content", 0, "attachment", "contentType"))
			}
		}
		require.True(t, strings.HasPrefix(link, "http://example.com/files/"), link)
		req := httptest.NewRequest("GET", strings.TrimPrefix(link, "http://example.com"), nil)
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.True(t, strings.HasPrefix(rec.Body.String(), "%PDF-1.4"))
	})
	t.Run("the provider reads the admin fields of a case whose records release was revoked, and no more", func(t *testing.T) {
		token := env.Token(t, testenv.Persona("provider"))
		code, sr := call(t, env, token, "GET", fhir.Prefix+"/ServiceRequest/"+fhir.ID(fx.providerCase), nil)
		require.Equal(t, http.StatusOK, code, sr)
		assert.Nil(t, sr["reasonCode"])
		code, b := call(t, env, token, "GET", fhir.Prefix+"/Condition/"+fhir.ID(fx.providerCase), nil)
		assert.Equal(t, http.StatusForbidden, code, b)
		assert.Equal(t, "FORBIDDEN", outcomeCode(b))
	})
}

// jsonText is v as it appears inside a JSON string.
func jsonText(v string) string {
	b, _ := json.Marshal(v)
	return string(b[1 : len(b)-1])
}

func mapsValues(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// The delivered opinion as a FHIR document, for each caller as GraphQL shows
// it: the content, the patient as the caller may see it, the specialist, and
// the service's signature.
func TestOpinionDocument(t *testing.T) {
	env := testenv.Start(t)
	fx := setUpParity(t, env)
	partner := env.Token(t, testenv.Persona("partner"))
	gq := env.Do(t, partner, `query($id: ID!) { case(id: $id) { opinion { id signature { jws keyId } } } }`, map[string]any{"id": graph.GlobalID("Case", fx.partnerCase)})
	require.Empty(t, gq.Errors, gq.Raw)
	opinionID := fhir.ID(rawOf(t, testenv.Get(gq.Data, "case", "opinion", "id").(string)))
	path := fhir.Prefix + "/Composition/" + opinionID + "/$document"

	code, b := call(t, env, partner, "GET", path, nil)
	require.Equal(t, http.StatusOK, code, b)
	assert.Equal(t, "document", b["type"])
	assert.NotEmpty(t, b["timestamp"])
	assert.NotEmpty(t, testenv.Get(b, "identifier", "value"))
	es := entries(b)
	require.Len(t, es, 3)
	comp := es[0]
	assert.Equal(t, "Composition", comp["resourceType"])
	assert.Equal(t, "final", comp["status"])
	assert.Equal(t, "11488-4", testenv.Get(comp, "type", "coding", 0, "code"))
	sections := map[string]map[string]any{}
	for _, x := range asList(comp["section"]) {
		sec := x.(map[string]any)
		sections[str(testenv.Get(sec, "code", "coding", 0, "code"))] = sec
	}
	for code, want := range map[string]string{
		"diagnosis-assessment": "CONFIRMED", "treatment-options": "Parity active surveillance",
		"clinical-trials": "NCT09999999", "answers": "Parity answer: not yet.",
		"member-summary": "Parity summary for the member.", "report": "Parity detailed report.",
	} {
		require.Contains(t, sections, code)
		assert.Contains(t, testenv.Get(sections[code], "text", "div"), want, code)
	}
	trial := testenv.Get(sections["clinical-trials"], "entry", 0).(map[string]any)
	assert.Equal(t, "ResearchStudy", trial["type"])
	assert.Equal(t, "https://clinicaltrials.gov", testenv.Get(trial, "identifier", "system"))
	assert.Equal(t, "NCT09999999", testenv.Get(trial, "identifier", "value"))

	// The patient is the partner's: a pseudonym, no name, no birth year at 92.
	pt := es[1]
	assert.Equal(t, "Patient", pt["resourceType"])
	assert.Nil(t, pt["name"])
	assert.Nil(t, pt["birthDate"])
	assert.Equal(t, "Patient/"+pt["id"].(string), testenv.Get(comp, "subject", "reference"))
	_, sr := call(t, env, partner, "GET", fhir.Prefix+"/ServiceRequest/"+fhir.ID(fx.partnerCase), nil)
	assert.Equal(t, testenv.Get(sr, "subject", "reference"), testenv.Get(comp, "subject", "reference"))
	assert.Equal(t, "Practitioner", es[2]["resourceType"])
	assert.Equal(t, testenv.Get(sr, "performer", 0, "reference"), "Practitioner/"+es[2]["id"].(string))

	// Bundle.signature carries GraphQL's Opinion.signature.
	jws, err := base64.StdEncoding.DecodeString(str(testenv.Get(b, "signature", "data")))
	require.NoError(t, err)
	assert.Equal(t, testenv.Get(gq.Data, "case", "opinion", "signature", "jws"), string(jws))
	assert.Equal(t, testenv.Get(gq.Data, "case", "opinion", "signature", "keyId"), testenv.Get(b, "signature", "who", "identifier", "value"))
	assert.Equal(t, "application/jose", testenv.Get(b, "signature", "sigFormat"))

	t.Run("the member reads it with the patient's identity", func(t *testing.T) {
		tok := env.Token(t, domain.Principal{Subject: oldMember, Role: domain.RoleMember, Org: seed.InsurerNorthstar})
		code, b := call(t, env, tok, "GET", path, nil)
		require.Equal(t, http.StatusOK, code, b)
		assert.Equal(t, "Paritysmith", testenv.Get(entries(b)[1], "name", 0, "family"))
		assert.Equal(t, "1934-03-04", entries(b)[1]["birthDate"])
	})
	t.Run("the insurer knows the opinion exists but never reads it", func(t *testing.T) {
		code, b := call(t, env, env.Token(t, testenv.Persona("insurer")), "GET", path, nil)
		assert.Equal(t, http.StatusForbidden, code, b)
		assert.Equal(t, "FORBIDDEN", outcomeCode(b))
	})
	t.Run("a provider of another case does not learn it exists", func(t *testing.T) {
		code, b := call(t, env, env.Token(t, testenv.Persona("provider")), "GET", path, nil)
		assert.Equal(t, http.StatusNotFound, code, b)
		_, missing := call(t, env, env.Token(t, testenv.Persona("provider")), "GET", fhir.Prefix+"/Composition/no-such-opinion/$document", nil)
		assert.Equal(t, missing, b, "the same answer as for no opinion at all")
	})
	t.Run("a draft is no document", func(t *testing.T) {
		ops := env.As(t, "coordinator", `{ opinions(first: 100) { edges { node { id status } } } }`, nil)
		var draft string
		for _, e := range asList(testenv.Get(ops.Data, "opinions", "edges")) {
			if testenv.Get(e, "node", "status") == "DRAFT" {
				draft = fhir.ID(rawOf(t, testenv.Get(e, "node", "id").(string)))
			}
		}
		require.NotEmpty(t, draft, "the demo has a draft")
		code, b := call(t, env, env.Token(t, testenv.Persona("coordinator")), "GET", fhir.Prefix+"/Composition/"+draft+"/$document", nil)
		assert.Equal(t, http.StatusNotFound, code, b)
	})
}
