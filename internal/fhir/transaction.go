package fhir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/workflow"
)

// transaction imports a referral: a transaction Bundle of Patient,
// Coverage, ServiceRequest, Condition and DocumentReference becomes one case
// through workflow.ImportReferral (requestSecondOpinion's rules), idempotent
// on Bundle.identifier.
func (h *Handler) transaction(w http.ResponseWriter, r *http.Request) {
	ctx, p, err := h.begin(r, "POST transaction")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if mt := strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]); mt != ContentType && mt != "application/json" {
		h.failCtx(ctx, w, domain.Errorf(domain.CodeBadUserInput, "send the Bundle as %s", ContentType))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.failCtx(ctx, w, domain.Errorf(domain.CodeBadUserInput, "the request body could not be read"))
		return
	}
	ref, key, kinds, files, err := parseReferral(body)
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	if err := h.checkFiles(p, files); err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	sum := sha256.Sum256(canonical(body))
	c, err := h.cfg.Workflow.ImportReferral(ctx, p, key, hex.EncodeToString(sum[:]), ref)
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	fileRecords, err := h.storeFiles(ctx, p, c, key, files)
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	pts, err := h.cfg.Workflow.PatientsOfCases(ctx, p, []*domain.Case{c})
	if err != nil {
		h.failCtx(ctx, w, err)
		return
	}
	// One response entry per request entry, in the same order (FHIR's
	// transaction-response): what each became. The case is the
	// ServiceRequest (its Task and Condition share its id); the Patient
	// and Coverage existed already and are named as this caller reads them.
	resp := fm.Bundle{Type: fm.BundleTypeTransactionResponse, Timestamp: ptr(fhirTime(time.Now()))}
	records, docs := 0, 0
	for _, kind := range kinds {
		id, status := c.ID, "201 Created"
		switch kind {
		case "Patient":
			id, status = "", "200 OK"
			if pt := pts[c.ID]; pt != nil {
				id = pt.ID
			}
		case "Coverage":
			id, status = c.PolicyID, "200 OK"
		case "DocumentReference":
			id = ""
			if f, ok := fileRecords[docs]; ok {
				id = c.ID + "." + f
			} else {
				if c.Clinical != nil && records < len(c.Clinical.Records) {
					id = c.ID + "." + c.Clinical.Records[records].ID
				}
				records++
			}
			docs++
		}
		e := fm.BundleEntry{Response: &fm.BundleEntryResponse{Status: status, LastModified: ptr(fhirTime(c.UpdatedAt))}}
		if id != "" {
			e.FullUrl = ptr(baseURL(r) + "/" + kind + "/" + ID(id))
			e.Response.Location = ptr(kind + "/" + ID(id))
		}
		resp.Entry = append(resp.Entry, e)
	}
	h.respond(ctx, w, http.StatusOK, resp)
}

