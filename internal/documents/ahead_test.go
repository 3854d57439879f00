package documents

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/keys"
)

// formats are the data keys of the two file formats: DARE, which new
// documents are written in, and age, which documents written before are in.
var formats = map[string]func() (*keys.DataKey, error){"dare": keys.NewDataKey, "age": keys.NewAgeDataKey}

// sealedFile encrypts plain under a new data key into a file and returns
// its path and the key.
func sealedFile(t *testing.T, plain []byte) (string, *keys.DataKey) {
	t.Helper()
	return sealedFileAs(t, plain, keys.NewDataKey)
}

func sealedFileAs(t testing.TB, plain []byte, newKey func() (*keys.DataKey, error)) (string, *keys.DataKey) {
	t.Helper()
	dk, err := newKey()
	require.NoError(t, err)
	var buf bytes.Buffer
	w, err := dk.Encrypt(&buf)
	require.NoError(t, err)
	_, err = w.Write(plain)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	path := filepath.Join(t.TempDir(), "blob")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path, dk
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// A file on disk is decrypted ahead, in order, whatever its size against
// the segments and the formats' 64 KiB packages.
func TestDecryptAheadReturnsTheFileInOrder(t *testing.T) {
	for format, newKey := range formats {
		for _, n := range []int{1, 64 << 10, aheadSegment - 1, aheadSegment, aheadSegment + 1, 3*aheadSegment + 12345} {
			plain := randomBytes(t, n)
			path, dk := sealedFileAs(t, plain, newKey)
			f, err := os.Open(path)
			require.NoError(t, err)
			body, err := decrypt(dk, f, n)
			require.NoError(t, err)
			_, ahead := body.(*aheadReader)
			assert.True(t, ahead, "a file is read ahead")
			got, err := io.ReadAll(body)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(plain, got), "%s: %d bytes come back as they went in", format, n)
			require.NoError(t, body.Close())
		}
	}
}

// The ahead reader writes to a writer segment by segment (io.Copy's
// path, as the download handler's) the same bytes it reads.
func TestDecryptAheadWritesTheFileInOrder(t *testing.T) {
	plain := randomBytes(t, 5*aheadSegment+7)
	path, dk := sealedFile(t, plain)
	f, err := os.Open(path)
	require.NoError(t, err)
	body, err := decrypt(dk, f, len(plain))
	require.NoError(t, err)
	var out bytes.Buffer
	n, err := io.Copy(&out, body)
	require.NoError(t, err)
	assert.EqualValues(t, len(plain), n)
	assert.True(t, bytes.Equal(plain, out.Bytes()))
	require.NoError(t, body.Close())
}

