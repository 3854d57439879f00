// Package report renders a delivered second opinion as the PDF the member
// takes to their treating doctor (Opinion.reportPdf): the opinion's
// content, its follow-ups, the specialist, the delivery date and how to
// verify the service's signature. It holds opinion content only: the case
// is named by its reference, never by the patient's identity, so every
// role that may read the opinion may read its report and nothing more.
//
// The PDF is rendered on request from the stored opinion (never stored
// itself), and byte for byte the same each time for the same opinion: its
// dates are the signature's, so the size and SHA-256 a client reads with
// the link match the file the link serves.
package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/secondopinion/gateway/internal/domain"
)

// ContentType is the report's content type.
const ContentType = "application/pdf"

// Input is what a report shows.
type Input struct {
	// Language picks the labels (the case's preferred language: the
	// opinion is written in it); English when it has none of its own.
	Language      string
	CaseReference string
	Specialty     string
	Opinion       *domain.Opinion
	Specialist    *domain.Specialist
	// FollowUps are the member's questions after delivery, answered or not.
	FollowUps []domain.FollowUp
}

// Render returns the report's PDF.
func Render(in Input) ([]byte, error) {
	o := in.Opinion
	if o == nil || o.Content == nil || o.DeliveredAt == nil {
		return nil, fmt.Errorf("report: the opinion's content and delivery time are needed")
	}
	l := labelsFor(in.Language)
	stamp := *o.DeliveredAt
	if o.Sig != nil {
		stamp = o.Sig.SignedAt
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	// The Go fonts (BSD licence, shipped as Go code) cover Latin, Greek and
	// Cyrillic; the standard PDF fonts would cover Western European only.
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetCreationDate(stamp)
	pdf.SetModificationDate(stamp)
	pdf.SetCatalogSort(true)
	pdf.SetProducer("Second Opinion Gateway", true)
	pdf.SetTitle(l.title+" "+in.CaseReference, true)
	pdf.SetLang(langTag(in.Language))
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 18)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-13)
		pdf.SetFont("go", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, fmt.Sprintf("%s · %s · %d/{nb}", in.CaseReference, l.title, pdf.PageNo()), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	w := &writer{pdf: pdf}

	pdf.SetFont("go", "B", 18)
	pdf.SetTextColor(20, 40, 90)
	pdf.MultiCell(0, 9, l.title, "", "L", false)
	pdf.SetTextColor(0, 0, 0)
	w.field(l.reference, in.CaseReference)
	if in.Specialty != "" {
		w.field(l.specialty, in.Specialty)
	}
	w.field(l.delivered, o.DeliveredAt.UTC().Format("2006-01-02"))
	if sp := in.Specialist; sp != nil {
		name := sp.Name
		if sp.Credentials != "" {
			name += ", " + sp.Credentials
		}
		w.field(l.specialist, name)
		var where []string
		for _, s := range []string{sp.Institution, sp.Country} {
			if s != "" {
				where = append(where, s)
			}
		}
		if len(where) > 0 {
			w.field(l.institution, strings.Join(where, ", "))
		}
	}

	c := o.Content
	w.heading(l.summary)
	w.para(c.MemberSummary)

	w.heading(l.diagnosis)
	w.field(l.assessment, l.assessments[c.DiagnosisAssessment])
	if d := c.RevisedDiagnosis; d != nil {
		w.field(l.revised, strings.TrimSpace(d.Code+" "+d.Description))
	}
	w.field(l.treatment, l.treatments[c.TreatmentAssessment])
	if c.ClinicalImpact != nil {
		w.field(l.impact, l.impacts[*c.ClinicalImpact])
	}

	if len(c.TreatmentOptions) > 0 {
		w.heading(l.options)
		for i, t := range c.TreatmentOptions {
			line := fmt.Sprintf("%d. %s", i+1, t.Name)
			if t.Invasiveness != "" {
				line += " (" + l.invasiveness + ": " + l.levels[t.Invasiveness] + ")"
			}
			w.bold(line)
			if t.Description != "" {
				w.para(t.Description)
			}
		}
	}
	if len(c.ClinicalTrials) > 0 {
		w.heading(l.trials)
		for _, t := range c.ClinicalTrials {
			w.bold(t.RegistryID + " — " + t.Title)
			if t.URL != "" {
				w.para(t.URL)
			}
		}
	}
	if len(c.Answers) > 0 {
		w.heading(l.answers)
		for _, a := range c.Answers {
			w.bold(a.Question)
			w.para(a.Answer)
		}
	}
	if len(in.FollowUps) > 0 {
		w.heading(l.followUps)
		for _, f := range in.FollowUps {
			w.bold(f.Question + "  (" + f.AskedAt.UTC().Format("2006-01-02") + ")")
			if f.Answer != nil {
				ans := *f.Answer
				if f.AnsweredAt != nil {
					ans += "  (" + f.AnsweredAt.UTC().Format("2006-01-02") + ")"
				}
				w.para(ans)
			} else {
				w.para(l.unanswered)
			}
		}
	}
	if len(c.QuestionsForYourDoctor) > 0 {
		w.heading(l.forDoctor)
		for _, q := range c.QuestionsForYourDoctor {
			w.para("• " + q)
		}
	}
	if c.Report != "" {
		w.heading(l.report)
		w.para(c.Report)
	}

	w.heading(l.signature)
	if s := o.Sig; s != nil {
		sum := sha256.Sum256([]byte(s.Payload))
		w.field(l.keyID, s.KeyID)
		w.field(l.signedAt, s.SignedAt.UTC().Format(time.RFC3339))
		w.field(l.payloadHash, hex.EncodeToString(sum[:]))
		w.small(l.verify)
	} else {
		w.para(l.unsigned)
	}

	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return buf.Bytes(), nil
}

