package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/secondopinion/gateway/internal/domain"
)

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

type benefitDoc struct {
	Covered       bool `bson:"covered"`
	CasesPerYear  int  `bson:"casesPerYear"`
	International bool `bson:"international"`
}

type usageDoc struct {
	YearStart time.Time `bson:"yearStart"`
	Used      int       `bson:"used"`
}

type policyDoc struct {
	ID            string     `bson:"_id"`
	PolicyNumber  string     `bson:"policyNumber"`
	Product       string     `bson:"product"`
	Status        string     `bson:"status"`
	EffectiveFrom time.Time  `bson:"effectiveFrom"`
	EffectiveTo   *time.Time `bson:"effectiveTo,omitempty"`
	InsurerID     string     `bson:"insurerId"`
	Benefit       benefitDoc `bson:"benefit"`
	Usage         usageDoc   `bson:"usage"`
	InsuredIDs    []string   `bson:"insuredIds"`
	Version       int        `bson:"version"`
	CreatedAt     time.Time  `bson:"createdAt"`
	UpdatedAt     time.Time  `bson:"updatedAt"`
}

func toPolicy(d *policyDoc, now time.Time) *domain.Policy {
	p := &domain.Policy{
		ID: d.ID, PolicyNumber: d.PolicyNumber, Product: domain.Product(d.Product),
		Status: domain.PolicyStatus(d.Status), EffectiveFrom: d.EffectiveFrom.UTC(),
		InsurerID: d.InsurerID, InsuredIDs: d.InsuredIDs, Version: d.Version,
		SecondOpinion: domain.Benefit{
			Covered: d.Benefit.Covered, CasesPerYear: d.Benefit.CasesPerYear,
			International: d.Benefit.International,
		},
	}
	if d.EffectiveTo != nil {
		t := d.EffectiveTo.UTC()
		p.EffectiveTo = &t
	}
	if d.Usage.YearStart.Equal(p.PolicyYearStart(now)) {
		p.SecondOpinion.CasesUsed = d.Usage.Used
	}
	return p
}
