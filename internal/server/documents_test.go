package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

const uploadDoc = `mutation($in: UploadMedicalRecordInput!) { uploadMedicalRecord(input: $in) {
  case { status events { type } } record { id title kind document { contentType sizeBytes sha256 uploadedAt downloadUrl } } } }`

// marker is a value no encrypted file may show.
const marker = "PHI-MARKER-7f3a9c"

// Samples of every accepted type, each carrying the marker.
var samples = map[string][]byte{
	"application/pdf": []byte("%PDF-1.7\n1 0 obj << /Title (" + marker + ") >> endobj\ntrailer\n%%EOF\n"),
	"image/jpeg":      append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01}, []byte(marker)...),
	"image/png":       append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"), []byte(marker)...),
	"image/tiff":      append([]byte{'I', 'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00}, []byte(marker)...),
	"application/dicom": append(append(make([]byte, 128), []byte("DICM\x02\x00\x00\x00UL\x04\x00")...),
		[]byte(marker)...),
	"text/plain; charset=utf-8": []byte("Pathology report\nPatient: " + marker + "\nNo malignancy.\n"),
}

type uploadReq struct {
	caseID, title, filename, claimed string
	content                          []byte
	noPreflight                      bool
}

// upload sends uploadMedicalRecord as a GraphQL multipart request.
func upload(t *testing.T, env *testenv.Env, token string, u uploadReq) testenv.Response {
	t.Helper()
	if u.title == "" {
		u.title = "Biopsy report"
	}
	if u.filename == "" {
		u.filename = "report.pdf"
	}
	if u.claimed == "" {
		u.claimed = "application/pdf"
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, _ := json.Marshal(map[string]any{"query": uploadDoc, "variables": map[string]any{"in": map[string]any{
		"caseId": u.caseID, "title": u.title, "kind": "PATHOLOGY", "recordedOn": "2026-01-10", "file": nil,
	}}})
	require.NoError(t, mw.WriteField("operations", string(ops)))
	require.NoError(t, mw.WriteField("map", `{"0": ["variables.in.file"]}`))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="0"; filename="`+u.filename+`"`)
	h.Set("Content-Type", u.claimed)
	fw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, _ = fw.Write(u.content)
	require.NoError(t, mw.Close())
	req := httptest.NewRequest(http.MethodPost, "/graphql", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	if !u.noPreflight {
		req.Header.Set("Apollo-Require-Preflight", "true")
	}
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	var out struct {
		Data   map[string]any  `json:"data"`
		Errors []testenv.Error `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), "body: %s", rec.Body.String())
	return testenv.Response{Status: rec.Code, Data: out.Data, Errors: out.Errors, Raw: rec.Body.String()}
}

// download fetches a link.
func download(t *testing.T, env *testenv.Env, link string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link, nil))
	return rec
}

// blobFiles lists the files in the blob directory (partial ones included).
func blobFiles(t *testing.T, env *testenv.Env) []string {
	t.Helper()
	entries, err := os.ReadDir(env.BlobDir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(env.BlobDir, e.Name()))
	}
	return out
}

func recordCount(t testing.TB, env *testenv.Env, caseID string) int {
	t.Helper()
	res := env.As(t, "coordinator", `query($id: ID!) { case(id: $id) { records { id } } }`, map[string]any{"id": caseID})
	require.Empty(t, res.Errors, res.Raw)
	return len(testenv.Get(res.Data, "case", "records").([]any))
}

func linkFor(t *testing.T, env *testenv.Env, token, caseID, recordID string, expires int) testenv.Response {
	t.Helper()
	return env.Do(t, token, `query($id: ID!, $s: Int) { case(id: $id) { records { id document { downloadUrl(expiresInSeconds: $s) } } } }`,
		map[string]any{"id": caseID, "s": expires})
}

