// Package workflow holds the use cases: validation, eligibility and the rules
// that decide a move, on top of the scoped store.
package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/signing"
	"github.com/secondopinion/gateway/internal/store"
)

// Service runs the use cases.
type Service struct {
	store  auditedStore
	signer *signing.Signer
}

// Option configures a Service.
type Option func(*Service)

// WithSigner sets the key that signs delivered opinions.
func WithSigner(sg *signing.Signer) Option {
	return func(s *Service) {
		if sg != nil {
			s.signer = sg
		}
	}
}

// New returns a Service over st. Without WithSigner, delivered opinions are
// signed with a key generated for this process (tests).
func New(st *store.Store, opts ...Option) *Service {
	s := &Service{store: auditedStore{st}}
	for _, o := range opts {
		o(s)
	}
	if s.signer == nil {
		sg, err := signing.Generate()
		if err != nil {
			panic("workflow: no randomness for a signing key: " + err.Error())
		}
		s.signer = sg
	}
	return s
}

// Signer is the key that signs delivered opinions (its public keys are the
// JWKS at /.well-known/jwks.json).
func (s *Service) Signer() *signing.Signer { return s.signer }

// auditedStore is the store as the use cases use it: a write that cannot
// find its case, or a lookup of a case before a move, is audited like a
// read that found nothing, whichever use case made it.
type auditedStore struct{ *store.Store }

// MutateCase is store.MutateCase, auditing a case not found.
func (a auditedStore) MutateCase(ctx context.Context, p domain.Principal, id string, expectedVersion *int, change func(c *domain.Case) (store.CaseUpdate, error)) (*domain.Case, error) {
	c, err := a.Store.MutateCase(ctx, p, id, expectedVersion, change)
	lookedUp(ctx, "Case", id, domain.GroupCaseAdmin, err)
	return c, err
}

// Case is store.Case, auditing a case not found.
func (a auditedStore) Case(ctx context.Context, p domain.Principal, id string) (*domain.Case, error) {
	c, err := a.Store.Case(ctx, p, id)
	lookedUp(ctx, "Case", id, domain.GroupCaseAdmin, err)
	return c, err
}

