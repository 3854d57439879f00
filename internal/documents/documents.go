// Package documents is the use case of medical records' files: upload
// (detect, measure, encrypt and stream to blob storage, then attach to the
// case), short-lived signed download links, download with the right checked
// again, and removal by crypto-shredding.
package documents

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/workflow"
)

// DefaultMaxBytes is the default cap on one file (MAX_UPLOAD_BYTES).
const DefaultMaxBytes = 50 << 20

// Link lifetimes: downloadUrl's default and most.
const (
	DefaultLinkTTL = 300 * time.Second
	MaxLinkTTL     = 3600 * time.Second
)

// ErrTooLarge is the error of a file over the cap; the HTTP layer answers it
// with 413.
var ErrTooLarge = domain.Errorf(domain.CodeBadUserInput, "the file is larger than the upload limit")

// Accepted lists the content types accepted, as detected from the bytes
// (never as the client claims): PDF, JPEG, PNG, TIFF, DICOM Part 10 and
// plain text.
var Accepted = []string{"application/pdf", "image/jpeg", "image/png", "image/tiff", "application/dicom", "text/plain"}

// Service runs the documents use case.
type Service struct {
	st       *store.Store
	wf       *workflow.Service
	blobs    blob.Store
	keys     *keys.Keyring
	linkKey  []byte
	maxBytes int64
	now      func() time.Time
	log      *slog.Logger
}

// Options tune New.
type Options struct {
	// MaxBytes caps one file (DefaultMaxBytes when 0).
	MaxBytes int64
	// Now is the clock for links (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// New returns the service over its store, workflow, blob storage and keys.
func New(st *store.Store, wf *workflow.Service, blobs blob.Store, kr *keys.Keyring, o Options) *Service {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, wf: wf, blobs: blobs, keys: kr, linkKey: kr.Derive("download-links/v1"),
		maxBytes: o.MaxBytes, now: o.Now, log: o.Logger}
}

// MaxBytes is the cap on one file.
func (s *Service) MaxBytes() int64 { return s.maxBytes }

// Upload stores file as a new record of the case: the caller's right and the
// metadata are checked before a byte is read, the type is detected from the
// first bytes, and the file streams through SHA-256 and encryption into blob
// storage without being held whole anywhere. The record is written only
// once the blob is complete; a failure at any point leaves neither.
func (s *Service) Upload(ctx context.Context, p domain.Principal, caseID string, in workflow.RecordInput, file io.Reader) (*domain.Case, *domain.Record, error) {
	if err := s.wf.CheckRecord(ctx, p, caseID, in, true); err != nil {
		return nil, nil, err
	}
	head := make([]byte, 3072)
	n, err := io.ReadFull(file, head)
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil, domain.Errorf(domain.CodeBadUserInput, "the file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
	case err != nil:
		return nil, nil, fileErr(err)
	}
	head = head[:n]
	ct, ok := detect(head)
	if !ok {
		return nil, nil, domain.Errorf(domain.CodeBadUserInput, "this kind of file is not accepted: send PDF, JPEG, PNG, TIFF, DICOM or plain text")
	}

	dk, err := keys.NewDataKey()
	if err != nil {
		return nil, nil, err
	}
	blobKey := newBlobKey()
	sum := sha256.New()
	f := s.store(ctx, blobKey, dk, io.MultiReader(bytes.NewReader(head), file), sum)
	size, err := f.streamed()
	if err != nil {
		// The stores leave nothing behind a failed Put; delete anyway, in
		// case the failure came after the blob was complete.
		s.deleteBlob(ctx, blobKey)
		return nil, nil, err
	}
	// The data key is wrapped while storage finishes the file, as the
	// record is prepared below.
	wrapped, err := s.keys.Wrap(dk)
	if err != nil {
		_ = f.stored()
		s.deleteBlob(ctx, blobKey)
		return nil, nil, err
	}
	doc := &domain.Document{
		ContentType: ct, SizeBytes: int(size), SHA256: hex.EncodeToString(sum.Sum(nil)), UploadedAt: s.st.Now(),
		CaseID: caseID, BlobKey: blobKey, KeyID: wrapped.KeyID, WrappedKey: wrapped.Key,
	}
	recID := in.ID
	if recID == "" {
		recID = workflow.NewRecordID()
	}
	doc.RecordID = recID
	// The case is read and the record prepared while storage finishes the
	// file; the record is written once it has (f.stored answers nil).
	c, rec, err := s.wf.AddUploadedRecord(ctx, p, caseID, in, recID, doc, f.stored)
	// Whatever happened, the file's storing ends before its blob may be
	// deleted, so that no rename lands after the delete.
	_ = f.stored()
	if err != nil {
		s.deleteBlob(ctx, blobKey)
		return nil, nil, err
	}
	if rec.Document == nil || rec.Document.BlobKey != blobKey {
		// The record was there already (a retried import): this copy of
		// the file is not needed.
		s.deleteBlob(ctx, blobKey)
	}
	return c, rec, nil
}

