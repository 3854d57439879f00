package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Every exported read takes the caller's principal and returns only what its
// scope allows; there is no unscoped read.

// ---- policies

// PolicyFilter narrows policies.
type PolicyFilter struct {
	Status *domain.PolicyStatus
}

func (f PolicyFilter) bson() bson.D {
	if f.Status != nil {
		return bson.D{{Key: "status", Value: string(*f.Status)}}
	}
	return nil
}

// Policy returns one policy in p's scope.
func (s *Store) Policy(ctx context.Context, p domain.Principal, id string) (*domain.Policy, error) {
	sc := policyScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("policy")
	}
	d, err := findByID[policyDoc](ctx, s, colPolicies, id, nil)
	if err != nil {
		return nil, translate(err, "policy")
	}
	pol := toPolicy(d, s.Now())
	if !sc.allow(pol) {
		return nil, domain.ErrNotFound("policy")
	}
	return pol, nil
}

// PoliciesByIDs returns the policies among ids that p may see.
func (s *Store) PoliciesByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Policy, error) {
	sc := policyScope(p)
	out := map[string]*domain.Policy{}
	if sc.none {
		return out, nil
	}
	docs, err := findByIDs[policyDoc](ctx, s, colPolicies, ids, nil)
	if err != nil {
		return nil, translate(err, "policy")
	}
	now := s.Now()
	for _, d := range docs {
		if pol := toPolicy(d, now); sc.allow(pol) {
			out[pol.ID] = pol
		}
	}
	return out, nil
}

// Policies returns one page of policies in p's scope.
func (s *Store) Policies(ctx context.Context, p domain.Principal, f PolicyFilter, pg Page) ([]*domain.Policy, bool, error) {
	sc := policyScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[policyDoc](ctx, s, colPolicies, and(sc.filter, f.bson()), pg, false, nil)
	if err != nil {
		return nil, false, translate(err, "policies")
	}
	now := s.Now()
	out := make([]*domain.Policy, 0, len(docs))
	for _, d := range docs {
		out = append(out, toPolicy(d, now))
	}
	return out, more, nil
}

// CountPolicies counts the policies in p's scope matching f.
func (s *Store) CountPolicies(ctx context.Context, p domain.Principal, f PolicyFilter) (int, error) {
	sc := policyScope(p)
	if sc.none {
		return 0, nil
	}
	n, err := count(ctx, s, colPolicies, and(sc.filter, f.bson()))
	return n, translate(err, "policies")
}

// ---- cases

// CaseFilter narrows cases.
type CaseFilter struct {
	Statuses  []domain.CaseStatus
	Specialty *string
	Overdue   *bool
	// PatientID keeps the cases of one patient (member key).
	PatientID *string
	// PatientPseudonym keeps the cases whose patient has this pseudonym for
	// the assigned network (how a partner names patients).
	PatientPseudonym *string
	// UpdatedFrom and UpdatedTo bound updatedAt, inclusive.
	UpdatedFrom, UpdatedTo *time.Time
}

// openStatuses are the statuses whose SLA clock runs: it starts when the
// records are complete (TRIAGE), so a SUBMITTED case is never overdue.
var openStatuses = []string{
	string(domain.StatusTriage), string(domain.StatusAssigned), string(domain.StatusInReview),
}

func (f CaseFilter) bson(s *Store) bson.D {
	var parts bson.A
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, x := range f.Statuses {
			st[i] = string(x)
		}
		parts = append(parts, bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: st}}}})
	}
	if f.Specialty != nil {
		parts = append(parts, bson.D{{Key: "specialty", Value: strings.ToLower(strings.TrimSpace(*f.Specialty))}})
	}
	if f.PatientID != nil {
		parts = append(parts, bson.D{{Key: "patientId", Value: *f.PatientID}})
	}
	if f.PatientPseudonym != nil {
		parts = append(parts, bson.D{{Key: "patientPseudonym", Value: *f.PatientPseudonym}})
	}
	if f.UpdatedFrom != nil {
		parts = append(parts, bson.D{{Key: "updatedAt", Value: bson.D{{Key: "$gte", Value: f.UpdatedFrom.UTC()}}}})
	}
	if f.UpdatedTo != nil {
		parts = append(parts, bson.D{{Key: "updatedAt", Value: bson.D{{Key: "$lte", Value: f.UpdatedTo.UTC()}}}})
	}
	if f.Overdue != nil {
		now := s.Now()
		if *f.Overdue {
			parts = append(parts, bson.D{
				{Key: "status", Value: bson.D{{Key: "$in", Value: openStatuses}}},
				{Key: "dueAt", Value: bson.D{{Key: "$lt", Value: now}}},
			})
		} else {
			parts = append(parts, bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "status", Value: bson.D{{Key: "$nin", Value: openStatuses}}}},
				bson.D{{Key: "dueAt", Value: bson.D{{Key: "$gte", Value: now}}}},
			}}})
		}
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0].(bson.D)
	}
	return bson.D{{Key: "$and", Value: parts}}
}

