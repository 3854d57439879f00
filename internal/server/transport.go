package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/secondopinion/gateway/internal/domain"
)

// guardTransport admits only what the GraphQL-over-HTTP contract allows,
// before any GraphQL work: POST with application/json (so no browser form
// can send a mutation cross-site) or, for uploads, multipart/form-data with
// a preflight header, a single operation (no JSON array
// batching), a body that is valid JSON (answered without repeating it: it
// may hold PHI), and GET for queries only.
func guardTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodPost:
			if isMultipart(r) {
				// Uploads (the GraphQL multipart request spec), only with a
				// header no browser form can send.
				if !hasPreflightHeader(r) {
					writeJSON(w, http.StatusBadRequest, errorBody("a multipart request needs the header Apollo-Require-Preflight: true (or X-Upload-Preflight: true)", domain.CodeBadUserInput))
					return
				}
				next.ServeHTTP(w, r.WithContext(markPlainHTTP(r.Context())))
				return
			}
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeJSON(w, http.StatusUnsupportedMediaType, errorBody("requests must be application/json", domain.CodeBadUserInput))
				return
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					writeJSON(w, http.StatusRequestEntityTooLarge, errorBody("request body too large", domain.CodeBadUserInput))
					return
				}
				writeJSON(w, http.StatusBadRequest, errorBody("the request body could not be read", domain.CodeBadUserInput))
				return
			}
			trimmed := bytes.TrimLeft(body, " \t\r\n")
			if len(trimmed) > 0 && trimmed[0] == '[' {
				writeJSON(w, http.StatusBadRequest, errorBody("batched requests are not supported: send one operation per request", domain.CodeBadUserInput))
				return
			}
			var probe struct {
				Query         *string        `json:"query"`
				OperationName *string        `json:"operationName"`
				Variables     map[string]any `json:"variables"`
				Extensions    map[string]any `json:"extensions"`
			}
			if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(body, &probe) != nil {
				writeJSON(w, http.StatusBadRequest, errorBody("the request body is not a valid GraphQL-over-HTTP JSON object", domain.CodeBadUserInput))
				return
			}
			if probe.Query == nil && probe.Extensions["persistedQuery"] == nil {
				writeJSON(w, http.StatusBadRequest, errorBody("the request has no query", domain.CodeBadUserInput))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		case http.MethodGet:
			q := r.URL.Query().Get("query")
			if q == "" {
				writeJSON(w, http.StatusBadRequest, errorBody("a GET request needs a query parameter", domain.CodeBadUserInput))
				return
			}
			if doc, err := parser.ParseQuery(&ast.Source{Input: q}); err == nil {
				name := r.URL.Query().Get("operationName")
				if op := doc.Operations.ForName(name); op != nil && op.Operation != ast.Query {
					w.Header().Set("Allow", "POST")
					writeJSON(w, http.StatusMethodNotAllowed, errorBody("GET is for queries only; send mutations with POST", domain.CodeBadUserInput))
					return
				}
			}
		case http.MethodOptions:
		default:
			w.Header().Set("Allow", "GET, POST")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody("use POST (or GET for queries)", domain.CodeBadUserInput))
			return
		}
		next.ServeHTTP(&legacyStatus{ResponseWriter: w}, r.WithContext(markPlainHTTP(r.Context())))
	})
}

// legacyStatus answers a request error (parse, validation, variable
// coercion) with 200 when the response is application/json, as the
// GraphQL-over-HTTP spec asks for legacy clients; gqlgen answers 422.
// With application/graphql-response+json the 4xx status stays.
type legacyStatus struct {
	http.ResponseWriter
}

func (l *legacyStatus) WriteHeader(code int) {
	if code == http.StatusUnprocessableEntity {
		if mt, _, _ := mime.ParseMediaType(l.Header().Get("Content-Type")); mt == "application/json" {
			code = http.StatusOK
		}
	}
	l.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (l *legacyStatus) Unwrap() http.ResponseWriter { return l.ResponseWriter }
