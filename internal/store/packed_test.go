package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// listRowsFor makes n varied list documents of cases: every field a scope
// or a filter reads takes several values, and is sometimes missing.
func listRowsFor(n int, now time.Time) []any {
	r := rand.New(rand.NewPCG(7, 19))
	pick := func(vals ...any) any { return vals[r.IntN(len(vals))] }
	statuses := []any{"SUBMITTED", "TRIAGE", "ASSIGNED", "IN_REVIEW", "OPINION_DELIVERED", "CLOSED", "CANCELLED"}
	out := make([]any, 0, n)
	for i := range n {
		d := bson.D{
			{Key: "_id", Value: NewIDAt(now.Add(-time.Duration(n-i) * time.Hour))},
			{Key: "status", Value: pick(statuses...)},
			{Key: "patientId", Value: pick("ins-a:m1", "ins-a:m2", "ins-b:m1", "")},
			{Key: "insurerId", Value: pick("ins-a", "ins-b")},
			{Key: "specialty", Value: pick("oncology", "cardiology", "neurology")},
			{Key: "patientPseudonym", Value: pick("ps-1", "ps-2")},
			{Key: "updatedAt", Value: now.Add(-time.Duration(r.IntN(240)) * time.Hour)},
			{Key: "version", Value: pick(int32(1), int64(2), 3)},
		}
		if r.IntN(4) > 0 {
			d = append(d, bson.E{Key: "specialistOrgId", Value: pick("prov-x", "net-y")},
				bson.E{Key: "specialistId", Value: pick("sp-1", "sp-2")})
		}
		if r.IntN(3) > 0 {
			d = append(d, bson.E{Key: "intlConsent", Value: pick(true, false)})
		}
		if r.IntN(3) > 0 {
			d = append(d, bson.E{Key: "specialistAbroad", Value: pick(true, false)})
		}
		if r.IntN(5) > 0 {
			d = append(d, bson.E{Key: "dueAt", Value: now.Add(time.Duration(r.IntN(96)-48) * time.Hour)})
		}
		out = append(out, d)
	}
	return out
}

// The filters a packed list applies in Go select exactly the rows the
// database selects: every scope the store builds for a page of cases,
// opinions and specialists, with each filter and with cursors, run both
// ways over the same documents (on MongoDB too, when the suite runs there).
func TestTheMatcherSelectsWhatTheDatabaseSelects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "matcher")
	now := s.Now().UTC().Truncate(time.Millisecond)
	rows := listRowsFor(120, now)
	_, err := s.c(colCaseList).InsertMany(ctx, rows)
	require.NoError(t, err)
	_, err = s.c(colSpecialistList).InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "sp-1"}, {Key: "specialties", Value: bson.A{"oncology", "haematology"}}, {Key: "languages", Value: bson.A{"en", "fr"}}, {Key: "country", Value: "CA"}, {Key: "acceptingCases", Value: true}},
		bson.D{{Key: "_id", Value: "sp-2"}, {Key: "specialties", Value: bson.A{"cardiology"}}, {Key: "languages", Value: bson.A{"de"}}, {Key: "country", Value: "DE"}, {Key: "acceptingCases", Value: false}},
		bson.D{{Key: "_id", Value: "sp-3"}, {Key: "specialties", Value: bson.A{}}, {Key: "country", Value: "CA"}},
	})
	require.NoError(t, err)

	str := func(x string) *string { return &x }
	yes, no := true, false
	from, to := now.Add(-100*time.Hour), now.Add(-20*time.Hour)
	principals := []domain.Principal{
		{Subject: "m1", Role: domain.RoleMember, Org: "ins-a"},
		{Subject: "m1", Role: domain.RoleMember},
		{Subject: "i", Role: domain.RoleInsurer, Org: "ins-b"},
		{Subject: "p", Role: domain.RoleProvider, Org: "prov-x"},
		{Subject: "p", Role: domain.RoleProvider, Org: "prov-x", SpecialistID: "sp-2"},
		{Subject: "n", Role: domain.RolePartner, Org: "net-y"},
		{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"},
	}
	caseFilters := []CaseFilter{
		{},
		{Statuses: []domain.CaseStatus{domain.StatusTriage, domain.StatusClosed}},
		{Specialty: str(" Oncology ")},
		{PatientID: str("ins-a:m2")},
		{PatientPseudonym: str("ps-2")},
		{UpdatedFrom: &from},
		{UpdatedFrom: &from, UpdatedTo: &to},
		{Overdue: &yes},
		{Overdue: &no},
		{Overdue: &yes, Specialty: str("cardiology"), Statuses: []domain.CaseStatus{domain.StatusAssigned}},
	}
	var ids []string
	for _, d := range rows {
		ids = append(ids, d.(bson.D)[0].Value.(string))
	}
	cursor := ids[len(ids)/2]
	everything := map[string][]*bson.Raw{}
	for _, coll := range []string{colCaseList, colSpecialistList} {
		everything[coll], err = findAll[bson.Raw](ctx, s, coll, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		require.NoError(t, err)
	}
	check := func(coll string, filter bson.D, what string) int {
		t.Helper()
		want, err := findAll[bson.Raw](ctx, s, coll, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		require.NoError(t, err, what)
		all := everything[coll]
		m, err := compileFilter(filter)
		require.NoError(t, err, what)
		var got, wantIDs []string
		for _, r := range all {
			if m(*r) {
				got = append(got, rowID(*r))
			}
		}
		for _, r := range want {
			wantIDs = append(wantIDs, rowID(*r))
		}
		assert.Equal(t, wantIDs, got, "%s: %v", what, filter)
		return len(wantIDs)
	}
	narrowed := 0
	for _, p := range principals {
		sc := caseScope(p)
		if sc.none {
			continue
		}
		for i, f := range caseFilters {
			filter := and(sc.filter, f.bson(s))
			n := check(colCaseList, filter, fmt.Sprintf("cases: %s %s/%s, filter %d", p.Role, p.Org, p.SpecialistID, i))
			if n > 0 && n < len(rows) {
				narrowed++
			}
			check(colCaseList, and(filter, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: cursor}}}}), "cases before the cursor")
			check(colCaseList, and(filter, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: cursor}}}}), "cases after the cursor")
		}
		if osc := opinionScope(p); !osc.none {
			check(colCaseList, osc.filter, fmt.Sprintf("opinions: %s", p.Role))
		}
	}
	assert.Greater(t, narrowed, 30, "the data set gives the filters something to choose from")
	for _, f := range []SpecialistFilter{
		{Specialty: str("oncology")}, {Specialty: str("surgery")}, {Language: str("FR")}, {Country: str("ca")},
		{AcceptingCases: &no}, {AcceptingCases: &yes, Country: str("CA")},
	} {
		check(colSpecialistList, f.bson(), fmt.Sprintf("specialists: %+v", f))
	}
}

