package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

var coordinator = domain.Principal{Subject: "coord-1", Role: domain.RoleCoordinator, Org: seed.Operator}

// phiWorld is one patient, case, opinion and webhook whose every PHI field
// holds its own marker.
type phiWorld struct {
	env       *testenv.Env
	markers   map[string]string // field -> marker
	patientID string
	caseID    string
	webhookID string
}

func marker(field string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "phi-marker-" + field + "-" + hex.EncodeToString(b)
}

func newPHIWorld(t *testing.T) *phiWorld {
	t.Helper()
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := map[string]string{}
	for _, f := range []string{
		"givenName", "familyName", "email", "phone",
		"diagnosis.code", "diagnosis.description", "proposedTreatment", "question", "record.title",
		"followUp.question", "followUp.answer", "outcome.note", "decisionNote",
		"revisedDiagnosis.code", "revisedDiagnosis.description", "treatmentOption.name", "treatmentOption.description",
		"clinicalTrial.title", "clinicalTrial.registryId", "clinicalTrial.url", "answer.question", "answer.answer", "questionForYourDoctor", "memberSummary", "report",
		"signature.payload", "webhook.secret",
	} {
		m[f] = marker(f)
	}
	now := env.Now
	insurer := seed.InsurerNorthstar
	patient := store.DemoPatient{NewInsured: store.NewInsured{
		MemberID: "sealed-1", GivenName: m["givenName"], FamilyName: m["familyName"], DateOfBirth: time.Date(1971, 5, 6, 0, 0, 0, 0, time.UTC),
		Sex: domain.SexFemale, Email: m["email"], Phone: m["phone"], Country: "CA", Language: "en",
	}, InsurerID: insurer}
	patientID := domain.MemberKey(insurer, "sealed-1")
	policy := &domain.Policy{
		ID: store.NewIDAt(now.AddDate(0, 0, -30)), PolicyNumber: "SEALED-1", Product: domain.ProductCriticalIllness,
		Status: domain.PolicyActive, EffectiveFrom: now.AddDate(-1, 0, 0), InsurerID: insurer, InsuredIDs: []string{patientID},
		SecondOpinion: domain.Benefit{Covered: true, CasesPerYear: 5},
	}
	submitted := now.Add(-100 * time.Hour)
	delivered := submitted.Add(72 * time.Hour)
	answer := m["followUp.answer"]
	decision := domain.DecisionFollowOpinion
	c := &domain.Case{
		ID: store.NewIDAt(submitted), Reference: "SO-SEALED-1", Status: domain.StatusOpinionDelivered, PolicyID: policy.ID, PatientID: patientID,
		InsurerID: insurer, Specialty: "oncology", Urgency: domain.UrgencyRoutine, PreferredLanguage: "en",
		DueAt: submitted.Add(domain.UrgencyRoutine.SLA()), SubmittedAt: submitted, UpdatedAt: delivered, DeliveredAt: &delivered, Version: 4,
		Consents: []domain.Consent{{Kind: domain.ConsentRecordsRelease, Active: true, GrantedAt: &submitted}},
		Clinical: &domain.CaseClinical{
			Diagnosis:         domain.Diagnosis{Code: m["diagnosis.code"], Description: m["diagnosis.description"]},
			ProposedTreatment: m["proposedTreatment"], Questions: []string{m["question"]},
			Records: []domain.Record{{ID: "r-sealed-1", Title: m["record.title"], Kind: domain.RecordPathology, RecordedOn: &submitted}},
		},
		FollowUps: []domain.FollowUp{{ID: "fu-1", Question: m["followUp.question"], AskedAt: delivered.Add(time.Hour), Answer: &answer, AnsweredAt: &delivered, DueAt: delivered.Add(48 * time.Hour)}},
		Outcome:   &domain.Outcome{Decision: decision, Note: m["outcome.note"], RecordedAt: delivered.Add(2 * time.Hour)},
	}
	opinion := &domain.Opinion{
		ID: store.NewIDAt(delivered), CaseID: c.ID, Status: domain.OpinionDelivered, UpdatedAt: delivered, DeliveredAt: &delivered,
		Content: &domain.OpinionContent{
			DiagnosisAssessment: domain.DiagnosisModified, TreatmentAssessment: domain.TreatmentAlternative,
			RevisedDiagnosis:       &domain.Diagnosis{Code: m["revisedDiagnosis.code"], Description: m["revisedDiagnosis.description"]},
			TreatmentOptions:       []domain.TreatmentOption{{Name: m["treatmentOption.name"], Description: m["treatmentOption.description"], Invasiveness: domain.InvasivenessLow}},
			ClinicalTrials:         []domain.ClinicalTrial{{RegistryID: m["clinicalTrial.registryId"], Title: m["clinicalTrial.title"], URL: "https://trials.example.org/" + m["clinicalTrial.url"]}},
			Answers:                []domain.Answer{{Question: m["answer.question"], Answer: m["answer.answer"]}},
			QuestionsForYourDoctor: []string{m["questionForYourDoctor"]},
			MemberSummary:          m["memberSummary"], Report: m["report"],
		},
		Sig: &domain.Signature{JWS: "eyJhbGciOiJFUzI1NiJ9..sig", KeyID: "k1", SignedAt: delivered, Payload: m["signature.payload"]},
	}
	require.NoError(t, env.Store.InsertDemo(ctx, store.Demo{
		Patients: []store.DemoPatient{patient}, Policies: []*domain.Policy{policy}, Cases: []*domain.Case{c}, Opinions: []*domain.Opinion{opinion},
	}))
	// A write through the case's compare-and-set seals too.
	note := m["decisionNote"]
	_, err := env.Store.MutateCase(ctx, coordinator, c.ID, nil, func(*domain.Case) (store.CaseUpdate, error) {
		return store.CaseUpdate{Decision: &decision, DecisionNote: &note}, nil
	})
	require.NoError(t, err)
	hook := &domain.WebhookSubscription{
		ID: "wh-sealed-1", Role: domain.RoleCoordinator, Org: seed.Operator, Subject: "coord-1", URL: "https://hooks.example.org/in",
		EventTypes: []string{}, Secret: m["webhook.secret"], CreatedAt: now,
	}
	require.NoError(t, env.Store.CreateWebhookSubscription(ctx, hook))
	return &phiWorld{env: env, markers: m, patientID: patientID, caseID: c.ID, webhookID: hook.ID}
}

