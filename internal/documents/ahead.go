package documents

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
)

// aheadSegment is how much of a file is decrypted at once: four of the
// formats' 64 KiB packages (DARE) or chunks (age).
const aheadSegment = 256 << 10

// aheadWorkers bounds the goroutines that decrypt one download: its
// reader and the helpers that decrypt ahead of it.
const aheadWorkers = 4

// decryptSlots bound the segments being decrypted at once in the process to
// its CPUs, so that many downloads share the cores instead of each taking
// all of them.
var decryptSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// segmentPool holds segment buffers between downloads.
var segmentPool = sync.Pool{New: func() any { b := make([]byte, aheadSegment); return &b }}

// aheadReader reads a file that can be read at any offset (the directory
// store's, decrypted by keys.DataKey.DecryptAt) in order, decrypting it a
// segment at a time on as many cores as it may use. Decryption and its
// authentication are most of a download's work; a reader that decrypts one
// package after another keeps a download to one core.
//
// The reader's own goroutine decrypts too: it takes the segment it must
// return next, or, when a helper has that one under way, the next one no
// one has taken. Helpers (one fewer than the CPUs, at most aheadWorkers-1,
// and no more than the file has other segments) take the segments after
// it. So no decryption ever waits for the reader
// to be scheduled: with a goroutine a core, a reader that only waited for
// its helpers got a core only when one of them blocked, and the helpers
// blocked for want of the buffers it had not given back (a download
// decrypted 20 MiB in 4.4 ms where two independent goroutines take 2.7).
//
// Each decrypting goroutine has buffers of its own (aheadBuffersFor), and
// a segment is decrypted into one of its decrypter's: a buffer written by
// one core and then by the other moves between their caches, and when the
// two cores shared their buffers the decryption took a third longer. A
// download holds at most aheadBytes (2 MiB) of buffers, shared among its
// decrypters, whatever its size, and takes them from the pool only as it
// needs them: no one decrypts further ahead of the reader than that.
// decryptSlots bound the work of all downloads together: a segment is
// decrypted only with a slot.
type aheadReader struct {
	src  io.ReaderAt
	size int64
	stop chan struct{} // closed by Close

	mu      sync.Mutex
	changed *sync.Cond  // a segment was filled or consumed, or Close
	ring    []ringSlot  // segment i is in ring[i%len(ring)]
	free    [][]*[]byte // each decrypter's buffers not in use; 0 is the reader
	owned   []int       // how many buffers each decrypter has taken from the pool
	buffers int         // how many each decrypter may take (aheadBuffersFor)
	next    int64       // the first segment no one has taken
	head    int64       // the segment being returned; those before it are done
	held    bool        // segment head's buffer is still the reader's to give back
	started bool        // the helpers were started (startLocked)
	closed  bool

	// The reader's own: what Read has not returned yet of segment head,
	// and that segment's error, returned once cur is empty.
	cur   []byte
	err   error
	work  sync.WaitGroup
	close func() error // closes the file, once no one reads it
	once  sync.Once
	cerr  error // Close's
}

type ringSlot struct {
	buf    *[]byte
	owner  int // whose buffer
	n      int
	err    error
	filled bool
}

// aheadBytes bounds the segment buffers one download holds, all its
// decrypters' together.
const aheadBytes = 2 << 20

// aheadBuffersFor is how many segment buffers each of a download's
// decrypters may hold: its share of aheadBytes, and never fewer than two
// (one filled while the reader writes out the other). A helper whose
// buffers are all filled waits for the reader to give one back, and
// waking it costs more than a segment's decryption; on two CPUs, four
// buffers a decrypter instead of two had it wait a tenth as often and
// took a download's decryption from 4.2 to 3.7 ms (20 MiB, the
// directory store; BenchmarkDecryptAhead20MiB).
func aheadBuffersFor(decrypters int) int {
	return max(2, aheadBytes/aheadSegment/decrypters)
}

// Two buffers for each of aheadWorkers decrypters fit in aheadBytes, so the
// floor of two never takes a download past it (the build fails otherwise).
const _ = uint(aheadBytes - 2*aheadWorkers*aheadSegment)

// errClosed is what a read after Close returns.
var errClosed = errors.New("documents: the download was closed")

// newAheadReader reads src, size bytes; closeFile is called once no one
// reads src any more.
func newAheadReader(src io.ReaderAt, size int64, closeFile func() error) *aheadReader {
	r := &aheadReader{src: src, size: size, stop: make(chan struct{}), close: closeFile}
	// A file of a few segments gets no more decrypters than it has
	// segments, and a decrypter takes its buffers from the pool as it
	// needs them: most documents are a segment or two.
	decrypters := int(min(int64(min(aheadWorkers, max(1, runtime.GOMAXPROCS(0)))), max(1, r.segments())))
	r.buffers = aheadBuffersFor(decrypters)
	r.ring = make([]ringSlot, decrypters*r.buffers)
	r.free = make([][]*[]byte, decrypters)
	r.owned = make([]int, decrypters)
	r.changed = sync.NewCond(&r.mu)
	return r
}

// startLocked starts the helpers, at the first read: nothing is decrypted
// for a download no one reads (a HEAD, or one refused after its open).
// r.mu is held.
func (r *aheadReader) startLocked() {
	if r.started || r.closed {
		return
	}
	r.started = true
	for d := 1; d < len(r.free); d++ {
		r.work.Add(1)
		go r.help(d)
	}
}