var (
	icd10     = regexp.MustCompile(`^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$`)
	country   = regexp.MustCompile(`^[A-Z]{2}$`)
	language  = regexp.MustCompile(`^[a-z]{2}$`)
	memberIDs = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

func bad(format string, args ...any) error {
	return domain.Errorf(domain.CodeBadUserInput, format, args...)
}

// clean trims a one-line text and checks it: required, at most max
// characters (not bytes: the caps agree with the schema's @limit), and the
// characters domain.TextProblem allows on one line. The GraphQL door has
// checked the same already; the FHIR door reaches the rules only here.
func clean(s string, field string, max int, required bool) (string, error) {
	return cleanText(s, field, max, required, false)
}

// cleanProse is clean for prose, which may hold line breaks (the schema's
// multiline fields).
func cleanProse(s string, field string, max int, required bool) (string, error) {
	return cleanText(s, field, max, required, true)
}

func cleanText(s string, field string, max int, required, multiline bool) (string, error) {
	s = strings.TrimSpace(s)
	if required && s == "" {
		return "", bad("%s is required", field)
	}
	if utf8.RuneCountInString(s) > max {
		return "", bad("%s is longer than %d characters", field, max)
	}
	if problem := domain.TextProblem(s, multiline); problem != "" {
		return "", bad("%s %s", field, problem)
	}
	return s, nil
}

// CreatePolicy validates and stores a policy of the caller's insurer.
func (s *Service) CreatePolicy(ctx context.Context, p domain.Principal, np store.NewPolicy) (*domain.Policy, error) {
	if err := p.Require(domain.ScopePoliciesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleInsurer); err != nil {
		return nil, err
	}
	var err error
	if np.PolicyNumber, err = clean(np.PolicyNumber, "policyNumber", 64, true); err != nil {
		return nil, err
	}
	if np.EffectiveTo != nil && np.EffectiveTo.Before(np.EffectiveFrom) {
		return nil, bad("effectiveTo is before effectiveFrom")
	}
	if err := checkBenefit(np.Benefit); err != nil {
		return nil, err
	}
	if len(np.Insured) == 0 || len(np.Insured) > 20 {
		return nil, bad("a policy insures between 1 and 20 members")
	}
	seen := map[string]bool{}
	for i := range np.Insured {
		in := &np.Insured[i]
		if !memberIDs.MatchString(in.MemberID) {
			return nil, bad("insured[%d].memberId must be 1-64 letters, digits or . _ : -", i)
		}
		if seen[in.MemberID] {
			return nil, bad("insured[%d].memberId is listed twice", i)
		}
		seen[in.MemberID] = true
		if in.GivenName, err = clean(in.GivenName, "givenName", 100, true); err != nil {
			return nil, err
		}
		if in.FamilyName, err = clean(in.FamilyName, "familyName", 100, true); err != nil {
			return nil, err
		}
		if in.DateOfBirth.After(time.Now()) || in.DateOfBirth.Year() < 1900 {
			return nil, bad("insured[%d].dateOfBirth is not plausible", i)
		}
		in.Country = strings.ToUpper(strings.TrimSpace(in.Country))
		if in.Country != "" && !country.MatchString(in.Country) {
			return nil, bad("insured[%d].country must be an ISO 3166-1 alpha-2 code", i)
		}
		in.Language = strings.ToLower(strings.TrimSpace(in.Language))
		if in.Language != "" && !language.MatchString(in.Language) {
			return nil, bad("insured[%d].language must be an ISO 639-1 code", i)
		}
	}
	return s.store.CreatePolicy(ctx, p, np)
}

func checkBenefit(b domain.Benefit) error {
	if b.CasesPerYear < 0 || b.CasesPerYear > 100 {
		return bad("secondOpinion.casesPerYear must be between 0 and 100")
	}
	return nil
}

// UpdatePolicy changes status or benefit of a policy of the caller's insurer.
func (s *Service) UpdatePolicy(ctx context.Context, p domain.Principal, id string, ch store.PolicyChange, expectedVersion *int) (*domain.Policy, error) {
	if err := p.Require(domain.ScopePoliciesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleInsurer); err != nil {
		return nil, err
	}
	if ch.Benefit != nil {
		if err := checkBenefit(*ch.Benefit); err != nil {
			return nil, err
		}
	}
	if ch.Status == nil && ch.Benefit == nil {
		return nil, bad("nothing to change: give status or secondOpinion")
	}
	return s.store.UpdatePolicy(ctx, p, id, ch, expectedVersion)
}

// UpsertSpecialist validates and writes a specialist.
func (s *Service) UpsertSpecialist(ctx context.Context, p domain.Principal, in store.SpecialistInput) (*domain.Specialist, error) {
	if err := p.Require(domain.ScopeSpecialistsWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleProvider, domain.RolePartner, domain.RoleCoordinator); err != nil {
		return nil, err
	}
	var err error
	if in.Name, err = clean(in.Name, "name", 200, true); err != nil {
		return nil, err
	}
	if in.Credentials, err = clean(in.Credentials, "credentials", 200, false); err != nil {
		return nil, err
	}
	if in.Institution, err = clean(in.Institution, "institution", 200, false); err != nil {
		return nil, err
	}
	if in.Specialties, err = cleanList(in.Specialties, "specialties", true, strings.ToLower); err != nil {
		return nil, err
	}
	if in.SubSpecialties, err = cleanList(in.SubSpecialties, "subSpecialties", false, strings.ToLower); err != nil {
		return nil, err
	}
	if in.Languages, err = cleanList(in.Languages, "languages", true, strings.ToLower); err != nil {
		return nil, err
	}
	for _, l := range in.Languages {
		if !language.MatchString(l) {
			return nil, bad("languages must be ISO 639-1 codes")
		}
	}
	in.Country = strings.ToUpper(strings.TrimSpace(in.Country))
	if !country.MatchString(in.Country) {
		return nil, bad("country must be an ISO 3166-1 alpha-2 code")
	}
	if in.Email != nil && (utf8.RuneCountInString(*in.Email) > 200 || (*in.Email != "" && !strings.Contains(*in.Email, "@"))) {
		return nil, bad("email is not an email address")
	}
	// A specialist belongs to a registered provider org or network, its
	// kind read from the registry; providers and partners write their own
	// org's, coordinators any org's.
	if p.Role != domain.RoleCoordinator {
		if in.OrgID != "" && in.OrgID != p.Org {
			return nil, domain.Errorf(domain.CodeForbidden, "you may only write specialists of your own org")
		}
		in.OrgID = p.Org
	}
	if in.ID == "" {
		if p.SpecialistID != "" {
			// A token that acts as one specialist registers no others.
			return nil, domain.Errorf(domain.CodeForbidden, "a token for one specialist may not register specialists")
		}
		if in.OrgID == "" {
			return nil, bad("orgId is required")
		}
		kind, err := s.requireOrgOfKind(ctx, in.OrgID, domain.OrgProvider, domain.OrgNetwork)
		if err != nil {
			return nil, err
		}
		in.OrgKind = kind
	}
	return s.store.UpsertSpecialist(ctx, p, in)
}

func cleanList(in []string, field string, required bool, norm func(string) string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, x := range in {
		x = norm(strings.TrimSpace(x))
		if x == "" || utf8.RuneCountInString(x) > 100 {
			return nil, bad("%s holds an empty or overlong entry", field)
		}
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	if required && len(out) == 0 {
		return nil, bad("%s needs at least one entry", field)
	}
	if len(out) > 30 {
		return nil, bad("%s has too many entries", field)
	}
	return out, nil
}

// Request is the input of RequestSecondOpinion.
type Request struct {
	PolicyID          string
	PatientMemberID   string
	Specialty         string
	Diagnosis         domain.Diagnosis
	ProposedTreatment string
	Questions         []string
	Urgency           domain.Urgency
	PreferredLanguage string
	IdempotencyKey    string
}

// RequestSecondOpinion opens a case under a policy the caller may see, if
// the policy is active, covers second opinions and has a case left this
// policy year (taken atomically).
func (s *Service) RequestSecondOpinion(ctx context.Context, p domain.Principal, r Request) (*domain.Case, error) {
	if err := p.Require(domain.ScopeCasesWrite); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleMember, domain.RoleInsurer, domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if err := normalizeRequest(p, &r); err != nil {
		return nil, err
	}
	if r.IdempotencyKey == "" {
		return s.requestCase(ctx, p, r)
	}
	hash, err := inputHash(r)
	if err != nil {
		return nil, err
	}
	id, err := s.store.Idempotent(ctx, p, "requestSecondOpinion", r.IdempotencyKey, hash, func() (string, error) {
		c, err := s.requestCase(ctx, p, r)
		if err != nil {
			return "", err
		}
		return c.ID, nil
	})
	if err != nil {
		return nil, err
	}
	return s.store.Case(ctx, p, id)
}

func normalizeRequest(p domain.Principal, r *Request) error {
	var err error
	if p.Role == domain.RoleMember {
		if r.PatientMemberID != "" && r.PatientMemberID != p.Subject {
			return domain.Errorf(domain.CodeForbidden, "members request second opinions for themselves only")
		}
		r.PatientMemberID = p.Subject
	}
	if r.PatientMemberID == "" {
		return bad("patientMemberId is required")
	}
	if r.Specialty, err = clean(strings.ToLower(r.Specialty), "specialty", 100, true); err != nil {
		return err
	}
	r.Diagnosis.Code = strings.ToUpper(strings.TrimSpace(r.Diagnosis.Code))
	if !icd10.MatchString(r.Diagnosis.Code) {
		return bad("diagnosis.code must be an ICD-10 code such as C50.9")
	}
	if r.Diagnosis.Description, err = clean(r.Diagnosis.Description, "diagnosis.description", 500, true); err != nil {
		return err
	}
	if r.ProposedTreatment, err = cleanProse(r.ProposedTreatment, "proposedTreatment", 5000, false); err != nil {
		return err
	}
	if len(r.Questions) > 20 {
		return bad("at most 20 questions")
	}
	for i, q := range r.Questions {
		if r.Questions[i], err = cleanProse(q, "questions", 1000, true); err != nil {
			return err
		}
	}
	if r.Urgency == "" {
		r.Urgency = domain.UrgencyRoutine
	}
	r.PreferredLanguage = strings.ToLower(strings.TrimSpace(r.PreferredLanguage))
	if r.PreferredLanguage != "" && !language.MatchString(r.PreferredLanguage) {
		return bad("preferredLanguage must be an ISO 639-1 code")
	}
	if utf8.RuneCountInString(r.IdempotencyKey) > 200 {
		return bad("idempotencyKey is longer than 200 characters")
	}
	return nil
}

func inputHash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (s *Service) requestCase(ctx context.Context, p domain.Principal, r Request) (*domain.Case, error) {
	pol, err := s.store.Policy(ctx, p, r.PolicyID)
	if err != nil {
		return nil, err
	}
	now := s.store.Now()
	// The member is named within the policy's insurer: an id another
	// insurer uses is another person, and not insured here.
	patient := domain.MemberKey(pol.InsurerID, r.PatientMemberID)
	if !containsString(pol.InsuredIDs, patient) {
		return nil, domain.Errorf(domain.CodeNotEligible, "the patient is not insured under this policy")
	}
	if !pol.ActiveAt(now) {
		return nil, domain.Errorf(domain.CodeNotEligible, "the policy is not active")
	}
	if !pol.SecondOpinion.Covered {
		return nil, domain.Errorf(domain.CodeNotEligible, "the policy does not cover second opinions")
	}
	yearStart := pol.PolicyYearStart(now)
	if err := s.store.ChangeCaseUsage(ctx, pol.ID, takeCase); err != nil {
		return nil, err
	}
	c, err := s.store.InsertCase(ctx, store.NewCase{
		PolicyID: pol.ID, PatientID: patient, InsurerID: pol.InsurerID, Specialty: r.Specialty,
		Diagnosis: r.Diagnosis, ProposedTreatment: r.ProposedTreatment, Questions: r.Questions,
		Urgency: r.Urgency, PreferredLanguage: r.PreferredLanguage, ActorRole: p.Role, ActorSub: p.Subject,
	})
	if err != nil {
		// Give the allowance back; the request failed as a whole.
		_ = s.store.ChangeCaseUsage(context.WithoutCancel(ctx), pol.ID, giveCaseBack(yearStart))
		return nil, err
	}
	return c, nil
}

// takeCase is eligibility, judged on the policy as it is at the write: the
// policy is active, covers second opinions and has a case left this policy
// year.
func takeCase(pol *domain.Policy, used int, now time.Time) (store.UsageChange, error) {
	if !pol.ActiveAt(now) {
		return store.UsageChange{}, domain.Errorf(domain.CodeNotEligible, "the policy is not active")
	}
	if !pol.SecondOpinion.Covered {
		return store.UsageChange{}, domain.Errorf(domain.CodeNotEligible, "the policy does not cover second opinions")
	}
	if limit := pol.SecondOpinion.CasesPerYear; used >= limit {
		return store.UsageChange{}, domain.Errorf(domain.CodeNotEligible, "the policy has used its %d second-opinion cases this policy year", limit)
	}
	return store.UsageChange{YearStart: pol.PolicyYearStart(now), Used: used + 1}, nil
}

// giveCaseBack returns a case taken in the policy year starting at
// yearStart, when the case could not be stored.
func giveCaseBack(yearStart time.Time) func(*domain.Policy, int, time.Time) (store.UsageChange, error) {
	return func(pol *domain.Policy, used int, now time.Time) (store.UsageChange, error) {
		if !pol.PolicyYearStart(now).Equal(yearStart) || used == 0 {
			return store.UsageChange{}, store.ErrNoChange
		}
		return store.UsageChange{YearStart: yearStart, Used: used - 1}, nil
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