// rawDatabase is the test's database through a driver connection of its
// own, with the driver's default codecs: what anyone reading the database
// sees.
func rawDatabase(t *testing.T, name string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.URI(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(name)
}

// rawDocs reads every document of every collection.
func rawDocs(t *testing.T, db *mongo.Database) map[string][]bson.Raw {
	t.Helper()
	ctx := context.Background()
	names, err := db.ListCollectionNames(ctx, bson.D{})
	require.NoError(t, err)
	out := map[string][]bson.Raw{}
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{})
		require.NoError(t, err)
		for cur.Next(ctx) {
			out[n] = append(out[n], append(bson.Raw(nil), cur.Current...))
		}
		require.NoError(t, cur.Err())
		_ = cur.Close(ctx)
	}
	return out
}

func openStore(t *testing.T, db string, kr *keys.Keyring) (*store.Store, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URI: testenv.URI(t), Database: db, Prepare: testenv.Prepare(), Keys: kr})
	if err == nil {
		t.Cleanup(func() { _ = st.Close(context.Background()) })
	}
	return st, err
}

func TestPHIFieldsAreSealedAtRest(t *testing.T) {
	w := newPHIWorld(t)
	raw := rawDatabase(t, w.env.DB)

	t.Run("no raw document holds any PHI marker in clear", func(t *testing.T) {
		docs := rawDocs(t, raw)
		for _, coll := range []string{"patients", "cases", "opinions", "webhook_subscriptions"} {
			require.NotEmpty(t, docs[coll], "the scan reads %s", coll)
		}
		for coll, ds := range docs {
			for _, d := range ds {
				for field, m := range w.markers {
					assert.False(t, bytes.Contains(d, []byte(m)), "%s: a document holds %s in clear", coll, field)
				}
			}
		}
	})
	t.Run("a sealed field is a binary of the store's own subtype, the date of birth too", func(t *testing.T) {
		var p bson.Raw
		require.NoError(t, raw.Collection("patients").FindOne(context.Background(), bson.D{{Key: "_id", Value: w.patientID}}).Decode(&p))
		for _, f := range []string{"givenName", "familyName", "dateOfBirth", "email", "phone"} {
			v := p.Lookup(f)
			require.Equal(t, bson.TypeBinary, v.Type, f)
			subtype, _ := v.Binary()
			assert.Equal(t, byte(0x80), subtype, f)
		}
		assert.Equal(t, int32(1971), p.Lookup("birthYear").Int32(), "the de-identified birth year stays clear")
		var c bson.Raw
		require.NoError(t, raw.Collection("cases").FindOne(context.Background(), bson.D{{Key: "_id", Value: w.caseID}}).Decode(&c))
		assert.Equal(t, "oncology", c.Lookup("specialty").StringValue(), "fields queries filter on stay clear")
		assert.Equal(t, "OPINION_DELIVERED", c.Lookup("status").StringValue())
	})
	t.Run("everything reads back through the store", func(t *testing.T) {
		ctx := context.Background()
		st := w.env.Store
		m := w.markers
		pt, err := st.Patient(ctx, coordinator, w.patientID)
		require.NoError(t, err)
		require.NotNil(t, pt.Identity)
		assert.Equal(t, domain.PatientIdentity{GivenName: m["givenName"], FamilyName: m["familyName"], DateOfBirth: time.Date(1971, 5, 6, 0, 0, 0, 0, time.UTC), Email: m["email"], Phone: m["phone"]}, *pt.Identity)

		c, err := st.Case(ctx, coordinator, w.caseID)
		require.NoError(t, err)
		require.NotNil(t, c.Clinical)
		assert.Equal(t, domain.Diagnosis{Code: m["diagnosis.code"], Description: m["diagnosis.description"]}, c.Clinical.Diagnosis)
		assert.Equal(t, m["proposedTreatment"], c.Clinical.ProposedTreatment)
		assert.Equal(t, []string{m["question"]}, c.Clinical.Questions)
		require.Len(t, c.Clinical.Records, 1)
		assert.Equal(t, m["record.title"], c.Clinical.Records[0].Title)
		require.NotNil(t, c.Outcome)
		assert.Equal(t, m["outcome.note"], c.Outcome.Note)
		// Follow-ups are opinion content, read on their own road.
		c, err = st.CaseForFollowUps(ctx, coordinator, w.caseID)
		require.NoError(t, err)
		require.Len(t, c.FollowUps, 1)
		assert.Equal(t, m["followUp.question"], c.FollowUps[0].Question)
		require.NotNil(t, c.FollowUps[0].Answer)
		assert.Equal(t, m["followUp.answer"], *c.FollowUps[0].Answer)

		ops, err := st.OpinionsForCases(ctx, coordinator, []*domain.Case{c})
		require.NoError(t, err)
		o := ops[w.caseID]
		require.NotNil(t, o)
		require.NotNil(t, o.Content)
		oc := o.Content
		assert.Equal(t, &domain.Diagnosis{Code: m["revisedDiagnosis.code"], Description: m["revisedDiagnosis.description"]}, oc.RevisedDiagnosis)
		assert.Equal(t, []domain.TreatmentOption{{Name: m["treatmentOption.name"], Description: m["treatmentOption.description"], Invasiveness: domain.InvasivenessLow}}, oc.TreatmentOptions)
		assert.Equal(t, []domain.ClinicalTrial{{RegistryID: m["clinicalTrial.registryId"], Title: m["clinicalTrial.title"], URL: "https://trials.example.org/" + m["clinicalTrial.url"]}}, oc.ClinicalTrials)
		assert.Equal(t, []domain.Answer{{Question: m["answer.question"], Answer: m["answer.answer"]}}, oc.Answers)
		assert.Equal(t, []string{m["questionForYourDoctor"]}, oc.QuestionsForYourDoctor)
		assert.Equal(t, m["memberSummary"], oc.MemberSummary)
		assert.Equal(t, m["report"], oc.Report)
		require.NotNil(t, o.Sig)
		assert.Equal(t, m["signature.payload"], o.Sig.Payload)

		hook, err := st.WebhookSubscriptionForDispatch(ctx, w.webhookID)
		require.NoError(t, err)
		assert.Equal(t, m["webhook.secret"], hook.Secret)
	})
	t.Run("another deployment's master key refuses to start, naming the problem", func(t *testing.T) {
		_, err := openStore(t, w.env.DB, testenv.NewKeyring(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "DATA_KEY_FILE cannot unwrap the PHI field key")
	})
	t.Run("without a keyring no PHI field is read or written", func(t *testing.T) {
		st, err := openStore(t, w.env.DB, nil)
		require.NoError(t, err)
		_, err = st.Case(context.Background(), coordinator, w.caseID)
		assert.Error(t, err)
		_, err = st.Patient(context.Background(), coordinator, w.patientID)
		assert.Error(t, err)
	})
	t.Run("a sealed value altered in the database fails to read rather than reading wrong", func(t *testing.T) {
		ctx := context.Background()
		var p bson.Raw
		require.NoError(t, raw.Collection("patients").FindOne(ctx, bson.D{{Key: "_id", Value: w.patientID}}).Decode(&p))
		_, b := p.Lookup("familyName").Binary()
		flipped := append([]byte(nil), b...)
		flipped[len(flipped)-1] ^= 1
		_, err := raw.Collection("patients").UpdateOne(ctx, bson.D{{Key: "_id", Value: w.patientID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "familyName", Value: bson.Binary{Subtype: 0x80, Data: flipped}}}}})
		require.NoError(t, err)
		_, err = w.env.Store.Patient(ctx, coordinator, w.patientID)
		assert.Error(t, err)
		_, err = raw.Collection("patients").UpdateOne(ctx, bson.D{{Key: "_id", Value: w.patientID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "familyName", Value: bson.Binary{Subtype: 0x80, Data: b}}}}})
		require.NoError(t, err)
	})
}