// canonical re-encodes JSON so that whitespace and key order do not make
// a replay look like another Bundle.
func canonical(b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func bad(format string, args ...any) error {
	return domain.Errorf(domain.CodeBadUserInput, format, args...)
}

// parseReferral reads the Bundle into a workflow.Referral, its idempotency
// key (system|value of Bundle.identifier) and the resource type of each
// entry, in order.
// inlineFile is a record a referral sends with its bytes
// (DocumentReference.content.attachment.data): the doc-th
// DocumentReference of the Bundle.
type inlineFile struct {
	doc, entry int
	rec        workflow.RecordInput
	data       []byte
}

// checkFiles refuses, before anything is written, the files a referral
// could not store: the caller may not upload (uploads are for members,
// coordinators and reviewers; of those who send referrals, coordinators),
// or a file is empty or of a type the service does not store.
func (h *Handler) checkFiles(p domain.Principal, files []inlineFile) error {
	if len(files) == 0 {
		return nil
	}
	if h.cfg.Documents == nil {
		return bad("this server stores no files: send the records' metadata only")
	}
	// Reading the case back tells which files a retried import stored
	// already: cases:read as well as cases:write.
	if p.Role != domain.RoleCoordinator || !p.Has(domain.ScopeCasesRead) {
		return domain.Errorf(domain.CodeForbidden, "only a coordinator token that reads cases sends records' files with a referral; send the metadata, and the files through uploadMedicalRecord")
	}
	for _, f := range files {
		if len(f.data) == 0 || !h.cfg.Documents.Accepts(f.data[:min(len(f.data), 3072)]) {
			return bad("entry %d: the attachment is empty or not a PDF, JPEG, PNG, TIFF, DICOM or plain-text file", f.entry)
		}
		if int64(len(f.data)) > h.cfg.Documents.MaxBytes() {
			return domain.Errorf(domain.CodeBadUserInput, "entry %d: the file is larger than %d bytes", f.entry, h.cfg.Documents.MaxBytes())
		}
	}
	return nil
}

// fileRecordID is the id of the record an inline file becomes: fixed by
// the case, the Bundle's identifier and the file's place among the
// DocumentReferences, so that storing it again (a retry after a timeout,
// two copies of the request at once) finds it instead of adding it twice.
func fileRecordID(caseID, key string, doc int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", caseID, key, doc)))
	return "rec-" + hex.EncodeToString(sum[:12])
}

// storeFiles stores each inline file as a record of the case, as
// uploadMedicalRecord does, under the record id fileRecordID fixes, and
// returns each one's record id by its DocumentReference's position. A file
// already stored (a replay, or a retry after a failure midway) is not
// stored again: sending the same Bundle again completes an import that
// failed between the case and its files.
func (h *Handler) storeFiles(ctx context.Context, p domain.Principal, c *domain.Case, key string, files []inlineFile) (map[int]string, error) {
	out := make(map[int]string, len(files))
	held := map[string]bool{}
	if c.Clinical != nil {
		for _, r := range c.Clinical.Records {
			held[r.ID] = true
		}
	}
	for _, f := range files {
		id := fileRecordID(c.ID, key, f.doc)
		out[f.doc] = id
		if held[id] {
			continue
		}
		f.rec.ID = id
		if _, _, err := h.cfg.Documents.Upload(ctx, p, c.ID, f.rec, bytes.NewReader(f.data)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseReferral(body []byte) (out workflow.Referral, key string, kinds []string, files []inlineFile, err error) {
	var probe struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || probe.ResourceType != "Bundle" {
		return out, "", nil, nil, bad("the body must be a FHIR Bundle")
	}
	b, uerr := fm.UnmarshalBundle(body)
	if uerr != nil {
		return out, "", nil, nil, bad("the Bundle is not valid FHIR JSON")
	}
	if b.Type != fm.BundleTypeTransaction {
		return out, "", nil, nil, bad("only transaction Bundles are accepted")
	}
	if b.Identifier == nil || b.Identifier.Value == nil || *b.Identifier.Value == "" {
		return out, "", nil, nil, bad("Bundle.identifier is required: it makes the import idempotent")
	}
	key = *b.Identifier.Value
	if b.Identifier.System != nil {
		key = *b.Identifier.System + "|" + key
	}
	seen := map[string]int{}
	var (
		sr   *fm.ServiceRequest
		cond *fm.Condition
		pat  *fm.Patient
		cov  *fm.Coverage
	)
	for i, e := range b.Entry {
		if e.Request == nil || e.Request.Method != fm.HTTPVerbPOST {
			return out, "", nil, nil, bad("entry %d: only POST entries are accepted", i)
		}
		var rt struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &rt); err != nil {
			return out, "", nil, nil, bad("entry %d has no resource", i)
		}
		seen[rt.ResourceType]++
		kinds = append(kinds, rt.ResourceType)
		var uerr error
		switch rt.ResourceType {
		case "ServiceRequest":
			var x fm.ServiceRequest
			x, uerr = fm.UnmarshalServiceRequest(e.Resource)
			sr = &x
		case "Condition":
			var x fm.Condition
			x, uerr = fm.UnmarshalCondition(e.Resource)
			cond = &x
		case "Patient":
			var x fm.Patient
			x, uerr = fm.UnmarshalPatient(e.Resource)
			pat = &x
		case "Coverage":
			var x fm.Coverage
			x, uerr = fm.UnmarshalCoverage(e.Resource)
			cov = &x
		case "DocumentReference":
			var x fm.DocumentReference
			x, uerr = fm.UnmarshalDocumentReference(e.Resource)
			if uerr == nil {
				rec, data, err := recordOf(i, x)
				if err != nil {
					return out, "", nil, nil, err
				}
				if data != nil {
					files = append(files, inlineFile{doc: seen["DocumentReference"] - 1, entry: i, rec: rec, data: data})
					out.Files = append(out.Files, rec)
				} else {
					out.Records = append(out.Records, rec)
				}
			}
		default:
			return out, "", nil, nil, bad("entry %d: %s is not part of a referral (Patient, Coverage, ServiceRequest, Condition, DocumentReference)", i, rt.ResourceType)
		}
		if uerr != nil {
			return out, "", nil, nil, bad("entry %d: %s is not valid FHIR JSON", i, rt.ResourceType)
		}
	}
	for _, t := range []string{"ServiceRequest", "Condition", "Patient", "Coverage"} {
		if seen[t] != 1 {
			return out, "", nil, nil, bad("a referral holds exactly one %s (found %d)", t, seen[t])
		}
	}
	req := &out.Request
	// Coverage names the policy; Patient (or Coverage.subscriberId) the member.
	for _, id := range cov.Identifier {
		if id.Value != nil && (id.System == nil || *id.System == sysPolicyID) {
			req.PolicyID = *id.Value
		}
	}
	if req.PolicyID == "" {
		return out, "", nil, nil, bad("Coverage.identifier must name the policy (system %s)", sysPolicyID)
	}
	for _, id := range pat.Identifier {
		if id.Value != nil && (id.System == nil || *id.System == sysMemberID) {
			req.PatientMemberID = *id.Value
		}
	}
	if req.PatientMemberID == "" && cov.SubscriberId != nil {
		req.PatientMemberID = *cov.SubscriberId
	}
	if req.PatientMemberID == "" {
		return out, "", nil, nil, bad("Patient.identifier must name the member (system %s)", sysMemberID)
	}
	if sr.Code != nil {
		req.Specialty = conceptText(*sr.Code)
	}
	if sr.Priority != nil && *sr.Priority != fm.RequestPriorityRoutine {
		req.Urgency = domain.UrgencyUrgent
	}
	for _, n := range sr.Note {
		req.Questions = append(req.Questions, n.Text)
	}
	for _, d := range sr.OrderDetail {
		req.ProposedTreatment = strings.TrimPrefix(conceptText(d), "proposed treatment: ")
	}
	if len(pat.Communication) > 0 {
		req.PreferredLanguage = conceptCode(pat.Communication[0].Language)
	}
	if cond.Code == nil {
		return out, "", nil, nil, bad("Condition.code must carry the ICD-10 diagnosis")
	}
	for _, c := range cond.Code.Coding {
		if c.System != nil && *c.System == sysICD10 && c.Code != nil {
			req.Diagnosis.Code = *c.Code
			if c.Display != nil {
				req.Diagnosis.Description = *c.Display
			}
		}
	}
	if req.Diagnosis.Code == "" {
		return out, "", nil, nil, bad("Condition.code needs a coding in %s", sysICD10)
	}
	if cond.Code.Text != nil {
		req.Diagnosis.Description = *cond.Code.Text
	}
	return out, key, kinds, files, nil
}

// recordOf reads a DocumentReference as a record, with its file's bytes
// when the attachment carries them (nil when it sends metadata only).
func recordOf(i int, d fm.DocumentReference) (rec workflow.RecordInput, data []byte, err error) {
	rec.Kind = domain.RecordOther
	if d.Type != nil {
		if k := domain.RecordKind(strings.ToUpper(conceptCode(*d.Type))); k != "" {
			switch k {
			case domain.RecordPathology, domain.RecordImaging, domain.RecordLab, domain.RecordClinicalNote, domain.RecordOther:
				rec.Kind = k
			}
		}
	}
	if len(d.Content) > 1 {
		return rec, nil, bad("entry %d: a DocumentReference carries one attachment", i)
	}
	for _, c := range d.Content {
		if c.Attachment.Url != nil {
			// The gateway fetches nothing on a caller's behalf.
			return rec, nil, bad("entry %d: attachment.url is not accepted: send the file's bytes in attachment.data", i)
		}
		if c.Attachment.Data != nil {
			b, derr := base64.StdEncoding.DecodeString(*c.Attachment.Data)
			if derr != nil {
				return rec, nil, bad("entry %d: attachment.data is not base64", i)
			}
			data = b
		}
		if rec.Title == "" && c.Attachment.Title != nil {
			rec.Title = *c.Attachment.Title
		}
	}
	if d.Description != nil {
		rec.Title = *d.Description
	}
	if d.Date != nil {
		t, err := parseInstant(*d.Date)
		if err != nil {
			return rec, nil, bad("entry %d: DocumentReference.date is not an instant", i)
		}
		rec.RecordedOn = &t
	}
	if data != nil && len(data) == 0 {
		data = []byte{}
	}
	return rec, data, nil
}

func conceptText(c fm.CodeableConcept) string {
	if c.Text != nil && *c.Text != "" {
		return *c.Text
	}
	for _, x := range c.Coding {
		if x.Display != nil {
			return *x.Display
		}
		if x.Code != nil {
			return *x.Code
		}
	}
	return ""
}

func conceptCode(c fm.CodeableConcept) string {
	for _, x := range c.Coding {
		if x.Code != nil {
			return *x.Code
		}
	}
	if c.Text != nil {
		return *c.Text
	}
	return ""
}
