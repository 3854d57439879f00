package keys_test

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/keys"
)

func keyring(t *testing.T) (*keys.Keyring, string) {
	t.Helper()
	text, err := keys.Generate()
	require.NoError(t, err)
	kr, err := keys.Parse(strings.NewReader(text))
	require.NoError(t, err)
	return kr, text
}

// A data key wrapped and unwrapped (and re-wrapped under a new master
// key, as a rotation does) still reads its document, in either format: a
// new document's (DARE, AES-256-GCM) and one written before (age).
func TestADataKeyKeepsItsFormatThroughWrapAndRotation(t *testing.T) {
	for name, newKey := range map[string]func() (*keys.DataKey, error){"dare": keys.NewDataKey, "age": keys.NewAgeDataKey} {
		t.Run(name, func(t *testing.T) {
			old, oldText := keyring(t)
			dk, err := newKey()
			require.NoError(t, err)
			plain := bytes.Repeat([]byte("pathology report "), 10000)
			sealed := bytes.NewBuffer(seal(t, dk, plain))
			assert.NotContains(t, sealed.String(), "pathology")
			if name == "dare" {
				assert.Equal(t, []byte{0x20, 0x00}, sealed.Bytes()[:2], "DARE 2.0, AES-256-GCM")
			} else {
				assert.True(t, bytes.HasPrefix(sealed.Bytes(), []byte("age-encryption.org/v1\n")))
			}

			wrapped, err := old.Wrap(dk)
			require.NoError(t, err)
			newText, err := keys.Generate()
			require.NoError(t, err)
			both, err := keys.Parse(strings.NewReader(newText + oldText))
			require.NoError(t, err)
			moved, changed, err := both.Rewrap(wrapped)
			require.NoError(t, err)
			assert.True(t, changed)
			for _, w := range []keys.Wrapped{wrapped, moved} {
				back, err := both.Unwrap(w)
				require.NoError(t, err)
				r, err := back.Decrypt(bytes.NewReader(sealed.Bytes()))
				require.NoError(t, err)
				got, err := io.ReadAll(r)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(plain, got))
				at, n, err := back.DecryptAt(bytes.NewReader(sealed.Bytes()), int64(sealed.Len()))
				require.NoError(t, err)
				require.EqualValues(t, len(plain), n)
				part := make([]byte, 1000)
				_, err = at.ReadAt(part, 70000)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(plain[70000:71000], part), "a read at any offset")
			}
		})
	}
}

// A wrapped secret that is neither format is refused as a data key.
func TestUnwrapRefusesWhatIsNoDataKey(t *testing.T) {
	kr, _ := keyring(t)
	w, err := kr.WrapSecret([]byte("DARE-2.0 AES-256-GCM too short"))
	require.NoError(t, err)
	_, err = kr.Unwrap(w)
	require.Error(t, err)
}

// A read at the plaintext's end returns io.EOF and nothing else, as
// io.ReaderAt asks; one that reaches the end returns its bytes and io.EOF.
func TestDecryptAtEndsWithEOF(t *testing.T) {
	plain := bytes.Repeat([]byte("clinic letter "), 10000)
	dk, sealed := sealedDARE(t, plain)
	at, size, err := dk.DecryptAt(bytes.NewReader(sealed), int64(len(sealed)))
	require.NoError(t, err)
	require.EqualValues(t, len(plain), size)

	buf := make([]byte, 100)
	n, err := at.ReadAt(buf, size)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF)

	n, err = at.ReadAt(buf, size-10)
	assert.Equal(t, 10, n)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, plain[len(plain)-10:], buf[:10])

	_, err = at.ReadAt(buf, size+1)
	require.Error(t, err)
	assert.NotErrorIs(t, err, io.EOF)
}

// sealedDARE encrypts plain under a new DARE data key.
func sealedDARE(t *testing.T, plain []byte) (*keys.DataKey, []byte) {
	t.Helper()
	dk, err := keys.NewDataKey()
	require.NoError(t, err)
	return dk, seal(t, dk, plain)
}

// seal encrypts plain under dk.
func seal(t *testing.T, dk *keys.DataKey, plain []byte) []byte {
	t.Helper()
	var sealed bytes.Buffer
	w, err := dk.Encrypt(&sealed)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return sealed.Bytes()
}

