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
		// A case of the member in the reviewer's scope, found among the
		// list documents and held to the scope on the case itself.
		sc := caseScope(p)
		docs, err := listAll[caseDoc](ctx, s, caseListing, and(sc.filter, bson.D{{Key: "patientId", Value: memberID}}))
		if err != nil {
			return nil, translate(err, "patient")
		}
		if len(docs) > 0 {
			docs, err = fullRows(ctx, s, colCases, docs, func(d *caseDoc) string { return d.ID },
				bson.D{{Key: "clinical", Value: 0}, {Key: "events", Value: 0}})
			if err != nil {
				return nil, translate(err, "patient")
			}
		}
		for _, d := range docs {
			c := toCase(d)
			if !sc.allow(c) {
				continue
			}
			m, err := s.PatientsOfCases(ctx, p, []*domain.Case{c})
			if err != nil {
				return nil, err
			}
			if pt, ok := m[c.ID]; ok {
				return pt, nil
			}
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

// insertPatient records a member of insurer, in the insurer's own
// namespace: its _id is domain.MemberKey(insurer, member id), so no insurer
// can read, create or change another insurer's member, whatever id it names.
// A member the insurer recorded before keeps its record.
func (s *Store) insertPatient(ctx context.Context, insurer string, in NewInsured) error {
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colPatients).InsertOne(cctx, newPatientDoc(insurer, in))
	if err != nil && !isDuplicate(err) {
		return translate(err, "patient")
	}
	return nil
}

func newPatientDoc(insurer string, in NewInsured) patientDoc {
	sex := in.Sex
	if sex == "" {
		sex = domain.SexUnknown
	}
	return patientDoc{
		ID: domain.MemberKey(insurer, in.MemberID), InsurerID: insurer, MemberID: in.MemberID,
		GivenName: seal(in.GivenName), FamilyName: seal(in.FamilyName), DateOfBirth: sealTime(in.DateOfBirth),
		Email: seal(in.Email), Phone: seal(in.Phone), BirthYear: in.DateOfBirth.Year(), Sex: string(sex),
		Country: strings.ToUpper(in.Country), Language: strings.ToLower(in.Language), Version: 1,
	}
}

type patientDoc struct {
	ID string `bson:"_id"`
	// Identity is PHI, sealed at rest (sealed.go); the de-identified
	// demographics below stay clear.
	GivenName   sealed     `bson:"givenName,omitempty"`
	FamilyName  sealed     `bson:"familyName,omitempty"`
	DateOfBirth sealedTime `bson:"dateOfBirth,omitempty"`
	Email       sealed     `bson:"email,omitempty"`
	Phone       sealed     `bson:"phone,omitempty"`
	BirthYear   int        `bson:"birthYear"`
	Sex         string     `bson:"sex"`
	Country     string     `bson:"country,omitempty"`
	Language    string     `bson:"language,omitempty"`
	// InsurerID and MemberID make the _id (domain.MemberKey): a member
	// belongs to one insurer, whose member ids are its own namespace.
	InsurerID string `bson:"insurerId"`
	MemberID  string `bson:"memberId"`
	Version   int    `bson:"version"`
}

// identityFor returns the identity when p's role reads it (the projection
// left it out otherwise).
func identityFor(p domain.Principal, d *patientDoc) *domain.PatientIdentity {
	if !domain.CanRead(p, domain.GroupPatientIdentity) {
		return nil
	}
	return &domain.PatientIdentity{
		GivenName: d.GivenName.String(), FamilyName: d.FamilyName.String(), DateOfBirth: d.DateOfBirth.Time().UTC(),
		Email: d.Email.String(), Phone: d.Phone.String(),
	}
}

// identityFields are never fetched for a role that may not read identity.
var identityFields = []string{"givenName", "familyName", "dateOfBirth", "email", "phone"}

// toPatient converts a patient for p, shown under id. Where the date of
// birth was read the age is exact; where only the year was (de-identified
// reads), the age counted is the one reached this calendar year, so a
// patient who may be 90 or more never shows a birth year there (Safe
// Harbor), at the price of showing "90+" a few months early.
func toPatient(d *patientDoc, p domain.Principal, id string, now time.Time) *domain.Patient {
	pt := &domain.Patient{
		ID: id, MemberKey: d.ID, Sex: domain.Sex(d.Sex), Country: d.Country, Language: d.Language,
		Identity: identityFor(p, d),
	}
	age := now.Year() - d.BirthYear
	if pt.Identity != nil && !pt.Identity.DateOfBirth.IsZero() {
		age = domain.AgeOn(pt.Identity.DateOfBirth, now)
	}
	pt.AgeBand = domain.AgeBand(age)
	if pt.Identity != nil || age < 90 {
		y := d.BirthYear
		pt.BirthYear = &y
	}
	return pt
}

type pseudonymDoc struct {
	ID        string `bson:"_id"` // network + "/" + member id
	Pseudonym string `bson:"pseudonym"`
	MemberID  string `bson:"memberId"`
	Network   string `bson:"network"`
}
