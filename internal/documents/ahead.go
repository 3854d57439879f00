package documents

import (
	"errors"
	"io"
	"runtime"
	"sync"
)

// aheadSegment is how much of a file one decryption worker reads at once:
// four of the formats' 64 KiB packages (DARE) or chunks (age).
const aheadSegment = 256 << 10

// aheadWorkers bounds the segments one download reads ahead.
const aheadWorkers = 4

// decryptSlots bound the segments being decrypted at once in the process to
// its CPUs, so that many downloads share the cores instead of each taking
// all of them.
var decryptSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// aheadReader reads a file that can be read at any offset (the directory
// store's, decrypted by keys.DataKey.DecryptAt) in order, while workers
// decrypt the segments after the one being read, each on its own core.
// Decryption and its authentication are most of a download's work, so a
// reader that decrypts one package after another keeps a download to one
// core. At most aheadWorkers segments (and no more
// than there are CPUs) are read ahead, so a download holds at most
// aheadWorkers+1 segments (1.25 MiB), whatever its size; decryptSlots
// bound the work of all downloads together.
type aheadReader struct {
	order chan chan segment // the segments under way, in file order
	stop  chan struct{}     // closed by Close
	free  chan []byte       // segment buffers to reuse
	cur   segment           // the segment being read
	done  sync.WaitGroup    // the dispatcher and the workers
	close func() error      // closes the file, once every worker is done
	once  sync.Once
	err   error // Close's
}

// errClosed is what a read after Close returns.
var errClosed = errors.New("documents: the download was closed")

type segment struct {
	buf  []byte
	rest []byte // what Read has not returned yet
	err  error
}

// newAheadReader reads src, size bytes, with as many workers as there are
// CPUs; closeFile is called once no worker reads src any more.
func newAheadReader(src io.ReaderAt, size int64, closeFile func() error) *aheadReader {
	workers := min(aheadWorkers, max(1, runtime.GOMAXPROCS(0)))
	r := &aheadReader{
		order: make(chan chan segment, workers),
		stop:  make(chan struct{}),
		free:  make(chan []byte, workers+1),
		close: closeFile,
	}
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		defer close(r.order)
		for off := int64(0); off < size; off += aheadSegment {
			res := make(chan segment, 1)
			// The order's capacity bounds the segments under way.
			select {
			case r.order <- res:
			case <-r.stop:
				return
			}
			var buf []byte
			select {
			case buf = <-r.free:
			default:
				buf = make([]byte, aheadSegment)
			}
			n := int(min(aheadSegment, size-off))
			r.done.Add(1)
			go func() {
				defer r.done.Done()
				decryptSlots <- struct{}{}
				got, err := src.ReadAt(buf[:n], off)
				<-decryptSlots
				switch {
				case got == n && (err == nil || errors.Is(err, io.EOF)):
					err = nil // io.EOF at the file's end
				case got == n:
					// A whole segment with an error: the file's end failed
					// its check (its last package not the final one).
				case err == nil || errors.Is(err, io.EOF):
					err = io.ErrUnexpectedEOF
				}
				res <- segment{buf: buf, rest: buf[:got], err: err}
			}()
		}
	}()
	return r
}

// Read returns the file's bytes in order, or the error of the first
// segment that could not be read or authenticated.
func (r *aheadReader) Read(p []byte) (int, error) {
	for len(r.cur.rest) == 0 {
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		if r.cur.buf != nil {
			select {
			case r.free <- r.cur.buf:
			default:
			}
		}
		res, ok := <-r.order
		if !ok {
			// The dispatcher stops at the file's end, or at Close: after
			// Close, what was not read is not the file's end.
			r.cur = segment{err: io.EOF}
			select {
			case <-r.stop:
				r.cur.err = errClosed
			default:
			}
			return 0, r.cur.err
		}
		r.cur = <-res
	}
	n := copy(p, r.cur.rest)
	r.cur.rest = r.cur.rest[n:]
	return n, nil
}

// WriteTo writes the file's bytes to w in order, each segment in one Write
// (io.Copy's way in, without copying them through its buffer).
func (r *aheadReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.cur.rest) > 0 {
			n, err := w.Write(r.cur.rest)
			total += int64(n)
			r.cur.rest = r.cur.rest[n:]
			if err == nil && len(r.cur.rest) > 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if _, err := r.Read(nil); err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

// Close stops the reading ahead, waits for the workers and closes the file.
func (r *aheadReader) Close() error {
	r.once.Do(func() {
		close(r.stop)
		// Segments under way finish into their buffered results.
		r.done.Wait()
		r.err = r.close()
	})
	return r.err
}
