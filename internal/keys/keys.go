// Package keys holds the master keys of DATA_KEY_FILE and the per-document
// data keys they wrap. A document is encrypted under its own data key in
// MinIO's DARE 2.0 format (github.com/minio/sio: AES-256-GCM in 64 KiB
// authenticated packages, the last one flagged final); documents written
// before are age files (filippo.io/age: ChaCha20-Poly1305 in 64 KiB chunks)
// encrypted to an age X25519 identity as their data key, and stay readable.
// A data key is itself a small age file encrypted to the master key.
// Rotating the master key re-wraps the data keys and never touches a
// document; deleting a wrapped data key makes its document unreadable for
// good (crypto-shredding).
package keys

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/minio/sio"
)

// ErrUnknownKey is returned when a wrapped data key names a master key the
// keyring does not hold.
var ErrUnknownKey = errors.New("keys: wrapped under a master key this keyring does not hold")

// Keyring is the master keys of DATA_KEY_FILE: the first wraps new data
// keys, every one unwraps (so a file holding the new key first and the old
// one after serves both while a rotation runs).
type Keyring struct {
	primary *age.X25519Identity
	byID    map[string]*age.X25519Identity
	order   []string
}

// Generate returns the text of a new key file holding one master key.
func Generate() (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	return "# Second Opinion Gateway master data key (age X25519). Keep it secret; losing it loses every document.\n" +
		"# public key: " + id.Recipient().String() + "\n" + id.String() + "\n", nil
}

// Parse reads a key file: age X25519 identities, one a line, '#' comments.
func Parse(r io.Reader) (*Keyring, error) {
	k := &Keyring{byID: map[string]*age.X25519Identity{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, errors.New("keys: a line of the key file is not an age X25519 identity (AGE-SECRET-KEY-1…)")
		}
		kid := keyID(id)
		if _, dup := k.byID[kid]; dup {
			continue
		}
		if k.primary == nil {
			k.primary = id
		}
		k.byID[kid] = id
		k.order = append(k.order, kid)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if k.primary == nil {
		return nil, errors.New("keys: the key file holds no key")
	}
	return k, nil
}

// Load reads the key file at path.
func Load(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read DATA_KEY_FILE: %w", err)
	}
	return Parse(bytes.NewReader(b))
}

// LoadOrCreate reads the key file at path, creating it (mode 0600) with a new
// key when it does not exist. Development only: production is given its key.
func LoadOrCreate(path string) (*Keyring, bool, error) {
	if _, err := os.Stat(path); err == nil {
		k, err := Load(path)
		return k, false, err
	}
	text, err := Generate()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("keys: create %s: %w", path, err)
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	k, err := Parse(strings.NewReader(text))
	return k, true, err
}

// keyID names a master key by its public half: a hash, so the id reveals
// nothing and is stable wherever the key is loaded.
func keyID(id *age.X25519Identity) string {
	sum := sha256.Sum256([]byte(id.Recipient().String()))
	return hex.EncodeToString(sum[:8])
}

// PrimaryID is the id of the key that wraps new data keys.
func (k *Keyring) PrimaryID() string { return keyID(k.primary) }

// IDs lists the ids of every key held, the primary first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.order...) }

// Has reports whether the keyring holds the key with id.
func (k *Keyring) Has(id string) bool { _, ok := k.byID[id]; return ok }

// DataKey is one document's own key: a 256-bit AES key for a DARE file, or
// the age identity of a document written before DARE.
type DataKey struct {
	aes []byte
	id  *age.X25519Identity
}

// dareTag starts the wrapped secret of a DARE data key (an age identity
// starts AGE-SECRET-KEY-1), so a wrapped key says which format its document
// is in.
const dareTag = "DARE-2.0 AES-256-GCM "

// dare is the one format new documents are written in, and the only one a
// DARE key reads: version 2.0 (whose last package is flagged final, so a
// truncated file is refused), AES-256-GCM.
func (dk *DataKey) dare() sio.Config {
	return sio.Config{MinVersion: sio.Version20, MaxVersion: sio.Version20, CipherSuites: []byte{sio.AES_256_GCM}, Key: dk.aes}
}

// Wrapped is a data key encrypted under a master key, with that key's id.
type Wrapped struct {
	KeyID string
	Key   []byte
}

