package documents_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/keys"
	"github.com/secondopinion/gateway/internal/store"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// demoCase returns a demo case of the demo member that is still open.
func demoCase(t *testing.T, env *testenv.Env) string {
	t.Helper()
	cs, _, err := env.Store.Cases(context.Background(), testenv.Persona("member"), store.CaseFilter{}, store.Page{First: 100}, store.FullCase)
	require.NoError(t, err)
	for _, c := range cs {
		if c.Status == domain.StatusSubmitted || c.Status == domain.StatusTriage || c.Status == domain.StatusAssigned {
			return c.ID
		}
	}
	t.Skip("the demo member has no open case")
	return ""
}

func TestKeyRotationRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	member := testenv.Persona("member")
	caseID := demoCase(t, env)
	content := []byte("%PDF-1.7\nrotation round trip\n%%EOF\n")
	_, rec, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "Scan", Kind: domain.RecordImaging}, bytes.NewReader(content))
	require.NoError(t, err)
	oldID := env.Keys.PrimaryID()
	require.Equal(t, oldID, rec.Document.KeyID)

	newText, err := keys.Generate()
	require.NoError(t, err)
	oldText := env.KeyText
	both, err := keys.Parse(strings.NewReader(newText + oldText))
	require.NoError(t, err)

	n, err := documents.RotateKeys(ctx, env.Store, both)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the document's data key and the PHI field key")
	n, err = documents.RotateKeys(ctx, env.Store, both)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "running it again moves nothing")

	// The new key alone now opens the document, and the old one no longer.
	onlyNew, err := keys.Parse(strings.NewReader(newText))
	require.NoError(t, err)
	dir, err := blob.NewDir(env.BlobDir)
	require.NoError(t, err)
	svc := documents.New(env.Store, workflow.New(env.Store), dir, onlyNew, documents.Options{})
	c, err := env.Store.Case(ctx, member, caseID)
	require.NoError(t, err)
	var doc *domain.Document
	for _, r := range c.Clinical.Records {
		if r.ID == rec.ID {
			doc = r.Document
		}
	}
	require.NotNil(t, doc)
	assert.Equal(t, onlyNew.PrimaryID(), doc.KeyID)
	link, err := svc.Link(member, doc, 0)
	require.NoError(t, err)
	dl, _, err := svc.Open(ctx, strings.TrimPrefix(link, documents.FilesPath))
	require.NoError(t, err)
	got, err := io.ReadAll(dl.Body)
	require.NoError(t, dl.Body.Close())
	require.NoError(t, err)
	assert.Equal(t, content, got)

	_, err = env.Keys.Unwrap(keys.Wrapped{KeyID: doc.KeyID, Key: doc.WrappedKey})
	assert.ErrorIs(t, err, keys.ErrUnknownKey, "the old keyring cannot unwrap the new wrapping")
}