func TestFieldKeyRotation(t *testing.T) {
	w := newPHIWorld(t)
	ctx := context.Background()
	next, err := keys.Generate()
	require.NoError(t, err)
	// The new key first (it wraps), the old one after (it unwraps).
	both, err := keys.Parse(strings.NewReader(next + "\n" + w.env.KeyText))
	require.NoError(t, err)
	n, err := documents.RotateKeys(ctx, w.env.Store, both)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the field key moved (the world holds no document)")

	newOnly, err := keys.Parse(strings.NewReader(next))
	require.NoError(t, err)
	st, err := openStore(t, w.env.DB, newOnly)
	require.NoError(t, err, "the new key alone opens the store")
	pt, err := st.Patient(ctx, coordinator, w.patientID)
	require.NoError(t, err)
	assert.Equal(t, w.markers["givenName"], pt.Identity.GivenName, "fields written before the rotation read with the new key")
	_, err = openStore(t, w.env.DB, w.env.Keys)
	assert.Error(t, err, "the old key alone no longer opens it")
}

func TestClearPHIWrittenBeforeSealingIsSealedAtStart(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NoSeed: true})
	ctx := context.Background()
	raw := rawDatabase(t, env.DB)
	dob := time.Date(1950, 2, 3, 0, 0, 0, 0, time.UTC)
	// Documents as a gateway before sealing wrote them: PHI as strings and
	// dates.
	_, err := raw.Collection("patients").InsertOne(ctx, bson.D{
		{Key: "_id", Value: "ins-a:legacy-1"}, {Key: "insurerId", Value: "ins-a"}, {Key: "memberId", Value: "legacy-1"},
		{Key: "givenName", Value: "LegacyGiven"}, {Key: "familyName", Value: "LegacyFamily"}, {Key: "dateOfBirth", Value: dob},
		{Key: "email", Value: "legacy@example.org"}, {Key: "birthYear", Value: 1950}, {Key: "sex", Value: "FEMALE"}, {Key: "version", Value: 2},
	})
	require.NoError(t, err)
	_, err = raw.Collection("cases").InsertOne(ctx, bson.D{
		{Key: "_id", Value: "case-legacy-1"}, {Key: "reference", Value: "SO-LEGACY-1"}, {Key: "status", Value: "SUBMITTED"},
		{Key: "patientId", Value: "ins-a:legacy-1"}, {Key: "insurerId", Value: "ins-a"}, {Key: "specialty", Value: "cardiology"},
		{Key: "urgency", Value: "ROUTINE"}, {Key: "consents", Value: bson.A{}}, {Key: "events", Value: bson.A{}}, {Key: "version", Value: 5},
		{Key: "clinical", Value: bson.D{
			{Key: "diagnosis", Value: bson.D{{Key: "code", Value: "I25.1"}, {Key: "description", Value: "LegacyDiagnosisText"}}},
			{Key: "proposedTreatment", Value: "LegacyTreatmentText"}, {Key: "questions", Value: bson.A{"LegacyQuestionText"}},
			{Key: "records", Value: bson.A{bson.D{{Key: "id", Value: "r1"}, {Key: "title", Value: "LegacyRecordTitle"}, {Key: "kind", Value: "LAB"}, {Key: "addedAt", Value: dob}}}},
		}},
	})
	require.NoError(t, err)
	legacy := []string{"LegacyGiven", "LegacyFamily", "legacy@example.org", "LegacyDiagnosisText", "LegacyTreatmentText", "LegacyQuestionText", "LegacyRecordTitle"}

	t.Run("once sealing has completed they are refused, not read", func(t *testing.T) {
		// The keyring says the start-up sealing ran (on the empty database):
		// clear text now can only come from an old replica or a hand in the
		// database.
		_, err := env.Store.Patient(ctx, coordinator, "ins-a:legacy-1")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "clear text")
	})

	// Say the start-up sealing has not run, as for a database written
	// before sealing.
	_, err = raw.Collection("keyring").UpdateOne(ctx, bson.D{{Key: "_id", Value: "fields"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "legacySealed", Value: false}, {Key: "fieldsBound", Value: false}}}})
	require.NoError(t, err)
	st, err := openStore(t, env.DB, env.Keys)
	require.NoError(t, err)

	t.Run("the next start seals them in place", func(t *testing.T) {
		for coll, ds := range rawDocs(t, raw) {
			for _, d := range ds {
				for _, m := range legacy {
					assert.False(t, bytes.Contains(d, []byte(m)), "%s still holds %s in clear", coll, m)
				}
			}
		}
		var p bson.Raw
		require.NoError(t, raw.Collection("patients").FindOne(ctx, bson.D{{Key: "_id", Value: "ins-a:legacy-1"}}).Decode(&p))
		assert.Equal(t, bson.TypeBinary, p.Lookup("dateOfBirth").Type)
		assert.Equal(t, int32(2), p.Lookup("version").Int32(), "sealing changes no content, so no version")
	})
	t.Run("and they still read the same", func(t *testing.T) {
		pt, err := st.Patient(ctx, coordinator, "ins-a:legacy-1")
		require.NoError(t, err)
		assert.Equal(t, domain.PatientIdentity{GivenName: "LegacyGiven", FamilyName: "LegacyFamily", DateOfBirth: dob, Email: "legacy@example.org"}, *pt.Identity)
		c, err := st.Case(ctx, coordinator, "case-legacy-1")
		require.NoError(t, err)
		assert.Equal(t, domain.Diagnosis{Code: "I25.1", Description: "LegacyDiagnosisText"}, c.Clinical.Diagnosis)
		assert.Equal(t, "LegacyTreatmentText", c.Clinical.ProposedTreatment)
		assert.Equal(t, []string{"LegacyQuestionText"}, c.Clinical.Questions)
		assert.Equal(t, "LegacyRecordTitle", c.Clinical.Records[0].Title)
		assert.Equal(t, 5, c.Version)
	})
}