func urlOf(t *testing.T, res testenv.Response, recordID string) string {
	t.Helper()
	for _, r := range testenv.Get(res.Data, "case", "records").([]any) {
		m := r.(map[string]any)
		if m["id"] == recordID {
			u, _ := testenv.Get(m, "document", "downloadUrl").(string)
			return u
		}
	}
	return ""
}

func TestUploadAcceptsEachTypeFromItsBytesAndStoresItEncrypted(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	for ct, content := range samples {
		t.Run(ct+" is accepted, measured and hashed", func(t *testing.T) {
			res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: content, claimed: "application/octet-stream"})
			require.Empty(t, res.Errors, res.Raw)
			doc := testenv.Get(res.Data, "uploadMedicalRecord", "record", "document").(map[string]any)
			assert.Equal(t, ct, doc["contentType"])
			assert.EqualValues(t, len(content), doc["sizeBytes"])
			sum := sha256.Sum256(content)
			assert.Equal(t, hex.EncodeToString(sum[:]), doc["sha256"])

			link, _ := doc["downloadUrl"].(string)
			require.True(t, strings.HasPrefix(link, "/files/"), link)
			got := download(t, env, link)
			require.Equal(t, http.StatusOK, got.Code, got.Body.String())
			assert.Equal(t, content, got.Body.Bytes())
			assert.Equal(t, ct, got.Header().Get("Content-Type"))
			assert.Contains(t, got.Header().Get("Content-Disposition"), "attachment")
			assert.Equal(t, "no-store", got.Header().Get("Cache-Control"))
			assert.Equal(t, "nosniff", got.Header().Get("X-Content-Type-Options"))
		})
	}
	t.Run("the bytes on disk show no plaintext", func(t *testing.T) {
		files := blobFiles(t, env)
		require.Len(t, files, len(samples))
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.NotContains(t, string(b), marker, f)
			assert.True(t, bytes.HasPrefix(b, []byte{0x20, 0x00}), "a DARE 2.0 file (version 0x20), AES-256-GCM (0x00)")
		}
	})
	t.Run("no file is in the database", func(t *testing.T) {
		raw := rawCase(t, env, lc.caseID)
		assert.NotContains(t, raw, marker)
	})
	t.Run("the upload is in the case history and the audit", func(t *testing.T) {
		res := lc.read(t, lc.member)
		assert.Contains(t, eventTypes(res), "RECORD_UPLOADED")
		assert.Contains(t, auditOf(t, env, lc.caseID), "MedicalRecord/WRITTEN")
	})
}