// A read at any offset and of any length, within a package or across
// several, returns exactly that range of the plaintext.
func TestDecryptAtReadsAnyRange(t *testing.T) {
	const pkg = 64 << 10
	plain := make([]byte, 3*pkg+1000)
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	dk, sealed := sealedDARE(t, plain)
	at, size, err := dk.DecryptAt(bytes.NewReader(sealed), int64(len(sealed)))
	require.NoError(t, err)
	require.EqualValues(t, len(plain), size)
	for _, r := range []struct{ off, n int }{
		{0, 1}, {0, pkg}, {1, pkg}, {pkg - 1, 2}, {pkg, pkg}, {pkg + 5, 2 * pkg}, {3 * pkg, 1000}, {3*pkg + 999, 1}, {10, 3*pkg + 990},
	} {
		buf := make([]byte, r.n)
		n, err := at.ReadAt(buf, int64(r.off))
		if r.off+r.n == len(plain) {
			assert.ErrorIs(t, err, io.EOF, "a read to the end: %+v", r)
		} else {
			assert.NoError(t, err, "%+v", r)
		}
		assert.Equal(t, r.n, n, "%+v", r)
		assert.True(t, bytes.Equal(plain[r.off:r.off+r.n], buf[:n]), "the plaintext of %+v", r)
	}
}

// Reads one after another reuse sio's package buffer: a read of four
// packages allocates far less than the 64 KiB buffer sio would otherwise
// allocate for it (the cost a download paid for every 256 KiB).
func TestDecryptAtReusesItsPackageBuffer(t *testing.T) {
	const pkg, reads = 64 << 10, 64
	plain := make([]byte, 16*pkg)
	dk, sealed := sealedDARE(t, plain)
	at, _, err := dk.DecryptAt(bytes.NewReader(sealed), int64(len(sealed)))
	require.NoError(t, err)
	buf := make([]byte, 4*pkg)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range reads {
		_, err := at.ReadAt(buf, int64(i%3)*4*pkg)
		require.NoError(t, err)
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / reads
	// About 1.6 KiB here; under the race detector, which makes sync.Pool
	// drop a quarter of what it is given back, about 20 KiB.
	assert.Less(t, perRead, uint64(pkg/2), "bytes allocated per read of four packages")
}

// Two streams under one key (which the code never writes, one key a file)
// cannot be spliced into one file: a read that starts at a package of the
// second stream is refused, though each package would authenticate.
func TestDecryptAtRefusesPackagesOfAnotherStream(t *testing.T) {
	const pkg, sealedPkg = 64 << 10, 64<<10 + 32
	a := bytes.Repeat([]byte{'a'}, 8*pkg+10)
	b := bytes.Repeat([]byte{'b'}, 8*pkg+10)
	dk, sealedA := sealedDARE(t, a)
	sealedB := bytes.NewBuffer(seal(t, dk, b))

	// Packages 4 and 5 of the second stream, the rest of the first.
	spliced := bytes.Clone(sealedA)
	copy(spliced[4*sealedPkg:6*sealedPkg], sealedB.Bytes()[4*sealedPkg:6*sealedPkg])
	at, _, err := dk.DecryptAt(bytes.NewReader(spliced), int64(len(spliced)))
	require.NoError(t, err, "the last package is the first stream's")
	buf := make([]byte, 2*pkg)
	n, err := at.ReadAt(buf, 2*pkg)
	require.NoError(t, err, "packages of the first stream")
	assert.True(t, bytes.Equal(a[2*pkg:2*pkg+n], buf[:n]))
	_, err = at.ReadAt(buf, 4*pkg)
	require.Error(t, err, "a read that starts at a package of the second stream")
	_, err = at.ReadAt(buf, 3*pkg)
	require.Error(t, err, "one that runs into it")
	n, err = at.ReadAt(buf, 6*pkg)
	require.NoError(t, err, "the first stream's again")
	assert.True(t, bytes.Equal(a[6*pkg:6*pkg+n], buf[:n]))

	// The second stream's last package at the end: refused at open.
	tail := bytes.Clone(sealedA)
	copy(tail[8*sealedPkg:], sealedB.Bytes()[8*sealedPkg:])
	_, _, err = dk.DecryptAt(bytes.NewReader(tail), int64(len(tail)))
	require.Error(t, err)
}
