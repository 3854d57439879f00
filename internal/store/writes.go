package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Writes re-read what they change under the caller's scope and update with a
// compare-and-set on version, so no update is lost and nothing outside the
// scope can be touched.

// NewInsured is an insured member of a new policy.
type NewInsured struct {
	MemberID    string
	GivenName   string
	FamilyName  string
	DateOfBirth time.Time
	Sex         domain.Sex
	Email       string
	Phone       string
	Country     string
	Language    string
}

// NewPolicy is a policy to create.
type NewPolicy struct {
	PolicyNumber  string
	Product       domain.Product
	EffectiveFrom time.Time
	EffectiveTo   *time.Time
	Benefit       domain.Benefit
	Insured       []NewInsured
}

// CreatePolicy stores a policy of the caller's insurer (the use case checks
// the caller is one), with its members in that insurer's namespace.
func (s *Store) CreatePolicy(ctx context.Context, p domain.Principal, np NewPolicy) (*domain.Policy, error) {
	now := s.Now()
	ids := make([]string, 0, len(np.Insured))
	for _, in := range np.Insured {
		ids = append(ids, domain.MemberKey(p.Org, in.MemberID))
	}
	d := policyDoc{
		ID: NewIDAt(now), PolicyNumber: np.PolicyNumber, Product: string(np.Product),
		Status: string(domain.PolicyActive), EffectiveFrom: np.EffectiveFrom, EffectiveTo: np.EffectiveTo,
		InsurerID: p.Org, InsuredIDs: ids, Version: 1, CreatedAt: now, UpdatedAt: now,
		Benefit: benefitDoc{Covered: np.Benefit.Covered, CasesPerYear: np.Benefit.CasesPerYear, International: np.Benefit.International},
	}
	// The members first: a policy never names a member that has no record.
	// A member the insurer recorded before keeps that record.
	for _, in := range np.Insured {
		if err := s.insertPatient(ctx, p.Org, in); err != nil {
			return nil, err
		}
	}
	cctx, cancel := s.op(ctx)
	_, err := s.c(colPolicies).InsertOne(cctx, d)
	cancel()
	if err != nil {
		if isDuplicate(err) {
			return nil, domain.Errorf(domain.CodeConflict, "policy number %q already exists", np.PolicyNumber)
		}
		return nil, translate(err, "policy")
	}
	return toPolicy(&d, now), nil
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
		GivenName: in.GivenName, FamilyName: in.FamilyName, DateOfBirth: in.DateOfBirth,
		Email: in.Email, Phone: in.Phone, BirthYear: in.DateOfBirth.Year(), Sex: string(sex),
		Country: strings.ToUpper(in.Country), Language: strings.ToLower(in.Language), Version: 1,
	}
}

// PolicyChange is what updatePolicy may change.
type PolicyChange struct {
	Status  *domain.PolicyStatus
	Benefit *domain.Benefit
}

// UpdatePolicy changes a policy of the caller's insurer. With
// expectedVersion it fails with CONFLICT when the policy moved on; without,
// it still updates only the version it read.
func (s *Store) UpdatePolicy(ctx context.Context, p domain.Principal, id string, ch PolicyChange, expectedVersion *int) (*domain.Policy, error) {
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "policy")
		}
		cur, err := s.Policy(ctx, p, id)
		if err != nil {
			return nil, err
		}
		if expectedVersion != nil && *expectedVersion != cur.Version {
			return nil, domain.Errorf(domain.CodeConflict, "the policy is at version %d, not %d", cur.Version, *expectedVersion)
		}
		set := bson.D{{Key: "updatedAt", Value: s.Now()}}
		if ch.Status != nil {
			set = append(set, bson.E{Key: "status", Value: string(*ch.Status)})
		}
		if b := ch.Benefit; b != nil {
			set = append(set, bson.E{Key: "benefit", Value: benefitDoc{Covered: b.Covered, CasesPerYear: b.CasesPerYear, International: b.International}})
		}
		ok, err := s.casUpdate(ctx, colPolicies, id, cur.Version, set)
		if err != nil {
			return nil, translate(err, "policy")
		}
		if ok {
			return s.Policy(ctx, p, id)
		}
		if expectedVersion != nil {
			return nil, domain.Errorf(domain.CodeConflict, "the policy changed while it was being updated")
		}
	}
	return nil, errBusy("policy")
}

// SpecialistInput creates or updates a specialist.
type SpecialistInput struct {
	ID             string
	Name           string
	Credentials    string
	Specialties    []string
	SubSpecialties []string
	Languages      []string
	Country        string
	Institution    string
	AcceptingCases *bool
	Email          *string
	OrgID          string
	// OrgKind is the kind of the specialist's org, as registered (the use
	// case reads it).
	OrgKind         domain.OrgKind
	ExpectedVersion *int
}

