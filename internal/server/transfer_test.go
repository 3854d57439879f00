package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/server"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
)

// A document may take minutes to reach a member or a specialist, or to come
// from them, on a poor network. The server's deadlines (REQUEST_TIMEOUT for
// the request's context, REQUEST_TIMEOUT + 5 s for its writes) are for short
// requests: a download that ran past them was cut, whatever its pace. A
// transfer is instead bounded by its progress (the stall limit) and by the
// transfer limit.

// slowServer serves env's gateway as app.Run does, its write deadline
// just past the request timeout, which env was started with.
func slowServer(t *testing.T, env *testenv.Env, requestTimeout time.Duration) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(env.Handler)
	srv.Config.WriteTimeout = requestTimeout + 200*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// bigUpload uploads a PDF of n random bytes to a new case of a new member
// and returns it and its link (valid a minute).
func bigUpload(t *testing.T, env *testenv.Env, n int) (content []byte, link string) {
	t.Helper()
	content, link, _ = bigUploadCase(t, env, n)
	return content, link
}

// bigUploadCase is bigUpload, with the case it went to.
func bigUploadCase(t *testing.T, env *testenv.Env, n int) (content []byte, link, caseID string) {
	t.Helper()
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	content = make([]byte, n)
	_, _ = rand.Read(content)
	copy(content, "%PDF-1.7\n")
	res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: content})
	require.Empty(t, res.Errors, res.Raw)
	recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
	link = urlOf(t, linkFor(t, env, lc.member, lc.caseID, recID, 60), recID)
	require.NotEmpty(t, link)
	return content, link, lc.caseID
}

// smallBufferClient is an HTTP client whose connections take at most 64
// KiB into their receive buffer: a client on a slow network.
func smallBufferClient(t *testing.T) *http.Client {
	t.Helper()
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return c, err
	}}}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// slowGet downloads url as a client on a slow network: a small receive
// buffer (64 KiB), 32 KiB taken every pause. After stallAfter bytes (0: never) it
// takes nothing for stall, then reads on. It returns what it got and how
// the body ended.
func slowGet(t *testing.T, url string, pause time.Duration, stallAfter int, stall time.Duration) ([]byte, error) {
	t.Helper()
	client := smallBufferClient(t)
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got []byte
	buf := make([]byte, 32<<10)
	stalled := false
	for {
		if stallAfter > 0 && !stalled && len(got) >= stallAfter {
			stalled = true
			time.Sleep(stall)
		}
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		time.Sleep(pause)
	}
}

// A download that keeps going gets the whole file, however long past the
// request timeout it takes (here about four times the server's write
// deadline), from either store: an S3 object's body is read under the
// request's context.
func TestASlowDownloadIsNotCutByTheRequestTimeout(t *testing.T) {
	const requestTimeout = 300 * time.Millisecond
	for name, blobs := range map[string]func(t *testing.T) blob.Store{
		"directory": func(*testing.T) blob.Store { return nil },
		"S3":        fakeS3,
	} {
		t.Run(name, func(t *testing.T) {
			env := testenv.Start(t, testenv.Options{RequestTimeout: requestTimeout, Blobs: blobs(t)})
			content, link := bigUpload(t, env, 8<<20)
			base := slowServer(t, env, requestTimeout)
			start := time.Now()
			got, err := slowGet(t, base+link, 8*time.Millisecond, 0, 0)
			require.NoError(t, err, "cut after %d of %d bytes, %v in", len(got), len(content), time.Since(start))
			assert.Greater(t, time.Since(start), 2*(requestTimeout+200*time.Millisecond), "the client was slow enough to outlast the old deadlines")
			assert.Equal(t, len(content), len(got))
			assert.True(t, bytes.Equal(content, got), "the file's bytes")
		})
	}
}

// fakeS3 is a bucket on an in-process S3-compatible server over HTTP.
func fakeS3(t *testing.T) blob.Store {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("records"))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	blobs, err := blob.Open(context.Background(), "s3://records/gateway", "", blob.S3Options{
		Endpoint: srv.URL, Region: "us-east-1", AccessKeyID: "test-key", SecretAccessKey: "test-secret", PathStyle: true,
	})
	require.NoError(t, err)
	return blobs
}

// A client that stops taking the file is cut once it has taken nothing
// for the stall limit: a download cannot hold its connection and its
// buffers for as long as the transfer limit allows.
func TestAStalledDownloadIsCut(t *testing.T) {
	env := testenv.Start(t, testenv.Options{TransferStall: 400 * time.Millisecond})
	content, link := bigUpload(t, env, 8<<20)
	// No server deadline: only the stall limit can cut it.
	srv := httptest.NewServer(env.Handler)
	t.Cleanup(srv.Close)
	got, err := slowGet(t, srv.URL+link, 0, 64<<10, 1500*time.Millisecond)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the download was cut")
	assert.Less(t, len(got), len(content))
	assert.Equal(t, content[:len(got)], got, "what came is the file's start")
}

