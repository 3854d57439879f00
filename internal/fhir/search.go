package fhir

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// searchParams lists, per resource type, the search parameters the door
// implements; anything else is refused with 400, never ignored. The
// CapabilityStatement is built from this table.
var searchParams = map[string][]string{
	"ServiceRequest":    {"_id", "status", "patient", "subject", "_lastUpdated", "_count"},
	"Task":              {"_id", "status", "patient", "subject", "_lastUpdated", "_count"},
	"Condition":         {"_id", "patient", "subject", "_lastUpdated", "_count"},
	"Consent":           {"_id", "status", "patient", "_lastUpdated", "_count"},
	"DocumentReference": {"_id", "status", "patient", "subject", "_lastUpdated", "_count"},
	"Patient":           {"_id"},
	"Coverage":          {"_id", "status", "_count"},
	"Practitioner":      {"_id", "_count"},
}

// caseBased are the types read from cases: a page of them covers _count cases.
var caseBased = map[string]bool{"ServiceRequest": true, "Task": true, "Condition": true, "Consent": true, "DocumentReference": true}

// query is a parsed search.
type query struct {
	id       string
	status   string
	patient  string
	from, to *time.Time
	page     workflow.Page
	// skip is how many resources of the page's first case an earlier page
	// already returned (a case yields several Consents or
	// DocumentReferences, and a page holds at most _count of them).
	skip int
}

const cursorParam = "_cursor"

func parseQuery(typ string, v url.Values) (query, error) {
	var q query
	allowed := searchParams[typ]
	count := workflow.DefaultPageSize
	for name, vals := range v {
		if name == cursorParam || name == "_format" {
			continue
		}
		if !contains(allowed, name) {
			return q, domain.Errorf(domain.CodeBadUserInput, "search parameter %q is not supported for %s (supported: %s)", name, typ, strings.Join(allowed, ", "))
		}
		if name != "_lastUpdated" && len(vals) > 1 {
			return q, domain.Errorf(domain.CodeBadUserInput, "search parameter %q may be given once", name)
		}
		val := vals[0]
		if strings.Contains(val, ",") {
			return q, domain.Errorf(domain.CodeBadUserInput, "search parameter %q takes one value", name)
		}
		switch name {
		case "_id":
			q.id = val
		case "status":
			q.status = val
		case "patient", "subject":
			if q.patient != "" {
				return q, domain.Errorf(domain.CodeBadUserInput, "give patient or subject, not both")
			}
			q.patient = strings.TrimPrefix(val, "Patient/")
		case "_count":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > workflow.MaxPageSize {
				return q, domain.Errorf(domain.CodeBadUserInput, "_count must be between 1 and %d", workflow.MaxPageSize)
			}
			count = n
		case "_lastUpdated":
			for _, x := range vals {
				prefix, rest := x[:min(2, len(x))], x[min(2, len(x)):]
				t, err := parseInstant(rest)
				if err != nil {
					return q, domain.Errorf(domain.CodeBadUserInput, "_lastUpdated must be ge<date> or le<date>")
				}
				switch prefix {
				case "ge":
					q.from = &t
				case "le":
					q.to = &t
				default:
					return q, domain.Errorf(domain.CodeBadUserInput, "_lastUpdated supports the prefixes ge and le")
				}
			}
		}
	}
	if c := v.Get(cursorParam); c != "" {
		after, skip, ok := parseCursor(c)
		if !ok {
			return q, domain.Errorf(domain.CodeBadUserInput, "%s is not a cursor this server issued", cursorParam)
		}
		q.page.After, q.skip = after, skip
	}
	q.page.First = count
	return q, nil
}

func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, domain.Errorf(domain.CodeBadUserInput, "not a date")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scopeFor is the scope a read of typ needs, as the GraphQL field needs it.
func scopeFor(typ string) domain.Scope {
	switch typ {
	case "Coverage":
		return domain.ScopePoliciesRead
	case "Practitioner":
		return domain.ScopeSpecialistsRead
	case "Composition":
		return domain.ScopeOpinionsRead
	}
	return domain.ScopeCasesRead
}

