package documents_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// TestDocumentsOnS3 runs upload, download and removal with the documents
// stored in an S3-compatible bucket (an in-process fake over real HTTP on
// 127.0.0.1), and reads the bucket past the gateway.
func TestDocumentsOnS3(t *testing.T) {
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("records"))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	blobs, err := blob.Open(ctx, "s3://records/gateway", "", blob.S3Options{
		Endpoint: srv.URL, Region: "us-east-1", AccessKeyID: "test-key", SecretAccessKey: "test-secret", PathStyle: true,
	})
	require.NoError(t, err)
	env := testenv.Start(t, testenv.Options{Blobs: blobs})
	member := testenv.Persona("member")
	caseID := demoCase(t, env)

	marker := "s3-plaintext-marker-7c1e"
	// Over one S3 part, so the upload is a multipart one.
	content := []byte("%PDF-1.7\n" + marker + "\n" + strings.Repeat("stream data ", blob.DefaultPartSize/12+1000) + "\n%%EOF\n")
	_, rec, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "Scan", Kind: domain.RecordImaging}, bytes.NewReader(content))
	require.NoError(t, err)
	require.NotNil(t, rec.Document)

	objects := func() map[string][]byte {
		list, err := backend.ListBucket("records", nil, gofakes3.ListBucketPage{})
		require.NoError(t, err)
		out := map[string][]byte{}
		for _, o := range list.Contents {
			obj, err := backend.GetObject("records", o.Key, nil)
			require.NoError(t, err)
			b, err := io.ReadAll(obj.Contents)
			_ = obj.Contents.Close()
			require.NoError(t, err)
			out[o.Key] = b
		}
		return out
	}
	t.Run("the bucket holds the file encrypted, under the prefix", func(t *testing.T) {
		objs := objects()
		require.Len(t, objs, 1)
		for key, b := range objs {
			assert.True(t, strings.HasPrefix(key, "gateway/"), key)
			assert.Greater(t, len(b), len(content), "the encrypted file is the content and its overhead")
			assert.False(t, bytes.Contains(b, []byte(marker)), "the plaintext marker is in the bucket")
			assert.True(t, bytes.HasPrefix(b, []byte{0x20, 0x00}), "a DARE 2.0 file, AES-256-GCM")
		}
	})
	t.Run("the download streams it back decrypted", func(t *testing.T) {
		link, err := env.Documents.Link(member, rec.Document, 0)
		require.NoError(t, err)
		dl, _, err := env.Documents.Open(ctx, strings.TrimPrefix(link, documents.FilesPath))
		require.NoError(t, err)
		got, err := io.ReadAll(dl.Body)
		require.NoError(t, dl.Body.Close())
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got))
	})
	t.Run("removal deletes the object", func(t *testing.T) {
		_, err := env.Documents.Remove(ctx, member, caseID, rec.ID)
		require.NoError(t, err)
		assert.Empty(t, objects())
	})
}
