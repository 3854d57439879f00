package store

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/secondopinion/gateway/internal/keys"
)

// PHI fields are encrypted at rest. A stored field of type sealed (or
// sealedTime) is written by the store's codec registry as a BSON binary
// (subtype 0x80) holding
//
//	version (1 byte) | field key id (8 bytes) | nonce (24 bytes) | XChaCha20-Poly1305 ciphertext and tag
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
// A field stored before this existed (a BSON string or date) still reads;
// it is sealed the next time its document is written.

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
	sealedVersion  = 1
	sealedSubtype  = 0x80
	fieldKeyIDSize = 8
	sealedHeader   = 1 + fieldKeyIDSize
	// fieldKeysID is the keyring document holding the field keys.
	fieldKeysID = "fields"
)

// ErrFieldKey is returned when a PHI field cannot be sealed or opened: no
// keyring was given, or a value names a field key this store does not hold.
var ErrFieldKey = errors.New("store: PHI field key unavailable")

// fieldCipher seals and opens PHI fields.
type fieldCipher struct {
	primary [fieldKeyIDSize]byte
	aeads   map[[fieldKeyIDSize]byte]cipher.AEAD
}

func (c *fieldCipher) seal(plain []byte) ([]byte, error) {
	if c == nil {
		return nil, ErrFieldKey
	}
	aead := c.aeads[c.primary]
	out := make([]byte, sealedHeader+aead.NonceSize(), sealedHeader+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealedVersion
	copy(out[1:sealedHeader], c.primary[:])
	nonce := out[sealedHeader:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	// The header is authenticated too: a value cannot be moved to another key id.
	return aead.Seal(out, nonce, plain, out[:sealedHeader]), nil
}

func (c *fieldCipher) open(b []byte) ([]byte, error) {
	if c == nil {
		return nil, ErrFieldKey
	}
	if len(b) < sealedHeader || b[0] != sealedVersion {
		return nil, errors.New("store: a sealed field has an unknown format")
	}
	var id [fieldKeyIDSize]byte
	copy(id[:], b[1:sealedHeader])
	aead, ok := c.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: a value names field key %x", ErrFieldKey, id)
	}
	if len(b) < sealedHeader+aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("store: a sealed field is truncated")
	}
	nonce := b[sealedHeader : sealedHeader+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, b[sealedHeader+aead.NonceSize():], b[:sealedHeader])
	if err != nil {
		return nil, errors.New("store: a sealed field failed authentication")
	}
	return plain, nil
}

// sealingRegistry is the driver's default registry plus the codecs of the
// sealed types, which use *cp (set once Open has read the field key).
func sealingRegistry(cp **fieldCipher) *bson.Registry {
	reg := bson.NewRegistry()
	reg.RegisterTypeEncoder(reflect.TypeOf(sealed{}), bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		b, err := (*cp).seal([]byte(v.Interface().(sealed).text))
		if err != nil {
			return err
		}
		return vw.WriteBinaryWithSubtype(b, sealedSubtype)
	}))
	reg.RegisterTypeDecoder(reflect.TypeOf(sealed{}), bson.ValueDecoderFunc(func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
		var text string
		stored := vr.Type()
		switch stored {
		case bson.TypeString: // stored before fields were sealed
			s, err := vr.ReadString()
			if err != nil {
				return err
			}
			text = s
		case bson.TypeBinary:
			b, _, err := vr.ReadBinary()
			if err != nil {
				return err
			}
			plain, err := (*cp).open(b)
			if err != nil {
				return err
			}
			text = string(plain)
		case bson.TypeNull:
			if err := vr.ReadNull(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: a sealed field holds a %s", stored)
		}
		v.Set(reflect.ValueOf(sealed{text: text, legacy: stored == bson.TypeString}))
		return nil
	}))
	reg.RegisterTypeEncoder(reflect.TypeOf(sealedTime{}), bson.ValueEncoderFunc(func(_ bson.EncodeContext, vw bson.ValueWriter, v reflect.Value) error {
		var ms [8]byte
		binary.BigEndian.PutUint64(ms[:], uint64(v.Interface().(sealedTime).t.UnixMilli()))
		b, err := (*cp).seal(ms[:])
		if err != nil {
			return err
		}
		return vw.WriteBinaryWithSubtype(b, sealedSubtype)
	}))
	reg.RegisterTypeDecoder(reflect.TypeOf(sealedTime{}), bson.ValueDecoderFunc(func(_ bson.DecodeContext, vr bson.ValueReader, v reflect.Value) error {
		var t time.Time
		stored := vr.Type()
		switch stored {
		case bson.TypeDateTime: // stored before fields were sealed
			ms, err := vr.ReadDateTime()
			if err != nil {
				return err
			}
			t = time.UnixMilli(ms).UTC()
		case bson.TypeBinary:
			b, _, err := vr.ReadBinary()
			if err != nil {
				return err
			}
			plain, err := (*cp).open(b)
			if err != nil {
				return err
			}
			if len(plain) != 8 {
				return errors.New("store: a sealed instant has the wrong length")
			}
			t = time.UnixMilli(int64(binary.BigEndian.Uint64(plain))).UTC()
		case bson.TypeNull:
			if err := vr.ReadNull(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: a sealed instant holds a %s", stored)
		}
		v.Set(reflect.ValueOf(sealedTime{t: t, legacy: stored == bson.TypeDateTime}))
		return nil
	}))
	return reg
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
	Version      int  `bson:"version"`
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
