package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkDecodePage50 decodes what a page of 50 cases with clinical
// fields and their 50 patients bring back from the database: sealed, and
// the same documents with the PHI in clear (read through the same codecs),
// so the difference is what opening the sealed fields costs.
func BenchmarkDecodePage50(b *testing.B) {
	kr := testKeyring(b)
	s := &Store{}
	key := make([]byte, 32)
	w, err := kr.WrapSecret(key)
	require.NoError(b, err)
	s.fields, err = openFieldKeys(&fieldKeysDoc{Keys: []fieldKeyDoc{{ID: "0102030405060708", MasterID: w.KeyID, WrappedKey: w.Key}}}, kr)
	require.NoError(b, err)
	sealing := sealingRegistry(&s.fields)
	// clear writes the sealed types as plain strings and dates: documents
	// as they were before sealing (read back through the sealing registry).
	clear := bson.NewRegistry()
	clear.RegisterTypeEncoder(reflect.TypeOf(sealed{}), bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		return vw.WriteString(v.Interface().(sealed).text)
	}))
	clear.RegisterTypeEncoder(reflect.TypeOf(sealedTime{}), bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		return vw.WriteDateTime(v.Interface().(sealedTime).t.UnixMilli())
	}))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cd := caseDoc{
		ID: "c1", Reference: "SO-2026-00001", Status: "IN_REVIEW", Specialty: "oncology", Urgency: "ROUTINE", SubmittedAt: now, UpdatedAt: now, DueAt: now,
		Consents: []consentDoc{{Kind: "RECORDS_RELEASE", Active: true, GrantedAt: &now}}, Events: []eventDoc{}, Version: 3,
		Clinical: &clinicalDoc{
			Diagnosis:         diagnosisDoc{Code: seal("C50.9"), Description: seal("Malignant neoplasm of breast, unspecified")},
			ProposedTreatment: seal("Mastectomy followed by adjuvant chemotherapy"),
			Questions:         sealAll([]string{"Is surgery the best first step?", "Would neoadjuvant therapy change the plan?"}),
			Records: []recordDoc{
				{ID: "r1", Title: seal("Core biopsy pathology report"), Kind: "PATHOLOGY", AddedAt: now},
				{ID: "r2", Title: seal("Breast MRI"), Kind: "IMAGING", AddedAt: now},
			},
		},
	}
	pd := patientDoc{
		ID: "ins:m1", InsurerID: "ins", MemberID: "m1", GivenName: seal("Alice"), FamilyName: seal("Martin"), DateOfBirth: sealTime(now.AddDate(-52, 0, 0)),
		Email: seal("alice.martin@example.org"), Phone: seal("+1-555-0100"), BirthYear: 1974, Sex: "FEMALE", Country: "CA", Language: "en", Version: 1,
	}
	for name, reg := range map[string]*bson.Registry{"sealed": sealing, "clear": clear} {
		rawCase := mustMarshal(b, reg, cd)
		rawPatient := mustMarshal(b, reg, pd)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				for range 50 {
					var c caseDoc
					var p patientDoc
					if err := unmarshalWith(sealing, rawCase, &c); err != nil {
						b.Fatal(err)
					}
					if err := unmarshalWith(sealing, rawPatient, &p); err != nil {
						b.Fatal(err)
					}
					if toCase(&c).Clinical.Diagnosis.Code != "C50.9" || p.GivenName.String() != "Alice" {
						b.Fatal("decoded wrong")
					}
				}
			}
		})
	}
}

func mustMarshal(b *testing.B, reg *bson.Registry, v any) []byte {
	b.Helper()
	raw, err := marshalWith(reg, v)
	require.NoError(b, err)
	return raw
}
