//go:build !linux

package blob

import "os"

// writeBack is the blob's file as it is elsewhere than on Linux: the
// fsync that ends the blob writes it all.
type writeBack struct{ *os.File }

func newWriteBack(f *os.File) writeBack { return writeBack{f} }
