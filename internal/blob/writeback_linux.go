package blob

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBack is the file of a blob being written, which asks the kernel to
// start writing each writeBackStep bytes to disk once they are written
// (sync_file_range with SYNC_FILE_RANGE_WRITE: it starts the write-out
// and, unless the device's queue is full, does not wait for it). The disk
// then takes the file while the rest of it is still being produced, and
// the fsync that ends the blob has less left to wait for: the write-out
// not yet finished, then the journal and the disk's cache. Nothing here is
// a promise of durability, and no write-back error is consumed: the fsync
// still gives the one and reports the other. Where the call is not
// supported, its error is ignored and the fsync writes everything.
type writeBack struct {
	f         *os.File
	off, done int64 // bytes written; bytes whose write-out was started
}

func newWriteBack(f *os.File) *writeBack { return &writeBack{f: f} }

func (w *writeBack) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.done >= writeBackStep {
		// A failure here is no failure of the blob: the fsync writes
		// whatever this did not start.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.done, w.off-w.done, unix.SYNC_FILE_RANGE_WRITE)
		w.done = w.off
	}
	return n, err
}
