// Package seed builds the demo data set that `make run` loads into an empty
// database, and the personas whose dev tokens it prints.
package seed

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Persona is a demo caller with a ready token's claims.
type Persona struct {
	Name    string
	Subject string
	Role    domain.Role
	Org     string
}

// Demo organisations and personas.
const (
	InsurerNorthstar  = "ins-northstar"
	InsurerMaple      = "ins-maple"
	ProviderToronto   = "prov-toronto-general"
	ProviderVancouver = "prov-vancouver-clinic"
	ProviderMontreal  = "prov-montreal-health"
	NetworkEuro       = "net-euro-experts"
	NetworkUS         = "net-us-specialists"
	Operator          = "operator"
	DemoMember        = "m-1001"
)

// DemoMemberKey is the demo member as the store names it: the member of
// InsurerNorthstar whose id is DemoMember.
var DemoMemberKey = domain.MemberKey(InsurerNorthstar, DemoMember)

// Personas are the demo callers `make run` prints tokens for.
var Personas = []Persona{
	{Name: "member", Subject: DemoMember, Role: domain.RoleMember, Org: InsurerNorthstar},
	{Name: "insurer", Subject: "u-northstar-claims", Role: domain.RoleInsurer, Org: InsurerNorthstar},
	{Name: "provider", Subject: "u-toronto-desk", Role: domain.RoleProvider, Org: ProviderToronto},
	{Name: "partner", Subject: "u-euro-ops", Role: domain.RolePartner, Org: NetworkEuro},
	{Name: "coordinator", Subject: "u-coordinator", Role: domain.RoleCoordinator, Org: Operator},
}

// Organizations are the demo's registered organisations (the operator's own
// is registered by the application from OPERATOR_ORG).
func Organizations() []domain.Organization {
	out := []domain.Organization{
		{ID: InsurerNorthstar, Name: "Northstar Life", Kind: domain.OrgInsurer, Country: "CA"},
		{ID: InsurerMaple, Name: "Maple Mutual", Kind: domain.OrgInsurer, Country: "CA"},
	}
	for _, o := range orgs {
		out = append(out, domain.Organization{ID: o.id, Name: o.inst, Kind: o.kind, Country: o.country[0]})
	}
	return out
}

// Size says how much to generate.
type Size struct {
	Policies    int
	Specialists int
	Cases       int
	// History adds that many whole months of delivered opinions with
	// follow-ups and outcomes before now's month (RunSize; tests leave it 0).
	History int
}

// DemoSize is the demo data set the tests load; `make run` loads RunSize,
// the same with months of outcome history.
var DemoSize = Size{Policies: 10, Specialists: 40, Cases: 30}

type org struct {
	id      string
	kind    domain.OrgKind
	country []string
	langs   []string
	inst    string
}

var orgs = []org{
	{ProviderToronto, domain.OrgProvider, []string{"CA"}, []string{"en", "fr"}, "Toronto General"},
	{ProviderVancouver, domain.OrgProvider, []string{"CA"}, []string{"en", "zh"}, "Vancouver Clinic"},
	{ProviderMontreal, domain.OrgProvider, []string{"CA"}, []string{"fr", "en"}, "Montreal Health"},
	{NetworkEuro, domain.OrgNetwork, []string{"DE", "FR", "ES", "IT"}, []string{"de", "fr", "es", "it", "en"}, "Euro Experts"},
	{NetworkUS, domain.OrgNetwork, []string{"US"}, []string{"en", "es"}, "US Specialists"},
}

var specialties = []struct {
	name, sub, code, dx, treatment string
}{
	{"oncology", "breast oncology", "C50.9", "Malignant neoplasm of breast", "Mastectomy followed by chemotherapy"},
	{"cardiology", "interventional cardiology", "I25.10", "Coronary artery disease", "Coronary artery bypass graft"},
	{"neurology", "movement disorders", "G20", "Parkinson's disease", "Deep brain stimulation"},
	{"orthopedics", "spine surgery", "M51.26", "Lumbar disc herniation", "Spinal fusion L4-L5"},
	{"rheumatology", "inflammatory arthritis", "M06.9", "Rheumatoid arthritis", "Biologic therapy"},
}

