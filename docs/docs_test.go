package docs_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/docs"
	"github.com/secondopinion/gateway/internal/testenv"
)

var update = flag.Bool("update", false, "write NAME.response.json from the answers (review them before committing)")

// TestDocumentedFlowRunsAsWritten sends every documented operation, in the
// order of flow.json, as its role against the seeded gateway, and checks each
// answer has the documented shape and no errors.
func TestDocumentedFlowRunsAsWritten(t *testing.T) {
	ops, err := docs.Operations()
	require.NoError(t, err)
	byName := map[string]docs.Operation{}
	for _, op := range ops {
		require.NotContains(t, byName, op.Name, "operation names are unique across roles (the client has one function each)")
		byName[op.Name] = op
	}
	flow, err := docs.Flow()
	require.NoError(t, err)
	inFlow := map[string]bool{}
	for _, s := range flow {
		inFlow[s.Operation] = true
	}
	for _, op := range ops {
		if op.Type != "subscription" {
			assert.True(t, inFlow[op.Name], "%s/%s is documented but flow.json never runs it", op.Role, op.Name)
		}
	}

	env := testenv.Start(t)
	answers := map[string]any{}
	for _, step := range flow {
		op, ok := byName[step.Operation]
		require.True(t, ok, "flow.json names %s, which has no .graphql file", step.Operation)
		require.Equal(t, op.Role, step.Role, "%s lives under docs/%s", op.Name, op.Role)
		vars, err := docs.ResolveVariables(op.Variables, answers)
		require.NoError(t, err, op.Name)
		persona := step.Role
		if step.As != "" {
			persona = step.As
		}
		var resp testenv.Response
		if op.File != nil {
			resp = sendUpload(t, env, persona, op, vars)
		} else {
			resp = env.As(t, persona, op.Document, vars)
		}
		require.Empty(t, resp.Errors, "%s/%s: %s", op.Role, op.Name, resp.Raw)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.Raw), &got))
		answers[op.Name] = got

		file := filepath.Join(op.Dir, op.Name+".response.json")
		if *update {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			require.NoError(t, enc.Encode(docs.DeriveShape(got)))
			require.NoError(t, os.WriteFile(file, b.Bytes(), 0o644))
			continue
		}
		require.NotEmpty(t, op.Response, "%s is missing: run go test ./docs -update and review it", file)
		var want any
		require.NoError(t, json.Unmarshal(op.Response, &want), file)
		if diffs := docs.MatchShape(want, got); len(diffs) > 0 {
			t.Errorf("%s: the answer does not have the documented shape:\n  %s\nanswer: %s", file, strings.Join(diffs, "\n  "), resp.Raw)
		}
	}
}

func TestOperationNamesAreTheMetricsAllowList(t *testing.T) {
	names := docs.OperationNames()
	assert.Contains(t, names, "RequestSecondOpinion")
	assert.Contains(t, names, "ReferredCases")
	assert.NotContains(t, names, "")
}

func TestShapeMatching(t *testing.T) {
	want := map[string]any{"a": "<int>", "b": []any{map[string]any{"c": "ACTIVE", "d": "<string?>"}}, "e": "<datetime>"}
	ok := map[string]any{"a": 3.0, "b": []any{map[string]any{"c": "ACTIVE", "d": nil}}, "e": "2026-01-02T03:04:05Z"}
	assert.Empty(t, docs.MatchShape(want, ok))
	bad := map[string]any{"a": "3", "b": []any{map[string]any{"c": "LAPSED", "d": "x", "z": 1.0}}, "e": "yesterday"}
	assert.Len(t, docs.MatchShape(want, bad), 4)
	assert.NotEmpty(t, docs.MatchShape(map[string]any{"b": []any{"<int>"}}, map[string]any{"b": []any{}}), "an element shape needs an element")
}

// sendUpload sends an upload as the GraphQL multipart request spec says:
// the operation with the file's variable null, the map naming it, the file.
func sendUpload(t *testing.T, env *testenv.Env, persona string, op docs.Operation, vars map[string]any) testenv.Response {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ops, err := json.Marshal(map[string]any{"query": op.Document, "variables": vars})
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("operations", string(ops)))
	require.NoError(t, mw.WriteField("map", `{"0": ["variables.input.file"]}`))
	fw, err := mw.CreateFormFile("0", op.Name)
	require.NoError(t, err)
	_, err = fw.Write(op.File)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req := httptest.NewRequest(http.MethodPost, "/graphql", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+env.Token(t, testenv.Persona(persona)))
	req.Header.Set("Apollo-Require-Preflight", "true")
	rec := httptest.NewRecorder()
	env.Handler.ServeHTTP(rec, req)
	var out struct {
		Data   map[string]any  `json:"data"`
		Errors []testenv.Error `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	return testenv.Response{Status: rec.Code, Data: out.Data, Errors: out.Errors, Raw: rec.Body.String()}
}