func (r *aheadReader) segments() int64 { return (r.size + aheadSegment - 1) / aheadSegment }

// takeLocked takes the next segment for decrypter d to decrypt into one of
// its buffers, if there is one no one has taken within the ring's reach
// and d has a buffer free: its index, or -1. r.mu is held.
func (r *aheadReader) takeLocked(d int) (int64, *[]byte) {
	if r.closed || r.next >= r.segments() || r.next >= r.head+int64(len(r.ring)) {
		return -1, nil
	}
	var buf *[]byte
	switch {
	case len(r.free[d]) > 0:
		buf = r.free[d][len(r.free[d])-1]
		r.free[d] = r.free[d][:len(r.free[d])-1]
	case r.owned[d] < r.buffers:
		buf = segmentPool.Get().(*[]byte)
		r.owned[d]++
	default:
		return -1, nil
	}
	i := r.next
	r.next++
	r.work.Add(1)
	return i, buf
}

// help is decrypter d: it decrypts segments ahead of the reader until
// there are none left or the download is closed.
func (r *aheadReader) help(d int) {
	defer r.work.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.closed && r.next < r.segments() {
		if i, buf := r.takeLocked(d); i >= 0 {
			r.mu.Unlock()
			r.decrypt(i, d, buf) // never panics
			r.mu.Lock()
			continue
		}
		r.changed.Wait()
	}
}

// decrypt reads segment i into buf, decrypter d's, with a slot of
// decryptSlots, and marks it filled. The caller took it (takeLocked) and
// does not hold r.mu. A panic of the read (a storage's or a cipher's bug)
// becomes the segment's error: it ends this download, not the process,
// and gives its slot back.
func (r *aheadReader) decrypt(i int64, d int, buf *[]byte) {
	defer r.work.Done()
	off := i * aheadSegment
	n := int(min(aheadSegment, r.size-off))
	got, err := 0, errClosed
	defer func() {
		if p := recover(); p != nil {
			perr, ok := p.(error)
			if !ok {
				perr = fmt.Errorf("%v", p)
			}
			// The stack goes with it to the server's log.
			got, err = 0, fmt.Errorf("documents: decrypting the file panicked: %w\n%s", perr, debug.Stack())
		}
		r.mu.Lock()
		r.ring[i%int64(len(r.ring))] = ringSlot{buf: buf, owner: d, n: got, err: err, filled: true}
		r.changed.Broadcast()
		r.mu.Unlock()
	}()
	select {
	case <-r.stop: // closed meanwhile: nothing to decrypt for
		return
	default:
	}
	select {
	case decryptSlots <- struct{}{}:
	case <-r.stop:
		return
	}
	got, err = func() (int, error) {
		defer func() { <-decryptSlots }()
		return r.src.ReadAt((*buf)[:n], off)
	}()
	switch {
	case got == n && (err == nil || errors.Is(err, io.EOF)):
		err = nil // io.EOF at the file's end
	case got == n:
		// A whole segment with an error: the file's end failed its check
		// (its last package not the final one).
	case err == nil || errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
}

// advance moves the reader to the next segment: it gives back the one it
// has read and waits for the next, decrypting what it can meanwhile.
func (r *aheadReader) advance() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startLocked()
	if r.held {
		s := &r.ring[r.head%int64(len(r.ring))]
		r.free[s.owner] = append(r.free[s.owner], s.buf)
		*s = ringSlot{}
		r.head++
		r.held = false
		r.changed.Broadcast()
	}
	for {
		switch {
		case r.closed:
			r.err = errClosed
			return
		case r.head >= r.segments():
			r.err = io.EOF
			return
		}
		if s := r.ring[r.head%int64(len(r.ring))]; s.filled {
			// Capped at its length: a Write given it cannot reach
			// past the segment into what the buffer held before.
			r.cur, r.err, r.held = (*s.buf)[:s.n:s.n], s.err, true
			return
		}
		if i, buf := r.takeLocked(0); i >= 0 {
			r.mu.Unlock()
			r.decrypt(i, 0, buf) // never panics
			r.mu.Lock()
			continue
		}
		r.changed.Wait()
	}
}

// Read returns the file's bytes in order, or the error of the first
// segment that could not be read or authenticated.
func (r *aheadReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.advance()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo writes the file's bytes to w in order, each segment in one Write
// (io.Copy's way in, without copying them through its buffer).
func (r *aheadReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.cur) > 0 {
			n, err := w.Write(r.cur)
			total += int64(n)
			r.cur = r.cur[n:]
			if err == nil && len(r.cur) > 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return total, nil
			}
			return total, r.err
		}
		r.advance()
	}
}

// Close stops the decryption, waits for the segments under way and closes
// the file. What was read ahead and not returned is dropped.
func (r *aheadReader) Close() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		close(r.stop)
		r.changed.Broadcast()
		r.mu.Unlock()
		r.work.Wait()
		r.cerr = r.close()
		// No one decrypts any more: the buffers go back to the pool, but
		// for the one the reader may still be writing out (Close can come
		// from another goroutine), which the collector takes.
		r.mu.Lock()
		defer r.mu.Unlock()
		for d, free := range r.free {
			for _, b := range free {
				segmentPool.Put(b)
			}
			r.free[d] = nil
		}
		for i := range r.ring {
			if s := &r.ring[i]; s.buf != nil && !(r.held && int64(i) == r.head%int64(len(r.ring))) {
				segmentPool.Put(s.buf)
				*s = ringSlot{}
			}
		}
	})
	return r.cerr
}
