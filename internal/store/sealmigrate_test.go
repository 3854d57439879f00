package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// sealV1 seals plain as the first version did: only the header
// authenticated, valid wherever it is copied to.
func sealV1(t *testing.T, c *fieldCipher, plain []byte) bson.Binary {
	t.Helper()
	aead := c.aeads[c.primary]
	out := make([]byte, sealedHeader+aead.NonceSize())
	out[0] = sealedV1
	copy(out[1:sealedHeader], c.primary[:])
	_, err := rand.Read(out[sealedHeader:])
	require.NoError(t, err)
	return bson.Binary{Subtype: sealedSubtype, Data: aead.Seal(out, out[sealedHeader:], plain, out[:sealedHeader])}
}

// unsealedStart puts the keyring back to "sealing has not run", as on a
// database written by an earlier version.
func unsealedStart(t *testing.T, ctx context.Context, s *Store) {
	t.Helper()
	_, err := s.c(colKeyring).UpdateOne(ctx, bson.D{{Key: "_id", Value: fieldKeysID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "legacySealed", Value: false}, {Key: "fieldsBound", Value: false}}}})
	require.NoError(t, err)
	s.fields.strict.Store(false)
}

func insertClearPatient(t *testing.T, ctx context.Context, s *Store, id, given string) {
	t.Helper()
	_, err := s.c(colPatients).InsertOne(ctx, bson.D{
		{Key: "_id", Value: id}, {Key: "insurerId", Value: "ins"}, {Key: "memberId", Value: id},
		{Key: "givenName", Value: given}, {Key: "birthYear", Value: 1960}, {Key: "sex", Value: "MALE"}, {Key: "version", Value: 1},
	})
	require.NoError(t, err)
}

func keyringFlags(t *testing.T, ctx context.Context, s *Store) (legacySealed, bound bool) {
	t.Helper()
	d, err := findByID[fieldKeysDoc](ctx, s, colKeyring, fieldKeysID, nil)
	require.NoError(t, err)
	return d.LegacySealed, d.FieldsBound
}

func TestSealingRetriesADocumentThatChangedDuringTheRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "sealskip")
	insertClearPatient(t, ctx, s, "ins:skip-1", "ClearGivenSkip")
	insertClearPatient(t, ctx, s, "ins:calm-1", "ClearGivenCalm")
	// A case sealed by the first version: its value is not bound.
	_, err := s.c(colCases).InsertOne(ctx, bson.D{
		{Key: "_id", Value: "case-v1"}, {Key: "status", Value: "SUBMITTED"}, {Key: "patientId", Value: "ins:calm-1"}, {Key: "insurerId", Value: "ins"},
		{Key: "decisionNote", Value: sealV1(t, s.fields, []byte("UnboundNote"))}, {Key: "version", Value: 3},
	})
	require.NoError(t, err)
	unsealedStart(t, ctx, s)

	// The first write to ins:skip-1 finds it changed: a concurrent writer
	// (not re-sealing it) bumped its version.
	bumps := 0
	s.beforeWrite = func(coll, id string) error {
		if coll == colPatients && id == "ins:skip-1" && bumps == 0 {
			bumps++
			_, err := s.c(colPatients).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
			return err
		}
		return nil
	}
	require.NoError(t, s.sealLegacyOnce(ctx))
	s.beforeWrite = nil
	require.Equal(t, 1, bumps, "the document was skipped once")

	for _, id := range []string{"ins:skip-1", "ins:calm-1"} {
		raw, err := s.c(colPatients).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
		require.NoError(t, err)
		assert.Equal(t, bson.TypeBinary, raw.Lookup("givenName").Type, "%s was sealed", id)
		assert.False(t, bytes.Contains(raw, []byte("ClearGiven")), "%s holds no clear text", id)
	}
	raw, err := s.c(colCases).FindOne(ctx, bson.D{{Key: "_id", Value: "case-v1"}}).Raw()
	require.NoError(t, err)
	_, b := raw.Lookup("decisionNote").Binary()
	assert.Equal(t, byte(sealedV2), b[0], "the version 1 value was rewritten bound")
	assert.Equal(t, int32(3), raw.Lookup("version").Int32(), "without a new version")

	sealedFlag, bound := keyringFlags(t, ctx, s)
	assert.True(t, sealedFlag)
	assert.True(t, bound)
	assert.True(t, s.fields.strict.Load())
	c, err := findByID[caseDoc](ctx, s, colCases, "case-v1", nil)
	require.NoError(t, err)
	assert.Equal(t, "UnboundNote", c.DecisionNote.String())

	t.Run("a version 1 value written after sealing completed is refused", func(t *testing.T) {
		_, err := s.c(colCases).UpdateOne(ctx, bson.D{{Key: "_id", Value: "case-v1"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "decisionNote", Value: sealV1(t, s.fields, []byte("MovedNote"))}}}})
		require.NoError(t, err)
		_, err = findByID[caseDoc](ctx, s, colCases, "case-v1", nil)
		assert.ErrorIs(t, err, errClearAfterSealing)
	})
}

func TestSealingDoesNotMarkItselfDoneWhileADocumentKeepsChanging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "sealbusy")
	insertClearPatient(t, ctx, s, "ins:busy-1", "ClearGivenBusy")
	unsealedStart(t, ctx, s)
	s.beforeWrite = func(coll, id string) error {
		_, err := s.c(colPatients).UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
		return err
	}
	require.NoError(t, s.sealLegacyOnce(ctx), "the start goes on")
	s.beforeWrite = nil
	sealedFlag, bound := keyringFlags(t, ctx, s)
	assert.False(t, sealedFlag, "clear text is left, so sealing is not marked done")
	assert.False(t, bound)
	assert.False(t, s.fields.strict.Load(), "and clear values still read")

	require.NoError(t, s.sealLegacyOnce(ctx), "the next start seals it")
	sealedFlag, _ = keyringFlags(t, ctx, s)
	assert.True(t, sealedFlag)
	raw, err := s.c(colPatients).FindOne(ctx, bson.D{{Key: "_id", Value: "ins:busy-1"}}).Raw()
	require.NoError(t, err)
	assert.False(t, bytes.Contains(raw, []byte("ClearGivenBusy")))
}
