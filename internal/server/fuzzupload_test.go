package server_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"testing"

	"github.com/secondopinion/gateway/internal/testenv"
)

// FuzzUpload throws arbitrary operations, maps, file headers and file bytes
// at the multipart upload: every answer is JSON with a 2xx/4xx, never
// INTERNAL, and a refused upload stores no record.
func FuzzUpload(f *testing.F) {
	f.Add(`{"0": ["variables.in.file"]}`, "application/pdf", []byte("%PDF-1.7\n%%EOF\n"), "Biopsy report")
	f.Add(`{"0": ["variables.in.file"]}`, "application/pdf", []byte("MZ\x90\x00 an executable"), "Biopsy report")
	f.Add(`{"0": ["variables.in.title"]}`, "text/plain", []byte("hello"), "x")
	f.Add(`{"0": ["variables.in.file", "variables.in.file"]}`, "", []byte{}, "")
	f.Add(`{"1": ["variables.in.file"]}`, "image/png", []byte("\x89PNG\r\n\x1a\n"), "\x00")
	f.Add(`not json`, "application/pdf", []byte("%PDF-1.7"), "Scan")
	f.Add(`{"0": ["variables"]}`, "application/pdf", []byte("%PDF-1.7"), "Scan")
	env := testenv.Start(f)
	lc := newLifecycle(f, env, false, 10)
	lc.open(f)
	records := recordCount(f, env, lc.caseID)
	f.Fuzz(func(t *testing.T, fileMap, claimed string, content []byte, title string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		ops, _ := json.Marshal(map[string]any{"query": uploadDoc, "variables": map[string]any{"in": map[string]any{
			"caseId": lc.caseID, "title": title, "kind": "PATHOLOGY", "file": nil,
		}}})
		_ = mw.WriteField("operations", string(ops))
		_ = mw.WriteField("map", fileMap)
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="0"; filename="f"`)
		if claimed != "" {
			h.Set("Content-Type", claimed)
		}
		if fw, err := mw.CreatePart(h); err == nil {
			_, _ = fw.Write(content)
		}
		_ = mw.Close()
		req := httptest.NewRequest(http.MethodPost, "/graphql", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+lc.member)
		req.Header.Set("Apollo-Require-Preflight", "true")
		rec := httptest.NewRecorder()
		env.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("not JSON: %s", rec.Body.String())
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(`"INTERNAL"`)) {
			t.Fatalf("INTERNAL: %s", rec.Body.String())
		}
		var out struct {
			Errors []json.RawMessage `json:"errors"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		now := recordCount(t, env, lc.caseID)
		if len(out.Errors) > 0 && now != records {
			t.Fatalf("a refused upload stored a record (%d -> %d): %s", records, now, rec.Body.String())
		}
		records = now
	})
}
