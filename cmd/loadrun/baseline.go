package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/auth"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// baseline serves the same reads with the same store queries and the same
// JSON as the gateway, by hand: what the gateway is measured against.
func baseline(st *store.Store, v *auth.Verifier) http.Handler {
	mux := http.NewServeMux()
	// The gateway's audit path: the same group commit into the same store.
	aud := audit.NewBatcher(st, 0, 0)
	mux.HandleFunc("POST /cases", func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal(w, r, v)
		if !ok {
			return
		}
		cases, _, err := st.Cases(r.Context(), p, store.CaseFilter{}, store.Page{First: 50}, store.CaseView{})
		if fail(w, err) {
			return
		}
		ids := make([]string, 0, len(cases))
		specIDs := []string{}
		for _, c := range cases {
			ids = append(ids, c.PolicyID)
			if c.SpecialistID != "" {
				specIDs = append(specIDs, c.SpecialistID)
			}
		}
		pols, err := st.PoliciesByIDs(r.Context(), p, ids)
		if fail(w, err) {
			return
		}
		pats, err := st.PatientsOfCases(r.Context(), p, cases)
		if fail(w, err) {
			return
		}
		specs, err := st.SpecialistsByIDs(r.Context(), p, specIDs)
		if fail(w, err) {
			return
		}
		ops, err := st.OpinionsForCases(r.Context(), p, cases)
		if fail(w, err) {
			return
		}
		edges := make([]any, 0, len(cases))
		for _, c := range cases {
			node := map[string]any{"id": c.ID, "reference": c.Reference, "status": c.Status, "dueAt": c.DueAt}
			if pol := pols[c.PolicyID]; pol != nil {
				node["policy"] = map[string]any{"policyNumber": pol.PolicyNumber}
			}
			if pt := pats[c.ID]; pt != nil && pt.Identity != nil {
				node["patient"] = map[string]any{"id": pt.ID, "givenName": pt.Identity.GivenName, "familyName": pt.Identity.FamilyName}
			}
			if sp := specs[c.SpecialistID]; sp != nil {
				node["specialist"] = map[string]any{"id": sp.ID, "name": sp.Name}
			}
			if o := ops[c.ID]; o != nil {
				node["opinion"] = map[string]any{"id": o.ID, "status": o.Status, "deliveredAt": o.DeliveredAt}
			}
			edges = append(edges, map[string]any{"node": node})
		}
		// The same audit trail the gateway keeps: a hand-written service
		// carrying PHI owes it too.
		var events []domain.AuditEvent
		for id := range pats {
			events = append(events, auditEvent(p, "Patient", pats[id].ID, "patient.identity"))
		}
		if fail(w, aud.AppendAudit(r.Context(), events)) {
			return
		}
		write(w, map[string]any{"data": map[string]any{"cases": map[string]any{"edges": edges}}})
	})
	mux.HandleFunc("POST /case", func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal(w, r, v)
		if !ok {
			return
		}
		var in struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		c, err := st.CaseWith(r.Context(), p, in.ID, store.FullCase)
		if fail(w, err) {
			return
		}
		pats, err := st.PatientsOfCases(r.Context(), p, []*domain.Case{c})
		if fail(w, err) {
			return
		}
		node := map[string]any{"id": c.ID, "reference": c.Reference, "status": c.Status, "dueAt": c.DueAt}
		if c.Clinical != nil {
			node["diagnosis"] = c.Clinical.Diagnosis
			node["proposedTreatment"] = c.Clinical.ProposedTreatment
			node["questions"] = c.Clinical.Questions
			node["records"] = c.Clinical.Records
		}
		node["events"] = c.Events
		if pt := pats[c.ID]; pt != nil && pt.Identity != nil {
			node["patient"] = map[string]any{"id": pt.ID, "givenName": pt.Identity.GivenName, "familyName": pt.Identity.FamilyName, "dateOfBirth": pt.Identity.DateOfBirth}
		}
		if c.SpecialistID != "" {
			sp, err := st.SpecialistsByIDs(r.Context(), p, []string{c.SpecialistID})
			if fail(w, err) {
				return
			}
			if s := sp[c.SpecialistID]; s != nil {
				node["specialist"] = map[string]any{"id": s.ID, "name": s.Name, "country": s.Country}
			}
		}
		ops, err := st.OpinionsForCases(r.Context(), p, []*domain.Case{c})
		if fail(w, err) {
			return
		}
		if o := ops[c.ID]; o != nil {
			node["opinion"] = map[string]any{"id": o.ID, "status": o.Status}
		}
		if fail(w, aud.AppendAudit(r.Context(), []domain.AuditEvent{
			auditEvent(p, "Case", c.ID, "case.clinical"), auditEvent(p, "Patient", c.PatientID, "patient.identity"),
			auditEvent(p, "Opinion", c.ID, "opinion.content"),
		})) {
			return
		}
		write(w, map[string]any{"data": map[string]any{"case": node}})
	})
	mux.HandleFunc("POST /specialists", func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal(w, r, v)
		if !ok {
			return
		}
		var in struct{ Specialty string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		yes := true
		sps, _, err := st.Specialists(r.Context(), p, store.SpecialistFilter{Specialty: &in.Specialty, AcceptingCases: &yes}, store.Page{First: 20}, store.View{})
		if fail(w, err) {
			return
		}
		edges := make([]any, 0, len(sps))
		for _, s := range sps {
			edges = append(edges, map[string]any{"node": map[string]any{"id": s.ID, "name": s.Name, "country": s.Country, "languages": s.Languages}})
		}
		write(w, map[string]any{"data": map[string]any{"specialists": map[string]any{"edges": edges}}})
	})
	mux.HandleFunc("POST /specialist", func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal(w, r, v)
		if !ok {
			return
		}
		var in struct {
			ID, Name, Country, OrgID string
			Specialties, Languages   []string
			AcceptingCases           *bool
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		s, err := st.UpsertSpecialist(r.Context(), p, store.SpecialistInput{ID: in.ID, Name: in.Name, Country: in.Country,
			OrgID: in.OrgID, Specialties: in.Specialties, Languages: in.Languages, AcceptingCases: in.AcceptingCases})
		if fail(w, err) {
			return
		}
		write(w, map[string]any{"data": map[string]any{"upsertSpecialist": map[string]any{"specialist": map[string]any{"id": s.ID, "acceptingCases": s.AcceptingCases}}}})
	})
	return mux
}

func auditEvent(p domain.Principal, typ, id, group string) domain.AuditEvent {
	return domain.AuditEvent{At: time.Now().UTC(), Subject: p.Subject, Role: p.Role, Org: p.Org, Operation: "baseline",
		ResourceType: typ, ResourceID: id, FieldGroup: group, RequestID: "baseline", Outcome: "ALLOWED"}
}

func principal(w http.ResponseWriter, r *http.Request, v *auth.Verifier) (domain.Principal, bool) {
	p, err := v.Authenticate(r)
	if err != nil {
		auth.WriteUnauthenticated(w, "authentication required")
		return p, false
	}
	return p, true
}

func fail(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	http.Error(w, `{"errors":[{"message":"internal"}]}`, http.StatusInternalServerError)
	return true
}

func write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