// UpsertSpecialist creates a specialist of in.OrgID (of kind in.OrgKind,
// both decided by the use case) or updates one in p's write scope
// (specialistWriteScope): another org's specialist is NOT_FOUND.
func (s *Store) UpsertSpecialist(ctx context.Context, p domain.Principal, in SpecialistInput) (*domain.Specialist, error) {
	org, kind := in.OrgID, in.OrgKind
	now := s.Now()
	set := bson.D{
		{Key: "name", Value: in.Name}, {Key: "credentials", Value: in.Credentials},
		{Key: "specialties", Value: in.Specialties}, {Key: "subSpecialties", Value: nonNil(in.SubSpecialties)},
		{Key: "languages", Value: in.Languages}, {Key: "country", Value: in.Country},
		{Key: "institution", Value: in.Institution}, {Key: "updatedAt", Value: now},
	}
	if in.AcceptingCases != nil {
		set = append(set, bson.E{Key: "acceptingCases", Value: *in.AcceptingCases})
	}
	if in.Email != nil {
		set = append(set, bson.E{Key: "internal.email", Value: *in.Email})
	}
	if in.ID == "" {
		if org == "" {
			return nil, domain.Errorf(domain.CodeBadUserInput, "orgId is required")
		}
		d := specialistDoc{
			ID: NewIDAt(now), Name: in.Name, Credentials: in.Credentials, Specialties: in.Specialties,
			SubSpecialties: nonNil(in.SubSpecialties), Languages: in.Languages, Country: in.Country,
			Institution: in.Institution, OrgID: org, OrgKind: string(kind), AcceptingCases: true,
			Version: 1, UpdatedAt: now,
		}
		if in.AcceptingCases != nil {
			d.AcceptingCases = *in.AcceptingCases
		}
		if in.Email != nil {
			d.Internal.Email = *in.Email
		}
		if err := s.InsertSpecialists(ctx, []any{d}); err != nil {
			return nil, err
		}
		return toSpecialist(&d, specialistInternalVisible(p, &d)), nil
	}
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "specialist")
		}
		cur, err := findByID[specialistDoc](ctx, s, colSpecialists, in.ID, nil)
		if err != nil {
			return nil, translate(err, "specialist")
		}
		if !specialistWriteScope(p)(cur) {
			return nil, domain.ErrNotFound("specialist")
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != cur.Version {
			return nil, domain.Errorf(domain.CodeConflict, "the specialist is at version %d, not %d", cur.Version, *in.ExpectedVersion)
		}
		ok, err := s.casUpdate(ctx, colSpecialists, in.ID, cur.Version, set)
		if err != nil {
			return nil, translate(err, "specialist")
		}
		if ok {
			// Whether the specialist is abroad decides who may read their
			// cases: it follows the country at once, and every profile
			// write runs it, so a refresh that failed halfway is finished
			// by the next write.
			if err := s.refreshAbroad(context.WithoutCancel(ctx), in.ID, in.Country); err != nil {
				return nil, err
			}
			return s.Specialist(ctx, p, in.ID)
		}
		if in.ExpectedVersion != nil {
			return nil, domain.Errorf(domain.CodeConflict, "the specialist changed while it was being updated")
		}
	}
	return nil, errBusy("specialist")
}

// refreshAbroad sets, on every case assigned to the specialist, whether the
// specialist (now in country) is abroad from the case's patient.
func (s *Store) refreshAbroad(ctx context.Context, specialistID, country string) error {
	cases, err := findAll[caseDoc](ctx, s, colCases, bson.D{{Key: "specialistId", Value: specialistID}},
		options.Find().SetProjection(bson.D{{Key: "patientId", Value: 1}, {Key: "specialistAbroad", Value: 1}, {Key: "version", Value: 1}}))
	if err != nil {
		return translate(err, "cases")
	}
	for _, c := range cases {
		pd, err := findByID[patientDoc](ctx, s, colPatients, c.PatientID, bson.D{{Key: "country", Value: 1}})
		if err != nil {
			return translate(err, "patient")
		}
		abroad := pd.Country != "" && !strings.EqualFold(pd.Country, country)
		if abroad == c.SpecialistAbroad {
			continue
		}
		// Not a move of the case: its version stays, so a client's
		// expectedVersion is not spoilt by a specialist's profile edit.
		if _, err := s.conditional(ctx, colCases, c.ID, bson.D{{Key: "specialistId", Value: specialistID}},
			func(ctx context.Context, filter bson.D) (int64, error) {
				res, err := s.c(colCases).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "specialistAbroad", Value: abroad}}}})
				if err != nil {
					return 0, err
				}
				return res.MatchedCount, nil
			}); err != nil {
			return translate(err, "case")
		}
	}
	return nil
}