func (h *Handler) require(p domain.Principal, typ string) error {
	if _, ok := searchParams[typ]; !ok {
		return domain.Errorf(domain.CodeBadUserInput, "resource type %q is not supported by this server", typ)
	}
	if typ == "Patient" {
		// As GraphQL's patient lookup: cases:read, or policies:read for
		// members and insurers.
		if p.Has(domain.ScopeCasesRead) || ((p.Role == domain.RoleMember || p.Role == domain.RoleInsurer) && p.Has(domain.ScopePoliciesRead)) {
			return nil
		}
		return p.Require(domain.ScopeCasesRead)
	}
	if err := p.Require(scopeFor(typ)); err != nil {
		return err
	}
	if clinical[typ] && !domain.CanRead(p, domain.GroupCaseClinical) {
		// These resources are nothing but clinical fields (the diagnosis,
		// the records): a role that never reads them (an insurer) is
		// refused before anything is read, whatever the id, so the answer
		// tells nothing about which cases exist.
		return domain.ErrFieldForbidden
	}
	return nil
}

// clinical are the types made only of a case's clinical fields.
var clinical = map[string]bool{"Condition": true, "DocumentReference": true}

// ---- read

func (h *Handler) read(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	ctx, p, err := h.begin(r, "GET "+typ)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.require(p, typ); err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	if len(r.URL.Query()) > 0 {
		h.failCtx(ctx, w, domain.Errorf(domain.CodeBadUserInput, "a read takes no parameters"))
		return
	}
	res, err := h.readOne(ctx, p, typ, id, baseOrigin(r))
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	h.respond(ctx, w, http.StatusOK, res)
}

// readOne returns one resource by its FHIR id, through the same use-case
// reads the GraphQL resolvers make (which audit a lookup that found
// nothing).
func (h *Handler) readOne(ctx context.Context, p domain.Principal, typ, id, origin string) (any, error) {
	raw, ok := RawID(id)
	if !ok {
		return nil, errNotFound(typ)
	}
	wf := h.cfg.Workflow
	switch typ {
	case "Patient":
		pt, err := wf.Patient(ctx, p, raw)
		if err != nil {
			return nil, err
		}
		return patient(ctx, pt, ""), nil
	case "Coverage":
		pol, err := wf.Policy(ctx, p, raw)
		if err != nil {
			return nil, err
		}
		return h.coverageOf(ctx, p, pol)
	case "Practitioner":
		sp, err := wf.Specialist(ctx, p, raw)
		if err != nil {
			return nil, err
		}
		return practitioner(sp), nil
	}
	// The other types are parts of a case: <case id> or <case id>.<part>.
	caseID, _, _ := strings.Cut(raw, ".")
	c, err := wf.Case(ctx, p, caseID, workflow.FullCase)
	if domain.ErrorCode(err) == domain.CodeNotFound {
		return nil, errNotFound(typ)
	}
	if err != nil {
		return nil, err
	}
	pts, err := wf.PatientsOfCases(ctx, p, []*domain.Case{c})
	if err != nil {
		return nil, err
	}
	for _, x := range h.caseResources(ctx, p, typ, c, pts[c.ID], origin) {
		if x.id == raw {
			return x.res, nil
		}
	}
	if clinical[typ] && c.Clinical == nil {
		// The case is in scope but its clinical fields are not readable
		// now (a reviewer before RECORDS_RELEASE): GraphQL's FORBIDDEN.
		return nil, domain.ErrFieldForbidden
	}
	return nil, errNotFound(typ)
}

type idRes struct {
	id  string // raw id
	res any
}

// caseResources are the resources of type typ one case yields for p,
// recording for the audit what each one reads.
func (h *Handler) caseResources(ctx context.Context, p domain.Principal, typ string, c *domain.Case, pt *domain.Patient, origin string) []idRes {
	switch typ {
	case "ServiceRequest":
		return []idRes{{c.ID, serviceRequest(ctx, p, c, pt)}}
	case "Task":
		if pt != nil {
			notePatient(ctx, pt, c.ID, false)
		}
		return []idRes{{c.ID, task(c, pt)}}
	case "Consent":
		if pt != nil {
			notePatient(ctx, pt, c.ID, false)
		}
		var out []idRes
		for _, x := range c.Consents {
			out = append(out, idRes{c.ID + "." + consentSlug(x.Kind), consent(c, x, pt)})
		}
		return out
	case "Condition", "DocumentReference":
		if !domain.CanRead(p, domain.GroupCaseClinical) {
			return nil
		}
		noteClinical(ctx, c)
		if c.Clinical == nil {
			return nil
		}
		if pt != nil {
			notePatient(ctx, pt, c.ID, false)
		}
		if typ == "Condition" {
			return []idRes{{c.ID, condition(c, pt)}}
		}
		var out []idRes
		for _, rec := range c.Clinical.Records {
			out = append(out, idRes{c.ID + "." + rec.ID, documentReference(c, rec, pt, h.downloadURL(p, rec, origin))})
		}
		return out
	}
	return nil
}