// A byte changed in the middle of the file stops the download at the chunk
// that holds it: what came before was authenticated, nothing after is
// returned. A truncated file, or one whose size is not its record's, is
// refused before a byte is returned.
func TestDecryptAheadRefusesAnAlteredFile(t *testing.T) {
	for format, newKey := range formats {
		t.Run(format, func(t *testing.T) {
			n := 3*aheadSegment + 100
			plain := randomBytes(t, n)
			path, dk := sealedFileAs(t, plain, newKey)
			sealed, err := os.ReadFile(path)
			require.NoError(t, err)
			open := func(b []byte, size int) (io.ReadCloser, error) {
				t.Helper()
				require.NoError(t, os.WriteFile(path, b, 0o600))
				f, err := os.Open(path)
				require.NoError(t, err)
				body, err := decrypt(dk, f, size)
				if err != nil {
					_ = f.Close()
				}
				return body, err
			}

			t.Run("a byte changed", func(t *testing.T) {
				altered := bytes.Clone(sealed)
				at := len(altered) / 2
				altered[at] ^= 1
				body, err := open(altered, n)
				require.NoError(t, err, "the final chunk is intact")
				got, err := io.ReadAll(body)
				require.Error(t, err)
				// Where the altered chunk's plaintext starts.
				chunkStart := at / ((64 << 10) + 32) * (64 << 10)
				if format == "age" {
					payload := bytes.Index(sealed, []byte("\n---"))
					payload += bytes.IndexByte(sealed[payload+1:], '\n') + 2 + 16
					chunkStart = (at - payload) / ((64 << 10) + 16) * (64 << 10)
				}
				assert.LessOrEqual(t, len(got), chunkStart, "nothing of the altered chunk or after it")
				assert.True(t, bytes.Equal(plain[:len(got)], got), "what came before is the file's")
				require.NoError(t, body.Close())
			})
			t.Run("a byte changed, written out", func(t *testing.T) {
				// io.Copy takes the body's WriteTo, as the download does.
				altered := bytes.Clone(sealed)
				altered[len(altered)/2] ^= 1
				body, err := open(altered, n)
				require.NoError(t, err)
				var out bytes.Buffer
				written, err := io.Copy(&out, body)
				require.Error(t, err)
				assert.Less(t, written, int64(n))
				assert.True(t, bytes.Equal(plain[:out.Len()], out.Bytes()), "what came before is the file's")
				require.NoError(t, body.Close())
			})
			t.Run("truncated", func(t *testing.T) {
				// 100 bytes off DARE's last package leave less than a
				// package's overhead (refused on its size); 50 leave a
				// shorter package that must fail its authentication.
				for _, cut := range []int{100, 50, 1} {
					_, err := open(sealed[:len(sealed)-cut], n)
					require.Error(t, err, "cut by %d", cut)
					_, err = open(sealed[:len(sealed)-cut], n-cut)
					require.Error(t, err, "cut by %d, and the size to match", cut)
				}
			})
			t.Run("cut at a chunk's end", func(t *testing.T) {
				// Two whole chunks of 64 KiB: a valid-looking file, but
				// its last chunk is not the one flagged final.
				cut := 2 * ((64 << 10) + 32)
				if format == "age" {
					hdr := bytes.Index(sealed, []byte("\n---"))
					require.Positive(t, hdr)
					end := bytes.IndexByte(sealed[hdr+1:], '\n')
					cut = hdr + 1 + end + 1 + 16 + 2*((64<<10)+16)
				}
				_, err := open(sealed[:cut], 2<<16)
				require.Error(t, err)
			})
			t.Run("not the record's size", func(t *testing.T) {
				_, err := open(sealed, n-1)
				require.Error(t, err)
			})
		})
	}
}

// failingEnd returns a whole read with an error at the file's end, as a
// DARE file whose last package is not the final one does.
type failingEnd struct {
	io.ReaderAt
	size int64
	err  error
}

func (f failingEnd) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.ReaderAt.ReadAt(p, off)
	if off+int64(n) == f.size {
		return n, f.err
	}
	return n, err
}

// An error that comes with a whole segment (the check of the file's end)
// reaches the reader after the bytes it came with (each package is
// authenticated before it is returned); only io.EOF there is the file's
// normal end.
func TestDecryptAheadPassesOnTheErrorOfAWholeSegment(t *testing.T) {
	plain := randomBytes(t, 2*aheadSegment)
	bad := errors.New("the file does not end with its final package")
	src := failingEnd{ReaderAt: bytes.NewReader(plain), size: int64(len(plain)), err: bad}
	r := newAheadReader(src, int64(len(plain)), func() error { return nil })
	got, err := io.ReadAll(r)
	require.ErrorIs(t, err, bad)
	assert.True(t, bytes.Equal(plain, got), "the bytes came, then the error")
	require.NoError(t, r.Close())

	src.err = io.EOF
	r = newAheadReader(src, int64(len(plain)), func() error { return nil })
	got, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(plain, got))
	require.NoError(t, r.Close())
}

// countingFile counts the bytes read from it, and records reads made
// after it was closed.
type countingFile struct {
	io.ReaderAt
	mu         sync.Mutex
	closed     bool
	readsAfter int
	closes     atomic.Int32
	read       atomic.Int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.readsAfter++
	}
	c.mu.Unlock()
	n, err := c.ReaderAt.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingFile) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closes.Add(1)
	return nil
}

