// Package blob stores document files (already encrypted by the caller)
// outside the database: a directory by default, or an S3-compatible bucket.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ErrNotFound is returned by Get for a key that holds nothing.
var ErrNotFound = errors.New("blob: not found")

// Store keeps blobs by key.
type Store interface {
	// Put streams r into key. On any error nothing is left under key.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens key for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// writerStore is a Store that hands out a writer of its own (Dir).
type writerStore interface {
	Write(ctx context.Context, key string, write func(w io.Writer) error) error
}

// Write stores under key what write writes, with Put's guarantee: on any
// error nothing is left under key. A store with a writer of its own (a
// directory) takes the writes directly; any other is fed through an
// io.Pipe into its Put, and a Put that fails makes write's next Write
// fail with Put's error. The error returned is write's when it failed
// (which may be Put's error, seen through the pipe), else Put's.
func Write(ctx context.Context, st Store, key string, write func(w io.Writer) error) error {
	if ws, ok := st.(writerStore); ok {
		return ws.Write(ctx, key, write)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil: EOF for Put
		done <- err
	}()
	putErr := st.Put(ctx, key, pr)
	stop := putErr
	if stop == nil {
		stop = errStoppedReading
	}
	_ = pr.CloseWithError(stop) // unblocks the writer if Put gave up
	if err := <-done; err != nil {
		return err
	}
	return putErr
}

// errStoppedReading is what write sees when Put returned without reading
// to the end.
var errStoppedReading = errors.New("blob: storage stopped reading")

// validKey keeps keys to names that are safe as file names and object keys.
var validKey = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{7,80}$`)

func checkKey(key string) error {
	if !validKey.MatchString(key) {
		return fmt.Errorf("blob: invalid key %q", key)
	}
	return nil
}

// Open returns the store BLOB_URL names: empty or file://path is a directory
// (empty: dataDir/blobs), s3://bucket/prefix an S3-compatible bucket reached
// with s3o (its Bucket and Prefix come from the URL).
func Open(ctx context.Context, rawURL, dataDir string, s3o S3Options) (Store, error) {
	switch {
	case rawURL == "":
		return NewDir(filepath.Join(dataDir, "blobs"))
	case strings.HasPrefix(rawURL, "file://"):
		return NewDir(strings.TrimPrefix(rawURL, "file://"))
	case strings.HasPrefix(rawURL, "s3://"):
		u, err := url.Parse(rawURL)
		if err != nil || u.Host == "" {
			return nil, errors.New("blob: BLOB_URL must be s3://bucket/prefix")
		}
		s3o.Bucket, s3o.Prefix = u.Host, strings.Trim(u.Path, "/")
		return NewS3(ctx, s3o)
	}
	return nil, errors.New("blob: BLOB_URL must be empty, file://dir or s3://bucket/prefix")
}

// Dir keeps each blob as a file in one directory.
type Dir struct{ root string }

// NewDir returns a store in root, creating it (mode 0700).
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Dir{root: root}, nil
}

// Put writes to a temporary file and renames it into place once complete,
// so a reader never sees a partial blob and a failure leaves none.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) error {
	return d.Write(ctx, key, func(w io.Writer) error {
		// 1 MiB writes: io.Copy would move the file 32 KiB a system call
		// (the file's ReadFrom falls back to that for a reader it cannot
		// splice), and so would a reader's own WriteTo, which the bare
		// io.Reader hides.
		_, err := io.CopyBuffer(w, struct{ io.Reader }{r}, make([]byte, 1<<20))
		return err
	})
}

// Write hands write the blob's file itself (as a plain io.Writer: each
// Write is one write system call, so the caller chooses their size; each
// MiB written also starts its write-out to disk, writeback_linux.go), then
// syncs it and renames it into place, as Put does. An error from write, or
// a cancelled ctx, leaves nothing under key.
func (d *Dir) Write(ctx context.Context, key string, write func(w io.Writer) error) (err error) {
	if err := checkKey(key); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.root, ".part-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = write(ctxWriter{ctx: ctx, w: newWriteBack(f)}); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err = os.Rename(f.Name(), filepath.Join(d.root, key)); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	// The rename is durable once the directory is: without this sync a
	// power cut could lose the file's name after its record was written.
	if err := syncDir(d.root); err != nil {
		_ = os.Remove(filepath.Join(d.root, key))
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// writeBackStep is how much of a blob is written before its write-out to
// disk is started (Linux).
const writeBackStep = 1 << 20

// syncDir flushes the directory dir itself (the names in it) to disk.
func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = df.Sync()
	return errors.Join(err, df.Close())
}

// Get opens the blob's file.
func (d *Dir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.root, key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Delete removes the blob's file.
func (d *Dir) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(d.root, key))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ctxWriter stops a copy once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ctxReader stops a copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