// A filter the matcher does not know is refused, never taken as "every
// row".
func TestTheMatcherRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, f := range []bson.D{
		{{Key: "a.b", Value: 1}},
		{{Key: "$where", Value: "1"}},
		{{Key: "a", Value: bson.D{{Key: "$regex", Value: "x"}}}},
		{{Key: "a", Value: bson.D{{Key: "$exists", Value: true}}}},
		{{Key: "$or", Value: bson.A{}}},
		{{Key: "$and", Value: "x"}},
		{{Key: "a", Value: bson.D{{Key: "$in", Value: "x"}}}},
	} {
		_, err := compileFilter(f)
		assert.Error(t, err, "%v", f)
	}
}

// packedStore is an embedded store whose lists are packed, with chunks of
// a few rows so that a few dozen documents make many chunks.
func packedStore(t *testing.T, ctx context.Context, name string) *Store {
	t.Helper()
	s := openCAS(t, ctx, name)
	if !s.packed() {
		t.Skip("lists are packed on the embedded store only")
	}
	old := packedChunkRows
	packedChunkRows = 4
	t.Cleanup(func() { packedChunkRows = old })
	return s
}

func rowsOf(t *testing.T, ctx context.Context, s *Store, l listing, desc bool, after string) []string {
	t.Helper()
	ids := []string{}
	require.NoError(t, s.packScan(ctx, l, desc, after, func(r bson.Raw) (bool, error) {
		ids = append(ids, rowID(r))
		return true, nil
	}))
	return ids
}