// downloadURL is the record's signed download link as GraphQL's
// MedicalRecord.document.downloadUrl gives it to p: none for a record
// without a file, and none while p may not read the document (a reviewer
// before RECORDS_RELEASE).
func (h *Handler) downloadURL(p domain.Principal, rec domain.Record, origin string) string {
	if h.cfg.Documents == nil || rec.Document == nil || !domain.CanReadDocument(p, rec.Document.Released) {
		return ""
	}
	u, err := h.cfg.Documents.Link(p, rec.Document, 0)
	if err != nil {
		return ""
	}
	return origin + u
}

func (h *Handler) coverageOf(ctx context.Context, p domain.Principal, pol *domain.Policy) (fm.Coverage, error) {
	insured, err := h.cfg.Workflow.PatientsOfPolicies(ctx, p, []*domain.Policy{pol})
	if err != nil {
		return fm.Coverage{}, err
	}
	var b *domain.Patient
	if len(insured) == 1 && len(insured[0]) > 0 {
		b = insured[0][0]
		notePatient(ctx, b, "", false)
	}
	return coverage(pol, b), nil
}

// ---- search

func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	ctx, p, err := h.begin(r, "GET "+typ+" search")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.require(p, typ); err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	q, err := parseQuery(typ, r.URL.Query())
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	b, err := h.searchBundle(ctx, p, typ, q, r)
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	h.respond(ctx, w, http.StatusOK, b)
}

func (h *Handler) searchBundle(ctx context.Context, p domain.Principal, typ string, q query, r *http.Request) (fm.Bundle, error) {
	base := baseURL(r)
	b := fm.Bundle{Type: fm.BundleTypeSearchset, Link: []fm.BundleLink{{Relation: "self", Url: base + "/" + typ + queryString(r.URL.Query())}}}
	var items []idRes
	next := ""
	if q.id != "" {
		res, err := h.readOne(ctx, p, typ, q.id, baseOrigin(r))
		switch code := domain.ErrorCode(err); {
		case err == nil:
			raw, _ := RawID(q.id)
			items = append(items, idRes{raw, res})
		case code == domain.CodeNotFound || code == domain.CodeForbidden:
		default:
			return b, err
		}
		items = filterStatus(typ, q, items)
	} else {
		var err error
		items, next, err = h.searchPage(ctx, p, typ, q, baseOrigin(r))
		if err != nil {
			return b, err
		}
	}
	for _, it := range items {
		b.Entry = append(b.Entry, h.entry(base, typ, it, fm.SearchEntryModeMatch))
	}
	if next != "" {
		v := r.URL.Query()
		v.Set(cursorParam, next)
		b.Link = append(b.Link, fm.BundleLink{Relation: "next", Url: base + "/" + typ + queryString(v)})
	}
	return b, nil
}

func (h *Handler) entry(base, typ string, it idRes, mode fm.SearchEntryMode) fm.BundleEntry {
	raw, _ := jsonOf(it.res)
	return fm.BundleEntry{FullUrl: ptr(base + "/" + typ + "/" + ID(it.id)), Resource: raw, Search: &fm.BundleEntrySearch{Mode: &mode}}
}

