package report

import (
	"strings"

	"github.com/secondopinion/gateway/internal/domain"
)

// labels are the report's fixed words in one language; the opinion's own
// text is printed as the specialist wrote it.
type labels struct {
	title, reference, specialty, delivered, specialist, institution                  string
	summary, diagnosis, assessment, revised, treatment, impact                       string
	options, invasiveness, trials, answers, followUps, unanswered, forDoctor, report string
	signature, keyID, signedAt, payloadHash, verify, unsigned                        string
	assessments                                                                      map[domain.DiagnosisAssessment]string
	treatments                                                                       map[domain.TreatmentAssessment]string
	impacts                                                                          map[domain.ClinicalImpact]string
	levels                                                                           map[domain.Invasiveness]string
}

var english = labels{
	title: "Second medical opinion", reference: "Case reference", specialty: "Specialty", delivered: "Delivered on",
	specialist: "Specialist", institution: "Institution",
	summary: "Summary for you", diagnosis: "Diagnosis", assessment: "The diagnosis is", revised: "Revised diagnosis",
	treatment: "Proposed treatment", impact: "Clinical impact",
	options: "Treatment options", invasiveness: "invasiveness", trials: "Clinical trials", answers: "Answers to your questions",
	followUps: "Follow-up questions", unanswered: "Not answered yet.", forDoctor: "Questions for your doctor", report: "Detailed report",
	signature: "Signature", keyID: "Key id", signedAt: "Signed at", payloadHash: "SHA-256 of signed content",
	verify: "The service signed this opinion (a detached JWS, ES256, over its RFC 8785 canonical JSON: Opinion.signature.payload). " +
		"To verify it, fetch the public keys at /.well-known/jwks.json of the service that issued it, pick the key with the id above, " +
		"and check the JWS over the payload; the payload's SHA-256 is printed above. This printout itself is not signed.",
	unsigned: "This opinion carries no signature.",
	assessments: map[domain.DiagnosisAssessment]string{
		domain.DiagnosisConfirmed: "confirmed", domain.DiagnosisModified: "modified", domain.DiagnosisChanged: "changed",
	},
	treatments: map[domain.TreatmentAssessment]string{
		domain.TreatmentAgree: "agreed", domain.TreatmentAlternative: "an alternative is recommended",
	},
	impacts: map[domain.ClinicalImpact]string{
		domain.ImpactNone: "none", domain.ImpactMinor: "minor", domain.ImpactModerate: "moderate", domain.ImpactMajor: "major",
	},
	levels: map[domain.Invasiveness]string{domain.InvasivenessLow: "low", domain.InvasivenessMedium: "medium", domain.InvasivenessHigh: "high"},
}

var french = labels{
	title: "Deuxième avis médical", reference: "Référence du dossier", specialty: "Spécialité", delivered: "Remis le",
	specialist: "Spécialiste", institution: "Établissement",
	summary: "Résumé pour vous", diagnosis: "Diagnostic", assessment: "Le diagnostic est", revised: "Diagnostic révisé",
	treatment: "Traitement proposé", impact: "Impact clinique",
	options: "Options de traitement", invasiveness: "caractère invasif", trials: "Essais cliniques", answers: "Réponses à vos questions",
	followUps: "Questions de suivi", unanswered: "Pas encore de réponse.", forDoctor: "Questions pour votre médecin", report: "Rapport détaillé",
	signature: "Signature", keyID: "Identifiant de clé", signedAt: "Signé le", payloadHash: "SHA-256 du contenu signé",
	verify: "Le service a signé cet avis (JWS détaché, ES256, sur son JSON canonique RFC 8785 : Opinion.signature.payload). " +
		"Pour le vérifier, récupérez les clés publiques à /.well-known/jwks.json du service émetteur, prenez la clé de l'identifiant ci-dessus " +
		"et vérifiez le JWS sur ce contenu ; son SHA-256 figure ci-dessus. Cette impression n'est pas elle-même signée.",
	unsigned: "Cet avis ne porte pas de signature.",
	assessments: map[domain.DiagnosisAssessment]string{
		domain.DiagnosisConfirmed: "confirmé", domain.DiagnosisModified: "modifié", domain.DiagnosisChanged: "changé",
	},
	treatments: map[domain.TreatmentAssessment]string{
		domain.TreatmentAgree: "approuvé", domain.TreatmentAlternative: "une alternative est recommandée",
	},
	impacts: map[domain.ClinicalImpact]string{
		domain.ImpactNone: "aucun", domain.ImpactMinor: "mineur", domain.ImpactModerate: "modéré", domain.ImpactMajor: "majeur",
	},
	levels: map[domain.Invasiveness]string{domain.InvasivenessLow: "faible", domain.InvasivenessMedium: "moyen", domain.InvasivenessHigh: "élevé"},
}