// Rows written in any order, rewritten and removed, split their chunks and
// still read back once each, in order, from any cursor and both ways.
func TestAPackedListReadsEveryRowOnceInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "packed")
	l := caseListing
	r := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("c%03d", i))
	}
	order := slices.Clone(ids)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	// In _id order first (as new documents come), then the rest anyhow.
	for _, id := range append(slices.Clone(ids[:20]), order...) {
		require.NoError(t, s.packPut(ctx, l, id, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: 1}}))
	}
	dir, err := s.readDir(ctx, l.list)
	require.NoError(t, err)
	assert.Greater(t, len(dir.Chunks), 8, "40 rows in chunks of at most 4")
	assert.Equal(t, ids, rowsOf(t, ctx, s, l, false, ""))
	assert.Equal(t, reversed(ids), rowsOf(t, ctx, s, l, true, ""))
	for _, k := range []int{0, 7, 19, 39} {
		assert.Equal(t, ids[k+1:], rowsOf(t, ctx, s, l, false, ids[k]), "after %s", ids[k])
		assert.Equal(t, reversed(ids[:k]), rowsOf(t, ctx, s, l, true, ids[k]), "before %s", ids[k])
	}
	assert.Equal(t, ids[20:], rowsOf(t, ctx, s, l, false, "c019z"), "a cursor between two ids")

	// A newer version replaces a row, an older one does not.
	require.NoError(t, s.packPut(ctx, l, "c010", bson.D{{Key: "_id", Value: "c010"}, {Key: "status", Value: "NEW"}, {Key: "version", Value: 3}}))
	require.NoError(t, s.packPut(ctx, l, "c010", bson.D{{Key: "_id", Value: "c010"}, {Key: "status", Value: "OLD"}, {Key: "version", Value: 2}}))
	got, err := listedRow(ctx, s, l, "c010")
	require.NoError(t, err)
	assert.Equal(t, "NEW", got.Lookup("status").StringValue())

	for _, id := range []string{"c000", "c013", "c039"} {
		require.NoError(t, s.packDelete(ctx, l, id))
	}
	left := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "c000" || id == "c013" || id == "c039" })
	assert.Equal(t, left, rowsOf(t, ctx, s, l, false, ""))
	n, err := listCount(ctx, s, l, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "c020"}}}})
	require.NoError(t, err)
	assert.Equal(t, 19, n)
}

func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// A split stopped after any of its writes (the new chunk, the directory)
// still shows every row once, and the next writes and a repair go on from
// there.
func TestASplitCutShortShowsEveryRowOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "packedsplit")
	for stopAt, l := range map[int]listing{1: specialistListing, 2: opinionListing} {
		put := func(id string) error {
			return s.packPut(ctx, l, id, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: 1}})
		}
		for _, id := range []string{"a", "c", "e", "g"} {
			require.NoError(t, put(id))
		}
		writes := 0
		s.beforeWrite = func(coll, _ string) error {
			if coll != colListChunks {
				return nil
			}
			if writes++; writes > stopAt {
				return errors.New("stopped")
			}
			return nil
		}
		// A fifth row in the middle splits the chunk in halves: the new
		// chunk, the directory, the old chunk.
		require.Error(t, put("d"))
		s.beforeWrite = nil
		// Stopped before the directory names the new chunk, the row is
		// not there yet; after, it is (in the new chunk). Every other
		// row is there once either way.
		want := []string{"a", "c", "e", "g"}
		if stopAt == 2 {
			want = []string{"a", "c", "d", "e", "g"}
		}
		assert.Equal(t, want, rowsOf(t, ctx, s, l, false, ""), "stopped after %d writes", stopAt)
		assert.Equal(t, reversed(want), rowsOf(t, ctx, s, l, true, ""), "stopped after %d writes", stopAt)
		// The next write settles it.
		require.NoError(t, put("d"))
		require.NoError(t, put("h"))
		assert.Equal(t, []string{"a", "c", "d", "e", "g", "h"}, rowsOf(t, ctx, s, l, false, ""))
		n, err := s.RepairLists(ctx)
		require.NoError(t, err)
		assert.Positive(t, n, "the rows have no documents: the repair removes them")
		assert.Empty(t, rowsOf(t, ctx, s, l, false, ""))
	}
}

// Writers and readers at once: every page a reader takes is in order with
// no row twice, and once the writers are done every row is there with its
// last version.
func TestAPackedListUnderConcurrentWritersAndReaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "packedrace")
	l := opinionListing
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad []string
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var ids []string
				err := s.packScan(ctx, l, true, "", func(r bson.Raw) (bool, error) {
					ids = append(ids, rowID(r))
					return true, nil
				})
				mu.Lock()
				if err != nil {
					bad = append(bad, err.Error())
				} else if !slices.IsSortedFunc(ids, func(a, b string) int { return -compareStr(a, b) }) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
					bad = append(bad, fmt.Sprint(ids))
				}
				mu.Unlock()
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 15 {
				id := fmt.Sprintf("o%02d-%d", i, w)
				for v := 1; v <= 2; v++ {
					assert.NoError(t, s.packPut(ctx, l, id, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: v}}))
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	assert.Empty(t, bad, "a reader saw rows out of order or twice")
	rows, err := s.packRows(ctx, l)
	require.NoError(t, err)
	assert.Len(t, rows, 60)
	for _, r := range rows {
		assert.Equal(t, 2, versionOf(l.of(r)), rowID(r))
	}
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
