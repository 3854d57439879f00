package documents

import (
	"hash"
	"io"
	"sync"
)

// The upload's pipeline keeps both cores busy without copying more than it
// must: the caller's goroutine reads the file into a chunk and encrypts it,
// a hasher hashes the same chunk (read-only, no copy) meanwhile, and a
// write-behind writer hands the sealed bytes to storage while the next
// ones are sealed. Before, an io.Pipe to the hash and another to storage
// copied every byte twice more and switched goroutines every 32 KiB.

// chunkSize is the size of the pipeline's buffers: large enough that the
// hand-offs cost nothing, small enough to stay in a core's cache between
// the read and the encryption.
const chunkSize = 256 << 10

// hasher hashes chunks in a goroutine of its own. Its buffers go round: a
// chunk given to add comes back from buffer once it is hashed.
type hasher struct {
	h      hash.Hash
	work   chan []byte
	free   chan []byte
	done   chan struct{}
	closed bool
}

// newHasher starts a hasher into h with n buffers of size bytes.
func newHasher(h hash.Hash, size, n int) *hasher {
	x := &hasher{h: h, work: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{})}
	for range n {
		x.free <- make([]byte, size)
	}
	go func() {
		defer close(x.done)
		for b := range x.work {
			_, _ = x.h.Write(b) // a hash.Hash never fails
			x.free <- b[:cap(b)]
		}
	}()
	return x
}

// buffer returns a buffer the hasher is done with.
func (x *hasher) buffer() []byte { return <-x.free }

// add hashes b, a buffer from buffer (or a prefix of one), after the
// chunks added before it. The caller must not change b until buffer gives
// it back.
func (x *hasher) add(b []byte) { x.work <- b }

// close waits until every chunk added is hashed (a second call does
// nothing).
func (x *hasher) close() {
	if x.closed {
		return
	}
	x.closed = true
	close(x.work)
	<-x.done
}

// writeBehind buffers writes into chunks and writes each full chunk to w
// from a goroutine of its own, so that storage takes one chunk while the
// next is filled. A failure of w is returned by the next Write (and by
// finish); the writes that follow it are dropped.
type writeBehind struct {
	buf   []byte
	full  chan []byte
	empty chan []byte
	done  chan struct{}

	mu  sync.Mutex
	err error
}

// newWriteBehind starts a writer to w with two chunks of size bytes: one
// is filled while the other is written. (empty holds both, so that the
// writer never waits to give one back, even after finish hands it the
// chunk being filled.)
func newWriteBehind(w io.Writer, size int) *writeBehind {
	wb := &writeBehind{buf: make([]byte, 0, size), full: make(chan []byte, 1), empty: make(chan []byte, 2), done: make(chan struct{})}
	wb.empty <- make([]byte, 0, size)
	go func() {
		defer close(wb.done)
		for b := range wb.full {
			if wb.failed() == nil {
				if _, err := w.Write(b); err != nil {
					wb.mu.Lock()
					wb.err = err
					wb.mu.Unlock()
				}
			}
			wb.empty <- b[:0]
		}
	}()
	return wb
}

func (wb *writeBehind) failed() error {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.err
}

// Write copies p into the chunk being filled, handing full chunks on.
func (wb *writeBehind) Write(p []byte) (int, error) {
	if err := wb.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		c := copy(wb.buf[len(wb.buf):cap(wb.buf)], p)
		wb.buf = wb.buf[:len(wb.buf)+c]
		n, p = n+c, p[c:]
		if len(wb.buf) == cap(wb.buf) {
			wb.full <- wb.buf
			wb.buf = <-wb.empty
			if err := wb.failed(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// finish stops the writer once the chunks handed on are written, with the
// partly filled chunk first when flush is set, and returns w's failure.
// It must be called exactly once.
func (wb *writeBehind) finish(flush bool) error {
	if flush && len(wb.buf) > 0 && wb.failed() == nil {
		wb.full <- wb.buf
	}
	close(wb.full)
	<-wb.done
	return wb.failed()
}