func TestUploadRefusals(t *testing.T) {
	env := testenv.Start(t, testenv.Options{MaxUploadBytes: 64 << 10})
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)

	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), make([]byte, 200)...)
	elf := append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 200)...)
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	for name, content := range map[string][]byte{"a Windows executable": exe, "an ELF binary": elf, "an HTML page": html, "an empty file": {}} {
		t.Run(name+" named report.pdf and claimed as application/pdf is refused", func(t *testing.T) {
			res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: content, filename: "report.pdf", claimed: "application/pdf"})
			assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
			assert.Equal(t, 0, recordCount(t, env, lc.caseID))
			assert.Empty(t, blobFiles(t, env))
		})
	}
	t.Run("a file over MAX_UPLOAD_BYTES is 413 and nothing is kept", func(t *testing.T) {
		big := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("x"), 100<<10)...)
		res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: big})
		assert.Equal(t, http.StatusRequestEntityTooLarge, res.Status, res.Raw)
		assert.Equal(t, 0, recordCount(t, env, lc.caseID))
		assert.Empty(t, blobFiles(t, env))
	})
	t.Run("a request announcing a body far over the cap is 413 before it is read", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader("x"))
		req.ContentLength = 10 << 20
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		req.Header.Set("Apollo-Require-Preflight", "true")
		req.Header.Set("Authorization", "Bearer "+lc.member)
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	})
	t.Run("a multipart request without a preflight header is refused (CSRF)", func(t *testing.T) {
		res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: samples["application/pdf"], noPreflight: true})
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Equal(t, []string{"BAD_USER_INPUT"}, res.Codes(), res.Raw)
		assert.Equal(t, 0, recordCount(t, env, lc.caseID))
		assert.Empty(t, blobFiles(t, env))
	})
	t.Run("an insurer cannot upload", func(t *testing.T) {
		res := upload(t, env, env.Token(t, testenv.Persona("insurer")), uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
		assert.Equal(t, []string{"FORBIDDEN"}, res.Codes(), res.Raw)
	})
	t.Run("another member's case is not found", func(t *testing.T) {
		res := upload(t, env, env.Token(t, testenv.Persona("member")), uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
		assert.Equal(t, []string{"NOT_FOUND"}, res.Codes(), res.Raw)
	})
	t.Run("a failure after the blob is stored leaves no blob", func(t *testing.T) {
		// The title is checked again by the write; a title the early check
		// passes cannot fail there, so cancel the case instead between
		// check and write by uploading to a closed case: refused early.
		closed := newLifecycle(t, env, false, 10)
		closed.open(t)
		res := caseMutation(env, t, closed.member, "cancelCase", closed.caseID, map[string]any{"reason": "changed my mind"})
		require.Empty(t, res.Errors, res.Raw)
		res = upload(t, env, closed.member, uploadReq{caseID: closed.caseID, content: samples["application/pdf"]})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes(), res.Raw)
		assert.Empty(t, blobFiles(t, env))
	})
	t.Run("the write failing after the file is stored deletes the blob", func(t *testing.T) {
		// Straight to the use case: the check passes, then the case is
		// cancelled while the file streams, so the write refuses.
		p := domain.Principal{Subject: lc.memberID, Role: domain.RoleMember, Org: seed.InsurerNorthstar}
		r := &cancelWhileReading{r: bytes.NewReader(samples["application/pdf"]), cancel: func() {
			res := caseMutation(env, t, lc.member, "cancelCase", lc.caseID, map[string]any{"reason": "raced"})
			require.Empty(t, res.Errors, res.Raw)
		}}
		_, _, err := env.Documents.Upload(context.Background(), p, rawID(t, lc.caseID), workflow.RecordInput{Title: "x", Kind: domain.RecordLab}, r)
		require.Error(t, err)
		assert.Empty(t, blobFiles(t, env))
		assert.Equal(t, 0, recordCount(t, env, lc.caseID))
	})
}

// cancelWhileReading runs cancel once, at the end of the file.
type cancelWhileReading struct {
	r      io.Reader
	cancel func()
	done   bool
}

func (c *cancelWhileReading) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && !c.done {
		c.done = true
		c.cancel()
	}
	return n, err
}

