package fhir

import (
	"encoding/json"
	"net/http"
	"sort"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func jsonOf(v any) (json.RawMessage, error) { return json.Marshal(v) }

var paramTypes = map[string]fm.SearchParamType{
	"_id": fm.SearchParamTypeToken, "status": fm.SearchParamTypeToken, "patient": fm.SearchParamTypeReference,
	"subject": fm.SearchParamTypeReference, "_lastUpdated": fm.SearchParamTypeDate, "_count": fm.SearchParamTypeNumber,
}

var resourceTypes = map[string]fm.ResourceType{
	"ServiceRequest": fm.ResourceTypeServiceRequest, "Task": fm.ResourceTypeTask, "Condition": fm.ResourceTypeCondition,
	"Consent": fm.ResourceTypeConsent, "DocumentReference": fm.ResourceTypeDocumentReference, "Patient": fm.ResourceTypePatient,
	"Coverage": fm.ResourceTypeCoverage, "Practitioner": fm.ResourceTypePractitioner,
}

// Capability is the CapabilityStatement: exactly what New serves, built from
// the same table the searches are checked against.
func Capability() fm.CapabilityStatement {
	var names []string
	for n := range searchParams {
		names = append(names, n)
	}
	sort.Strings(names)
	var res []fm.CapabilityStatementRestResource
	for _, n := range names {
		r := fm.CapabilityStatementRestResource{
			Type: resourceTypes[n],
			Interaction: []fm.CapabilityStatementRestResourceInteraction{
				{Code: fm.TypeRestfulInteractionRead}, {Code: fm.TypeRestfulInteractionSearchType},
			},
		}
		for _, p := range searchParams[n] {
			r.SearchParam = append(r.SearchParam, fm.CapabilityStatementRestResourceSearchParam{Name: p, Type: paramTypes[p]})
		}
		if n == "ServiceRequest" {
			r.Documentation = ptr("A second-opinion case. Created through the transaction interaction (POST /fhir/r4 with a transaction Bundle of Patient, Coverage, ServiceRequest, Condition and, from a coordinator, DocumentReferences with record metadata and, optionally, the file inline in attachment.data, stored and encrypted as uploadMedicalRecord stores it; attachment.url is refused; the whole Bundle within the request body limit), exactly as requestSecondOpinion, idempotent on Bundle.identifier.")
		}
		res = append(res, r)
	}
	res = append(res, fm.CapabilityStatementRestResource{
		Type: fm.ResourceTypeComposition,
		Operation: []fm.CapabilityStatementRestResourceOperation{{
			Name: "document", Definition: "http://hl7.org/fhir/OperationDefinition/Composition-document",
			Documentation: ptr("GET /fhir/r4/Composition/<opinion id>/$document: the delivered opinion as a document Bundle (Composition LOINC 11488-4)."),
		}},
	})
	return fm.CapabilityStatement{
		Status:         fm.PublicationStatusActive,
		Date:           "2026-12-03",
		Kind:           fm.CapabilityStatementKindInstance,
		Name:           ptr("SecondOpinionGatewayFHIR"),
		Title:          ptr("Second Opinion Gateway — FHIR R4 door"),
		Software:       &fm.CapabilityStatementSoftware{Name: "Second Opinion Gateway"},
		Implementation: &fm.CapabilityStatementImplementation{Description: "The FHIR R4 door of the Second Opinion Gateway: the same tokens, scopes, rows, fields and audit as its GraphQL API."},
		FhirVersion:    fm.FHIRVersion4_0_1,
		Format:         []string{"json"},
		Rest: []fm.CapabilityStatementRest{{
			Mode: fm.RestfulCapabilityModeServer,
			Security: &fm.CapabilityStatementRestSecurity{
				Cors:        ptr(false),
				Service:     []fm.CodeableConcept{coded("http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR", "SMART-on-FHIR")},
				Description: ptr("Authorization: Bearer <JWT>, the same tokens and scopes as the GraphQL API (roles member, insurer, provider, partner, coordinator; scopes cases:read, cases:write, policies:read, opinions:read, specialists:read narrow them). Rows and fields follow each role's visibility; reads of health information are audited."),
			},
			Resource:    res,
			Interaction: []fm.CapabilityStatementRestInteraction{{Code: fm.SystemRestfulInteractionTransaction}},
		}},
	}
}

func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 && r.URL.Query().Get("_format") == "" {
		writeOutcome(w, http.StatusBadRequest, "BAD_USER_INPUT", "metadata takes no parameters")
		return
	}
	b, _ := json.Marshal(Capability())
	w.Header().Set("Content-Type", ContentType+"; charset=utf-8")
	_, _ = w.Write(b)
}