// labelWidth is the width of the labels' column, in mm.
const labelWidth = 45

// writer lays out the report's blocks.
type writer struct{ pdf *fpdf.Fpdf }

func (w *writer) heading(s string) {
	w.pdf.Ln(4)
	w.pdf.SetFont("go", "B", 13)
	w.pdf.SetTextColor(20, 40, 90)
	w.pdf.MultiCell(0, 7, s, "B", "L", false)
	w.pdf.SetTextColor(0, 0, 0)
	w.pdf.Ln(1.5)
}

func (w *writer) field(label, value string) {
	w.pdf.SetFont("go", "B", 10)
	if w.pdf.GetStringWidth(label) > labelWidth-2 {
		// A label longer than its column takes a line of its own.
		w.pdf.MultiCell(0, 5.5, label, "", "L", false)
		w.pdf.SetX(w.pdf.GetX() + labelWidth)
	} else {
		w.pdf.CellFormat(labelWidth, 5.5, label, "", 0, "L", false, 0, "")
	}
	w.pdf.SetFont("go", "", 10)
	w.pdf.MultiCell(0, 5.5, value, "", "L", false)
}

func (w *writer) bold(s string) {
	w.pdf.SetFont("go", "B", 10.5)
	w.pdf.MultiCell(0, 5.5, s, "", "L", false)
}

func (w *writer) para(s string) {
	w.pdf.SetFont("go", "", 10.5)
	w.pdf.MultiCell(0, 5.5, s, "", "L", false)
	w.pdf.Ln(1)
}

func (w *writer) small(s string) {
	w.pdf.SetFont("go", "", 8.5)
	w.pdf.SetTextColor(70, 70, 70)
	w.pdf.MultiCell(0, 4.5, s, "", "L", false)
	w.pdf.SetTextColor(0, 0, 0)
}

// langTag returns the document's language tag (BCP 47), en by default.
func langTag(lang string) string {
	lang = strings.ToLower(strings.TrimSpace(lang))
	if lang == "" || len(lang) > 35 {
		return "en"
	}
	return lang
}