// Accepts reports whether a file starting with head is of a type the
// service stores (the check Upload makes), so a caller holding the whole
// file can refuse it before it changes anything.
func (s *Service) Accepts(head []byte) bool {
	_, ok := detect(head)
	return ok
}

// storing is put running in a goroutine of its own: streamed answers once
// the whole file is read, hashed and handed to storage (sum is final
// then), stored once storage has it for good (after the directory store's
// fsync and rename, or S3's last part).
type storing struct {
	all  chan int64    // the size, once the file is handed to storage
	done chan struct{} // closed when put returned
	err  error         // put's, once done is closed
}

// store starts put in a goroutine of its own.
func (s *Service) store(ctx context.Context, key string, dk *keys.DataKey, src io.Reader, sum hash.Hash) *storing {
	f := &storing{all: make(chan int64, 1), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_, f.err = s.put(ctx, key, dk, src, sum, func(size int64) { f.all <- size })
	}()
	return f
}

// streamed waits until the file is handed to storage and returns its size,
// or put's error if it failed before.
func (f *storing) streamed() (int64, error) {
	select {
	case size := <-f.all:
		return size, nil
	case <-f.done:
		select {
		case size := <-f.all: // handed over, and stored meanwhile
			return size, f.err
		default:
			return 0, f.err
		}
	}
}

// stored waits until put returned and returns its error.
func (f *storing) stored() error {
	<-f.done
	return f.err
}

// put encrypts src under dk into the blob key, hashing the plaintext into
// sum, and returns the plaintext size. Over the cap it stops with
// ErrTooLarge. The work is shared by three goroutines (stream.go): this
// one reads and encrypts, one hashes, one writes to storage. streamed,
// when set, is called with the size once the whole file is handed to
// storage and sum is final, before storage makes it durable.
func (s *Service) put(ctx context.Context, key string, dk *keys.DataKey, src io.Reader, sum hash.Hash, streamed func(size int64)) (int64, error) {
	var size int64
	err := blob.Write(ctx, s.blobs, key, func(w io.Writer) (err error) {
		// The sealed bytes go to storage in chunks larger than the
		// format's 64 KiB packages, from the write-behind goroutine.
		out := newWriteBehind(w, chunkSize)
		flushed := false
		defer func() {
			if !flushed {
				_ = out.finish(false)
			}
		}()
		enc, err := dk.Encrypt(out)
		if err != nil {
			return err
		}
		h := newHasher(sum, chunkSize, 3)
		defer h.close()
		in := &sourceReader{r: io.LimitReader(src, s.maxBytes+1)}
		for {
			buf := h.buffer()
			n, rerr := io.ReadFull(in, buf)
			if in.err != nil {
				// The client's file could not be read to its end.
				return fileErr(in.err)
			}
			size += int64(n)
			if size > s.maxBytes {
				return ErrTooLarge
			}
			if n > 0 {
				h.add(buf[:n])
				if _, err := enc.Write(buf[:n]); err != nil {
					return err
				}
			}
			if rerr != nil {
				break // io.EOF or io.ErrUnexpectedEOF: the end of the file
			}
		}
		if err := enc.Close(); err != nil {
			return err
		}
		flushed = true
		if err := out.finish(true); err != nil {
			return err
		}
		h.close() // every chunk hashed: sum is final
		if streamed != nil {
			streamed(size)
		}
		return nil
	})
	if err != nil {
		if domain.ErrorCode(err) == domain.CodeBadUserInput {
			return 0, err // the client's mistake (ErrTooLarge is one)
		}
		return 0, fmt.Errorf("documents: store blob: %w", err)
	}
	return size, nil
}

// sourceReader remembers a failure to read the client's file, so that it
// is told apart from a failure to write it on.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *Service) deleteBlob(ctx context.Context, key string) {
	if err := s.blobs.Delete(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn("documents: deleting a blob failed", "blob", key, "error", err.Error())
	}
}

// fileErr reports a failure to read the client's file as the client's.
func fileErr(err error) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return domain.Errorf(domain.CodeBadUserInput, "the file could not be read to its end")
}

// detect names head's content type when it is one of Accepted.
func detect(head []byte) (string, bool) {
	mt := mimetype.Detect(head)
	for _, a := range Accepted {
		if mt.Is(a) {
			if a == "text/plain" {
				return "text/plain; charset=utf-8", mt.String() == "text/plain; charset=utf-8"
			}
			return a, true
		}
	}
	return "", false
}

func newBlobKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "doc-" + hex.EncodeToString(b)
}

// Remove takes a record off its case before the review starts and
// crypto-shreds its document: the wrapped data key goes with the record,
// then the blob is deleted.
func (s *Service) Remove(ctx context.Context, p domain.Principal, caseID, recordID string) (*domain.Case, error) {
	c, rec, err := s.wf.RemoveMedicalRecord(ctx, p, caseID, recordID)
	if err != nil {
		return nil, err
	}
	if rec.Document != nil {
		// Without its key the blob is already unreadable; deleting it frees
		// the space.
		s.deleteBlob(ctx, rec.Document.BlobKey)
	}
	return c, nil
}
