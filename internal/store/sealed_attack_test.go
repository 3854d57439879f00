package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// rawField reads one field of one document as stored.
func rawField(t *testing.T, db *mongo.Database, coll, id, field string) bson.RawValue {
	t.Helper()
	var d bson.Raw
	require.NoError(t, db.Collection(coll).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&d))
	v, err := d.LookupErr(splitPath(field)...)
	require.NoError(t, err, field)
	return v
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := range len(p) {
		if p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

// rawSet writes a value into a document behind the gateway's back, as
// someone with write access to the database would.
func rawSet(t *testing.T, db *mongo.Database, coll, id, field string, v any) {
	t.Helper()
	_, err := db.Collection(coll).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: v}}}})
	require.NoError(t, err)
}

func TestASealedValueMovedInTheDatabaseDoesNotRead(t *testing.T) {
	w := newPHIWorld(t)
	ctx := context.Background()
	raw := rawDatabase(t, w.env.DB)
	st := w.env.Store
	// A second patient, whose identity is the attacker's target.
	other := store.DemoPatient{NewInsured: store.NewInsured{MemberID: "sealed-2", GivenName: "Other", FamilyName: "Person", Sex: domain.SexMale, Country: "CA", Language: "en"}, InsurerID: seed.InsurerNorthstar}
	require.NoError(t, st.InsertDemo(ctx, store.Demo{Patients: []store.DemoPatient{other}}))
	otherID := domain.MemberKey(seed.InsurerNorthstar, "sealed-2")

	cases := []struct {
		name                 string
		fromColl, from, path string
		toColl, to, toPath   string
		read                 func() error
	}{
		{"a family name copied to another patient", "patients", w.patientID, "familyName", "patients", otherID, "familyName",
			func() error { _, err := st.Patient(ctx, coordinator, otherID); return err }},
		{"a given name copied to the family name of the same patient", "patients", w.patientID, "givenName", "patients", w.patientID, "familyName",
			func() error { _, err := st.Patient(ctx, coordinator, w.patientID); return err }},
		{"a diagnosis description copied into the proposed treatment", "cases", w.caseID, "clinical.diagnosis.description", "cases", w.caseID, "clinical.proposedTreatment",
			func() error { _, err := st.Case(ctx, coordinator, w.caseID); return err }},
		{"a webhook secret copied into a case's decision note", "webhook_subscriptions", w.webhookID, "secret", "cases", w.caseID, "decisionNote",
			func() error { _, err := st.Case(ctx, coordinator, w.caseID); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rawField(t, raw, tc.toColl, tc.to, tc.toPath)
			require.NoError(t, tc.read(), "the target reads before the move")
			moved := rawField(t, raw, tc.fromColl, tc.from, tc.path)
			require.Equal(t, bson.TypeBinary, moved.Type)
			rawSet(t, raw, tc.toColl, tc.to, tc.toPath, moved)
			err := tc.read()
			require.Error(t, err, "a moved value must not read")
			assert.Contains(t, err.Error(), "failed authentication")
			rawSet(t, raw, tc.toColl, tc.to, tc.toPath, before)
			assert.NoError(t, tc.read(), "the value put back where it was sealed reads again")
		})
	}
	t.Run("every value is written as version 2, bound to its place", func(t *testing.T) {
		v := rawField(t, raw, "patients", w.patientID, "givenName")
		_, b := v.Binary()
		assert.Equal(t, byte(2), b[0])
	})
}

func TestAClearValueWrittenByAnOldReplicaAfterSealingIsRefused(t *testing.T) {
	w := newPHIWorld(t)
	ctx := context.Background()
	raw := rawDatabase(t, w.env.DB)
	var kr bson.Raw
	require.NoError(t, raw.Collection("keyring").FindOne(ctx, bson.D{{Key: "_id", Value: "fields"}}).Decode(&kr))
	require.True(t, kr.Lookup("legacySealed").Boolean(), "sealing has completed")
	require.True(t, kr.Lookup("fieldsBound").Boolean())

	// An old replica, still running in a rolling deploy, writes the field as
	// it always did: a plain string; another a plain date of birth.
	rawSet(t, raw, "patients", w.patientID, "familyName", "WrittenByAnOldReplica")
	_, err := w.env.Store.Patient(ctx, coordinator, w.patientID)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clear text")
	assert.NotContains(t, err.Error(), "WrittenByAnOldReplica", "the error does not carry the PHI")

	rawSet(t, raw, "cases", w.caseID, "clinical.proposedTreatment", "PlantedTreatment")
	_, err = w.env.Store.Case(ctx, coordinator, w.caseID)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clear text")

	t.Run("a binary of the store's internal opened subtype is refused too", func(t *testing.T) {
		rawSet(t, raw, "cases", w.caseID, "clinical.proposedTreatment", bson.Binary{Subtype: 0x81, Data: []byte("\x00PlantedTreatment")})
		_, err := w.env.Store.Case(ctx, coordinator, w.caseID)
		assert.Error(t, err)
	})
}

func TestAStoreWithSealedValuesButNoKeyringRefusesToStart(t *testing.T) {
	w := newPHIWorld(t)
	ctx := context.Background()
	raw := rawDatabase(t, w.env.DB)
	_, err := raw.Collection("keyring").DeleteOne(ctx, bson.D{{Key: "_id", Value: "fields"}})
	require.NoError(t, err)

	_, err = openStore(t, w.env.DB, w.env.Keys)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds sealed PHI values")
	assert.Contains(t, err.Error(), "restore the keyring")
	n, err := raw.Collection("keyring").CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.Zero(t, n, "no new key was made")

	t.Run("a new database still gets its first key", func(t *testing.T) {
		env := testenv.Start(t, testenv.Options{NoSeed: true})
		n, err := rawDatabase(t, env.DB).Collection("keyring").CountDocuments(ctx, bson.D{{Key: "_id", Value: "fields"}})
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
	})
}

func TestACancelReasonIsSealed(t *testing.T) {
	w := newPHIWorld(t)
	ctx := context.Background()
	reason := marker("cancelReason")
	st := domain.StatusCancelled
	// With its event, as the workflow cancels: a write that carries an
	// outbox binds its sealed values too.
	_, err := w.env.Store.MutateCase(ctx, coordinator, w.caseID, nil, func(c *domain.Case) (store.CaseUpdate, error) {
		from := c.Status
		return store.CaseUpdate{Status: &st, CancelReason: &reason, Events: []domain.CaseEvent{{Type: "CASE_CANCELLED", FromStatus: &from, ToStatus: &st, ActorRole: domain.RoleCoordinator}}}, nil
	})
	require.NoError(t, err)
	v := rawField(t, rawDatabase(t, w.env.DB), "cases", w.caseID, "cancelReason")
	require.Equal(t, bson.TypeBinary, v.Type)
	subtype, b := v.Binary()
	assert.Equal(t, byte(0x80), subtype)
	assert.NotContains(t, string(b), reason)
	_, err = w.env.Store.Case(ctx, coordinator, w.caseID)
	assert.NoError(t, err, "the case reads back")
}