// A download closed halfway (the client went away) stops reading ahead,
// and the file is closed once, after the last read of it.
func TestDecryptAheadStopsWhenClosed(t *testing.T) {
	plain := randomBytes(t, 8*aheadSegment)
	f := &countingFile{ReaderAt: bytes.NewReader(plain)}
	r := newAheadReader(f, int64(len(plain)), f.Close)
	got := make([]byte, aheadSegment+10)
	_, err := io.ReadFull(r, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(plain[:len(got)], got))
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	assert.EqualValues(t, 1, f.closes.Load())
	rest, err := io.ReadAll(r)
	require.ErrorIs(t, err, errClosed, "what is left after Close is not the file's end")
	assert.True(t, bytes.Equal(plain[len(got):len(got)+len(rest)], rest))
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Zero(t, f.readsAfter, "no worker reads the file after it is closed")
}

// slowFile counts the reads under way at once.
type slowFile struct {
	io.ReaderAt
	now, top atomic.Int32
}

func (s *slowFile) ReadAt(p []byte, off int64) (int, error) {
	n := s.now.Add(1)
	for {
		top := s.top.Load()
		if n <= top || s.top.CompareAndSwap(top, n) {
			break
		}
	}
	defer s.now.Add(-1)
	time.Sleep(time.Millisecond)
	return s.ReaderAt.ReadAt(p, off)
}

// Many downloads at once decrypt no more segments together than the
// process has CPUs: each reads ahead, none takes every core.
func TestDecryptAheadSharesTheCPUsBetweenDownloads(t *testing.T) {
	plain := randomBytes(t, 6*aheadSegment)
	f := &slowFile{ReaderAt: bytes.NewReader(plain)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newAheadReader(f, int64(len(plain)), func() error { return nil })
			got, err := io.ReadAll(r)
			assert.NoError(t, err)
			assert.True(t, bytes.Equal(plain, got))
			assert.NoError(t, r.Close())
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, int(f.top.Load()), cap(decryptSlots))
	assert.Positive(t, f.top.Load())
}

// BenchmarkDecryptAhead20MiB is a download's decryption alone: a 20 MiB
// DARE file on disk read through DecryptAt and the reader ahead, without
// the link's open (its rights check and the case read).
func BenchmarkDecryptAhead20MiB(b *testing.B) {
	plain := make([]byte, 20<<20)
	_, err := rand.Read(plain)
	require.NoError(b, err)
	path, dk := sealedFileAs(b, plain, keys.NewDataKey)
	fi, err := os.Stat(path)
	require.NoError(b, err)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		f, err := os.Open(path)
		require.NoError(b, err)
		at, n, err := dk.DecryptAt(f, fi.Size())
		require.NoError(b, err)
		r := newAheadReader(at, n, f.Close)
		_, err = io.Copy(io.Discard, r)
		require.NoError(b, err)
		require.NoError(b, r.Close())
	}
}

// shortWriter takes at most max bytes a Write, without an error.
type shortWriter struct {
	bytes.Buffer
	max int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	return w.Buffer.Write(p[:min(len(p), w.max)])
}

// A writer that takes less than it was given, without an error, ends the
// copy with io.ErrShortWrite (as io.Copy does) rather than spinning.
func TestDecryptAheadStopsAtAShortWrite(t *testing.T) {
	plain := randomBytes(t, 2*aheadSegment)
	r := newAheadReader(bytes.NewReader(plain), int64(len(plain)), func() error { return nil })
	defer func() { require.NoError(t, r.Close()) }()
	w := &shortWriter{max: 1000}
	n, err := r.WriteTo(w)
	require.ErrorIs(t, err, io.ErrShortWrite)
	assert.EqualValues(t, 1000, n)
	assert.Equal(t, plain[:1000], w.Bytes())
}

// farthestFile records the farthest segment a read started at.
type farthestFile struct {
	io.ReaderAt
	farthest atomic.Int64
}