// A download that keeps going but would outlast the transfer limit is cut
// at it.
func TestADownloadEndsAtTheTransferLimit(t *testing.T) {
	// The limit bounds the upload that makes the file too: 2 s is twenty
	// times what it takes.
	const limit = 2 * time.Second
	env := testenv.Start(t, testenv.Options{TransferTimeout: limit})
	content, link := bigUpload(t, env, 8<<20)
	srv := httptest.NewServer(env.Handler)
	t.Cleanup(srv.Close)
	start := time.Now()
	// About 1.6 MB/s: some 5 s for the file.
	got, err := slowGet(t, srv.URL+link, 20*time.Millisecond, 0, 0)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the download was cut")
	assert.Less(t, len(got), len(content))
	assert.Equal(t, content[:len(got)], got, "what came is the file's start")
	assert.Less(t, time.Since(start), 10*time.Second)
}

// An upload whose client stops sending is cut once it has sent nothing for
// the stall limit, and leaves neither a record nor a file; one that keeps
// sending, however slowly, is stored.
func TestAStalledUploadIsCutAndLeavesNothing(t *testing.T) {
	env := testenv.Start(t, testenv.Options{TransferStall: 400 * time.Millisecond})
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	srv := httptest.NewServer(env.Handler)
	t.Cleanup(srv.Close)
	file := make([]byte, 2<<20)
	_, _ = rand.Read(file)
	copy(file, "%PDF-1.7\n")

	// send uploads file in 64 KiB pieces, pause apart, pausing for stall
	// once half of it is sent.
	send := func(pause, stall time.Duration) testenv.Response {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			ops, _ := json.Marshal(map[string]any{"query": uploadDoc, "variables": map[string]any{"in": map[string]any{
				"caseId": lc.caseID, "title": "Slow scan", "kind": "IMAGING", "file": nil,
			}}})
			_ = mw.WriteField("operations", string(ops))
			_ = mw.WriteField("map", `{"0": ["variables.in.file"]}`)
			fw, _ := mw.CreateFormFile("0", "scan.pdf")
			for off := 0; off < len(file); off += 64 << 10 {
				if off == len(file)/2 {
					time.Sleep(stall)
				}
				if _, err := fw.Write(file[off : off+64<<10]); err != nil {
					_ = pw.CloseWithError(err)
					return
				}
				time.Sleep(pause)
			}
			_ = pw.CloseWithError(mw.Close())
		}()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql", pr)
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+lc.member)
		req.Header.Set("Apollo-Require-Preflight", "true")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out testenv.Response
		require.NoError(t, json.Unmarshal(body, &out), string(body))
		out.Raw = string(body)
		return out
	}

	res := send(0, 1500*time.Millisecond)
	assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
	assert.Equal(t, 0, recordCount(t, env, lc.caseID), "no record")
	assert.Empty(t, blobFiles(t, env), "no file")

	// Slow but steady: 32 pieces 50 ms apart, each well within the limit.
	res = send(50*time.Millisecond, 0)
	require.Empty(t, res.Errors, res.Raw)
	assert.Equal(t, 1, recordCount(t, env, lc.caseID))
}

