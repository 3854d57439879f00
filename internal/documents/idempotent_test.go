package documents_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// An upload under a record id the case holds already (a retried import)
// answers that record and keeps no second copy of the file.
func TestAnUploadUnderAHeldRecordIDAddsNothing(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	coordinator := testenv.Persona("coordinator")
	caseID := demoCase(t, env)
	in := workflow.RecordInput{Title: "Referral letter", Kind: domain.RecordClinicalNote, ID: "rec-0123456789abcdef01234567"}
	content := []byte("%PDF-1.7\nthe referral letter\n%%EOF\n")

	_, first, err := env.Documents.Upload(ctx, coordinator, caseID, in, bytes.NewReader(content))
	require.NoError(t, err)
	require.Equal(t, in.ID, first.ID)
	blobsAfterFirst := countFiles(t, env.BlobDir)

	_, again, err := env.Documents.Upload(ctx, coordinator, caseID, in, bytes.NewReader(content))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, first.Document.BlobKey, again.Document.BlobKey, "the held record, not a new one")
	assert.Equal(t, blobsAfterFirst, countFiles(t, env.BlobDir), "the second copy of the file is deleted")

	c, err := env.Store.Case(ctx, coordinator, caseID)
	require.NoError(t, err)
	n := 0
	for _, r := range c.Clinical.Records {
		if r.ID == in.ID {
			n++
		}
	}
	assert.Equal(t, 1, n)
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	}))
	return n
}

// failingStore takes a little of the file and then fails, as a disk or a
// bucket does midway.
type failingStore struct{ blob.Store }

func (failingStore) Put(_ context.Context, _ string, r io.Reader) error {
	_, _ = io.CopyN(io.Discard, r, 4096)
	return errors.New("disk full")
}

// Storage that fails midway is the service's failure, not the client's: it
// is no BAD_USER_INPUT (review: the writer's closed pipe had been reported
// as a file that could not be read), and no record is added.
func TestAStorageFailureIsNotTheClientsMistake(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	member := testenv.Persona("member")
	caseID := demoCase(t, env)
	dir, err := blob.NewDir(env.BlobDir)
	require.NoError(t, err)
	svc := documents.New(env.Store, workflow.New(env.Store), failingStore{dir}, env.Keys, documents.Options{})
	before, err := env.Store.Case(ctx, member, caseID)
	require.NoError(t, err)
	content := append([]byte("%PDF-1.7\n"), make([]byte, 256<<10)...)
	_, _, err = svc.Upload(ctx, member, caseID, workflow.RecordInput{Title: "Scan", Kind: domain.RecordImaging}, bytes.NewReader(content))
	require.Error(t, err)
	assert.NotEqual(t, domain.CodeBadUserInput, domain.ErrorCode(err), "%v", err)
	assert.Contains(t, err.Error(), "disk full")
	after, err := env.Store.Case(ctx, member, caseID)
	require.NoError(t, err)
	assert.Len(t, after.Clinical.Records, len(before.Clinical.Records))
}