// Case returns one case in p's scope, without the clinical fields for roles
// that may not read them.
func (s *Store) Case(ctx context.Context, p domain.Principal, id string) (*domain.Case, error) {
	return s.CaseWith(ctx, p, id, FullCase)
}

// CaseWith is Case fetching only the parts in view.
func (s *Store) CaseWith(ctx context.Context, p domain.Principal, id string, view CaseView) (*domain.Case, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("case")
	}
	d, err := findByID[caseDoc](ctx, s, colCases, id, caseProjectionFor(p, view))
	if err != nil {
		return nil, translate(err, "case")
	}
	c := toCase(d)
	if !sc.allow(c) {
		return nil, domain.ErrNotFound("case")
	}
	if err := s.withClinical(ctx, p, view, []*domain.Case{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// withClinical fetches, for a reviewer, the clinical part of the cases
// (read without it) whose RECORDS_RELEASE consent is active, in one read;
// for other roles the projection already fetched what the role reads.
func (s *Store) withClinical(ctx context.Context, p domain.Principal, view CaseView, cases []*domain.Case) error {
	if !reviewer(p) || !view.Clinical {
		return nil
	}
	var ids []string
	for _, c := range cases {
		if clinicalAllowed(p, c) {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, bson.D{{Key: "clinical", Value: 1}})
	if err != nil {
		return translate(err, "case")
	}
	byID := make(map[string]*caseDoc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	for _, c := range cases {
		if d, ok := byID[c.ID]; ok && clinicalAllowed(p, c) {
			// The clinical part was read alone: its documents' release is
			// the consent of the case read first.
			d.Consents = fromConsents(c.Consents)
			c.Clinical = toCase(d).Clinical
		}
	}
	return nil
}

// CasesByIDs returns the cases among ids that p may see.
func (s *Store) CasesByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Case, error) {
	sc := caseScope(p)
	out := map[string]*domain.Case{}
	if sc.none {
		return out, nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, caseProjection(p))
	if err != nil {
		return nil, translate(err, "case")
	}
	var visible []*domain.Case
	for _, d := range docs {
		if c := toCase(d); sc.allow(c) {
			out[c.ID] = c
			visible = append(visible, c)
		}
	}
	if err := s.withClinical(ctx, p, FullCase, visible); err != nil {
		return nil, err
	}
	return out, nil
}

// Cases returns one page of cases in p's scope, newest first.
func (s *Store) Cases(ctx context.Context, p domain.Principal, f CaseFilter, pg Page, view CaseView) ([]*domain.Case, bool, error) {
	sc := caseScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[caseDoc](ctx, s, colCases, and(sc.filter, f.bson(s)), pg, true, caseProjectionFor(p, view))
	if err != nil {
		return nil, false, translate(err, "cases")
	}
	out := make([]*domain.Case, 0, len(docs))
	for _, d := range docs {
		out = append(out, toCase(d))
	}
	if err := s.withClinical(ctx, p, view, out); err != nil {
		return nil, false, err
	}
	return out, more, nil
}

// CountCases counts the cases in p's scope matching f.
func (s *Store) CountCases(ctx context.Context, p domain.Principal, f CaseFilter) (int, error) {
	sc := caseScope(p)
	if sc.none {
		return 0, nil
	}
	n, err := count(ctx, s, colCases, and(sc.filter, f.bson(s)))
	return n, translate(err, "cases")
}

// ---- specialists

// SpecialistFilter narrows specialists.
type SpecialistFilter struct {
	Specialty      *string
	Language       *string
	Country        *string
	AcceptingCases *bool
}

func (f SpecialistFilter) bson() bson.D {
	var d bson.D
	if f.Specialty != nil {
		d = append(d, bson.E{Key: "specialties", Value: strings.ToLower(strings.TrimSpace(*f.Specialty))})
	}
	if f.Language != nil {
		d = append(d, bson.E{Key: "languages", Value: strings.ToLower(strings.TrimSpace(*f.Language))})
	}
	if f.Country != nil {
		d = append(d, bson.E{Key: "country", Value: strings.ToUpper(strings.TrimSpace(*f.Country))})
	}
	if f.AcceptingCases != nil {
		d = append(d, bson.E{Key: "acceptingCases", Value: *f.AcceptingCases})
	}
	return d
}

// Specialist returns one specialist; public profiles are everyone's, the
// internal part only the own org's and coordinators'.
func (s *Store) Specialist(ctx context.Context, p domain.Principal, id string) (*domain.Specialist, error) {
	d, err := findByID[specialistDoc](ctx, s, colSpecialists, id, specialistProjection(p))
	if err != nil {
		return nil, translate(err, "specialist")
	}
	return toSpecialist(d, specialistInternalVisible(p, d)), nil
}

// SpecialistsByIDs returns the specialists among ids.
func (s *Store) SpecialistsByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Specialist, error) {
	docs, err := findByIDs[specialistDoc](ctx, s, colSpecialists, ids, specialistProjection(p))
	if err != nil {
		return nil, translate(err, "specialist")
	}
	out := make(map[string]*domain.Specialist, len(docs))
	for _, d := range docs {
		out[d.ID] = toSpecialist(d, specialistInternalVisible(p, d))
	}
	return out, nil
}

// Specialists returns one page of specialists.
func (s *Store) Specialists(ctx context.Context, p domain.Principal, f SpecialistFilter, pg Page) ([]*domain.Specialist, bool, error) {
	docs, more, err := findPage[specialistDoc](ctx, s, colSpecialists, f.bson(), pg, false, specialistProjection(p))
	if err != nil {
		return nil, false, translate(err, "specialists")
	}
	out := make([]*domain.Specialist, 0, len(docs))
	for _, d := range docs {
		out = append(out, toSpecialist(d, specialistInternalVisible(p, d)))
	}
	return out, more, nil
}

// CountSpecialists counts the specialists matching f.
func (s *Store) CountSpecialists(ctx context.Context, p domain.Principal, f SpecialistFilter) (int, error) {
	n, err := count(ctx, s, colSpecialists, f.bson())
	return n, translate(err, "specialists")
}

// ---- opinions

// OpinionFilter narrows opinions.
type OpinionFilter struct {
	CaseID *string
}

func (f OpinionFilter) bson() bson.D {
	if f.CaseID != nil {
		return bson.D{{Key: "caseId", Value: *f.CaseID}}
	}
	return nil
}

// Opinion returns one opinion in p's scope.
func (s *Store) Opinion(ctx context.Context, p domain.Principal, id string) (*domain.Opinion, error) {
	sc := opinionScope(p)
	if sc.none {
		return nil, domain.ErrNotFound("opinion")
	}
	d, err := findByID[opinionDoc](ctx, s, colOpinions, id, opinionProjection(p))
	if err != nil {
		return nil, translate(err, "opinion")
	}
	o := toOpinion(d)
	if !sc.allow(o) {
		return nil, domain.ErrNotFound("opinion")
	}
	if opinionNeedsCaseCheck(p) {
		if _, err := s.Case(ctx, p, o.CaseID); err != nil {
			return nil, domain.ErrNotFound("opinion")
		}
	}
	return o, nil
}

// OpinionIDForCase is the id of a case's opinion: one opinion per case, so
// the edge case → opinion is a read by _id.
func OpinionIDForCase(caseID string) string { return "op-" + caseID }

// OpinionsForCases returns the opinions of the given cases that p may see;
// the cases must already have been read under p's scope.
func (s *Store) OpinionsForCases(ctx context.Context, p domain.Principal, cases []*domain.Case) (map[string]*domain.Opinion, error) {
	sc := opinionScope(p)
	out := map[string]*domain.Opinion{}
	if sc.none || len(cases) == 0 {
		return out, nil
	}
	cs := caseScope(p)
	ids := make([]string, 0, len(cases))
	for _, c := range cases {
		if cs.allow(c) {
			ids = append(ids, OpinionIDForCase(c.ID))
		}
	}
	docs, err := findByIDs[opinionDoc](ctx, s, colOpinions, ids, opinionProjection(p))
	if err != nil {
		return nil, translate(err, "opinion")
	}
	for _, d := range docs {
		if o := toOpinion(d); sc.allow(o) {
			out[o.CaseID] = o
		}
	}
	return out, nil
}

// keepVisibleCases drops opinions whose case p may not see.
func (s *Store) keepVisibleCases(ctx context.Context, p domain.Principal, ops []*domain.Opinion) ([]*domain.Opinion, error) {
	if !opinionNeedsCaseCheck(p) || len(ops) == 0 {
		return ops, nil
	}
	ids := make([]string, len(ops))
	for i, o := range ops {
		ids[i] = o.CaseID
	}
	visible, err := s.caseAdminByIDs(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	out := ops[:0]
	for _, o := range ops {
		if _, ok := visible[o.CaseID]; ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// caseAdminByIDs reads only the fields the case scope needs.
func (s *Store) caseAdminByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Case, error) {
	sc := caseScope(p)
	out := map[string]*domain.Case{}
	if sc.none {
		return out, nil
	}
	docs, err := findByIDs[caseDoc](ctx, s, colCases, ids, bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}})
	if err != nil {
		return nil, translate(err, "case")
	}
	for _, d := range docs {
		if c := toCase(d); sc.allow(c) {
			out[c.ID] = c
		}
	}
	return out, nil
}

// Opinions returns one page of opinions in p's scope.
func (s *Store) Opinions(ctx context.Context, p domain.Principal, f OpinionFilter, pg Page) ([]*domain.Opinion, bool, error) {
	sc := opinionScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[opinionDoc](ctx, s, colOpinions, and(sc.filter, f.bson()), pg, false, opinionProjection(p))
	if err != nil {
		return nil, false, translate(err, "opinions")
	}
	ops := make([]*domain.Opinion, 0, len(docs))
	for _, d := range docs {
		ops = append(ops, toOpinion(d))
	}
	ops, err = s.keepVisibleCases(ctx, p, ops)
	return ops, more, err
}

// CountOpinions counts the opinions in p's scope matching f.
func (s *Store) CountOpinions(ctx context.Context, p domain.Principal, f OpinionFilter) (int, error) {
	sc := opinionScope(p)
	if sc.none {
		return 0, nil
	}
	if !opinionNeedsCaseCheck(p) || p.Role != domain.RolePartner {
		n, err := count(ctx, s, colOpinions, and(sc.filter, f.bson()))
		return n, translate(err, "opinions")
	}
	// A partner's count depends on each case's consent: count in Go.
	docs, err := findAll[opinionDoc](ctx, s, colOpinions, and(sc.filter, f.bson()),
		options.Find().SetProjection(bson.D{{Key: "content", Value: 0}}))
	if err != nil {
		return 0, translate(err, "opinions")
	}
	ops := make([]*domain.Opinion, 0, len(docs))
	for _, d := range docs {
		ops = append(ops, toOpinion(d))
	}
	ops, err = s.keepVisibleCases(ctx, p, ops)
	return len(ops), err
}

// ---- patients

// PatientsOfCases returns the patients of cases p already read under its
// scope, keyed by case id: de-identified for partners.
func (s *Store) PatientsOfCases(ctx context.Context, p domain.Principal, cases []*domain.Case) (map[string]*domain.Patient, error) {
	cs := caseScope(p)
	memberIDs := []string{}
	for _, c := range cases {
		if cs.allow(c) {
			memberIDs = append(memberIDs, c.PatientID)
		}
	}
	out := map[string]*domain.Patient{}
	if len(memberIDs) == 0 {
		return out, nil
	}
	docs, err := findByIDs[patientDoc](ctx, s, colPatients, memberIDs, patientProjection(p))
	if err != nil {
		return nil, translate(err, "patient")
	}
	byID := make(map[string]*patientDoc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	pseudonyms := map[string]string{}
	if p.Role == domain.RolePartner {
		// The pseudonym is stored on the case when it is assigned to the
		// network; older cases fall back to the pseudonyms collection.
		var missing []string
		for _, c := range cases {
			if c.PatientPseudonym != "" && c.SpecialistOrgID == p.Org {
				pseudonyms[c.PatientID] = c.PatientPseudonym
			} else {
				missing = append(missing, c.PatientID)
			}
		}
		if len(missing) > 0 {
			found, err := s.pseudonyms(ctx, p.Org, missing)
			if err != nil {
				return nil, err
			}
			for k, v := range found {
				pseudonyms[k] = v
			}
		}
	}
	for _, c := range cases {
		d, ok := byID[c.PatientID]
		if !ok || !cs.allow(c) {
			continue
		}
		id := d.ID
		if p.Role == domain.RolePartner {
			if id, ok = pseudonyms[d.ID]; !ok {
				continue
			}
		}
		out[c.ID] = toPatient(d, p, id, s.Now())
	}
	return out, nil
}

// PatientsOfPolicies returns, per policy, the insured that p may see
// (members only themselves), in one read for all the policies.
func (s *Store) PatientsOfPolicies(ctx context.Context, p domain.Principal, pols []*domain.Policy) ([][]*domain.Patient, error) {
	out := make([][]*domain.Patient, len(pols))
	pscope := policyScope(p)
	var ids []string
	seen := map[string]bool{}
	for _, pol := range pols {
		if !pscope.allow(pol) {
			continue
		}
		for _, id := range pol.InsuredIDs {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	docs, err := findByIDs[patientDoc](ctx, s, colPatients, ids, patientProjection(p))
	if err != nil {
		return nil, translate(err, "patient")
	}
	ps := patientScope(p)
	byID := make(map[string]*patientDoc, len(docs))
	for _, d := range docs {
		if ps.allow(d) {
			byID[d.ID] = d
		}
	}
	for i, pol := range pols {
		out[i] = []*domain.Patient{}
		if !pscope.allow(pol) {
			continue
		}
		for _, id := range pol.InsuredIDs {
			if d, ok := byID[id]; ok {
				out[i] = append(out[i], toPatient(d, p, d.ID, s.Now()))
			}
		}
	}
	return out, nil
}

// Patient returns a patient by the id the API showed p: a member id, or for
// a partner the pseudonym. Providers and partners see a patient only while
// one of the patient's cases is in their scope.
func (s *Store) Patient(ctx context.Context, p domain.Principal, id string) (*domain.Patient, error) {
	memberID := id
	switch p.Role {
	case domain.RolePartner:
		var pd pseudonymDoc
		cctx, cancel := s.op(ctx)
		err := s.c(colPseudonyms).FindOne(cctx, bson.D{{Key: "pseudonym", Value: id}}).Decode(&pd)
		cancel()
		if err != nil || pd.Network != p.Org {
			return nil, domain.ErrNotFound("patient")
		}
		memberID = pd.MemberID
		fallthrough
	case domain.RoleProvider:
		sc := caseScope(p)
		docs, err := findAll[caseDoc](ctx, s, colCases, and(sc.filter, bson.D{{Key: "patientId", Value: memberID}}),
			options.Find().SetLimit(1).SetProjection(bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}}))
		if err != nil {
			return nil, translate(err, "patient")
		}
		if len(docs) == 0 || !sc.allow(toCase(docs[0])) {
			return nil, domain.ErrNotFound("patient")
		}
		m, err := s.PatientsOfCases(ctx, p, []*domain.Case{toCase(docs[0])})
		if err != nil {
			return nil, err
		}
		if pt, ok := m[docs[0].ID]; ok {
			return pt, nil
		}
		return nil, domain.ErrNotFound("patient")
	}
	ps := patientScope(p)
	if ps.none {
		return nil, domain.ErrNotFound("patient")
	}
	d, err := findByID[patientDoc](ctx, s, colPatients, memberID, patientProjection(p))
	if err != nil {
		return nil, translate(err, "patient")
	}
	if !ps.allow(d) {
		return nil, domain.ErrNotFound("patient")
	}
	return toPatient(d, p, d.ID, s.Now()), nil
}

// PseudonymFor returns (creating it on first use) the pseudonym of a member
// for a partner network.
func (s *Store) PseudonymFor(ctx context.Context, network, memberID string) (string, error) {
	m, err := s.pseudonyms(ctx, network, []string{memberID})
	if err != nil {
		return "", err
	}
	return m[memberID], nil
}

// pseudonyms returns the stable, random pseudonym of each member for one
// network, creating missing ones in one insert. They are stored, not derived
// from the member id, so they reveal nothing.
func (s *Store) pseudonyms(ctx context.Context, network string, memberIDs []string) (map[string]string, error) {
	keys := make([]string, 0, len(memberIDs))
	for _, m := range memberIDs {
		keys = append(keys, network+"/"+m)
	}
	out := make(map[string]string, len(memberIDs))
	for attempt := 0; attempt < 3; attempt++ {
		docs, err := findByIDs[pseudonymDoc](ctx, s, colPseudonyms, keys, nil)
		if err != nil {
			return nil, translate(err, "patient")
		}
		for _, d := range docs {
			out[d.MemberID] = d.Pseudonym
		}
		var missing []any
		seen := map[string]bool{}
		for _, m := range memberIDs {
			if _, ok := out[m]; !ok && !seen[m] {
				seen[m] = true
				missing = append(missing, pseudonymDoc{ID: network + "/" + m, Pseudonym: "pt_" + randomToken(16), MemberID: m, Network: network})
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		cctx, cancel := s.op(ctx)
		_, err = s.c(colPseudonyms).InsertMany(cctx, missing, options.InsertMany().SetOrdered(false))
		cancel()
		if err == nil {
			for _, m := range missing {
				d := m.(pseudonymDoc)
				out[d.MemberID] = d.Pseudonym
			}
			return out, nil
		}
		if !isDuplicate(err) {
			return nil, translate(err, "patient")
		}
		// Read back: another request may have created some first, and
		// theirs are the ones that stand.
	}
	return nil, fmt.Errorf("store: pseudonyms: could not settle")
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// ---- audit

// AuditFilter narrows audit events.
type AuditFilter struct {
	CaseID  *string
	Subject *string
}

func (f AuditFilter) bson() bson.D {
	var d bson.D
	if f.CaseID != nil {
		d = append(d, bson.E{Key: "caseId", Value: *f.CaseID})
	}
	if f.Subject != nil {
		d = append(d, bson.E{Key: "subject", Value: *f.Subject})
	}
	return d
}

// AuditEvents returns one page of audit events, newest first.
func (s *Store) AuditEvents(ctx context.Context, p domain.Principal, f AuditFilter, pg Page) ([]*domain.AuditEvent, bool, error) {
	sc := auditScope(p)
	if sc.none {
		return nil, false, nil
	}
	docs, more, err := findPage[auditDoc](ctx, s, colAudit, and(sc.filter, f.bson()), pg, true, nil)
	if err != nil {
		return nil, false, translate(err, "audit events")
	}
	out := make([]*domain.AuditEvent, 0, len(docs))
	for _, d := range docs {
		out = append(out, toAuditEvent(d))
	}
	return out, more, nil
}

// CountAuditEvents counts audit events matching f.
func (s *Store) CountAuditEvents(ctx context.Context, p domain.Principal, f AuditFilter) (int, error) {
	sc := auditScope(p)
	if sc.none {
		return 0, nil
	}
	n, err := count(ctx, s, colAudit, and(sc.filter, f.bson()))
	return n, translate(err, "audit events")
}

// AppendAudit writes audit events in one command. It is not scoped: every
// caller's accesses are recorded.
func (s *Store) AppendAudit(ctx context.Context, events []domain.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	docs := make([]any, len(events))
	for i, e := range events {
		if e.ID == "" {
			e.ID = NewIDAt(e.At)
		}
		docs[i] = toAuditDoc(e)
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	ictx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colAudit).InsertMany(ictx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		return translate(err, "audit")
	}
	if err := s.recordChainHeads(ctx, events); err != nil {
		return translate(err, "audit chain")
	}
	// The reads are not recorded until the member can see them too.
	return translate(s.insertAccessLog(ctx, accessLogEntries(events)), "access log")
}
