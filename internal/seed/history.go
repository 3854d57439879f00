package seed

import (
	"fmt"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// RunSize is what `make run` loads: the demo, plus six months of delivered
// opinions with follow-ups and outcomes for outcomeStatistics.
var RunSize = Size{Policies: DemoSize.Policies, Specialists: DemoSize.Specialists, Cases: DemoSize.Cases, History: 6}

// historyCell is one month's delivered opinions of one specialty for one
// insurer: how many of each diagnosis assessment, how many members said
// the treatment changed, how many gave a satisfaction (all but the last
// two of a cell recorded an outcome). The figures are
// chosen so the statistics show some cells and suppress others (any count
// from 1 to 10): oncology shows everything; cardiology's 7 MODIFIED hides,
// and with it its 11 CONFIRMED (complementary suppression); neurology's 6
// hide the whole cell, and any figure whose query covers it.
type historyCell struct {
	specialty, insurer          string
	confirmed, modified, change int
	treatmentChanged, satisfied int
}

var historyCells = []historyCell{
	{specialty: "oncology", insurer: InsurerNorthstar, confirmed: 13, modified: 11, treatmentChanged: 12, satisfied: 20},
	{specialty: "cardiology", insurer: InsurerNorthstar, confirmed: 11, modified: 7, treatmentChanged: 5, satisfied: 16},
	{specialty: "orthopedics", insurer: InsurerMaple, confirmed: 12, change: 12, treatmentChanged: 15, satisfied: 20},
	{specialty: "neurology", insurer: InsurerMaple, confirmed: 4, modified: 2, treatmentChanged: 2, satisfied: 4},
}

var historySummaries = map[domain.DiagnosisAssessment]string{
	domain.DiagnosisConfirmed: "Your diagnosis is confirmed. The proposed treatment is sound; a less invasive option is worth discussing.",
	domain.DiagnosisModified:  "Your diagnosis is confirmed with a correction of its detail; the treatment plan should follow the revised diagnosis.",
	domain.DiagnosisChanged:   "The records point to a different diagnosis than the one first made; the treatment plan should be reconsidered.",
}

// addHistory appends months of delivered, mostly closed cases to d: cells
// as above in each of the last `months` whole calendar months before now,
// with answered follow-ups on every third case and outcomes on most.
func addHistory(d *store.Demo, months int, now time.Time) {
	if len(d.Policies) < 2 {
		return
	}
	bySpecialty := map[string][]*domain.Specialist{}
	for _, sp := range d.Specialists {
		if sp.OrgKind == domain.OrgProvider {
			bySpecialty[sp.Specialties[0]] = append(bySpecialty[sp.Specialties[0]], sp)
		}
	}
	// The demo member's policy is left out but for one case, so their list
	// stays short and shows a closed case with a follow-up.
	byInsurer := map[string][]*domain.Policy{}
	for _, p := range d.Policies[1:] {
		byInsurer[p.InsurerID] = append(byInsurer[p.InsurerID], p)
	}
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for m := months; m >= 1; m-- {
		month := first.AddDate(0, -m, 0)
		for _, cell := range historyCells {
			sps, pols := bySpecialty[cell.specialty], byInsurer[cell.insurer]
			if len(sps) == 0 || len(pols) == 0 {
				continue
			}
			var spec struct{ code, dx, treatment string }
			for _, s := range specialties {
				if s.name == cell.specialty {
					spec.code, spec.dx, spec.treatment = s.code, s.dx, s.treatment
				}
			}
			total := cell.confirmed + cell.modified + cell.change
			for i := 0; i < total; i++ {
				n++
				a := domain.DiagnosisConfirmed
				switch {
				case i >= cell.confirmed+cell.modified:
					a = domain.DiagnosisChanged
				case i >= cell.confirmed:
					a = domain.DiagnosisModified
				}
				pol := pols[i%len(pols)]
				patient := pol.InsuredIDs[(i/len(pols))%len(pol.InsuredIDs)]
				if m == 1 && i == 0 && cell.insurer == InsurerNorthstar && len(d.Policies) > 0 {
					pol, patient = d.Policies[0], DemoMemberKey
				}
				sp := sps[i%len(sps)]
				submitted := month.Add(time.Duration(i%17)*24*time.Hour + time.Duration(8+i%9)*time.Hour)
				complete := submitted.Add(time.Duration(20+i%30) * time.Hour)
				delivered := complete.Add(time.Duration(3+i%6)*24*time.Hour + 5*time.Hour)
				c := &domain.Case{
					ID: store.NewIDAt(submitted), Reference: fmt.Sprintf("SO-HIST-%06d", n), Status: domain.StatusOpinionDelivered,
					PolicyID: pol.ID, PatientID: patient, InsurerID: pol.InsurerID, Specialty: cell.specialty,
					Urgency: domain.UrgencyRoutine, PreferredLanguage: "en", RecordsCompleteAt: &complete,
					DueAt: complete.Add(domain.UrgencyRoutine.SLA()), SubmittedAt: submitted, UpdatedAt: delivered, DeliveredAt: &delivered,
					SpecialistID: sp.ID, SpecialistOrgID: sp.OrgID, Version: 1,
					Clinical: &domain.CaseClinical{
						Diagnosis: domain.Diagnosis{Code: spec.code, Description: spec.dx}, ProposedTreatment: spec.treatment,
						Questions: []string{"Is the diagnosis correct?"},
						Records:   []domain.Record{{ID: fmt.Sprintf("h%d", n), Title: "Specialist report", Kind: domain.RecordClinicalNote, RecordedOn: &submitted}},
					},
					Consents: []domain.Consent{{Kind: domain.ConsentRecordsRelease, Active: true, GrantedAt: &complete}},
				}
				st := func(s domain.CaseStatus) *domain.CaseStatus { return &s }
				c.Events = []domain.CaseEvent{
					{Type: "SUBMITTED", At: submitted, ToStatus: st(domain.StatusSubmitted), ActorRole: domain.RoleMember},
					{Type: "STATUS_CHANGED", At: complete, FromStatus: st(domain.StatusSubmitted), ToStatus: st(domain.StatusTriage), ActorRole: domain.RoleMember},
					{Type: "STATUS_CHANGED", At: delivered, FromStatus: st(domain.StatusInReview), ToStatus: st(domain.StatusOpinionDelivered), ActorRole: domain.RoleProvider},
				}
				if i%3 == 0 {
					asked := delivered.Add(30 * time.Hour)
					answered := asked.Add(20 * time.Hour)
					answer := "Yes: the option we describe suits your situation; your treating doctor can arrange it locally."
					c.FollowUps = []domain.FollowUp{{
						ID: c.ID + ":1", Question: "Could I start with the less invasive option?", AskedAt: asked,
						Answer: &answer, AnsweredAt: &answered, DueAt: domain.AddWorkingDays(asked, domain.FollowUpSLAWorkingDays),
					}}
				}
				if i < total-2 {
					// All but the last two members recorded what they did.
					changed := i < cell.treatmentChanged
					dec := domain.DecisionKeepOriginalPlan
					if changed {
						dec = domain.DecisionFollowOpinion
					}
					o := domain.Outcome{Decision: dec, TreatmentChanged: &changed, RecordedAt: delivered.Add(6 * 24 * time.Hour)}
					if i < cell.satisfied {
						s := 5 - i%3
						o.Satisfaction = &s
					}
					c.Outcome, c.Decision, c.Status = &o, &dec, domain.StatusClosed
				}
				impact := domain.ImpactModerate
				d.Cases = append(d.Cases, c)
				d.Opinions = append(d.Opinions, &domain.Opinion{
					CaseID: c.ID, SpecialistID: sp.ID, OrgID: sp.OrgID, Status: domain.OpinionDelivered,
					DeliveredAt: &delivered, UpdatedAt: delivered,
					Content: &domain.OpinionContent{
						DiagnosisAssessment: a, TreatmentAssessment: domain.TreatmentAlternative, ClinicalImpact: &impact,
						TreatmentOptions: []domain.TreatmentOption{
							{Name: "Less invasive option", Description: "Discuss with your treating doctor", Invasiveness: domain.InvasivenessLow},
							{Name: spec.treatment, Description: "The plan first proposed", Invasiveness: domain.InvasivenessHigh},
						},
						Answers:                []domain.Answer{{Question: "Is the diagnosis correct?", Answer: historySummaries[a]}},
						QuestionsForYourDoctor: []string{"What are the side effects of each option?"},
						MemberSummary:          historySummaries[a],
						Report:                 "Detailed report for " + spec.dx + ".",
					},
				})
			}
		}
	}
}