func TestDownloadMatrix(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	provider := env.Token(t, testenv.Persona("provider"))
	insurer := env.Token(t, testenv.Persona("insurer"))
	partner := env.Token(t, testenv.Persona("partner"))
	res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
	require.Empty(t, res.Errors, res.Raw)
	recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
	require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil).Errors)

	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"the member downloads their own record", lc.member, true},
		{"a coordinator downloads it", coordinator, true},
		{"the assigned provider downloads it while RECORDS_RELEASE is active", provider, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := linkFor(t, env, tc.token, lc.caseID, recID, 60)
			require.Empty(t, res.Errors, res.Raw)
			got := download(t, env, urlOf(t, res, recID))
			assert.Equal(t, http.StatusOK, got.Code)
			assert.Equal(t, samples["application/pdf"], got.Body.Bytes())
		})
	}
	t.Run("an insurer never reads a document", func(t *testing.T) {
		res := env.Do(t, insurer, `query($id: ID!) { case(id: $id) { id records { id } } }`, map[string]any{"id": lc.caseID})
		assert.Contains(t, res.Codes(), "FORBIDDEN")
		assert.Nil(t, testenv.Get(res.Data, "case", "records"))
	})
	t.Run("a partner network not assigned does not see the case", func(t *testing.T) {
		res := linkFor(t, env, partner, lc.caseID, recID, 60)
		assert.Nil(t, testenv.Get(res.Data, "case"))
	})
	t.Run("a link longer than an hour is refused", func(t *testing.T) {
		res := linkFor(t, env, lc.member, lc.caseID, recID, 3601)
		assert.Contains(t, res.Codes(), "BAD_USER_INPUT")
	})

	providerLink := urlOf(t, linkFor(t, env, provider, lc.caseID, recID, 600), recID)
	require.NotEmpty(t, providerLink)
	t.Run("a tampered link is 404", func(t *testing.T) {
		payload, sig, _ := strings.Cut(strings.TrimPrefix(providerLink, "/files/"), ".")
		// Claim to be the coordinator with the provider's signature.
		forged := strings.Replace(decodeB64(t, payload), `"ro":"provider"`, `"ro":"coordinator"`, 1)
		got := download(t, env, "/files/"+encodeB64(forged)+"."+sig)
		assert.Equal(t, http.StatusNotFound, got.Code)
		flipped := []byte(sig)
		flipped[3] ^= 1
		got = download(t, env, "/files/"+payload+"."+string(flipped))
		assert.Equal(t, http.StatusNotFound, got.Code)
	})
	t.Run("an expired link is 404", func(t *testing.T) {
		past := documents.New(env.Store, workflow.New(env.Store), mustDir(t, env), env.Keys,
			documents.Options{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
		c, err := env.Store.Case(context.Background(), testenv.Persona("coordinator"), rawID(t, lc.caseID))
		require.NoError(t, err)
		link, err := past.Link(testenv.Persona("coordinator"), c.Clinical.Records[0].Document, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, download(t, env, link).Code)
	})
	t.Run("revoking RECORDS_RELEASE after the link was issued makes it 404", func(t *testing.T) {
		require.Equal(t, http.StatusOK, download(t, env, providerLink).Code)
		require.Empty(t, lc.consent(t, "revokeConsent", "RECORDS_RELEASE").Errors)
		assert.Equal(t, http.StatusNotFound, download(t, env, providerLink).Code)
		res := linkFor(t, env, provider, lc.caseID, recID, 60)
		assert.Contains(t, res.Codes(), "FORBIDDEN", "no new link either")
	})
	t.Run("every download is audited, refusals too", func(t *testing.T) {
		events := auditOf(t, env, lc.caseID)
		assert.Contains(t, events, "Document/ALLOWED")
		assert.Contains(t, events, "Document/NOT_FOUND")
	})
}

func TestRemoveMedicalRecordCryptoShreds(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
	require.Empty(t, res.Errors, res.Raw)
	recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
	link := urlOf(t, linkFor(t, env, lc.member, lc.caseID, recID, 600), recID)
	require.Len(t, blobFiles(t, env), 1)

	res = env.Do(t, lc.member, `mutation($in: RemoveMedicalRecordInput!) { removeMedicalRecord(input: $in) { case { records { id } events { type } } } }`,
		map[string]any{"in": map[string]any{"caseId": lc.caseID, "recordId": recID}})
	require.Empty(t, res.Errors, res.Raw)
	assert.Empty(t, testenv.Get(res.Data, "removeMedicalRecord", "case", "records"))
	assert.Contains(t, eventTypes(testenv.Response{Data: map[string]any{"case": testenv.Get(res.Data, "removeMedicalRecord", "case")}}), "RECORD_REMOVED")
	assert.Empty(t, blobFiles(t, env), "the blob is deleted")
	assert.NotContains(t, rawCase(t, env, lc.caseID), "wrappedKey", "the wrapped data key is gone")
	assert.Equal(t, http.StatusNotFound, download(t, env, link).Code)
	assert.Contains(t, auditOf(t, env, lc.caseID), "MedicalRecord/WRITTEN")

	t.Run("once the review started a record stays", func(t *testing.T) {
		res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
		require.Empty(t, res.Errors, res.Raw)
		recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
		require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
		coordinator := env.Token(t, testenv.Persona("coordinator"))
		require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil).Errors)
		res = caseMutation(env, t, env.Token(t, testenv.Persona("provider")), "startReview", lc.caseID, nil)
		require.Empty(t, res.Errors, res.Raw)
		res = env.Do(t, lc.member, `mutation($in: RemoveMedicalRecordInput!) { removeMedicalRecord(input: $in) { case { id } } }`,
			map[string]any{"in": map[string]any{"caseId": lc.caseID, "recordId": recID}})
		assert.Equal(t, []string{"INVALID_TRANSITION"}, res.Codes(), res.Raw)
		assert.Len(t, blobFiles(t, env), 1)
	})
}