// NewDataKey makes a fresh data key (DARE, AES-256-GCM).
func NewDataKey() (*DataKey, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &DataKey{aes: k}, nil
}

// NewAgeDataKey makes a data key of the format documents were written in
// before DARE (for tests of those documents).
func NewAgeDataKey() (*DataKey, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return &DataKey{id: id}, nil
}

// secret is what wrapping dk encrypts.
func (dk *DataKey) secret() []byte {
	if dk.id != nil {
		return []byte(dk.id.String())
	}
	return append([]byte(dareTag), dk.aes...)
}

// Wrap encrypts dk under the primary master key.
func (k *Keyring) Wrap(dk *DataKey) (Wrapped, error) {
	return k.WrapSecret(dk.secret())
}

// WrapSecret encrypts a short secret (at most 1 KiB, such as the store's
// field key) under the primary master key.
func (k *Keyring) WrapSecret(secret []byte) (Wrapped, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.primary.Recipient())
	if err != nil {
		return Wrapped{}, err
	}
	if _, err := w.Write(secret); err != nil {
		return Wrapped{}, err
	}
	if err := w.Close(); err != nil {
		return Wrapped{}, err
	}
	return Wrapped{KeyID: k.PrimaryID(), Key: buf.Bytes()}, nil
}

// UnwrapSecret decrypts what WrapSecret wrapped, with the master key it
// names.
func (k *Keyring) UnwrapSecret(w Wrapped) ([]byte, error) {
	master, ok := k.byID[w.KeyID]
	if !ok {
		return nil, ErrUnknownKey
	}
	r, err := age.Decrypt(bytes.NewReader(w.Key), master)
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap: %w", err)
	}
	return b, nil
}

// RewrapSecret moves a wrapped secret under the primary master key; one
// already there is returned as it is.
func (k *Keyring) RewrapSecret(w Wrapped) (Wrapped, bool, error) {
	if w.KeyID == k.PrimaryID() {
		return w, false, nil
	}
	b, err := k.UnwrapSecret(w)
	if err != nil {
		return Wrapped{}, false, err
	}
	nw, err := k.WrapSecret(b)
	return nw, err == nil, err
}

// Unwrap decrypts a wrapped data key with the master key it names.
func (k *Keyring) Unwrap(w Wrapped) (*DataKey, error) {
	b, err := k.UnwrapSecret(w)
	if err != nil {
		return nil, err
	}
	if key, ok := bytes.CutPrefix(b, []byte(dareTag)); ok && len(key) == 32 {
		return &DataKey{aes: key}, nil
	}
	id, err := age.ParseX25519Identity(string(b))
	if err != nil {
		return nil, errors.New("keys: unwrap: not a data key")
	}
	return &DataKey{id: id}, nil
}

// Rewrap moves a wrapped data key under the primary master key; a key
// already there is returned as it is.
func (k *Keyring) Rewrap(w Wrapped) (Wrapped, bool, error) {
	if w.KeyID == k.PrimaryID() {
		return w, false, nil
	}
	dk, err := k.Unwrap(w)
	if err != nil {
		return Wrapped{}, false, err
	}
	nw, err := k.Wrap(dk)
	return nw, err == nil, err
}

// Encrypt returns a writer that encrypts to dst under dk; Close it to write
// the last package (the final one). A data key is made for one document and
// encrypts that one stream, once: DecryptAt ties every package it reads to
// the stream its file starts with, but only one stream a key keeps packages
// of two files from being spliced into one.
func (dk *DataKey) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	if dk.id != nil {
		return age.Encrypt(dst, dk.id.Recipient())
	}
	return sio.EncryptWriter(dst, dk.dare())
}

// Decrypt returns a reader of src's plaintext. Each chunk is authenticated
// before it is returned, and a truncated or altered file ends in an error.
func (dk *DataKey) Decrypt(src io.Reader) (io.Reader, error) {
	if dk.id != nil {
		return age.Decrypt(src, dk.id)
	}
	return sio.DecryptReader(src, dk.dare())
}