func (f *farthestFile) ReadAt(p []byte, off int64) (int, error) {
	for {
		seg := off / aheadSegment
		top := f.farthest.Load()
		if seg <= top || f.farthest.CompareAndSwap(top, seg) {
			break
		}
	}
	return f.ReaderAt.ReadAt(p, off)
}

// A reader that does not read on is not decrypted for beyond its buffers:
// a download holds at most its share of aheadBytes a decrypting goroutine,
// whatever its size.
func TestDecryptAheadGoesNoFurtherThanItsRing(t *testing.T) {
	plain := randomBytes(t, 40*aheadSegment)
	for _, procs := range []int{1, 2, 4} {
		withProcs(t, procs, func(t *testing.T) {
			f := &farthestFile{ReaderAt: bytes.NewReader(plain)}
			r := newAheadReader(f, int64(len(plain)), func() error { return nil })
			defer func() { require.NoError(t, r.Close()) }()
			first := make([]byte, 10)
			_, err := io.ReadFull(r, first)
			require.NoError(t, err)
			// The helpers have all the time they want to run ahead: until
			// they have filled every buffer of theirs (one may hold
			// segment 0), then a while more.
			decrypters := min(aheadWorkers, procs)
			buffers := aheadBuffersFor(decrypters)
			require.Equal(t, buffers, r.buffers)
			assert.LessOrEqual(t, decrypters*buffers*aheadSegment, 2<<20, "the download's buffers together: 2 MiB at most")
			bound := int64(decrypters*buffers - 1)
			if decrypters > 1 {
				require.Eventually(t, func() bool { return f.farthest.Load() >= int64((decrypters-1)*buffers-1) },
					10*time.Second, time.Millisecond, "the helpers decrypt ahead")
			}
			time.Sleep(50 * time.Millisecond)
			assert.LessOrEqual(t, f.farthest.Load(), bound, "segment 0 is being read: at most the other buffers are filled")
			r.mu.Lock()
			for d, n := range r.owned {
				assert.LessOrEqual(t, n, buffers, "decrypter %d's buffers", d)
			}
			r.mu.Unlock()
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(plain, append(first, rest...)))
		})
	}
}

// blockingWriter says when its first Write has started, and that Write
// waits on release; it keeps what it was given, once it takes it.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	writes  int
	got     []byte
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes == 1 {
		close(w.started)
		<-w.release
	}
	w.got = append(w.got, p...)
	return len(p), nil
}

// A download closed from another goroutine while it is being written out
// (the server shutting down under a slow client) ends in errClosed, the
// file is closed once no one reads it, and the segment being written out
// is not handed to another download meanwhile: the client gets the file's
// bytes, never another's.
func TestDecryptAheadClosedWhileWritingOut(t *testing.T) {
	plain := randomBytes(t, 12*aheadSegment)
	f := &countingFile{ReaderAt: bytes.NewReader(plain)}
	r := newAheadReader(f, int64(len(plain)), f.Close)
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := r.WriteTo(w)
		done <- err
	}()
	<-w.started
	require.NoError(t, r.Close())
	// Other downloads take the buffers Close gave back and fill them.
	other := randomBytes(t, 12*aheadSegment)
	for range 4 {
		o := newAheadReader(bytes.NewReader(other), int64(len(other)), func() error { return nil })
		_, err := io.Copy(io.Discard, o)
		require.NoError(t, err)
		require.NoError(t, o.Close())
	}
	close(w.release)
	require.ErrorIs(t, <-done, errClosed)
	assert.Len(t, w.got, aheadSegment, "the segment being written out was written, and no other")
	assert.True(t, bytes.Equal(plain[:len(w.got)], w.got), "what was written out is the file's")
	assert.EqualValues(t, 1, f.closes.Load())
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Zero(t, f.readsAfter, "no one reads the file after it is closed")
}

