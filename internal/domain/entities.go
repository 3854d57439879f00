package domain

import (
	"fmt"
	"time"
)

// Product is an insurance product line.
type Product string

// Products.
const (
	ProductExtendedHealth  Product = "EXTENDED_HEALTH"
	ProductCriticalIllness Product = "CRITICAL_ILLNESS"
)

// PolicyStatus is a policy's standing.
type PolicyStatus string

// Policy statuses.
const (
	PolicyActive    PolicyStatus = "ACTIVE"
	PolicyLapsed    PolicyStatus = "LAPSED"
	PolicyCancelled PolicyStatus = "CANCELLED"
)

// Sex as recorded on the policy.
type Sex string

// Sexes.
const (
	SexFemale  Sex = "FEMALE"
	SexMale    Sex = "MALE"
	SexOther   Sex = "OTHER"
	SexUnknown Sex = "UNKNOWN"
)

// Benefit is a policy's second-opinion benefit.
type Benefit struct {
	Covered       bool
	CasesPerYear  int
	CasesUsed     int
	International bool
}

// Policy is an insurance policy that may cover second opinions.
type Policy struct {
	ID            string
	PolicyNumber  string
	Product       Product
	Status        PolicyStatus
	EffectiveFrom time.Time
	EffectiveTo   *time.Time
	InsurerID     string
	SecondOpinion Benefit
	InsuredIDs    []string
	Version       int
}

// ResourceID names the object in audit events.
func (p *Policy) ResourceID() string { return p.ID }

// PolicyYearStart returns the start of the policy year holding at: policy
// years run from the effectiveFrom anniversary.
func (p *Policy) PolicyYearStart(at time.Time) time.Time {
	from := p.EffectiveFrom.UTC()
	y := at.UTC().Year()
	start := time.Date(y, from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	if start.After(at) {
		start = start.AddDate(-1, 0, 0)
	}
	return start
}

// ActiveAt reports whether the policy is in force at the given time.
func (p *Policy) ActiveAt(at time.Time) bool {
	if p.Status != PolicyActive || at.Before(p.EffectiveFrom) {
		return false
	}
	return p.EffectiveTo == nil || !at.After(p.EffectiveTo.Add(24*time.Hour-time.Nanosecond))
}

// PatientIdentity is the identifying part of a patient: partners never get it.
type PatientIdentity struct {
	GivenName   string
	FamilyName  string
	DateOfBirth time.Time
	Email       string
	Phone       string
}

// Patient is an insured member as a case or policy shows them. For a partner
// ID is a stable pseudonym and Identity is nil.
type Patient struct {
	ID string
	// MemberKey is the member's real key (MemberKey(insurer, member id))
	// whatever ID shows: the audit names whose data was read with it. It is
	// never sent to a client.
	MemberKey string
	Identity  *PatientIdentity
	// BirthYear is nil where it would reveal an age of 90 or more to a
	// role that reads de-identified demographics (HIPAA Safe Harbor).
	BirthYear *int
	// AgeBand is "0-17", "18-29", "30-39", … "80-89" or "90+".
	AgeBand  string
	Sex      Sex
	Country  string
	Language string
}

// AgeBand returns the band of an age: "0-17", "18-29", then decades up to
// "80-89", then "90+".
func AgeBand(age int) string {
	switch {
	case age < 18:
		return "0-17"
	case age < 30:
		return "18-29"
	case age >= 90:
		return "90+"
	}
	lo := age / 10 * 10
	return fmt.Sprintf("%d-%d", lo, lo+9)
}

// AgeOn returns the age in whole years on day now of someone born on dob.
func AgeOn(dob, now time.Time) int {
	age := now.Year() - dob.Year()
	if now.Month() < dob.Month() || (now.Month() == dob.Month() && now.Day() < dob.Day()) {
		age--
	}
	return age
}

// ResourceID names the object in audit events.
func (p *Patient) ResourceID() string { return p.ID }

// GivenName is readable only with the identity field group.
func (p *Patient) GivenName() (*string, error) {
	if p.Identity == nil {
		return nil, ErrFieldForbidden
	}
	return &p.Identity.GivenName, nil
}

// FamilyName is readable only with the identity field group.
func (p *Patient) FamilyName() (*string, error) {
	if p.Identity == nil {
		return nil, ErrFieldForbidden
	}
	return &p.Identity.FamilyName, nil
}

// DateOfBirth is readable only with the identity field group.
func (p *Patient) DateOfBirth() (*time.Time, error) {
	if p.Identity == nil {
		return nil, ErrFieldForbidden
	}
	return &p.Identity.DateOfBirth, nil
}

// Email is readable only with the identity field group.
func (p *Patient) Email() (*string, error) {
	if p.Identity == nil {
		return nil, ErrFieldForbidden
	}
	return optional(p.Identity.Email), nil
}

// Phone is readable only with the identity field group.
func (p *Patient) Phone() (*string, error) {
	if p.Identity == nil {
		return nil, ErrFieldForbidden
	}
	return optional(p.Identity.Phone), nil
}

// ErrFieldForbidden is returned by a field whose group the caller may not read.
var ErrFieldForbidden = Errorf(CodeForbidden, "you may not read this field")

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Specialty is a free-text medical specialty, e.g. "oncology".
type Specialty = string

// SpecialistInternal is the part of a specialist only their own org and
// coordinators see.
type SpecialistInternal struct {
	ActiveCases int
	Email       string
}

// OrgKind is what a registered organisation is: an insurer, a domestic
// provider org, an international network or the operator itself.
type OrgKind string

// Org kinds.
const (
	OrgInsurer  OrgKind = "INSURER"
	OrgProvider OrgKind = "PROVIDER"
	OrgNetwork  OrgKind = "NETWORK"
	OrgOperator OrgKind = "OPERATOR"
)

// Specialist is a physician who writes opinions.
type Specialist struct {
	ID             string
	Name           string
	Credentials    string
	Specialties    []string
	SubSpecialties []string
	Languages      []string
	Country        string
	Institution    string
	OrgID          string
	OrgKind        OrgKind
	AcceptingCases bool
	Internal       *SpecialistInternal
	Version        int
}

// ResourceID names the object in audit events.
func (s *Specialist) ResourceID() string { return s.ID }

// ActiveCases is the specialist's current load; internal.
func (s *Specialist) ActiveCases() (*int, error) {
	if s.Internal == nil {
		return nil, ErrFieldForbidden
	}
	return &s.Internal.ActiveCases, nil
}

// Email is the specialist's contact; internal.
func (s *Specialist) Email() (*string, error) {
	if s.Internal == nil {
		return nil, ErrFieldForbidden
	}
	return optional(s.Internal.Email), nil
}
