package documents_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

// An upload asks the database at most 7 commands: the rights check's read
// of the case, then the case write's read, findAndModify (which returns the
// case answered), event copy, list document and outbox clearing. MongoDB
// upserts the list document in one command and writes the event counter
// each time. The embedded store takes the event's number from a block (one
// counter write per 64 events) and writes the case's row in its packed
// list as a read of the list's directory and of its chunk, then the
// chunk's write: 8. It was 11 (issue 15: the upload's speed).
func TestAnUploadCostsSevenCommands(t *testing.T) {
	var mu sync.Mutex
	var cmds []string
	counting := false
	env := testenv.Start(t, testenv.Options{Monitor: &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		if counting {
			coll, _ := e.Command.Lookup(e.CommandName).StringValueOK()
			cmds = append(cmds, e.CommandName+":"+coll)
		}
	}}})
	ctx := context.Background()
	member := testenv.Persona("member")
	caseID := demoCase(t, env)
	upload := func() {
		_, _, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "Scan", Kind: domain.RecordImaging}, bytes.NewReader([]byte("%PDF-1.7\nscan\n")))
		require.NoError(t, err)
	}
	upload() // the embedded store reserves its block of event numbers here
	mu.Lock()
	counting = true
	mu.Unlock()
	upload()
	mu.Lock()
	defer mu.Unlock()
	counting = false
	all := strings.Join(cmds, " ")
	limit := 7
	if env.Store.PacksLists() {
		limit = 8
	}
	assert.LessOrEqual(t, len(cmds), limit, all)
	assert.Equal(t, 2, strings.Count(all, "find:cases"), "the rights check and the write each read the case once: %s", all)
	assert.Equal(t, 1, strings.Count(all, "findAndModify:cases"), all)
	assert.Equal(t, 1, strings.Count(all, "insert:case_events"), all)
}