// A stored file altered after its upload is sent as far as its last
// authenticated package, then the connection is cut: the client sees a
// body shorter than its Content-Length and an error, never a short file
// that looks complete.
func TestATamperedFileEndsTheDownloadInAnError(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	content := bytes.Repeat([]byte("Pathology report: page after page.\n"), 30000) // about 1 MiB
	res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: content, filename: "report.txt", claimed: "text/plain"})
	require.Empty(t, res.Errors, res.Raw)
	recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
	files := blobFiles(t, env)
	require.Len(t, files, 1)
	sealed, err := os.ReadFile(files[0])
	require.NoError(t, err)
	sealed[len(sealed)/2] ^= 1
	require.NoError(t, os.WriteFile(files[0], sealed, 0o600))

	srv := httptest.NewServer(env.Handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + urlOf(t, linkFor(t, env, lc.member, lc.caseID, recID, 60), recID))
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the headers go before the altered package is reached")
	assert.EqualValues(t, len(content), resp.ContentLength)
	got, err := io.ReadAll(resp.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, len(got), len(content)/2)
	assert.Equal(t, content[:len(got)], got, "what came is the file's start")
}

// A file downloaded through its link is a read of the member's records:
// seen in review, the download's audit row named no patient, so the
// member's access log never showed who fetched their files.
func TestADownloadShowsInTheMembersAccessLog(t *testing.T) {
	env := testenv.Start(t)
	lc := newLifecycle(t, env, false, 10)
	lc.open(t)
	require.Empty(t, lc.consent(t, "grantConsent", "RECORDS_RELEASE").Errors)
	coordinator := env.Token(t, testenv.Persona("coordinator"))
	res := upload(t, env, lc.member, uploadReq{caseID: lc.caseID, content: samples["application/pdf"]})
	require.Empty(t, res.Errors, res.Raw)
	recID := testenv.Get(res.Data, "uploadMedicalRecord", "record", "id").(string)
	require.Empty(t, lc.assign(t, coordinator, specialistIn(t, env, seed.ProviderToronto, "CA"), nil).Errors)
	provider := env.Token(t, testenv.Persona("provider"))
	link := urlOf(t, linkFor(t, env, provider, lc.caseID, recID, 60), recID)
	require.NotEmpty(t, link)

	require.Equal(t, http.StatusOK, download(t, env, link).Code)
	var audit testenv.Response
	require.Eventually(t, func() bool {
		audit = env.As(t, "coordinator", `query($c: ID) { auditEvents(first: 50, filter: {caseId: $c}) { edges { node { resourceType fieldGroup outcome } } } }`, map[string]any{"c": lc.caseID})
		return strings.Contains(audit.Raw, `"resourceType":"Document"`)
	}, 5*time.Second, 100*time.Millisecond, "the download is audited: %s", audit.Raw)
	require.Eventually(t, func() bool {
		for _, line := range accessLines(t, env, lc.member) {
			if strings.HasPrefix(line, seed.ProviderToronto+" PROVIDER ") && strings.HasSuffix(line, " RECORDS") {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "the member's log shows the provider's download of their records")
}