// withProcs runs f with GOMAXPROCS at n, so that the helpers a download
// starts (one fewer than the CPUs) are as on a machine of n CPUs.
func withProcs(t *testing.T, n int, f func(t *testing.T)) {
	t.Run(fmt.Sprintf("%d CPUs", n), func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n))
		f(t)
	})
}

// Downloads closed at any moment, by two goroutines at once, while their
// bodies are read or written out and other downloads take buffers from the
// pool: no one reads the file after it is closed, and what the client got
// is the file's bytes.
func TestDecryptAheadClosedAtAnyMoment(t *testing.T) {
	plain := randomBytes(t, 9*aheadSegment+5)
	other := randomBytes(t, 9*aheadSegment+5)
	for _, procs := range []int{1, 2, 4} {
		withProcs(t, procs, func(t *testing.T) {
			var churn sync.WaitGroup
			stop := make(chan struct{})
			churn.Add(1)
			go func() {
				defer churn.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					o := newAheadReader(bytes.NewReader(other), int64(len(other)), func() error { return nil })
					_, _ = io.Copy(io.Discard, o)
					_ = o.Close()
				}
			}()
			defer func() { close(stop); churn.Wait() }()
			for round := range 60 {
				f := &countingFile{ReaderAt: bytes.NewReader(plain)}
				r := newAheadReader(f, int64(len(plain)), f.Close)
				var out bytes.Buffer
				done := make(chan error, 1)
				go func() {
					if round%2 == 0 {
						_, err := r.WriteTo(&out)
						done <- err
						return
					}
					buf := make([]byte, 100_000)
					for {
						n, err := r.Read(buf)
						out.Write(buf[:n])
						if err != nil {
							done <- err
							return
						}
					}
				}()
				time.Sleep(time.Duration(round%7) * 100 * time.Microsecond)
				var closers sync.WaitGroup
				for range 2 {
					closers.Add(1)
					go func() {
						defer closers.Done()
						assert.NoError(t, r.Close())
					}()
				}
				closers.Wait()
				switch err := <-done; {
				case errors.Is(err, io.EOF), err == nil:
					// Read to the end before Close (WriteTo ends in nil).
					require.Equal(t, len(plain), out.Len(), "round %d: a clean end comes only at the file's end", round)
				case !errors.Is(err, errClosed):
					t.Fatalf("round %d: %v", round, err)
				}
				require.True(t, bytes.Equal(plain[:out.Len()], out.Bytes()), "round %d: the client got the file's bytes", round)
				assert.EqualValues(t, 1, f.closes.Load())
				f.mu.Lock()
				assert.Zero(t, f.readsAfter, "round %d: no read of the file after it is closed", round)
				f.mu.Unlock()
			}
		})
	}
}

// A file shorter than its record says ends in io.ErrUnexpectedEOF after
// the bytes it has, read or written out; never in a clean end.
func TestDecryptAheadRefusesAShortFile(t *testing.T) {
	plain := randomBytes(t, 3*aheadSegment)
	short := plain[:2*aheadSegment+100]
	for _, procs := range []int{1, 2, 4} {
		withProcs(t, procs, func(t *testing.T) {
			r := newAheadReader(bytes.NewReader(short), int64(len(plain)), func() error { return nil })
			got, err := io.ReadAll(r)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.True(t, bytes.Equal(short, got))
			require.NoError(t, r.Close())

			r = newAheadReader(bytes.NewReader(short), int64(len(plain)), func() error { return nil })
			var out bytes.Buffer
			_, err = r.WriteTo(&out)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.True(t, bytes.Equal(short, out.Bytes()))
			require.NoError(t, r.Close())
		})
	}
}

// A document of one segment, the common case, starts no helper and takes
// one buffer from the pool, however many CPUs there are.
func TestDecryptAheadTakesWhatASmallFileNeeds(t *testing.T) {
	withProcs(t, 4, func(t *testing.T) {
		plain := randomBytes(t, 200_000)
		r := newAheadReader(bytes.NewReader(plain), int64(len(plain)), func() error { return nil })
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(plain, got))
		r.mu.Lock()
		assert.Len(t, r.owned, 1, "one decrypter: the reader")
		assert.Equal(t, 1, r.owned[0], "one buffer")
		r.mu.Unlock()
		require.NoError(t, r.Close())
	})
}

