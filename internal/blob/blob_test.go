package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
)

// fakeS3 is an in-process S3-compatible server on 127.0.0.1, reached over
// real HTTP with path-style addressing and static credentials.
type fakeS3 struct {
	srv     *httptest.Server
	backend *s3mem.Backend
}

func newFakeS3(t testing.TB, bucket string) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(bucket))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return &fakeS3{srv: srv, backend: backend}
}

func (f *fakeS3) options() blob.S3Options {
	return blob.S3Options{Endpoint: f.srv.URL, Region: "us-east-1", AccessKeyID: "test-key", SecretAccessKey: "test-secret", PathStyle: true}
}

// rawObject reads an object straight from the fake's backend, past the
// store under test.
func (f *fakeS3) rawObject(t *testing.T, bucket, key string) []byte {
	t.Helper()
	obj, err := f.backend.GetObject(bucket, key, nil)
	require.NoError(t, err)
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	require.NoError(t, err)
	return b
}

// stores lists every implementation the contract runs against.
func stores(t *testing.T) map[string]blob.Store {
	dir, err := blob.NewDir(t.TempDir())
	require.NoError(t, err)
	f := newFakeS3(t, "records")
	o := f.options()
	o.Bucket, o.Prefix = "records", "docs"
	s3, err := blob.NewS3(context.Background(), o)
	require.NoError(t, err)
	// Through Open too, as BLOB_URL selects it.
	opened, err := blob.Open(context.Background(), "s3://records/opened", "", f.options())
	require.NoError(t, err)
	return map[string]blob.Store{"directory": dir, "s3": s3, "s3 from BLOB_URL": opened}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// failingReader returns n bytes of data, then fails.
type failingReader struct {
	r io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("client went away")
	}
	return n, err
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("a small blob reads back as written", func(t *testing.T) {
				want := []byte("pathology report, page 1")
				require.NoError(t, st.Put(ctx, "small-blob-0001", bytes.NewReader(want)))
				rc, err := st.Get(ctx, "small-blob-0001")
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, rc.Close())
				require.NoError(t, err)
				assert.Equal(t, want, got)
			})
			t.Run("a blob of several parts reads back as written", func(t *testing.T) {
				want := randomBytes(t, 2*blob.DefaultPartSize+12345)
				require.NoError(t, st.Put(ctx, "large-blob-0001", bytes.NewReader(want)))
				rc, err := st.Get(ctx, "large-blob-0001")
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, rc.Close())
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want, got), "the %d bytes read back differ", len(got))
			})
			t.Run("an empty blob reads back empty", func(t *testing.T) {
				require.NoError(t, st.Put(ctx, "empty-blob-0001", strings.NewReader("")))
				rc, err := st.Get(ctx, "empty-blob-0001")
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, rc.Close())
				require.NoError(t, err)
				assert.Empty(t, got)
			})
			t.Run("putting a key again replaces it", func(t *testing.T) {
				require.NoError(t, st.Put(ctx, "replaced-0001", strings.NewReader("first")))
				require.NoError(t, st.Put(ctx, "replaced-0001", strings.NewReader("second")))
				rc, err := st.Get(ctx, "replaced-0001")
				require.NoError(t, err)
				got, _ := io.ReadAll(rc)
				_ = rc.Close()
				assert.Equal(t, "second", string(got))
			})
			t.Run("a missing key is not found", func(t *testing.T) {
				_, err := st.Get(ctx, "never-written-0001")
				assert.ErrorIs(t, err, blob.ErrNotFound)
			})
			t.Run("a deleted blob is gone, and deleting again is no error", func(t *testing.T) {
				require.NoError(t, st.Put(ctx, "deleted-0001", strings.NewReader("shred me")))
				require.NoError(t, st.Delete(ctx, "deleted-0001"))
				_, err := st.Get(ctx, "deleted-0001")
				assert.ErrorIs(t, err, blob.ErrNotFound)
				assert.NoError(t, st.Delete(ctx, "deleted-0001"))
			})
			for _, size := range []int{100, 2*blob.DefaultPartSize + 10} {
				t.Run("an upload that fails midway leaves nothing", func(t *testing.T) {
					err := st.Put(ctx, "failed-0001", &failingReader{r: bytes.NewReader(randomBytes(t, size))})
					require.Error(t, err)
					_, err = st.Get(ctx, "failed-0001")
					assert.ErrorIs(t, err, blob.ErrNotFound)
				})
			}
			t.Run("a cancelled upload leaves nothing", func(t *testing.T) {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				err := st.Put(cctx, "cancelled-0001", bytes.NewReader(randomBytes(t, 1000)))
				require.Error(t, err)
				_, err = st.Get(ctx, "cancelled-0001")
				assert.ErrorIs(t, err, blob.ErrNotFound)
			})
			t.Run("a key that is not a safe name is refused", func(t *testing.T) {
				for _, key := range []string{"../escape-0001", "UPPER-CASE-0001", "a/b/c-0000001", "short"} {
					assert.Error(t, st.Put(ctx, key, strings.NewReader("x")), key)
					_, err := st.Get(ctx, key)
					assert.Error(t, err, key)
					assert.Error(t, st.Delete(ctx, key), key)
				}
			})
		})
	}
}

