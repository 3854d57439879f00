package server_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// commandCounter counts database commands by name while it is on.
type commandCounter struct {
	mu     sync.Mutex
	on     bool
	counts map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.on {
			c.counts[e.CommandName]++
			if e.CommandName == "find" && byExactID(e.Command) {
				c.counts["find by _id"]++
				if coll, _ := e.Command.Lookup("find").StringValueOK(); coll == "list_chunks" {
					c.counts["read list_chunks"]++
				}
			} else if e.CommandName == "find" || e.CommandName == "count" || e.CommandName == "aggregate" {
				// Reads by a filter, per collection ({_id: {$in}} apart:
				// MongoDB's path to a batch of known ids).
				if coll, ok := e.Command.Lookup(e.CommandName).StringValueOK(); ok && !byIDs(e.Command) {
					c.counts["scan "+coll]++
				}
			}
		}
	}}
}

func (c *commandCounter) run(f func()) map[string]int {
	c.mu.Lock()
	c.on, c.counts = true, map[string]int{}
	c.mu.Unlock()
	f()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.counts
}

func readCommands(counts map[string]int) int {
	return counts["find"] + counts["aggregate"] + counts["count"] + counts["getMore"]
}

// scanCommands are the reads that are not by exactly {_id}: on the embedded
// store each decodes a whole collection.
func scanCommands(counts map[string]int) int { return readCommands(counts) - counts["find by _id"] }

// byIDs reports whether a find's filter names its ids ({_id: {$in: [...]}}).
func byIDs(cmd bson.Raw) bool {
	f, err := cmd.LookupErr("filter", "_id", "$in")
	return err == nil && f.Type == bson.TypeArray
}

// byExactID reports whether a find's filter is exactly {_id: <value>}.
func byExactID(cmd bson.Raw) bool {
	f, err := cmd.LookupErr("filter")
	if err != nil {
		return false
	}
	doc, ok := f.DocumentOK()
	if !ok {
		return false
	}
	elems, err := doc.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
		return false
	}
	_, isDoc := elems[0].Value().DocumentOK()
	return !isDoc
}

const pageDoc = `{ cases(first: 50) { edges { node { id reference status
  policy { policyNumber } patient { id birthYear givenName } specialist { name } opinion { status } } } } }`

func TestPagesAndDetailsAskTheDatabaseLittle(t *testing.T) {
	for _, byID := range []bool{false, true} {
		name := "batches as one $in read (MongoDB's path)"
		if byID {
			name = "batches as reads by _id (the embedded store's path)"
		}
		t.Run(name, func(t *testing.T) { pagesAndDetails(t, byID) })
	}
}