// holdDownload starts a download through a small receive buffer and does
// not read its body: the server stays in the middle of it until the body
// is closed.
func holdDownload(t *testing.T, url string) *http.Response {
	t.Helper()
	client := smallBufferClient(t)
	resp, err := client.Get(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// Downloads under way are bounded, in all and for one principal: a client
// that opened as many as it may gets 429 RATE_LIMITED for the next, before
// a byte is read or audited, and a slot given back serves the next one.
// Without a bound one address kept thousands open within its request rate,
// each holding a connection, a file and its read-ahead for minutes.
func TestDownloadsUnderWayAreBounded(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Downloads: server.DownloadLimits{Total: 3, PerPrincipal: 2}})
	_, linkA := bigUpload(t, env, 8<<20)
	_, linkB := bigUpload(t, env, 8<<20)
	srv := httptest.NewServer(env.Handler)
	t.Cleanup(srv.Close)

	a1 := holdDownload(t, srv.URL+linkA)
	a2 := holdDownload(t, srv.URL+linkA)
	require.Equal(t, http.StatusOK, a1.StatusCode)
	require.Equal(t, http.StatusOK, a2.StatusCode)

	refused := func(resp *http.Response) {
		t.Helper()
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		var out testenv.Response
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		assert.Equal(t, []string{"RATE_LIMITED"}, out.Codes())
	}
	// A third for the same principal, though the server has room.
	refused(holdDownload(t, srv.URL+linkA))
	// Another principal takes the server's last slot, then finds it full.
	b1 := holdDownload(t, srv.URL+linkB)
	require.Equal(t, http.StatusOK, b1.StatusCode)
	refused(holdDownload(t, srv.URL+linkB))

	// A download that ends gives its slot back.
	require.NoError(t, a1.Body.Close())
	require.Eventually(t, func() bool {
		resp := holdDownload(t, srv.URL+linkB)
		defer func() { _ = resp.Body.Close() }()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
}

// countingStore counts the bytes read from a store's files: read front to
// back, as an S3 object is, or, with atOffsets, also at offsets, as the
// directory store's files are (the download's read-ahead).
type countingStore struct {
	blob.Store
	read      *atomic.Int64
	atOffsets bool
}

func (c countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	r := countingReader{rc, c.read}
	if f, ok := rc.(*os.File); ok && c.atOffsets {
		return countingFile{r, f}, nil
	}
	return r, nil
}

type countingReader struct {
	io.ReadCloser
	read *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.read.Add(int64(n))
	return n, err
}

type countingFile struct {
	countingReader
	f *os.File
}

func (c countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

func (c countingFile) Stat() (os.FileInfo, error) { return c.f.Stat() }

// A HEAD of a link answers the download's headers without the file: it
// used to decrypt the whole file for net/http to throw away, so that a
// client could make the gateway read and decrypt 50 MiB for a response of
// a few hundred bytes, as often as it liked. It is still a download in
// every other way: checked, counted, audited, and refused when its audit
// cannot be written.
func TestAHeadOfALinkReadsNoFile(t *testing.T) {
	const size = 4 << 20
	head := func(t *testing.T, url string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodHead, url, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		return res
	}
	for name, atOffsets := range map[string]bool{"read front to back (S3)": false, "read at offsets (directory)": true} {
		t.Run(name, func(t *testing.T) {
			dir, err := blob.NewDir(t.TempDir())
			require.NoError(t, err)
			var read atomic.Int64
			env := testenv.Start(t, testenv.Options{Blobs: countingStore{Store: dir, read: &read, atOffsets: atOffsets}})
			content, link, caseID := bigUploadCase(t, env, size)
			srv := httptest.NewServer(env.Handler)
			t.Cleanup(srv.Close)

			read.Store(0)
			res := head(t, srv.URL+link)
			require.Equal(t, http.StatusOK, res.StatusCode)
			assert.Equal(t, "4194304", res.Header.Get("Content-Length"))
			assert.Equal(t, "application/pdf", res.Header.Get("Content-Type"))
			assert.Equal(t, "no-store", res.Header.Get("Cache-Control"))
			assert.Less(t, read.Load(), int64(256<<10), "a HEAD read %d bytes of the stored file", read.Load())
			ops := env.As(t, "coordinator", `query($c: ID) { auditEvents(first: 100, filter: {caseId: $c}) { edges { node { operation resourceType outcome } } } }`,
				map[string]any{"c": caseID})
			require.Empty(t, ops.Errors, ops.Raw)
			assert.Contains(t, ops.Raw, `{"operation":"HEAD /files","resourceType":"Document","outcome":"ALLOWED"}`)

			// A tampered link is a 404 for a HEAD, as for a GET.
			assert.Equal(t, http.StatusNotFound, head(t, srv.URL+link[:len(link)-2]+"xx").StatusCode)

			// The counter sees a GET read the whole file.
			read.Store(0)
			got, err := http.Get(srv.URL + link)
			require.NoError(t, err)
			body, err := io.ReadAll(got.Body)
			require.NoError(t, err)
			require.NoError(t, got.Body.Close())
			assert.True(t, bytes.Equal(content, body))
			assert.GreaterOrEqual(t, read.Load(), int64(size))
		})
	}
	t.Run("refused when its audit cannot be written", func(t *testing.T) {
		var failing atomic.Bool
		env := testenv.Start(t, testenv.Options{AuditSink: func(st *store.Store) audit.Sink {
			return switchedSink{Sink: st, fail: &failing}
		}})
		_, link := bigUpload(t, env, 1<<20)
		srv := httptest.NewServer(env.Handler)
		t.Cleanup(srv.Close)
		failing.Store(true)
		res := head(t, srv.URL+link)
		assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
		assert.NotEqual(t, "1048576", res.Header.Get("Content-Length"), "the file's headers")
		failing.Store(false)
		assert.Equal(t, http.StatusOK, head(t, srv.URL+link).StatusCode)
	})
}

// switchedSink is sink, failing every write while fail is set.
type switchedSink struct {
	audit.Sink
	fail *atomic.Bool
}

func (s switchedSink) AppendAudit(ctx context.Context, evs []domain.AuditEvent) error {
	if s.fail.Load() {
		return errors.New("audit store unavailable")
	}
	return s.Sink.AppendAudit(ctx, evs)
}