var german = labels{
	title: "Ärztliche Zweitmeinung", reference: "Fallnummer", specialty: "Fachgebiet", delivered: "Erstellt am",
	specialist: "Fachärztin/Facharzt", institution: "Einrichtung",
	summary: "Zusammenfassung für Sie", diagnosis: "Diagnose", assessment: "Die Diagnose ist", revised: "Geänderte Diagnose",
	treatment: "Vorgeschlagene Behandlung", impact: "Klinische Auswirkung",
	options: "Behandlungsmöglichkeiten", invasiveness: "Invasivität", trials: "Klinische Studien", answers: "Antworten auf Ihre Fragen",
	followUps: "Rückfragen", unanswered: "Noch nicht beantwortet.", forDoctor: "Fragen an Ihre Ärztin/Ihren Arzt", report: "Ausführlicher Bericht",
	signature: "Signatur", keyID: "Schlüssel-ID", signedAt: "Signiert am", payloadHash: "SHA-256 des signierten Inhalts",
	verify: "Der Dienst hat diese Zweitmeinung signiert (abgetrennte JWS, ES256, über ihr kanonisches JSON nach RFC 8785: Opinion.signature.payload). " +
		"Zur Prüfung die öffentlichen Schlüssel unter /.well-known/jwks.json des ausstellenden Dienstes abrufen, den Schlüssel mit der obigen ID wählen " +
		"und die JWS über den Inhalt prüfen; dessen SHA-256 steht oben. Dieser Ausdruck selbst ist nicht signiert.",
	unsigned: "Diese Zweitmeinung trägt keine Signatur.",
	assessments: map[domain.DiagnosisAssessment]string{
		domain.DiagnosisConfirmed: "bestätigt", domain.DiagnosisModified: "präzisiert", domain.DiagnosisChanged: "geändert",
	},
	treatments: map[domain.TreatmentAssessment]string{
		domain.TreatmentAgree: "befürwortet", domain.TreatmentAlternative: "eine Alternative wird empfohlen",
	},
	impacts: map[domain.ClinicalImpact]string{
		domain.ImpactNone: "keine", domain.ImpactMinor: "gering", domain.ImpactModerate: "mittel", domain.ImpactMajor: "erheblich",
	},
	levels: map[domain.Invasiveness]string{domain.InvasivenessLow: "gering", domain.InvasivenessMedium: "mittel", domain.InvasivenessHigh: "hoch"},
}

var spanish = labels{
	title: "Segunda opinión médica", reference: "Referencia del caso", specialty: "Especialidad", delivered: "Entregada el",
	specialist: "Especialista", institution: "Institución",
	summary: "Resumen para usted", diagnosis: "Diagnóstico", assessment: "El diagnóstico está", revised: "Diagnóstico revisado",
	treatment: "Tratamiento propuesto", impact: "Impacto clínico",
	options: "Opciones de tratamiento", invasiveness: "invasividad", trials: "Ensayos clínicos", answers: "Respuestas a sus preguntas",
	followUps: "Preguntas de seguimiento", unanswered: "Aún sin respuesta.", forDoctor: "Preguntas para su médico", report: "Informe detallado",
	signature: "Firma", keyID: "Id de clave", signedAt: "Firmada el", payloadHash: "SHA-256 del contenido firmado",
	verify: "El servicio firmó esta opinión (JWS separado, ES256, sobre su JSON canónico RFC 8785: Opinion.signature.payload). " +
		"Para verificarla, obtenga las claves públicas en /.well-known/jwks.json del servicio emisor, elija la clave con el id indicado " +
		"y compruebe el JWS sobre el contenido; su SHA-256 figura arriba. Esta impresión no está firmada.",
	unsigned: "Esta opinión no lleva firma.",
	assessments: map[domain.DiagnosisAssessment]string{
		domain.DiagnosisConfirmed: "confirmado", domain.DiagnosisModified: "modificado", domain.DiagnosisChanged: "cambiado",
	},
	treatments: map[domain.TreatmentAssessment]string{
		domain.TreatmentAgree: "de acuerdo", domain.TreatmentAlternative: "se recomienda una alternativa",
	},
	impacts: map[domain.ClinicalImpact]string{
		domain.ImpactNone: "ninguno", domain.ImpactMinor: "menor", domain.ImpactModerate: "moderado", domain.ImpactMajor: "mayor",
	},
	levels: map[domain.Invasiveness]string{domain.InvasivenessLow: "baja", domain.InvasivenessMedium: "media", domain.InvasivenessHigh: "alta"},
}

// labelsFor returns the labels of lang's primary language ("fr-CA" is
// French), English for any other.
func labelsFor(lang string) labels {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(lang)), "-")
	switch primary {
	case "fr":
		return french
	case "de":
		return german
	case "es":
		return spanish
	}
	return english
}
