package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/secondopinion/gateway/internal/audit"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
)

// Uploads follow the GraphQL multipart request spec (operations, map, then
// the file), but unlike gqlgen's transport.MultipartForm, which reads every
// file into memory or a plaintext temporary file before the operation runs,
// streamingUpload runs the operation while the file part is still arriving:
// the resolver reads it straight from the request body into encryption and
// storage. So one request carries exactly one file, as last part, which is
// all uploadMedicalRecord takes.

// PreflightHeaders are the headers one of which a multipart request must
// carry. multipart/form-data is a "simple" content type that any web page
// can POST cross-site; a custom header makes the browser ask first (CORS
// preflight), which this gateway never grants, so a form cannot upload.
var PreflightHeaders = []string{"Apollo-Require-Preflight", "X-Upload-Preflight"}

func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && r.Method == http.MethodPost && mt == "multipart/form-data"
}

func hasPreflightHeader(r *http.Request) bool {
	for _, h := range PreflightHeaders {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// DefaultTransferTimeout bounds one upload or download of a file (a mobile
// network may need minutes for 50 MiB); other requests keep
// REQUEST_TIMEOUT.
const DefaultTransferTimeout = 5 * time.Minute

// DefaultTransferStall is how long a transfer waits for its client: to take
// the next part of a download (a write of at most 256 KiB, so a client
// slower than about 4 KiB/s is cut), or to send anything more of an
// upload. A stalled or vanished client does not hold the connection and
// the transfer's buffers for the whole transfer limit.
const DefaultTransferStall = time.Minute

// multipartOverhead is what a multipart request may carry besides the file:
// the operations and map parts and the part headers.
const multipartOverhead = 1 << 20

// streamingUpload is the multipart transport.
type streamingUpload struct {
	maxFile int64
	timeout time.Duration
	stall   time.Duration
}

var _ graphql.Transport = streamingUpload{}

func (streamingUpload) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && isMultipart(r)
}

func (t streamingUpload) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, msg string) {
		writeJSON(w, status, errorBody(msg, domain.CodeBadUserInput))
	}
	// The server's read and write deadlines are for short requests. The
	// file may take the transfer limit, but a client that sends nothing
	// for the stall limit is cut.
	rc := http.NewResponseController(w)
	end := time.Now().Add(t.timeout)
	_ = rc.SetWriteDeadline(end.Add(10 * time.Second))
	r.Body = &pacedBody{ReadCloser: r.Body, rc: rc, end: end, stall: t.stall}

	mr, err := r.MultipartReader()
	if err != nil {
		fail(http.StatusBadRequest, "the multipart request could not be read")
		return
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "operations" {
		fail(http.StatusBadRequest, "the first part must be operations")
		return
	}
	var params graphql.RawParams
	dec := json.NewDecoder(io.LimitReader(part, multipartOverhead/2))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil {
		fail(http.StatusBadRequest, "the operations part is not a GraphQL request object")
		return
	}
	part, err = mr.NextPart()
	if err != nil || part.FormName() != "map" {
		fail(http.StatusBadRequest, "the second part must be map")
		return
	}
	var uploads map[string][]string
	if err := json.NewDecoder(io.LimitReader(part, 64<<10)).Decode(&uploads); err != nil {
		fail(http.StatusBadRequest, "the map part is not a JSON object of paths")
		return
	}
	if len(uploads) != 1 {
		fail(http.StatusBadRequest, "send exactly one file per request")
		return
	}
	var key string
	var paths []string
	for k, v := range uploads {
		key, paths = k, v
	}
	if len(paths) != 1 {
		fail(http.StatusBadRequest, "the file must be used exactly once")
		return
	}
	part, err = mr.NextPart()
	if err != nil || part.FormName() != key {
		fail(http.StatusBadRequest, "the third part must be the file the map names")
		return
	}
	var over atomic.Bool
	file := &capped{r: part, left: t.maxFile, over: &over}
	if gerr := params.AddUpload(graphql.Upload{File: file, Filename: part.FileName(), ContentType: part.Header.Get("Content-Type"), Size: -1}, key, paths[0]); gerr != nil {
		fail(http.StatusBadRequest, gerr.Message)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}

	octx, gerr := exec.CreateOperationContext(r.Context(), &params)
	if gerr != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(r.Context(), octx), gerr)
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	responses, ctx := exec.DispatchOperation(r.Context(), octx)
	resp := responses(ctx)
	if over.Load() {
		// Nothing was kept (the upload fails before its record is
		// written, and its blob is deleted); say so with the status too.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// capped reads at most left bytes of a file; past that it fails with
// documents.ErrTooLarge and notes it for the status.
type capped struct {
	r    io.Reader
	left int64
	over *atomic.Bool
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, documents.ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		c.over.Store(true)
		return n, documents.ErrTooLarge
	}
	return n, err
}

// Seek is there because graphql.Upload wants an io.ReadSeeker; a stream
// cannot seek.
func (c *capped) Seek(int64, int) (int64, error) {
	return 0, errors.New("upload: the file is a stream and cannot seek")
}

