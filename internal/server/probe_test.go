package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/testenv"
)

// caseReads counts, while on, the finds on cases and the documents they
// returned.
type caseReads struct {
	mu         sync.Mutex
	on         bool
	finds, hit int
	requests   map[int64]bool
}

func (c *caseReads) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.on && e.CommandName == "find" && e.Command.Lookup("find").StringValue() == "cases" {
				c.finds++
				c.requests[e.RequestID] = true
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.on && c.requests[e.RequestID] {
				batch, _ := e.Reply.Lookup("cursor", "firstBatch").ArrayOK()
				vals, _ := batch.Values()
				c.hit += len(vals)
			}
		},
	}
}

func (c *caseReads) run(f func()) (finds, hit int) {
	c.mu.Lock()
	c.on, c.finds, c.hit, c.requests = true, 0, 0, map[int64]bool{}
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.finds, c.hit
}

// The probe of issue 14, finding 11: asking for another member's case and
// for an id that does not exist answer the same null after the same reads
// (one that finds a case document and one that finds none), so their
// timing tells nothing; BenchmarkCaseOutsideScopeVersusMissing measures it.
func TestAnIDOutsideTheScopeAndAMissingIDDoTheSameReads(t *testing.T) {
	reads := &caseReads{}
	env := testenv.Start(t, testenv.Options{Monitor: reads.monitor()})
	mine := newLifecycle(t, env, false, 3)
	mine.open(t)
	theirs := newLifecycle(t, env, false, 3)
	theirs.open(t)
	missing := graph.GlobalID("Case", strings.Repeat("0", len(rawID(t, theirs.caseID))))
	// The member reads its own case first, as a prober would.
	require.Empty(t, mine.read(t, mine.member).Errors)

	for _, q := range []string{
		`query($id: ID!) { case(id: $id) { id reference } }`,
		`query($id: ID!) { node(id: $id) { id ... on Case { reference } } }`,
	} {
		var outsideRes, missingRes testenv.Response
		outFinds, outHit := reads.run(func() { outsideRes = env.Do(t, mine.member, q, map[string]any{"id": theirs.caseID}) })
		misFinds, misHit := reads.run(func() { missingRes = env.Do(t, mine.member, q, map[string]any{"id": missing}) })
		root := strings.Fields(strings.SplitN(q, "{", 3)[1])[0]
		root = strings.SplitN(root, "(", 2)[0]
		t.Run(root+" answers both with the same null", func(t *testing.T) {
			assert.Equal(t, outsideRes.Codes(), missingRes.Codes())
			assert.Nil(t, testenv.Get(outsideRes.Data, root))
			assert.Nil(t, testenv.Get(missingRes.Data, root))
		})
		t.Run(root+" reads the same for both: one case document found, one not", func(t *testing.T) {
			assert.Equal(t, 2, outFinds, "outside the scope")
			assert.Equal(t, 1, outHit, "outside the scope")
			assert.Equal(t, outFinds, misFinds, "missing")
			assert.Equal(t, outHit, misHit, "missing")
		})
	}
}