// panickingFile panics on every read from offset from on, and counts the
// panics.
type panickingFile struct {
	io.ReaderAt
	from   int64
	panics atomic.Int32
}

func (f *panickingFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.from {
		f.panics.Add(1)
		panic("the storage panicked")
	}
	return f.ReaderAt.ReadAt(p, off)
}

// A panic while a segment is decrypted, by the reader or by a helper, ends
// that download in an error after the bytes before it, and nothing else:
// the process goes on (a helper's panic used to end it), and the
// decryption slot comes back, so downloads after it still run.
func TestDecryptAheadTurnsAPanicIntoTheDownloadsError(t *testing.T) {
	plain := randomBytes(t, 4*aheadSegment)
	for _, procs := range []int{1, 2, 4} {
		withProcs(t, procs, func(t *testing.T) {
			// More downloads than there are slots to leak.
			for range 2 * cap(decryptSlots) {
				f := &panickingFile{ReaderAt: bytes.NewReader(plain), from: aheadSegment}
				r := newAheadReader(f, int64(len(plain)), func() error { return nil })
				if procs > 1 {
					// The helpers started as a first read starts them,
					// with nothing read yet: only they decrypt, and one
					// of them panics.
					r.mu.Lock()
					r.startLocked()
					r.mu.Unlock()
					require.Eventually(t, func() bool { return f.panics.Load() > 0 }, 10*time.Second, time.Millisecond)
				}
				got, err := readAllWithin(t, r)
				require.ErrorContains(t, err, "the storage panicked")
				assert.True(t, bytes.Equal(plain[:aheadSegment], got), "the segment before the panic, then the error")
				require.NoError(t, r.Close())
			}
			r := newAheadReader(bytes.NewReader(plain), int64(len(plain)), func() error { return nil })
			got, err := readAllWithin(t, r)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(plain, got))
			require.NoError(t, r.Close())
		})
	}
}

// readAllWithin reads r to its end, or fails the test when that takes ten
// seconds: a download that waits for a decryption slot no one gives back
// never ends.
func readAllWithin(t *testing.T, r io.Reader) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		return res.b, res.err
	case <-time.After(10 * time.Second):
		t.Fatal("the download never ended: a decryption slot was not given back")
		return nil, nil
	}
}

// A download no one reads decrypts nothing: its helpers start with its
// first read. They used to start with the reader, so that a HEAD of a link
// (which net/http answers without a body) or a download refused after its
// open had up to aheadBytes decrypted for no one.
func TestDecryptAheadDecryptsNothingBeforeTheFirstRead(t *testing.T) {
	plain := randomBytes(t, 12*aheadSegment)
	for _, procs := range []int{1, 2, 4} {
		withProcs(t, procs, func(t *testing.T) {
			f := &countingFile{ReaderAt: bytes.NewReader(plain)}
			r := newAheadReader(f, int64(len(plain)), func() error { return nil })
			time.Sleep(20 * time.Millisecond)
			assert.Zero(t, f.read.Load(), "bytes read before the first read")
			require.NoError(t, r.Close())
			assert.Zero(t, f.read.Load(), "bytes read by the time the download was closed")
			// A read after Close starts nothing: no helper is added to
			// what Close waited for after it waited.
			_, err := r.Read(make([]byte, 10))
			require.ErrorIs(t, err, errClosed)
			r.mu.Lock()
			assert.False(t, r.started, "helpers started after Close")
			r.mu.Unlock()

			// Read, the same file comes back whole.
			f = &countingFile{ReaderAt: bytes.NewReader(plain)}
			r = newAheadReader(f, int64(len(plain)), func() error { return nil })
			got, err := readAllWithin(t, r)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(plain, got))
			assert.EqualValues(t, len(plain), f.read.Load())
			require.NoError(t, r.Close())
		})
	}
}