// DecryptAt returns the plaintext of src, size bytes of ciphertext, for
// reads at any offset, and the plaintext's size. Its ReadAt may be called
// concurrently. The last package (chunk) is read and authenticated before
// it returns (a file cut at a package's end, whose last package is not
// the final one, is refused), and each is authenticated before a byte of
// it is returned. The caller also compares the size with the one it
// recorded.
func (dk *DataKey) DecryptAt(src io.ReaderAt, size int64) (io.ReaderAt, int64, error) {
	if dk.id != nil {
		return age.DecryptReaderAt(src, size, dk.id)
	}
	plain, err := sio.DecryptedSize(uint64(size))
	if err != nil || plain == 0 {
		return nil, 0, errors.New("keys: decrypt: not a DARE file of this size")
	}
	r := &dareAt{src: src, plain: int64(plain), cfg: dk.dare()}
	if _, err := src.ReadAt(r.nonce[:], dareNonceAt); err != nil {
		return nil, 0, fmt.Errorf("keys: decrypt: %w", err)
	}
	r.nonce[0] &^= dareFinal
	var last [1]byte
	if n, err := r.ReadAt(last[:], r.plain-1); n != 1 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, 0, fmt.Errorf("keys: decrypt: %w", err)
	}
	return r, r.plain, nil
}

// darePayload is the plaintext of one DARE package (the format's 64 KiB).
const darePayload = 1 << 16

// A DARE 2.0 package's header holds the stream's nonce at dareNonceAt, 12
// bytes, the same in every package of the stream but for the final flag
// (dareFinal, in its first byte).
const (
	dareNonceAt = 4
	dareFinal   = 0x80
)

// dareAt reads a DARE file's plaintext at any offset. A read decrypts the
// packages it covers, and only those, with sio's own reader started at the
// first of them (its sequence number set, as sio provides for a range of a
// stream): each package is authenticated in place, and none is decrypted
// for nothing. The reader is then read to the end of those packages: sio
// returns its package buffer to its pool only at its source's end (without
// that, every read would allocate one), and a read that reaches the file's
// end checks there that its last package is the one flagged final.
//
// A reader of sio's takes the nonce of the first package it reads as the
// stream's. Started in the middle, it would accept a run of packages from
// another stream under the same key; so the nonce of the package a read
// starts at is first compared with the file's first package's.
type dareAt struct {
	src   io.ReaderAt
	plain int64
	nonce [12]byte // the stream's, from its first package, final flag cleared
	cfg   sio.Config
}

func (d *dareAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > d.plain {
		return 0, errors.New("keys: decrypt: offset out of range")
	}
	if off == d.plain {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), d.plain)
	first := off / darePayload
	from, err := sio.EncryptedSize(uint64(first * darePayload))
	if err != nil {
		return 0, err
	}
	to, err := sio.EncryptedSize(uint64(min((end+darePayload-1)/darePayload*darePayload, d.plain)))
	if err != nil {
		return 0, err
	}
	if first > 0 {
		var nonce [12]byte
		if _, err := d.src.ReadAt(nonce[:], int64(from)+dareNonceAt); err != nil {
			return 0, err
		}
		nonce[0] &^= dareFinal
		if subtle.ConstantTimeCompare(nonce[:], d.nonce[:]) != 1 {
			return 0, errors.New("keys: decrypt: a package of another stream")
		}
	}
	cfg := d.cfg
	cfg.SequenceNumber = uint32(first)
	r, err := sio.DecryptReader(io.NewSectionReader(d.src, int64(from), int64(to-from)), cfg)
	if err != nil {
		return 0, err
	}
	if skip := off - first*darePayload; skip > 0 {
		if _, err := io.CopyN(io.Discard, r, skip); err != nil {
			return 0, err
		}
	}
	n, err := io.ReadFull(r, p[:end-off])
	if err != nil {
		return n, err
	}
	// What is left is the rest of the last package, already decrypted and
	// authenticated. Before the file's end, sio reports that its packages
	// ended before the final one: expected here.
	_, err = io.Copy(io.Discard, r)
	if end < d.plain {
		return n, nil
	}
	if err != nil {
		return n, errors.New("keys: decrypt: the file does not end with its final package")
	}
	return n, io.EOF
}

// Derive returns a 32-byte key for purpose, derived from the primary master
// key with HKDF-SHA256, so that secrets such as the download-link MAC key
// need no file of their own and are the same on every replica.
func (k *Keyring) Derive(purpose string) []byte {
	out, err := hkdf.Key(sha256.New, []byte(k.primary.String()), nil, "secondopinion/"+purpose, 32)
	if err != nil {
		panic(err) // only for a length HKDF cannot produce
	}
	return out
}
