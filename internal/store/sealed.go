package store

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/secondopinion/gateway/internal/keys"
)

// PHI fields are encrypted at rest. A stored field of type sealed (or
// sealedTime) is written by the store's codec registry as a BSON binary
// (subtype 0x80) holding
//
//	version (1 byte) | field key id (8 bytes) | nonce (24 bytes) | XChaCha20-Poly1305 ciphertext and tag
//
// whose additional data is the header and (version 2) the value's place:
// collection, document _id and dotted path, so a value copied elsewhere in
// the database fails to open. The codecs of the document types holding PHI
// (sealedDocs) know that place; a partial write names it with bindSet.
//
// under the deployment's field key: 32 random bytes, generated once and
// stored in the keyring collection wrapped by the master key of
// DATA_KEY_FILE (keys.Keyring.WrapSecret, age), so rotating the master key
// re-wraps one small document and never touches a field. The key id in
// each value lets a later field-key rotation read old and new values side
// by side. Fields that queries filter or sort on are never sealed: an
// encrypted value matches nothing.
//
// The types are structs with an unexported field, so the text cannot reach
// the database by any other road: the driver's default registry would
// write an empty document, never the text, and the converters must call
// seal and String, so a PHI field is typed as such where it is declared.
//
// A field stored before this existed (a BSON string or date), or sealed by
// version 1 (header only), reads until the start-up sealing has rewritten
// every one of them (sealmigrate.go); from then on it is refused.

// sealed is a PHI string stored encrypted. legacy marks a value read from
// clear text (sealLegacy rewrites those).
type sealed struct {
	text   string
	legacy bool
}

// seal marks s as PHI to be stored encrypted.
func seal(s string) sealed { return sealed{text: s} }

// String is the clear text.
func (s sealed) String() string { return s.text }

// IsZero lets omitempty leave out an empty field (bson.Zeroer).
func (s sealed) IsZero() bool { return s.text == "" }

// sealAll and openAll convert lists.
func sealAll(in []string) []sealed {
	if in == nil {
		return nil
	}
	out := make([]sealed, len(in))
	for i, s := range in {
		out[i] = seal(s)
	}
	return out
}

func openAll(in []sealed) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = s.text
	}
	return out
}

// sealedTime is a PHI instant (a date of birth) stored encrypted; legacy as
// for sealed.
type sealedTime struct {
	t      time.Time
	legacy bool
}

func sealTime(t time.Time) sealedTime { return sealedTime{t: t} }

// Time is the clear value.
func (s sealedTime) Time() time.Time { return s.t }

// IsZero lets omitempty leave out an unset instant (bson.Zeroer).
func (s sealedTime) IsZero() bool { return s.t.IsZero() }

const (
	// sealedV1 values authenticate their header only: they read anywhere
	// they are copied to. Still read; rewritten as sealedV2 by the start-up
	// sealing (sealmigrate.go), and refused once it has completed.
	sealedV1 = 1
	// sealedV2 values also authenticate where they are stored: the
	// collection, the document's _id and the field's path (see bindingAAD).
	sealedV2      = 2
	sealedSubtype = 0x80
	// openedSubtype marks, only inside this process, a PHI value between
	// the document-level codecs and the sealed types' codecs: plain text
	// about to be sealed, or just opened. One found in the database is
	// refused.
	openedSubtype  = 0x81
	fieldKeyIDSize = 8
	sealedHeader   = 1 + fieldKeyIDSize
	// fieldKeysID is the keyring document holding the field keys.
	fieldKeysID = "fields"
)

// ErrFieldKey is returned when a PHI field cannot be sealed or opened: no
// keyring was given, or a value names a field key this store does not hold.
var ErrFieldKey = errors.New("store: PHI field key unavailable")

