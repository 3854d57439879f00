package documents_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

const benchSize = 20 << 20

func benchFile(b *testing.B) []byte {
	b.Helper()
	f := make([]byte, benchSize)
	_, _ = rand.Read(f)
	copy(f, "%PDF-1.7\n")
	return f
}

// BenchmarkPlainCopy20MiB is the baseline: io.Copy of the file into the
// same directory store, no detection, hashing or encryption.
func BenchmarkPlainCopy20MiB(b *testing.B) {
	dir, err := blob.NewDir(b.TempDir())
	require.NoError(b, err)
	f := benchFile(b)
	b.SetBytes(benchSize)
	for b.Loop() {
		require.NoError(b, dir.Put(context.Background(), "bench-plain-copy", bytes.NewReader(f)))
	}
}

// BenchmarkUpload20MiB is the documents use case: detect, hash, encrypt,
// store, attach (one case write per upload; records are removed again so
// the case never fills up).
func BenchmarkUpload20MiB(b *testing.B) {
	env := testenv.Start(b)
	member := testenv.Persona("member")
	caseID := openDemoCase(b, env)
	f := benchFile(b)
	ctx := context.Background()
	b.SetBytes(benchSize)
	for b.Loop() {
		_, rec, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "bench", Kind: domain.RecordImaging}, bytes.NewReader(f))
		require.NoError(b, err)
		b.StopTimer()
		_, err = env.Documents.Remove(ctx, member, caseID, rec.ID)
		require.NoError(b, err)
		b.StartTimer()
	}
}

// BenchmarkDownload20MiB opens and decrypts the file through a link.
func BenchmarkDownload20MiB(b *testing.B) {
	env := testenv.Start(b)
	member := testenv.Persona("member")
	caseID := openDemoCase(b, env)
	ctx := context.Background()
	_, rec, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "bench", Kind: domain.RecordImaging}, bytes.NewReader(benchFile(b)))
	require.NoError(b, err)
	link, err := env.Documents.Link(member, rec.Document, 0)
	require.NoError(b, err)
	token := strings.TrimPrefix(link, documents.FilesPath)
	b.SetBytes(benchSize)
	for b.Loop() {
		dl, _, err := env.Documents.Open(ctx, token)
		require.NoError(b, err)
		_, err = io.Copy(io.Discard, dl.Body)
		require.NoError(b, err)
		require.NoError(b, dl.Body.Close())
	}
}

func openDemoCase(b *testing.B, env *testenv.Env) string {
	b.Helper()
	cs, _, err := env.Store.Cases(context.Background(), testenv.Persona("member"), store.CaseFilter{}, store.Page{First: 100}, store.FullCase)
	require.NoError(b, err)
	for _, c := range cs {
		if c.Status == domain.StatusSubmitted || c.Status == domain.StatusTriage || c.Status == domain.StatusAssigned {
			return c.ID
		}
	}
	b.Skip("the demo member has no open case")
	return ""
}
