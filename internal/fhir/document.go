package fhir

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// document serves GET Composition/<opinion id>/$document: the delivered
// opinion as a document Bundle, read as GraphQL's opinion field reads it.
func (h *Handler) document(w http.ResponseWriter, r *http.Request) {
	ctx, p, err := h.begin(r, "GET Composition $document")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if r.PathValue("op") != "$document" {
		h.failCtx(ctx, w, domain.Errorf(domain.CodeBadUserInput, "only the $document operation is supported on Composition"))
		return
	}
	if err := p.Require(domain.ScopeOpinionsRead); err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	for k := range r.URL.Query() {
		if k != "_format" {
			h.failCtx(ctx, w, domain.Errorf(domain.CodeBadUserInput, "$document parameter %q is not supported", k))
			return
		}
	}
	b, err := h.opinionDocument(ctx, p, r.PathValue("id"), baseURL(r))
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	h.respond(ctx, w, http.StatusOK, b)
}

func (h *Handler) opinionDocument(ctx context.Context, p domain.Principal, id, base string) (fm.Bundle, error) {
	raw, ok := RawID(id)
	if !ok {
		return fm.Bundle{}, errNotFound("Composition")
	}
	wf := h.cfg.Workflow
	o, err := wf.Opinion(ctx, p, raw)
	if err != nil {
		return fm.Bundle{}, err
	}
	if o.Status != domain.OpinionDelivered || o.DeliveredAt == nil {
		// A draft is no document: the same answer as no opinion.
		return fm.Bundle{}, errNotFound("Composition")
	}
	noteOpinion(ctx, o, domain.GroupOpinionMeta, audit.OutcomeAllowed)
	if o.Content == nil {
		noteOpinion(ctx, o, domain.GroupOpinionContent, audit.OutcomeDenied)
		return fm.Bundle{}, domain.ErrFieldForbidden
	}
	noteOpinion(ctx, o, domain.GroupOpinionContent, audit.OutcomeAllowed)
	c, err := wf.Case(ctx, p, o.CaseID, workflow.CaseView{})
	if err != nil {
		return fm.Bundle{}, err
	}
	var pt *domain.Patient
	// As GraphQL's opinion.case.patient: a token narrowed to opinions:read
	// reads the opinion, not the patient behind it.
	if domain.CanRead(p, domain.GroupPatientDemographic) {
		pts, err := wf.PatientsOfCases(ctx, p, []*domain.Case{c})
		if err != nil {
			return fm.Bundle{}, err
		}
		pt = pts[c.ID]
	}
	sp, err := wf.Specialist(ctx, p, o.SpecialistID)
	if err != nil {
		return fm.Bundle{}, err
	}
	comp := composition(o, c, pt)
	if !domain.CanRead(p, domain.GroupCaseAdmin) {
		// As GraphQL's opinion.case.reference for a token narrowed to
		// opinions:read.
		comp.Title = "Second opinion"
	}
	entries := []idRes{{o.ID, comp}}
	if pt != nil {
		entries = append(entries, idRes{pt.ID, patient(ctx, pt, c.ID)})
	}
	entries = append(entries, idRes{sp.ID, practitioner(sp)})
	types := []string{"Composition", "Patient", "Practitioner"}
	if pt == nil {
		types = []string{"Composition", "Practitioner"}
	}
	b := fm.Bundle{
		Identifier: &fm.Identifier{System: ptr(sysOurs + "/sid/opinion"), Value: ptr(o.ID)},
		Type:       fm.BundleTypeDocument,
		Timestamp:  ptr(fhirTime(*o.DeliveredAt)),
		Signature:  signature(o),
	}
	for i, it := range entries {
		rawRes, _ := jsonOf(it.res)
		b.Entry = append(b.Entry, fm.BundleEntry{FullUrl: ptr(base + "/" + types[i] + "/" + ID(it.id)), Resource: rawRes})
	}
	return b, nil
}

func section(title, code string, div string, entries ...fm.Reference) fm.CompositionSection {
	return fm.CompositionSection{
		Title: ptr(title),
		Code:  ptr(coded(sysSection, code, title)),
		Text:  &fm.Narrative{Status: fm.NarrativeStatusGenerated, Div: `<div xmlns="http://www.w3.org/1999/xhtml">` + div + `</div>`},
		Entry: entries,
	}
}