// searchPage returns one page and the cursor of the next, if any.
func (h *Handler) searchPage(ctx context.Context, p domain.Principal, typ string, q query, origin string) ([]idRes, string, error) {
	wf := h.cfg.Workflow
	var items []idRes
	switch {
	case typ == "Coverage":
		var f workflow.PolicyFilter
		switch q.status {
		case "":
		case "active":
			f.Status = ptr(domain.PolicyActive)
		case "cancelled":
			f.Status = ptr(domain.PolicyCancelled)
		default:
			return nil, "", domain.Errorf(domain.CodeBadUserInput, "Coverage status must be active or cancelled")
		}
		pols, more, err := wf.Policies(ctx, p, f, q.page)
		if err != nil {
			return nil, "", err
		}
		insured, err := wf.PatientsOfPolicies(ctx, p, pols)
		if err != nil {
			return nil, "", err
		}
		for i, pol := range pols {
			var b *domain.Patient
			if len(insured[i]) > 0 {
				b = insured[i][0]
				notePatient(ctx, b, "", false)
			}
			items = append(items, idRes{pol.ID, coverage(pol, b)})
		}
		return items, cursorIf(more, lastID(len(pols), func(i int) string { return pols[i].ID })), nil
	case typ == "Practitioner":
		sps, more, err := wf.Specialists(ctx, p, workflow.SpecialistFilter{}, q.page, workflow.View{Full: true})
		if err != nil {
			return nil, "", err
		}
		for _, sp := range sps {
			items = append(items, idRes{sp.ID, practitioner(sp)})
		}
		return items, cursorIf(more, lastID(len(sps), func(i int) string { return sps[i].ID })), nil
	case typ == "Patient":
		return nil, "", domain.Errorf(domain.CodeBadUserInput, "Patient search needs _id")
	case caseBased[typ]:
		f := workflow.CaseFilter{UpdatedFrom: q.from, UpdatedTo: q.to}
		if q.status != "" {
			var ok bool
			switch typ {
			case "ServiceRequest":
				f.Statuses, ok = requestStatuses[q.status]
			case "Task":
				f.Statuses, ok = taskStatuses[q.status]
			case "Consent":
				ok = q.status == fm.ConsentStateActive.Code() || q.status == fm.ConsentStateInactive.Code()
			case "DocumentReference":
				ok = q.status == fm.DocumentReferenceStatusCurrent.Code()
			}
			if !ok {
				return nil, "", domain.Errorf(domain.CodeBadUserInput, "status %q is not a %s status this server knows", q.status, typ)
			}
		}
		if q.patient != "" {
			raw, ok := RawID(q.patient)
			if !ok {
				return nil, "", nil
			}
			if p.Role == domain.RolePartner {
				f.PatientPseudonym = &raw
			} else {
				f.PatientID = &raw
			}
		}
		cases, more, err := wf.Cases(ctx, p, f, q.page, workflow.FullCase)
		if err != nil {
			return nil, "", err
		}
		pts, err := wf.PatientsOfCases(ctx, p, cases)
		if err != nil {
			return nil, "", err
		}
		// At most _count resources: a page that fills up inside a case
		// ends there, and the next starts at that case's next resource.
		prev, skip := q.page.After, q.skip
		for _, c := range cases {
			res := filterStatus(typ, q, h.caseResources(ctx, p, typ, c, pts[c.ID], origin))
			offset := min(skip, len(res))
			skip = 0
			for j, x := range res[offset:] {
				if len(items) == q.page.First {
					return items, pageCursor(prev, offset+j), nil
				}
				items = append(items, x)
			}
			prev = c.ID
		}
		if !more || prev == "" {
			return items, "", nil
		}
		return items, pageCursor(prev, 0), nil
	}
	return nil, "", domain.Errorf(domain.CodeBadUserInput, "resource type %q is not supported by this server", typ)
}

// filterStatus applies the status of types whose status is not a case's.
func filterStatus(typ string, q query, items []idRes) []idRes {
	if q.status == "" {
		return items
	}
	out := items[:0]
	for _, it := range items {
		keep := true
		switch v := it.res.(type) {
		case fm.Consent:
			keep = v.Status.Code() == q.status
		case fm.DocumentReference:
			keep = q.status == "current"
		case fm.ServiceRequest:
			keep = v.Status.Code() == q.status
		case fm.Task:
			keep = v.Status.Code() == q.status
		case fm.Coverage:
			keep = v.Status.Code() == q.status
		}
		if keep {
			out = append(out, it)
		}
	}
	return out
}

func lastID(n int, at func(int) string) string {
	if n == 0 {
		return ""
	}
	return at(n - 1)
}

func cursorIf(more bool, last string) string {
	if !more || last == "" {
		return ""
	}
	return workflow.EncodeCursor(last)
}

// pageCursor is the cursor of the page that starts after the case after
// (none: from the first), skipping that many resources of its first case.
func pageCursor(after string, skip int) string {
	c := "-"
	if after != "" {
		c = workflow.EncodeCursor(after)
	}
	if skip == 0 {
		return c
	}
	return c + "." + strconv.Itoa(skip)
}

// parseCursor reverses pageCursor.
func parseCursor(c string) (after string, skip int, ok bool) {
	if i := strings.LastIndexByte(c, '.'); i >= 0 {
		n, err := strconv.Atoi(c[i+1:])
		if err != nil || n < 1 {
			return "", 0, false
		}
		c, skip = c[:i], n
	}
	if c == "-" {
		return "", skip, skip > 0
	}
	pg, err := workflow.NewPage(nil, &c)
	if err != nil || pg.After == "" {
		return "", 0, false
	}
	return pg.After, skip, true
}

func queryString(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// baseURL is the door's absolute address as the client reached it.
func baseURL(r *http.Request) string { return baseOrigin(r) + Prefix }

// baseOrigin is the gateway's scheme and host as the client reached it.
func baseOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
