package documents_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/blob"
	"github.com/secondopinion/gateway/internal/documents"
	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// heldStore stores a file in its directory, then holds Put's answer until
// release is closed and answers fail: storage finishing a file (an fsync,
// an object store's last part) after it took all of it. (It has no Write,
// so blob.Write goes through Put.)
type heldStore struct {
	dir     *blob.Dir
	took    chan struct{}
	release chan struct{}
	fail    error
}

func (h *heldStore) Put(ctx context.Context, key string, r io.Reader) error {
	if err := h.dir.Put(ctx, key, r); err != nil {
		return err
	}
	close(h.took)
	<-h.release
	if h.fail != nil {
		_ = h.dir.Delete(ctx, key) // Put's promise: nothing left on error
		return h.fail
	}
	return nil
}

func (h *heldStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return h.dir.Get(ctx, key)
}

func (h *heldStore) Delete(ctx context.Context, key string) error { return h.dir.Delete(ctx, key) }

// The upload prepares its record while storage finishes the file, but
// writes it only once storage has it: until then the case shows no new
// record; a storage failure at that last step leaves no record and no blob.
func TestTheRecordIsWrittenOnlyOnceStorageHasTheFile(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := "storage keeps the file: the record follows"
		if fail {
			name = "storage fails at its last step: no record, no blob"
		}
		t.Run(name, func(t *testing.T) {
			env := testenv.Start(t)
			ctx := context.Background()
			member := testenv.Persona("member")
			caseID := demoCase(t, env)
			root := t.TempDir()
			dir, err := blob.NewDir(root)
			require.NoError(t, err)
			st := &heldStore{dir: dir, took: make(chan struct{}), release: make(chan struct{})}
			if fail {
				st.fail = errors.New("injected: the last step failed")
			}
			svc := documents.New(env.Store, workflow.New(env.Store), st, env.Keys, documents.Options{})
			before := recordIDs(t, env, member, caseID)

			type result struct {
				rec *domain.Record
				err error
			}
			done := make(chan result, 1)
			go func() {
				content := append([]byte("%PDF-1.7\n"), make([]byte, 512<<10)...)
				_, rec, err := svc.Upload(ctx, member, caseID, workflow.RecordInput{Title: "Scan", Kind: domain.RecordImaging}, bytes.NewReader(content))
				done <- result{rec, err}
			}()
			<-st.took
			assert.Equal(t, before, recordIDs(t, env, member, caseID), "no record while storage has not answered")
			close(st.release)
			res := <-done

			if fail {
				require.Error(t, res.err)
				assert.Contains(t, res.err.Error(), "injected")
				assert.Equal(t, before, recordIDs(t, env, member, caseID))
				assert.Zero(t, countFiles(t, root), "no blob is left")
				return
			}
			require.NoError(t, res.err)
			assert.Equal(t, append(before, res.rec.ID), recordIDs(t, env, member, caseID))
			assert.Equal(t, 1, countFiles(t, root))
		})
	}
}

func recordIDs(t *testing.T, env *testenv.Env, p domain.Principal, caseID string) []string {
	t.Helper()
	c, err := env.Store.Case(context.Background(), p, caseID)
	require.NoError(t, err)
	var ids []string
	for _, r := range c.Clinical.Records {
		ids = append(ids, r.ID)
	}
	return ids
}
