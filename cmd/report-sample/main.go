// Command report-sample writes the printable report of a made-up delivered
// opinion (internal/report, as Opinion.reportPdf serves it), for the
// picture in docs/ that shows what members get: `make report-sample`.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/report"
)

func main() {
	out := flag.String("o", "docs/report-sample.pdf", "where to write the PDF")
	lang := flag.String("lang", "en", "the labels' language (en, fr, de, es)")
	flag.Parse()
	if err := run(*out, *lang); err != nil {
		fmt.Fprintln(os.Stderr, "report-sample:", err)
		os.Exit(1)
	}
}

func run(out, lang string) error {
	delivered := time.Date(2026, 3, 12, 15, 4, 0, 0, time.UTC)
	signed := delivered.Add(26 * time.Hour)
	asked, answered := delivered.Add(24*time.Hour), delivered.Add(26*time.Hour)
	answer := "No. Radiotherapy after a lumpectomy gives the same long-term survival as a mastectomy for a tumour of this size; " +
		"the choice can rest on your preference and your surgeon's view of the margins."
	impact := domain.ImpactMajor
	pdf, err := report.Render(report.Input{
		Language: lang, CaseReference: "SO-2026-7Q4M-2K9D", Specialty: "oncology",
		Specialist: &domain.Specialist{Name: "Dr. Chloé Roy", Credentials: "MD, FRCPC", Institution: "Montreal Health", Country: "CA"},
		Opinion: &domain.Opinion{
			ID: "op-sample", Status: domain.OpinionDelivered, DeliveredAt: &delivered,
			Sig: &domain.Signature{KeyID: "Hk2y1oQzY7nC0mF3vB8dRrX5aLw9tPqJ-eUuS4gVhI0", SignedAt: signed, Payload: `{"type":"second-opinion"}`},
			Content: &domain.OpinionContent{
				DiagnosisAssessment: domain.DiagnosisModified,
				RevisedDiagnosis:    &domain.Diagnosis{Code: "C50.4", Description: "Malignant neoplasm of upper-outer quadrant of breast"},
				TreatmentAssessment: domain.TreatmentAlternative, ClinicalImpact: &impact,
				TreatmentOptions: []domain.TreatmentOption{
					{Name: "Breast-conserving surgery (lumpectomy) with sentinel node biopsy, then radiotherapy", Description: "Removes the tumour with a margin of healthy tissue; about a week of recovery, then daily radiotherapy for three to five weeks.", Invasiveness: domain.InvasivenessMedium},
					{Name: "Mastectomy with sentinel node biopsy", Description: "The plan first proposed; no survival benefit over the option above for this tumour.", Invasiveness: domain.InvasivenessHigh},
					{Name: "Neoadjuvant endocrine therapy", Description: "Shrinks a hormone-receptor-positive tumour before surgery; worth discussing if surgery must wait.", Invasiveness: domain.InvasivenessLow},
				},
				ClinicalTrials: []domain.ClinicalTrial{
					{RegistryID: "NCT01234567", Title: "Omitting radiotherapy after breast-conserving surgery in low-risk patients", URL: "https://clinicaltrials.gov/study/NCT01234567"},
				},
				Answers: []domain.Answer{
					{Question: "Is the diagnosis correct?", Answer: "Yes, with a correction of the site: the tumour lies in the upper-outer quadrant (C50.4); the pathology is confirmed."},
					{Question: "Is a mastectomy needed?", Answer: "Not for a tumour of 1.8 cm with clear imaging of the other quadrants: breast-conserving surgery is the standard here."},
				},
				QuestionsForYourDoctor: []string{"Are my margins likely to be clear with a lumpectomy?", "How many weeks of radiotherapy would I need, and where?"},
				MemberSummary: "Your diagnosis is confirmed, with a small correction of where the tumour lies. A mastectomy is not needed: " +
					"removing the tumour alone (a lumpectomy) followed by radiotherapy works as well for a tumour of this size, with a faster recovery.",
				Report: "Pathology (core biopsy, 2 February) reviewed: invasive ductal carcinoma, grade 2, ER+/PR+/HER2-. " +
					"Imaging shows a single 1.8 cm lesion at 2 o'clock, with no suspicious nodes. Breast-conserving therapy is appropriate.",
			},
		},
		FollowUps: []domain.FollowUp{{ID: "f1", Question: "Would radiotherapy make the surgery less effective?", AskedAt: asked, Answer: &answer, AnsweredAt: &answered}},
	})
	if err != nil {
		return err
	}
	return os.WriteFile(out, pdf, 0o644)
}