func TestS3(t *testing.T) {
	ctx := context.Background()
	t.Run("objects live under the prefix of BLOB_URL in its bucket", func(t *testing.T) {
		f := newFakeS3(t, "medical")
		st, err := blob.Open(ctx, "s3://medical/tenant-a/docs", "", f.options())
		require.NoError(t, err)
		require.NoError(t, st.Put(ctx, "prefixed-0001", strings.NewReader("marker-in-s3")))
		assert.Equal(t, "marker-in-s3", string(f.rawObject(t, "medical", "tenant-a/docs/prefixed-0001")))
	})
	t.Run("a failed multipart upload is aborted, leaving no parts behind", func(t *testing.T) {
		f := newFakeS3(t, "medical")
		o := f.options()
		o.Bucket = "medical"
		st, err := blob.NewS3(ctx, o)
		require.NoError(t, err)
		err = st.Put(ctx, "aborted-0001", &failingReader{r: bytes.NewReader(randomBytes(t, blob.DefaultPartSize+10))})
		require.Error(t, err)
		list, err := f.backend.ListBucket("medical", nil, gofakes3.ListBucketPage{})
		require.NoError(t, err)
		assert.Empty(t, list.Contents)
	})
	t.Run("a bucket that does not exist fails the upload", func(t *testing.T) {
		f := newFakeS3(t, "medical")
		st, err := blob.Open(ctx, "s3://elsewhere", "", f.options())
		require.NoError(t, err)
		assert.Error(t, st.Put(ctx, "nowhere-0001", strings.NewReader("x")))
	})
	t.Run("credentials and a bucket are required", func(t *testing.T) {
		_, err := blob.NewS3(ctx, blob.S3Options{Bucket: "b"})
		assert.Error(t, err)
		_, err = blob.NewS3(ctx, blob.S3Options{AccessKeyID: "k", SecretAccessKey: "s"})
		assert.Error(t, err)
		_, err = blob.Open(ctx, "s3:///prefix-only", "", blob.S3Options{AccessKeyID: "k", SecretAccessKey: "s"})
		assert.Error(t, err)
	})
}

// Write is the road the documents take: a directory hands over its file,
// any other store is fed through a pipe into Put. Both keep Put's promise.
func TestWriteContract(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("what write writes reads back", func(t *testing.T) {
				want := randomBytes(t, blob.DefaultPartSize+4321)
				require.NoError(t, blob.Write(ctx, st, "written-0001", func(w io.Writer) error {
					for p := want; len(p) > 0; p = p[min(len(p), 70000):] {
						if _, err := w.Write(p[:min(len(p), 70000)]); err != nil {
							return err
						}
					}
					return nil
				}))
				rc, err := st.Get(ctx, "written-0001")
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, rc.Close())
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want, got), "the %d bytes read back differ", len(got))
			})
			t.Run("a write that fails midway leaves nothing and says why", func(t *testing.T) {
				stop := errors.New("the client went away")
				err := blob.Write(ctx, st, "write-failed-0001", func(w io.Writer) error {
					if _, err := w.Write(randomBytes(t, 1000)); err != nil {
						return err
					}
					return stop
				})
				assert.ErrorIs(t, err, stop)
				_, err = st.Get(ctx, "write-failed-0001")
				assert.ErrorIs(t, err, blob.ErrNotFound)
			})
			t.Run("a cancelled write leaves nothing", func(t *testing.T) {
				cctx, cancel := context.WithCancel(ctx)
				err := blob.Write(cctx, st, "write-cancelled-0001", func(w io.Writer) error {
					_, _ = w.Write(randomBytes(t, 1000))
					cancel()
					_, err := w.Write(randomBytes(t, 1000))
					return err
				})
				require.Error(t, err)
				_, err = st.Get(ctx, "write-cancelled-0001")
				assert.ErrorIs(t, err, blob.ErrNotFound)
			})
		})
	}
	t.Run("a store that fails midway fails the writer with its error", func(t *testing.T) {
		dir, err := blob.NewDir(t.TempDir())
		require.NoError(t, err)
		st := halfFullDisk{dir}
		wrote := 0
		err = blob.Write(ctx, st, "disk-full-0001", func(w io.Writer) error {
			for range 100 {
				if _, err := w.Write(make([]byte, 1024)); err != nil {
					return err
				}
				wrote++
			}
			return nil
		})
		assert.ErrorIs(t, err, errDiskFull)
		assert.Less(t, wrote, 100, "the writer went on after the store stopped")
		_, err = dir.Get(ctx, "disk-full-0001")
		assert.ErrorIs(t, err, blob.ErrNotFound)
	})
}

var errDiskFull = errors.New("disk full")

// halfFullDisk is a store without a writer of its own (so Write feeds its
// Put through a pipe) whose Put takes 4 KiB and fails.
type halfFullDisk struct{ blob.Store }

func (halfFullDisk) Put(_ context.Context, _ string, r io.Reader) error {
	_, _ = io.CopyN(io.Discard, r, 4096)
	return errDiskFull
}