// pagesAndDetails counts the reads of pages and details. With byID, edges of
// known ids are read by exactly {_id}: those are counted apart, and what
// remains (reads that decode a collection on the embedded store) keeps the
// limits MongoDB's path has in all.
func pagesAndDetails(t *testing.T, byID bool) {
	cc := &commandCounter{}
	env := testenv.Start(t, testenv.Options{Monitor: cc.monitor(), Seed: seed.Size{Policies: 40, Specialists: 60, Cases: 120}, BatchByID: &byID})
	// On the embedded store the pages read packed lists (store/packed.go):
	// a directory and chunks, by _id. Those reads are counted apart.
	packed := env.Store.PacksLists()
	reads := func(counts map[string]int) int { return readCommands(counts) - counts["read list_chunks"] }
	if byID {
		reads = scanCommands
	}

	for _, role := range []string{"coordinator", "insurer", "partner", "provider"} {
		t.Run("a page of 50 cases with its edges reads at most 5 times as "+role, func(t *testing.T) {
			tok := env.Token(t, testenv.Persona(role))
			// The token's org is read from the registry once, then cached;
			// an organisation's first read of each member is announced
			// once (access_orgs), then known: the first page pays for
			// both, and what is counted is every page after it.
			require.Empty(t, env.Do(t, tok, `{ viewer { role } }`, nil).Errors)
			require.NotEmpty(t, testenv.Get(env.Do(t, tok, pageDoc, nil).Data, "cases", "edges"))
			var res testenv.Response
			counts := cc.run(func() { res = env.Do(t, tok, pageDoc, nil) })
			require.NotEmpty(t, testenv.Get(res.Data, "cases", "edges"), res.Raw)
			assert.LessOrEqual(t, reads(counts), 5, "%v", counts)
			if byID {
				assert.LessOrEqual(t, scanCommands(counts), 1, "only the page itself scans: %v", counts)
			}
			// The page is read from the cases' list documents (issue 19):
			// the cases themselves, with their clinical part and history,
			// are read by _id if at all.
			assert.Zero(t, counts["scan cases"], "%v", counts)
			if packed {
				// Nothing decodes a collection: the list's directory and
				// chunks (120 rows, 48 a chunk) are read by _id, the
				// coordinator's newest 50 from the last two chunks.
				assert.Zero(t, counts["scan case_list"], "%v", counts)
				if byID {
					assert.Zero(t, scanCommands(counts), "%v", counts)
				}
				limit := 4
				if role == "coordinator" {
					limit = 3
				}
				assert.LessOrEqual(t, counts["read list_chunks"], limit, "%v", counts)
				assert.Positive(t, counts["read list_chunks"], "%v", counts)
			} else {
				assert.Equal(t, 1, counts["scan case_list"], "%v", counts)
			}
			// The audit batch: its rows and the member's access-log
			// fragments (two inserts), and its chain's head (one update).
			assert.LessOrEqual(t, counts["insert"], 2, "one audit batch at most: %v", counts)
			assert.LessOrEqual(t, counts["update"], 1, "one audit batch at most: %v", counts)
		})
	}

	res := env.As(t, "coordinator", `{ cases(first: 1, filter: {status: [CLOSED]}) { edges { node { id } } } }`, nil)
	id := testenv.Get(res.Data, "cases", "edges", 0, "node", "id")
	require.NotNil(t, id)
	t.Run("a case detail with patient, specialist and opinion reads at most 4 times", func(t *testing.T) {
		tok := env.Token(t, testenv.Persona("coordinator"))
		var res testenv.Response
		counts := cc.run(func() {
			res = env.Do(t, tok, `query($id: ID!) { case(id: $id) { id reference status diagnosis { code } records { title }
			  events { type at } patient { givenName familyName } specialist { name email } opinion { status memberSummary report } } }`, map[string]any{"id": id})
		})
		require.Empty(t, res.Errors, res.Raw)
		assert.LessOrEqual(t, readCommands(counts), 4, "%v", counts)
		assert.Equal(t, 0, scanCommands(counts), "a detail reads by _id only: %v", counts)
	})
	t.Run("a page of policies with their insured reads twice", func(t *testing.T) {
		tok := env.Token(t, testenv.Persona("coordinator"))
		var res testenv.Response
		counts := cc.run(func() {
			res = env.Do(t, tok, `{ policies(first: 20) { edges { node { policyNumber insured { givenName } } } } }`, nil)
		})
		require.Empty(t, res.Errors, res.Raw)
		require.Len(t, testenv.Get(res.Data, "policies", "edges"), 20)
		assert.NotNil(t, testenv.Get(res.Data, "policies", "edges", 0, "node", "insured", 0, "givenName"))
		want := 2 // the page, then the insured of all its policies at once
		if byID {
			want = 1 // the page; the insured by _id
		}
		assert.Equal(t, want, reads(counts), "%v", counts)
	})
	t.Run("totalCount is computed only when asked for", func(t *testing.T) {
		tok := env.Token(t, testenv.Persona("coordinator"))
		without := cc.run(func() { env.Do(t, tok, `{ cases(first: 5) { edges { node { id } } } }`, nil) })
		with := cc.run(func() { env.Do(t, tok, `{ cases(first: 5) { totalCount edges { node { id } } } }`, nil) })
		assert.Equal(t, 0, without["count"]+without["aggregate"], "%v", without)
		if packed {
			assert.Zero(t, with["count"]+with["scan case_list"]-without["scan case_list"], "counted over the packed list, read by _id: %v", with)
			assert.Greater(t, with["read list_chunks"], without["read list_chunks"], "%v %v", with, without)
			return
		}
		assert.Equal(t, 1, with["count"]+with["aggregate"], "%v", with)
		assert.Equal(t, 1, with["scan case_list"]-without["scan case_list"], "counted over the list documents: %v", with)
	})
	t.Run("a specialist search reads the list documents, and profiles by _id only when it shows them", func(t *testing.T) {
		tok := env.Token(t, testenv.Persona("coordinator"))
		listed := cc.run(func() {
			res := env.Do(t, tok, `{ specialists(first: 20) { totalCount edges { node { id name country languages } } } }`, nil)
			require.Len(t, testenv.Get(res.Data, "specialists", "edges"), 20, res.Raw)
		})
		if packed {
			assert.Zero(t, listed["scan specialist_list"], "%v", listed)
			assert.Equal(t, listed["find by _id"], listed["read list_chunks"], "the profiles are not read: %v", listed)
		} else {
			assert.Equal(t, 2, listed["scan specialist_list"], "the page and its count: %v", listed)
			assert.Zero(t, listed["scan specialists"]+listed["find by _id"], "%v", listed)
		}
		full := cc.run(func() {
			res := env.Do(t, tok, `{ specialists(first: 20) { edges { node { id name institution email } } } }`, nil)
			require.Len(t, testenv.Get(res.Data, "specialists", "edges"), 20, res.Raw)
			assert.NotEmpty(t, testenv.Get(res.Data, "specialists", "edges", 0, "node", "institution"), res.Raw)
		})
		assert.Zero(t, full["scan specialists"], "the profiles are read by their ids: %v", full)
		if !packed {
			assert.Equal(t, 1, full["scan specialist_list"], "%v", full)
		}
		if byID {
			assert.Equal(t, 20, full["find by _id"]-full["read list_chunks"], "%v", full)
		} else {
			assert.Equal(t, 1, reads(full)-full["scan specialist_list"], "the profiles in one read: %v", full)
		}
	})
}