// InsertSpecialists stores new specialist documents (seeding and upserts).
func (s *Store) InsertSpecialists(ctx context.Context, docs []any) error {
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colSpecialists).InsertMany(cctx, docs)
	return translate(err, "specialist")
}

// ErrNoChange is a rule's answer that nothing is to be written.
var ErrNoChange = errors.New("store: nothing to change")

// UsageChange is a rule's answer on a policy's allowance: the policy year
// it counts in and the number of cases used there after the change.
type UsageChange struct {
	YearStart time.Time
	Used      int
}

// ChangeCaseUsage applies rule to a policy's allowance as it is now (the
// policy, the cases used in its current policy year, the time), atomically:
// a compare-and-set on the policy's version, re-read and re-judged on a
// lost race, so two requests racing for the last case cannot both win and
// an update racing them (lapse, benefit cut) is judged too. The rule is the
// use case's (eligibility); the store only applies it.
func (s *Store) ChangeCaseUsage(ctx context.Context, policyID string, rule func(pol *domain.Policy, used int, now time.Time) (UsageChange, error)) error {
	for attempt := 0; attempt < 20; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return translate(err, "policy")
		}
		d, err := findByID[policyDoc](ctx, s, colPolicies, policyID, nil)
		if err != nil {
			return translate(err, "policy")
		}
		now := s.Now()
		pol := toPolicy(d, now)
		used := 0
		if d.Usage.YearStart.Equal(pol.PolicyYearStart(now)) {
			used = d.Usage.Used
		}
		ch, err := rule(pol, used, now)
		if errors.Is(err, ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		ok, err := s.casUpdate(ctx, colPolicies, policyID, d.Version, bson.D{
			{Key: "usage", Value: usageDoc{YearStart: ch.YearStart, Used: ch.Used}},
		})
		if err != nil {
			return translate(err, "policy")
		}
		if ok {
			return nil
		}
	}
	return errBusy("policy")
}

// NewCase is a case to create.
type NewCase struct {
	PolicyID          string
	PatientID         string
	InsurerID         string
	Specialty         string
	Diagnosis         domain.Diagnosis
	ProposedTreatment string
	Questions         []string
	Urgency           domain.Urgency
	PreferredLanguage string
	ActorRole         domain.Role
	ActorSub          string
	SubmittedAt       time.Time
}

// InsertCase stores a new case in SUBMITTED with its first event.
func (s *Store) InsertCase(ctx context.Context, nc NewCase) (*domain.Case, error) {
	at := nc.SubmittedAt
	if at.IsZero() {
		at = s.Now()
	}
	d := caseDoc{
		ID: NewIDAt(at), Status: string(domain.StatusSubmitted), PolicyID: nc.PolicyID,
		PatientID: nc.PatientID, InsurerID: nc.InsurerID, Specialty: nc.Specialty, Urgency: string(nc.Urgency),
		PreferredLanguage: nc.PreferredLanguage, Consents: []consentDoc{}, DueAt: at.Add(nc.Urgency.SLA()),
		SubmittedAt: at, UpdatedAt: at, Version: 1,
		Events: []eventDoc{{Type: "SUBMITTED", At: at, ToStatus: string(domain.StatusSubmitted), ActorRole: string(nc.ActorRole), ActorSub: nc.ActorSub}},
		Clinical: &clinicalDoc{
			Diagnosis:         diagnosisDoc{Code: nc.Diagnosis.Code, Description: nc.Diagnosis.Description},
			ProposedTreatment: nc.ProposedTreatment, Questions: nc.Questions, Records: []recordDoc{},
		},
	}
	d.Outbox = outboxFor(&d, d.Events)
	// References are random, so they tell nothing of how many cases the
	// platform holds; the unique index refuses the rare repeat.
	for attempt := 0; ; attempt++ {
		d.Reference = newReference(at.Year())
		cctx, cancel := s.op(context.WithoutCancel(ctx))
		_, err := s.c(colCases).InsertOne(cctx, d)
		cancel()
		if err == nil {
			break
		}
		if !isDuplicate(err) || attempt >= 4 {
			return nil, translate(err, "case")
		}
	}
	_ = s.publishOutbox(ctx, d.ID, d.Version, d.Outbox) // the sweeper retries a failed copy
	d.Outbox = nil
	return toCase(&d), nil
}

// referenceAlphabet is Crockford's base 32: no I, L, O or U to misread.
const referenceAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newReference returns SO-<year>-XXXX-XXXX with 40 random bits.
func newReference(year int) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 9)
	for i, x := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, referenceAlphabet[x&31])
	}
	return fmt.Sprintf("SO-%d-%s", year, out)
}