// errClearAfterSealing is returned for a PHI field that holds clear text,
// or a value sealed without its place (version 1), once the start-up
// sealing has completed: only an old replica or a hand in the database can
// have put it there, and a value that is not authenticated where it stands
// could have been planted or moved, so it is refused rather than believed.
var errClearAfterSealing = errors.New("store: a PHI field holds clear text or an unbound sealed value after sealing completed")

// fieldCipher seals and opens PHI fields.
type fieldCipher struct {
	primary [fieldKeyIDSize]byte
	aeads   map[[fieldKeyIDSize]byte]cipher.AEAD
	// strict is set once every PHI field of the database is sealed and
	// bound (keyring.legacySealed and keyring.fieldsBound): from then on
	// clear text and version 1 values are refused.
	strict atomic.Bool
}

// binding is where a sealed value is stored.
type binding struct {
	coll, id, path string
}

// bindingAAD is the additional data of a version 2 value: its header, then
// the collection, the document's _id and the field's dotted path (array
// positions left out, so appending to or removing from an array does not
// unseal its other elements), each prefixed with its length.
func bindingAAD(header []byte, b binding) []byte {
	aad := append([]byte(nil), header...)
	for _, s := range []string{b.coll, b.id, b.path} {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(s)))
		aad = append(aad, s...)
	}
	return aad
}