// composition is the opinion as a Consult note (LOINC 11488-4).
func composition(o *domain.Opinion, c *domain.Case, pt *domain.Patient) fm.Composition {
	ct := o.Content
	esc := htmlEscape
	diag := "<p>Assessment of the initial diagnosis: " + esc(string(ct.DiagnosisAssessment)) + "</p>"
	if ct.RevisedDiagnosis != nil {
		diag += "<p>Revised diagnosis: " + esc(ct.RevisedDiagnosis.Code) + " " + esc(ct.RevisedDiagnosis.Description) + "</p>"
	}
	diag += "<p>Assessment of the proposed treatment: " + esc(string(ct.TreatmentAssessment)) + "</p>"
	if ct.ClinicalImpact != nil {
		diag += "<p>Clinical impact: " + esc(string(*ct.ClinicalImpact)) + "</p>"
	}
	list := func(items []string) string {
		if len(items) == 0 {
			return "<p>None.</p>"
		}
		s := "<ul>"
		for _, x := range items {
			s += "<li>" + x + "</li>"
		}
		return s + "</ul>"
	}
	var opts, trials, answers []string
	for _, t := range ct.TreatmentOptions {
		opts = append(opts, esc(t.Name)+" ("+esc(string(t.Invasiveness))+" invasiveness): "+esc(t.Description))
	}
	// Each trial is also a logical reference by its registry identifier,
	// so a receiving system can match it without parsing the narrative.
	var trialRefs []fm.Reference
	for _, t := range ct.ClinicalTrials {
		trials = append(trials, esc(t.RegistryID)+": "+esc(t.Title)+" "+esc(t.URL))
		trialRefs = append(trialRefs, fm.Reference{
			Type:       ptr("ResearchStudy"),
			Identifier: &fm.Identifier{System: ptr(trialRegistry(t.RegistryID)), Value: ptr(t.RegistryID)},
			Display:    ptr(t.Title),
		})
	}
	for _, a := range ct.Answers {
		answers = append(answers, "<b>"+esc(a.Question)+"</b> "+esc(a.Answer))
	}
	subject := patientRef(pt)
	comp := fm.Composition{
		Id:         ptr(ID(o.ID)),
		Meta:       meta(o.UpdatedAt),
		Identifier: &fm.Identifier{System: ptr(sysOurs + "/sid/opinion"), Value: ptr(o.ID)},
		Status:     fm.CompositionStatusFinal,
		Type:       coded(sysLOINC, "11488-4", "Consult note"),
		Subject:    &subject,
		Date:       fhirTime(*o.DeliveredAt),
		Author:     []fm.Reference{ref("Practitioner", o.SpecialistID)},
		Title:      "Second opinion " + c.Reference,
		Section: []fm.CompositionSection{
			section("Diagnosis assessment", "diagnosis-assessment", diag),
			section("Treatment options", "treatment-options", list(opts)),
			section("Clinical trials", "clinical-trials", list(trials), trialRefs...),
			section("Answers to your questions", "answers", list(answers)),
			section("Summary for the member", "member-summary", "<p>"+esc(ct.MemberSummary)+"</p>"),
			section("Report", "report", "<p>"+esc(ct.Report)+"</p>"),
		},
	}
	return comp
}

// signature is the service's signature over the delivered opinion
// (GraphQL's Opinion.signature) as Bundle.signature: the detached compact
// JWS in data, verifiable with the keys at /.well-known/jwks.json over the
// canonical JSON GraphQL's signature.payload gives. It signs the opinion,
// not this Bundle's bytes; the type says so (author's signature).
func signature(o *domain.Opinion) *fm.Signature {
	sig := o.Sig
	if sig == nil {
		return nil
	}
	return &fm.Signature{
		Type:         []fm.Coding{{System: ptr("urn:iso-astm:E1762-95:2013"), Code: ptr("1.2.840.10065.1.12.1.1"), Display: ptr("Author's Signature")}},
		When:         fhirTime(sig.SignedAt),
		Who:          fm.Reference{Display: ptr("Second Opinion Gateway (key " + sig.KeyID + ")"), Identifier: &fm.Identifier{System: ptr(sysOurs + "/sid/signing-key"), Value: ptr(sig.KeyID)}},
		TargetFormat: ptr("application/json"),
		SigFormat:    ptr("application/jose"),
		Data:         ptr(base64.StdEncoding.EncodeToString([]byte(sig.JWS))),
	}
}

// trialRegistry is the identifier system of a trial registry id: the
// registries' own addresses for ClinicalTrials.gov (NCT…), ISRCTN and the
// EU's CTIS (yyyy-nnnnnn-nn-nn), ours for any other.
func trialRegistry(id string) string {
	switch {
	case strings.HasPrefix(id, "NCT"):
		return "https://clinicaltrials.gov"
	case strings.HasPrefix(id, "ISRCTN"):
		return "https://www.isrctn.com"
	case euCT.MatchString(id):
		return "https://euclinicaltrials.eu"
	}
	return sysOurs + "/sid/trial-registry"
}

var euCT = regexp.MustCompile(`^\d{4}-\d{6}-\d{2}(-\d{2})?$`)