// filesHandler serves GET /files/<token>: the document the signed link
// names, if the principal it was issued to may still read it, decrypted as
// it streams (a HEAD gets the same answer's headers, and no file is read
// for it). Every attempt with a genuine link is audited before a byte
// leaves (fail closed); anything refused is 404.
func filesHandler(d Deps) http.Handler {
	slots := newDownloadSlots(d.Downloads)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notFound := func() {
			writeJSON(w, http.StatusNotFound, errorBody("document not found", domain.CodeNotFound))
		}
		if d.Documents == nil {
			notFound()
			return
		}
		// Before the link is even opened: a full server does no work.
		if !slots.enter() {
			tooMany(w, downloadRetry, "server's downloads")
			return
		}
		defer slots.leave()
		// The transfer's deadlines, set before anything is read: the
		// server's write deadline is for short requests, and a slow open
		// must not lose its answer to it.
		end, ok := r.Context().Deadline()
		if !ok {
			end = time.Now().Add(d.TransferTimeout)
		}
		out := paced(w, end, d.TransferStall)
		token := r.PathValue("token")
		dl, target, err := d.Documents.Open(r.Context(), token)
		if target == nil {
			// Not a genuine, current link: nobody to attribute it to.
			notFound()
			return
		}
		rec := audit.NewRecorder(target.Principal, RequestID(r.Context()), r.Method+" /files", nil)
		entry := audit.Entry{ResourceType: "Document", ResourceID: target.RecordID, CaseID: target.CaseID,
			Group: domain.GroupRecordDocument, Outcome: audit.OutcomeAllowed}
		if target.Report {
			// An opinion's printable report is a read of the opinion's content.
			entry.ResourceType, entry.Group = "Opinion", domain.GroupOpinionContent
		}
		var de *domain.Error
		switch {
		case err == nil:
			defer func() { _ = dl.Body.Close() }()
			// Refused before the audit: nothing leaves.
			key := principalKey(target.Principal)
			if !slots.claim(key) {
				tooMany(w, downloadRetry, "caller's downloads")
				return
			}
			defer slots.unclaim(key)
			// Whose data it is: the member's access log shows the download.
			entry.PatientID = dl.PatientID
		case errors.As(err, &de) && de.Code == domain.CodeNotFound:
			entry.Outcome = audit.OutcomeNotFound
		default:
			d.Logger.ErrorContext(r.Context(), "document download failed", "request_id", RequestID(r.Context()), "error", domain.Scrub(err.Error()))
			writeJSON(w, http.StatusInternalServerError, errorBody("internal error (request "+RequestID(r.Context())+")", domain.CodeInternal))
			return
		}
		rec.Record(entry)
		if aerr := rec.Flush(context.WithoutCancel(r.Context()), d.AuditSink); aerr != nil {
			d.Logger.ErrorContext(r.Context(), "audit write failed; download withheld", "request_id", RequestID(r.Context()), "error", aerr.Error())
			writeJSON(w, http.StatusInternalServerError, errorBody("internal error (request "+RequestID(r.Context())+")", domain.CodeInternal))
			return
		}
		if err != nil {
			notFound()
			return
		}
		h := w.Header()
		h.Set("Content-Type", dl.ContentType)
		h.Set("Content-Length", strconv.Itoa(dl.SizeBytes))
		h.Set("Content-Disposition", `attachment; filename="`+dl.RecordID+fileExtension(dl.ContentType)+`"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			// The headers are the answer: net/http would throw the
			// file away, after it had been read and decrypted whole.
			return
		}
		if _, err := io.Copy(out, dl.Body); err != nil {
			// Headers are gone; a truncated or tampered blob ends the
			// connection rather than completing a short file.
			d.Logger.WarnContext(r.Context(), "document download cut", "request_id", RequestID(r.Context()), "error", domain.Scrub(err.Error()))
			panic(http.ErrAbortHandler)
		}
	})
}

// isDownload reports whether r asks for a file by its link (GET, or HEAD,
// which the GET route serves too).
func isDownload(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, documents.FilesPath)
}

// paced returns w with a write deadline set before each write: stall from
// now, and never past end (nextDeadline). The server's own write deadline
// (REQUEST_TIMEOUT + 5 s) would cut a file that takes longer to reach a
// slow client, however steadily it goes; this one cuts only a client that
// stops taking it, or a download that outlasts the transfer limit. Where
// the writer has no deadlines, the server's stays.
func paced(w http.ResponseWriter, end time.Time, stall time.Duration) io.Writer {
	p := &pacedWriter{w: w, rc: http.NewResponseController(w), end: end, stall: stall}
	_ = p.rc.SetWriteDeadline(nextDeadline(end, stall))
	return p
}

type pacedWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	end   time.Time
	stall time.Duration
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(nextDeadline(p.end, p.stall))
	return p.w.Write(b)
}

// pacedBody is an upload's body with a read deadline set before each
// read, as pacedWriter's for a download's writes. Once the body has ended
// it sets none: net/http then reads the connection in the background
// (to see a client go away), and a deadline expiring there would cancel
// the request while the upload is still storing.
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	end   time.Time
	stall time.Duration
	done  bool
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.done {
		return p.ReadCloser.Read(b)
	}
	_ = p.rc.SetReadDeadline(nextDeadline(p.end, p.stall))
	n, err := p.ReadCloser.Read(b)
	if err != nil {
		p.done = true
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// nextDeadline is stall from now, and never past end.
func nextDeadline(end time.Time, stall time.Duration) time.Time {
	if d := time.Now().Add(stall); d.Before(end) {
		return d
	}
	return end
}

func fileExtension(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/pdf":
		return ".pdf"
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/tiff":
		return ".tiff"
	case "application/dicom":
		return ".dcm"
	case "text/plain":
		return ".txt"
	}
	return ""
}