func TestLoadersNeverServeOnePrincipalAnothersRows(t *testing.T) {
	env := testenv.Start(t)
	a := newLifecycle(t, env, true, 5)
	b := newLifecycle(t, env, true, 5)
	a.open(t)
	b.open(t)
	const q = `{ cases(first: 20) { edges { node { id patient { id givenName } policy { id } opinion { id } } } } }`
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 16; i++ {
		for _, lc := range []*lifecycle{a, b} {
			wg.Add(1)
			go func(lc *lifecycle) {
				defer wg.Done()
				res := lc.env.Do(t, lc.member, q, nil)
				edges, _ := testenv.Get(res.Data, "cases", "edges").([]any)
				if len(edges) != 1 || testenv.Get(edges[0], "node", "id") != lc.caseID ||
					testenv.Get(edges[0], "node", "policy", "id") != lc.policyID {
					errs <- res.Raw
				}
			}(lc)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a member saw something not theirs: %s", e)
	}
}

func TestFragmentsOnTheConnectionStillFetchWhatTheyName(t *testing.T) {
	env := testenv.Start(t)
	const q = `{ cases(first: 3) { ...Page } }
fragment Page on CaseConnection { edges { ...Edge } }
fragment Edge on CaseEdge { node { id ... on Case { diagnosis { code } events { type } } } }`
	res := env.As(t, "coordinator", q, nil)
	require.Empty(t, res.Errors, res.Raw)
	edges, _ := testenv.Get(res.Data, "cases", "edges").([]any)
	require.NotEmpty(t, edges, res.Raw)
	for _, e := range edges {
		assert.NotNil(t, testenv.Get(e, "node", "diagnosis", "code"), "clinical fields named behind fragments are fetched: %s", res.Raw)
		assert.NotEmpty(t, testenv.Get(e, "node", "events"), "history named behind fragments is fetched: %s", res.Raw)
	}
}