func (c *fieldCipher) seal(plain []byte, at binding) ([]byte, error) {
	if c == nil {
		return nil, ErrFieldKey
	}
	aead := c.aeads[c.primary]
	out := make([]byte, sealedHeader+aead.NonceSize(), sealedHeader+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealedV2
	copy(out[1:sealedHeader], c.primary[:])
	nonce := out[sealedHeader:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	// The header and the place are authenticated: a value cannot be moved
	// to another key id, document or field.
	return aead.Seal(out, nonce, plain, bindingAAD(out[:sealedHeader], at)), nil
}

// open opens a value stored at, and reports its version.
func (c *fieldCipher) open(b []byte, at binding) ([]byte, byte, error) {
	if c == nil {
		return nil, 0, ErrFieldKey
	}
	if len(b) < sealedHeader || (b[0] != sealedV1 && b[0] != sealedV2) {
		return nil, 0, errors.New("store: a sealed field has an unknown format")
	}
	var id [fieldKeyIDSize]byte
	copy(id[:], b[1:sealedHeader])
	aead, ok := c.aeads[id]
	if !ok {
		return nil, 0, fmt.Errorf("%w: a value names field key %x", ErrFieldKey, id)
	}
	if len(b) < sealedHeader+aead.NonceSize()+aead.Overhead() {
		return nil, 0, errors.New("store: a sealed field is truncated")
	}
	aad := b[:sealedHeader]
	if b[0] == sealedV2 {
		aad = bindingAAD(aad, at)
	}
	nonce := b[sealedHeader : sealedHeader+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, b[sealedHeader+aead.NonceSize():], aad)
	if err != nil {
		return nil, 0, fmt.Errorf("store: the sealed field %s of %s %s failed authentication (altered, or moved from elsewhere)", at.path, at.coll, at.id)
	}
	return plain, b[0], nil
}

// sealedDocs are the stored document types holding PHI, with their
// collections: their codecs seal and open every PHI value inside them,
// knowing the document's _id and each value's path.
var sealedDocs = map[reflect.Type]string{
	reflect.TypeOf(patientDoc{}):    colPatients,
	reflect.TypeOf(caseDoc{}):       colCases,
	reflect.TypeOf(opinionDoc{}):    colOpinions,
	reflect.TypeOf(webhookSubDoc{}): colWebhookSubs,
}

// boundValue is a value holding PHI written outside its whole document (a
// $set or $push of part of it): it names its place, so its codec can seal
// it there.
type boundValue struct {
	at binding
	v  any
}

// bindTo marks v, written at path of the document id in coll, for sealing
// there; a value without PHI passes through unchanged.
func bindTo(coll, id, path string, v any) boundValue {
	return boundValue{at: binding{coll: coll, id: id, path: path}, v: v}
}

// bindSet binds every value of a $set of the document id in coll.
func bindSet(coll, id string, set bson.D) bson.D {
	out := make(bson.D, len(set))
	for i, e := range set {
		out[i] = bson.E{Key: e.Key, Value: bindTo(coll, id, e.Key, e.Value)}
	}
	return out
}

var (
	tRaw      = reflect.TypeOf(bson.Raw(nil))
	tRawValue = reflect.TypeOf(bson.RawValue{})
	tBound    = reflect.TypeOf(boundValue{})
)

// sealingRegistry is the driver's default registry plus the codecs of the
// sealed document types and bound values, which use *cp (set once Open has
// read the field key). Those codecs go through an inner registry whose
// sealed types carry plain text as openedSubtype binaries; the outer
// codecs seal each at its place on the way out and open it on the way in.
// A sealed value met outside them has no place: written, it is refused;
// read, only a version 1 value opens (and only before sealing completed).
func sealingRegistry(cp **fieldCipher) *bson.Registry {
	inner := bson.NewRegistry()
	registerPlainCodecs(inner, cp)
	reg := bson.NewRegistry()
	for t, coll := range sealedDocs {
		reg.RegisterTypeEncoder(t, bson.ValueEncoderFunc(func(ectx bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
			raw, err := marshalWith(inner, v.Interface())
			if err != nil {
				return err
			}
			id, _ := raw.Lookup("_id").StringValueOK()
			sealedRaw, err := transform(raw, "", func(path string, b bson.Binary) (bson.Binary, error) {
				return sealAt(*cp, b, binding{coll: coll, id: id, path: path})
			})
			if err != nil {
				return err
			}
			enc, err := ectx.LookupEncoder(tRaw)
			if err != nil {
				return err
			}
			return enc.EncodeValue(ectx, vw, reflect.ValueOf(sealedRaw))
		}))
		reg.RegisterTypeDecoder(t, bson.ValueDecoderFunc(func(dctx bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
			dec, err := dctx.LookupDecoder(tRaw)
			if err != nil {
				return err
			}
			rv := reflect.New(tRaw).Elem()
			if err := dec.DecodeValue(dctx, vr, rv); err != nil {
				return err
			}
			raw := rv.Interface().(bson.Raw)
			id, _ := raw.Lookup("_id").StringValueOK()
			c := *cp
			opened, err := transform(raw, "", func(path string, b bson.Binary) (bson.Binary, error) {
				return openAt(c, b, binding{coll: coll, id: id, path: path})
			})
			if err != nil {
				return err
			}
			out := reflect.New(v.Type())
			if err := unmarshalWith(inner, opened, out.Interface()); err != nil {
				if errors.Is(err, errClearAfterSealing) {
					slog.Error("PHI field refused: clear text or an unbound sealed value in a database whose fields are all sealed; an old replica or a direct database write put it there",
						"collection", coll, "id", id)
				}
				return fmt.Errorf("%s %s: %w", coll, id, err)
			}
			v.Set(out.Elem())
			return nil
		}))
	}
	reg.RegisterTypeEncoder(tBound, bson.ValueEncoderFunc(func(ectx bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		bv := v.Interface().(boundValue)
		raw, err := marshalWith(inner, bson.D{{Key: "v", Value: bv.v}})
		if err != nil {
			return err
		}
		sealedRaw, err := transform(raw, "", func(path string, b bson.Binary) (bson.Binary, error) {
			at := bv.at
			at.path = bv.at.path + strings.TrimPrefix(path, "v")
			return sealAt(*cp, b, at)
		})
		if err != nil {
			return err
		}
		enc, err := ectx.LookupEncoder(tRawValue)
		if err != nil {
			return err
		}
		return enc.EncodeValue(ectx, vw, reflect.ValueOf(sealedRaw.Lookup("v")))
	}))
	reg.RegisterTypeEncoder(sealedType, bson.ValueEncoderFunc(func(bson.EncodeContext, bson.ValueWriter, reflect.Value) error {
		return errors.New("store: a PHI value written outside its document without bindTo: it has no place to be sealed to")
	}))
	reg.RegisterTypeEncoder(sealedTimeType, bson.ValueEncoderFunc(func(bson.EncodeContext, bson.ValueWriter, reflect.Value) error {
		return errors.New("store: a PHI instant written outside its document without bindTo: it has no place to be sealed to")
	}))
	// Decoded outside a sealed document type, a value has no known place:
	// the binaries are opened as of nowhere, which only a version 1 value
	// survives.
	unplaced := func(dctx bson.DecodeContext, vr bson.ValueReader) (bson.ValueReader, error) {
		if vr.Type() != bson.TypeBinary {
			return vr, nil
		}
		b, st, err := vr.ReadBinary()
		if err != nil {
			return nil, err
		}
		nb, err := openAt(*cp, bson.Binary{Subtype: st, Data: b}, binding{})
		if err != nil {
			return nil, err
		}
		raw, err := bson.Marshal(bson.D{{Key: "v", Value: nb}})
		if err != nil {
			return nil, err
		}
		evr := bson.NewDocumentReader(bytes.NewReader(raw))
		dr, err := evr.ReadDocument()
		if err != nil {
			return nil, err
		}
		_, vvr, err := dr.ReadElement()
		return vvr, err
	}
	for _, t := range []reflect.Type{sealedType, sealedTimeType} {
		innerDec, _ := inner.LookupDecoder(t)
		reg.RegisterTypeDecoder(t, bson.ValueDecoderFunc(func(dctx bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
			vr, err := unplaced(dctx, vr)
			if err != nil {
				return err
			}
			return innerDec.DecodeValue(dctx, vr, v)
		}))
	}
	return reg
}

// sealAt seals an opened value at its place; other binaries pass.
func sealAt(c *fieldCipher, b bson.Binary, at binding) (bson.Binary, error) {
	if b.Subtype != openedSubtype {
		return b, nil
	}
	out, err := c.seal(b.Data, at)
	if err != nil {
		return b, err
	}
	return bson.Binary{Subtype: sealedSubtype, Data: out}, nil
}

// openAt opens a sealed value stored at its place. A version 1 value opens
// marked legacy (the start-up sealing rewrites it bound) until sealing has
// completed, then it is refused. An opened-value binary in the database is
// refused: it would read as plain text.
func openAt(c *fieldCipher, b bson.Binary, at binding) (bson.Binary, error) {
	switch b.Subtype {
	case openedSubtype:
		return b, fmt.Errorf("store: %s %s field %s holds a binary of the store's internal subtype", at.coll, at.id, at.path)
	case sealedSubtype:
	default:
		return b, nil
	}
	plain, ver, err := c.open(b.Data, at)
	if err != nil {
		return b, err
	}
	if ver == sealedV1 {
		if c.strict.Load() {
			return b, errClearAfterSealing
		}
		// The first byte tells the plain codecs the value was stored
		// without its place.
		return bson.Binary{Subtype: openedSubtype, Data: append([]byte{1}, plain...)}, nil
	}
	return bson.Binary{Subtype: openedSubtype, Data: append([]byte{0}, plain...)}, nil
}

// transform rewrites every binary of raw through f, with its dotted path
// (array positions left out), copying everything else byte for byte.
func transform(raw bson.Raw, prefix string, f func(path string, b bson.Binary) (bson.Binary, error)) (bson.Raw, error) {
	out, err := transformDoc(make([]byte, 0, len(raw)+len(raw)/2), bsoncore.Document(raw), prefix, false, f)
	return bson.Raw(out), err
}

func transformDoc(dst []byte, doc bsoncore.Document, prefix string, array bool, f func(string, bson.Binary) (bson.Binary, error)) ([]byte, error) {
	if len(doc) < 5 {
		return nil, errors.New("store: a document is truncated")
	}
	idx, dst := bsoncore.AppendDocumentStart(dst)
	// Paths are only built for what needs one: a binary, or a container
	// that may hold one.
	pathOf := func(key string) string {
		switch {
		case array:
			return prefix
		case prefix == "":
			return key
		}
		return prefix + "." + key
	}
	rest := doc[4 : len(doc)-1]
	for len(rest) > 0 {
		e, r, ok := bsoncore.ReadElement(rest)
		if !ok {
			return nil, errors.New("store: a document is malformed")
		}
		rest = r
		v := e.Value()
		switch v.Type {
		case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
			key := e.Key()
			var err error
			dst = bsoncore.AppendHeader(dst, v.Type, key)
			if dst, err = transformDoc(dst, bsoncore.Document(v.Data), pathOf(key), v.Type == bsoncore.TypeArray, f); err != nil {
				return nil, err
			}
		case bsoncore.TypeBinary:
			key := e.Key()
			st, data := v.Binary()
			nb, err := f(pathOf(key), bson.Binary{Subtype: st, Data: data})
			if err != nil {
				return nil, err
			}
			dst = bsoncore.AppendBinaryElement(dst, key, nb.Subtype, nb.Data)
		default:
			dst = append(dst, e...)
		}
	}
	return bsoncore.AppendDocumentEnd(dst, idx)
}

func marshalWith(reg *bson.Registry, v any) (bson.Raw, error) {
	var buf bytes.Buffer
	enc := bson.NewEncoder(bson.NewDocumentWriter(&buf))
	enc.SetRegistry(reg)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func unmarshalWith(reg *bson.Registry, raw bson.Raw, v any) error {
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
	dec.SetRegistry(reg)
	return dec.Decode(v)
}

// registerPlainCodecs registers, for the inner registry, the sealed types'
// codecs: an openedSubtype binary carrying the plain value (on the way in,
// after a flag byte: 1 when it was stored unbound), or, stored before
// fields were sealed, a string or a date, taken as legacy clear text until
// sealing completes.
func registerPlainCodecs(reg *bson.Registry, cp **fieldCipher) {
	strict := func() bool { c := *cp; return c != nil && c.strict.Load() }
	readOpened := func(vr bson.ValueReader) ([]byte, bool, error) {
		b, st, err := vr.ReadBinary()
		if err != nil {
			return nil, false, err
		}
		if st != openedSubtype || len(b) == 0 {
			return nil, false, errors.New("store: a sealed field was not opened at its place")
		}
		return b[1:], b[0] == 1, nil
	}
	reg.RegisterTypeEncoder(sealedType, bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		return vw.WriteBinaryWithSubtype([]byte(v.Interface().(sealed).text), openedSubtype)
	}))
	reg.RegisterTypeDecoder(sealedType, bson.ValueDecoderFunc(func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
		var out sealed
		switch stored := vr.Type(); stored {
		case bson.TypeString: // stored before fields were sealed
			if strict() {
				return errClearAfterSealing
			}
			s, err := vr.ReadString()
			if err != nil {
				return err
			}
			out = sealed{text: s, legacy: true}
		case bson.TypeBinary:
			plain, unbound, err := readOpened(vr)
			if err != nil {
				return err
			}
			out = sealed{text: string(plain), legacy: unbound}
		case bson.TypeNull:
			if err := vr.ReadNull(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: a sealed field holds a %s", stored)
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}))
	reg.RegisterTypeEncoder(sealedTimeType, bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		var ms [8]byte
		binary.BigEndian.PutUint64(ms[:], uint64(v.Interface().(sealedTime).t.UnixMilli()))
		return vw.WriteBinaryWithSubtype(ms[:], openedSubtype)
	}))
	reg.RegisterTypeDecoder(sealedTimeType, bson.ValueDecoderFunc(func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
		var out sealedTime
		switch stored := vr.Type(); stored {
		case bson.TypeDateTime: // stored before fields were sealed
			if strict() {
				return errClearAfterSealing
			}
			ms, err := vr.ReadDateTime()
			if err != nil {
				return err
			}
			out = sealedTime{t: time.UnixMilli(ms).UTC(), legacy: true}
		case bson.TypeBinary:
			plain, unbound, err := readOpened(vr)
			if err != nil {
				return err
			}
			if len(plain) != 8 {
				return errors.New("store: a sealed instant has the wrong length")
			}
			out = sealedTime{t: time.UnixMilli(int64(binary.BigEndian.Uint64(plain))).UTC(), legacy: unbound}
		case bson.TypeNull:
			if err := vr.ReadNull(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: a sealed instant holds a %s", stored)
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}))
}

// fieldKeyDoc is one field key, wrapped by a master key.
type fieldKeyDoc struct {
	ID         string `bson:"id"` // hex of the 8-byte id in every value
	MasterID   string `bson:"masterKeyId"`
	WrappedKey []byte `bson:"wrappedKey"`
}

// fieldKeysDoc is the keyring document: the field keys, the first seals.
type fieldKeysDoc struct {
	ID   string        `bson:"_id"`
	Keys []fieldKeyDoc `bson:"keys"`
	// LegacySealed is set once sealLegacy has sealed every PHI field
	// written in clear before fields were sealed.
	LegacySealed bool `bson:"legacySealed"`
	// FieldsBound is set once sealLegacy has also rewritten every value
	// sealed without its place (version 1) bound to it.
	FieldsBound bool `bson:"fieldsBound"`
	Version     int  `bson:"version"`
}

// loadFieldKeys reads the field keys, creating the first on a new database,
// and unwraps them with kr. A key kr cannot unwrap fails Open: the gateway
// does not start with a DATA_KEY_FILE that cannot read the data.
func (s *Store) loadFieldKeys(ctx context.Context, kr *keys.Keyring) (*fieldCipher, error) {
	for attempt := 0; attempt < 3; attempt++ {
		d, err := findByID[fieldKeysDoc](ctx, s, colKeyring, fieldKeysID, nil)
		if err == nil {
			return openFieldKeys(d, kr)
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("store: read field keys: %w", err)
		}
		// A new key on a database that holds sealed values would leave
		// them unreadable for good: the keyring was lost or dropped.
		if where, err := s.findSealedValue(ctx); err != nil {
			return nil, fmt.Errorf("store: look for sealed PHI values: %w", err)
		} else if where != "" {
			return nil, fmt.Errorf("store: the keyring collection holds no PHI field key, but %s holds sealed PHI values: "+
				"refusing to start with a new key that cannot read them; restore the keyring document %q from a backup", where, fieldKeysID)
		}
		key := make([]byte, chacha20poly1305.KeySize)
		id := make([]byte, fieldKeyIDSize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
		w, err := kr.WrapSecret(key)
		if err != nil {
			return nil, err
		}
		doc := fieldKeysDoc{ID: fieldKeysID, Keys: []fieldKeyDoc{{ID: hex.EncodeToString(id), MasterID: w.KeyID, WrappedKey: w.Key}}, Version: 1}
		cctx, cancel := s.op(ctx)
		_, err = s.c(colKeyring).InsertOne(cctx, doc)
		cancel()
		if err != nil && !isDuplicate(err) {
			return nil, fmt.Errorf("store: create field key: %w", err)
		}
		// Read back: another replica starting at the same time may have
		// created it first, and its key is the one that stands.
	}
	return nil, errors.New("store: field keys: could not settle")
}

// sealedPaths are, per collection, the paths where a sealed value may
// stand (findSealedValue looks there).
var sealedPaths = map[string][]string{
	colPatients:    {"givenName", "familyName", "dateOfBirth", "email", "phone"},
	colCases:       {"clinical.diagnosis.code", "clinical.proposedTreatment", "clinical.questions", "clinical.records.title", "decisionNote", "cancelReason", "followUps.question", "outcome.note"},
	colOpinions:    {"content.memberSummary", "content.report", "content.treatmentOptions.name", "content.answers.question", "signature.payload"},
	colWebhookSubs: {"secret"},
}

// findSealedValue names a document holding a sealed value, or returns "".
// It runs only when the keyring document is missing: on a new database,
// where the collections are empty.
func (s *Store) findSealedValue(ctx context.Context) (string, error) {
	for _, coll := range []string{colPatients, colCases, colOpinions, colWebhookSubs} {
		var or bson.A
		for _, p := range sealedPaths[coll] {
			or = append(or, bson.D{{Key: p, Value: bson.D{{Key: "$type", Value: "binData"}}}})
		}
		cctx, cancel := s.op(ctx)
		raw, err := s.c(coll).FindOne(cctx, bson.D{{Key: "$or", Value: or}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Raw()
		cancel()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %v", coll, raw.Lookup("_id")), nil
	}
	return "", nil
}

func openFieldKeys(d *fieldKeysDoc, kr *keys.Keyring) (*fieldCipher, error) {
	if len(d.Keys) == 0 {
		return nil, errors.New("store: the keyring holds no field key")
	}
	c := &fieldCipher{aeads: map[[fieldKeyIDSize]byte]cipher.AEAD{}}
	for i, k := range d.Keys {
		raw, err := hex.DecodeString(k.ID)
		if err != nil || len(raw) != fieldKeyIDSize {
			return nil, fmt.Errorf("store: field key %q has a malformed id", k.ID)
		}
		key, err := kr.UnwrapSecret(keys.Wrapped{KeyID: k.MasterID, Key: k.WrappedKey})
		if err != nil {
			return nil, fmt.Errorf("store: DATA_KEY_FILE cannot unwrap the PHI field key (wrapped under master key %s): is it the key this database was written with? %w", k.MasterID, err)
		}
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, fmt.Errorf("store: field key %s: %w", k.ID, err)
		}
		var id [fieldKeyIDSize]byte
		copy(id[:], raw)
		c.aeads[id] = aead
		if i == 0 {
			c.primary = id
		}
	}
	return c, nil
}

// RewrapFieldKeys moves the field keys under kr's primary master key (kr
// holding the old master key too), as RewrapDocumentKeys does for the
// documents' data keys. It returns how many keys moved.
func (s *Store) RewrapFieldKeys(ctx context.Context, kr *keys.Keyring) (int, error) {
	for attempt := 0; attempt < 5; attempt++ {
		d, err := findByID[fieldKeysDoc](ctx, s, colKeyring, fieldKeysID, nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("store: read field keys: %w", err)
		}
		moved := 0
		for i, k := range d.Keys {
			w, changed, err := kr.RewrapSecret(keys.Wrapped{KeyID: k.MasterID, Key: k.WrappedKey})
			if err != nil {
				return 0, fmt.Errorf("store: rewrap field key %s: %w", k.ID, err)
			}
			if changed {
				d.Keys[i].MasterID, d.Keys[i].WrappedKey = w.KeyID, w.Key
				moved++
			}
		}
		if moved == 0 {
			return 0, nil
		}
		ok, err := s.casUpdate(ctx, colKeyring, fieldKeysID, d.Version, bson.D{{Key: "keys", Value: d.Keys}})
		if err != nil {
			return 0, fmt.Errorf("store: rewrap field keys: %w", err)
		}
		if ok {
			return moved, nil
		}
	}
	return 0, errors.New("store: rewrap field keys: the keyring kept changing")
}

// sealPtr and openPtr convert an optional field.
func sealPtr(s *string) *sealed {
	if s == nil {
		return nil
	}
	v := seal(*s)
	return &v
}

func openPtr(s *sealed) *string {
	if s == nil {
		return nil
	}
	v := s.text
	return &v
}