var givenNames = []string{"Alice", "Bruno", "Chloé", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam", "Maya", "Noah", "Olga"}
var familyNames = []string{"Martin", "Tremblay", "Singh", "Nguyen", "Roy", "Cohen", "Okafor", "Lee", "Garcia", "Brown"}

// Build generates a data set of the given size, deterministically.
func Build(size Size, now time.Time) store.Demo {
	r := rand.New(rand.NewPCG(42, uint64(size.Cases)))
	var d store.Demo
	d.Orgs = Organizations()
	now = now.UTC()
	insurers := []string{InsurerNorthstar, InsurerMaple}

	// Policies and insured members; the demo member holds the first policy.
	member := 1001
	for i := 0; i < size.Policies; i++ {
		ins := insurers[i%2]
		pol := &domain.Policy{
			ID: store.NewIDAt(now.AddDate(0, 0, -400+i)), PolicyNumber: fmt.Sprintf("%s-%05d", map[string]string{InsurerNorthstar: "NS", InsurerMaple: "MP"}[ins], 1001+i),
			Product: []domain.Product{domain.ProductCriticalIllness, domain.ProductExtendedHealth}[i%2],
			Status:  domain.PolicyActive, EffectiveFrom: time.Date(now.Year()-1, time.Month(1+i%12), 1, 0, 0, 0, 0, time.UTC),
			InsurerID:     ins,
			SecondOpinion: domain.Benefit{Covered: i%7 != 6, CasesPerYear: 3 + i%3, International: i%3 != 2},
		}
		if i == size.Policies-1 && size.Policies > 3 {
			pol.Status = domain.PolicyLapsed
		}
		n := 1 + i%3
		for j := 0; j < n; j++ {
			id := fmt.Sprintf("m-%d", member)
			member++
			pol.InsuredIDs = append(pol.InsuredIDs, domain.MemberKey(ins, id))
			gn, fn := givenNames[r.IntN(len(givenNames))], familyNames[r.IntN(len(familyNames))]
			if id == DemoMember {
				gn, fn = "Alice", "Martin"
			}
			d.Patients = append(d.Patients, store.DemoPatient{
				NewInsured: store.NewInsured{
					MemberID: id, GivenName: gn, FamilyName: fn,
					DateOfBirth: time.Date(1950+r.IntN(50), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC),
					Sex:         []domain.Sex{domain.SexFemale, domain.SexMale}[r.IntN(2)],
					Email:       fmt.Sprintf("%s@example.org", id), Phone: fmt.Sprintf("+1-555-01%02d", r.IntN(100)),
					Country: "CA", Language: []string{"en", "fr"}[r.IntN(2)],
				},
				InsurerID: ins,
			})
		}
		d.Policies = append(d.Policies, pol)
	}

	// Specialists across orgs, countries and languages.
	for i := 0; i < size.Specialists; i++ {
		o := orgs[i%len(orgs)]
		sp := specialties[(i/len(orgs))%len(specialties)]
		d.Specialists = append(d.Specialists, &domain.Specialist{
			ID:          store.NewIDAt(now.AddDate(0, 0, -500+i%400)),
			Name:        fmt.Sprintf("Dr. %s %s", givenNames[r.IntN(len(givenNames))], familyNames[r.IntN(len(familyNames))]),
			Credentials: "MD", Specialties: []string{sp.name}, SubSpecialties: []string{sp.sub},
			Languages: []string{o.langs[i%len(o.langs)], "en"}, Country: o.country[i%len(o.country)],
			Institution: o.inst, OrgID: o.id, OrgKind: o.kind, AcceptingCases: i%9 != 8,
			Internal: &domain.SpecialistInternal{ActiveCases: r.IntN(8), Email: fmt.Sprintf("specialist%d@%s.example.org", i, o.id)},
		})
	}

	// Cases spread over every status.
	statuses := []domain.CaseStatus{
		domain.StatusSubmitted, domain.StatusTriage, domain.StatusAssigned, domain.StatusInReview,
		domain.StatusOpinionDelivered, domain.StatusClosed, domain.StatusCancelled,
	}
	for i := 0; i < size.Cases; i++ {
		pol := d.Policies[i%len(d.Policies)]
		patient := pol.InsuredIDs[i%len(pol.InsuredIDs)]
		if i%5 == 0 {
			pol, patient = d.Policies[0], DemoMemberKey
		}
		status := statuses[i%len(statuses)]
		spec := specialties[i%len(specialties)]
		submitted := now.Add(-time.Duration(size.Cases-i) * 17 * time.Hour)
		urgency := domain.UrgencyRoutine
		if i%4 == 0 {
			urgency = domain.UrgencyUrgent
		}
		c := &domain.Case{
			ID: store.NewIDAt(submitted), Reference: fmt.Sprintf("SO-DEMO-%06d", i+1), Status: status,
			PolicyID: pol.ID, PatientID: patient, InsurerID: pol.InsurerID, Specialty: spec.name,
			Urgency: urgency, PreferredLanguage: "en", DueAt: submitted.Add(urgency.SLA()),
			SubmittedAt: submitted, UpdatedAt: submitted.Add(time.Hour), Version: 1,
			Clinical: &domain.CaseClinical{
				Diagnosis:         domain.Diagnosis{Code: spec.code, Description: spec.dx},
				ProposedTreatment: spec.treatment,
				Questions:         []string{"Is the diagnosis correct?", "Is the proposed treatment the best option?"},
			},
		}
		sub := domain.StatusSubmitted
		c.Events = append(c.Events, domain.CaseEvent{Type: "SUBMITTED", At: submitted, ToStatus: &sub, ActorRole: domain.RoleMember})
		if status != domain.StatusSubmitted && status != domain.StatusCancelled || i%2 == 0 {
			t := submitted.Add(2 * time.Hour)
			c.Consents = append(c.Consents, domain.Consent{Kind: domain.ConsentRecordsRelease, Active: true, GrantedAt: &t})
			c.Clinical.Records = append(c.Clinical.Records, domain.Record{ID: fmt.Sprintf("r%d", i), Title: "Pathology report", Kind: domain.RecordPathology, RecordedOn: &t})
		}
		if status != domain.StatusSubmitted && status != domain.StatusTriage && status != domain.StatusCancelled {
			// Pick a specialist of the specialty; every third case goes abroad.
			var chosen *domain.Specialist
			for j, s := range d.Specialists {
				abroad := s.OrgKind == domain.OrgNetwork
				if s.Specialties[0] == spec.name && abroad == (i%3 == 0) && (j+i)%2 == 0 {
					chosen = s
					break
				}
			}
			if chosen == nil {
				for _, s := range d.Specialists {
					if s.Specialties[0] == spec.name {
						chosen = s
						break
					}
				}
			}
			c.SpecialistID, c.SpecialistOrgID = chosen.ID, chosen.OrgID
			c.SpecialistAbroad = chosen.Country != "CA" // every demo member lives in Canada
			if chosen.OrgKind == domain.OrgNetwork {
				t := submitted.Add(3 * time.Hour)
				c.Consents = append(c.Consents, domain.Consent{Kind: domain.ConsentInternationalSharing, Active: true, GrantedAt: &t})
			}
			from, to := domain.StatusTriage, domain.StatusAssigned
			c.Events = append(c.Events, domain.CaseEvent{Type: "STATUS_CHANGED", At: submitted.Add(4 * time.Hour), FromStatus: &from, ToStatus: &to, ActorRole: domain.RoleCoordinator})
		}
		if status == domain.StatusOpinionDelivered || status == domain.StatusClosed || status == domain.StatusInReview {
			ost := domain.OpinionDraft
			var delivered *time.Time
			if status != domain.StatusInReview {
				ost = domain.OpinionDelivered
				t := submitted.Add(72 * time.Hour)
				delivered, c.DeliveredAt = &t, &t
			}
			impact := domain.ImpactModerate
			d.Opinions = append(d.Opinions, &domain.Opinion{
				CaseID: c.ID, SpecialistID: c.SpecialistID, OrgID: c.SpecialistOrgID, Status: ost,
				DeliveredAt: delivered, UpdatedAt: submitted.Add(70 * time.Hour),
				Content: &domain.OpinionContent{
					DiagnosisAssessment: domain.DiagnosisConfirmed, TreatmentAssessment: domain.TreatmentAlternative,
					ClinicalImpact:         &impact,
					TreatmentOptions:       []domain.TreatmentOption{{Name: "Less invasive option", Description: "Discuss with your oncologist", Invasiveness: domain.InvasivenessLow}},
					Answers:                []domain.Answer{{Question: "Is the diagnosis correct?", Answer: "Yes."}},
					QuestionsForYourDoctor: []string{"What are the side effects?"},
					MemberSummary:          "Your diagnosis is confirmed; a less invasive option exists.",
					Report:                 "Detailed report for " + spec.dx + ".",
				},
			})
		}
		if status == domain.StatusClosed {
			dec := domain.DecisionFollowOpinion
			c.Decision = &dec
		}
		d.Cases = append(d.Cases, c)
	}
	if size.History > 0 {
		addHistory(&d, size.History, now)
	}
	return d
}
