package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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
	var opinions []any
	for i := range 40 {
		d := bson.D{{Key: "_id", Value: fmt.Sprintf("op-%02d", i)}, {Key: "caseId", Value: fmt.Sprintf("c-%d", i%5)},
			{Key: "orgId", Value: []string{"prov-x", "net-y"}[i%2]}, {Key: "patientId", Value: []string{"ins-a:m1", "ins-b:m1", "ins-a:m2"}[i%3]},
			{Key: "insurerId", Value: []string{"ins-a", "ins-b"}[i%3%2]}, {Key: "status", Value: []string{string(domain.OpinionDelivered), "DRAFT"}[i%4%2]}}
		if i%3 > 0 {
			d = append(d, bson.E{Key: "specialistId", Value: []string{"sp-1", "sp-2"}[i%2]})
		}
		opinions = append(opinions, d)
	}
	_, err = s.c(colOpinionList).InsertMany(ctx, opinions)
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
	for _, coll := range []string{colCaseList, colSpecialistList, colOpinionList} {
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
			check(colOpinionList, osc.filter, fmt.Sprintf("opinions: %s %s/%s", p.Role, p.Org, p.SpecialistID))
			check(colOpinionList, and(osc.filter, OpinionFilter{CaseID: str("c-2")}.bson()), fmt.Sprintf("opinions of a case: %s", p.Role))
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
		{{Key: "a", Value: bson.Regex{Pattern: "x"}}},
		{{Key: "a", Value: bson.M{"$ne": "x"}}},
		{{Key: "a", Value: bson.D{{Key: "$ne", Value: bson.Regex{Pattern: "x"}}}}},
		{{Key: "a", Value: bson.D{{Key: "$nin", Value: bson.A{bson.D{{Key: "b", Value: 1}}}}}}},
		{{Key: "a", Value: bson.D{{Key: "$lte", Value: nil}}}},
		{{Key: "a", Value: math.NaN()}},
		{{Key: "a", Value: bson.D{{Key: "b", Value: 1}}}},
	} {
		_, err := compileFilter(f)
		assert.Error(t, err, "%v", f)
	}
}

// The matcher compares as the database does where the two could part:
// integers beyond 2^53 exactly, a NaN field equal to no number, null
// equal to a missing field.
func TestTheMatcherComparesAsTheDatabase(t *testing.T) {
	doc := func(v any) bson.Raw {
		b, err := bson.Marshal(bson.D{{Key: "_id", Value: "x"}, {Key: "f", Value: v}})
		require.NoError(t, err)
		return b
	}
	m := func(f bson.D) matcher {
		mm, err := compileFilter(f)
		require.NoError(t, err)
		return mm
	}
	assert.False(t, m(bson.D{{Key: "f", Value: int64(1<<53 + 1)}})(doc(int64(1<<53))))
	assert.True(t, m(bson.D{{Key: "f", Value: bson.D{{Key: "$gt", Value: int64(1 << 53)}}}})(doc(int64(1<<53+1))))
	assert.True(t, m(bson.D{{Key: "f", Value: int32(5)}})(doc(5.0)), "numbers of any width")
	assert.False(t, m(bson.D{{Key: "f", Value: 5}})(doc(math.NaN())))
	assert.False(t, m(bson.D{{Key: "f", Value: bson.D{{Key: "$gte", Value: 5}}}})(doc(math.NaN())))
	assert.True(t, m(bson.D{{Key: "g", Value: nil}})(doc(1)), "null equals a missing field")
	assert.False(t, m(bson.D{{Key: "g", Value: bson.D{{Key: "$lt", Value: 5}}}})(doc(1)), "a missing field is below nothing")
	assert.True(t, m(bson.D{{Key: "g", Value: bson.D{{Key: "$ne", Value: true}}}})(doc(1)))
	assert.True(t, m(bson.D{{Key: "f", Value: "b"}})(doc(bson.A{"a", "b"})), "an array equals what one element equals")
	assert.False(t, m(bson.D{{Key: "f", Value: bson.D{{Key: "$nin", Value: bson.A{"b"}}}}})(doc(bson.A{"a", "b"})))
	assert.False(t, m(bson.D{{Key: "f", Value: "1"}})(doc(1)), "no equality across types")
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

// Two Stores of one process on one database (replicas in tests) share the
// lists' write locks: writing different rows of one list at once loses
// none.
func TestTwoStoresOnOneDatabaseLoseNoRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := packedStore(t, ctx, "twostores")
	b, err := Open(ctx, Options{URI: a.dbKey[:strings.IndexByte(a.dbKey, 0)], Database: a.db.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	l := specialistListing
	var wg sync.WaitGroup
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				id := fmt.Sprintf("s%02d-%d", i, w)
				assert.NoError(t, s.packPut(ctx, l, id, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: 1}}))
			}
		}()
	}
	wg.Wait()
	assert.Len(t, rowsOf(t, ctx, a, l, false, ""), 40)
}

// A page walks a list without holding up its writers: a write, and another
// page, finish while a walk is stopped halfway; the walk, going on after a
// rebuild replaced every chunk it had not read yet, still gives every row
// once, in order.
func TestAWalkHoldsUpNoWriterAndSurvivesARebuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "walk")
	l := caseListing
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("c%02d", i)
		ids = append(ids, id)
		require.NoError(t, s.packPut(ctx, l, id, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: 1}}))
	}
	paused, resume := make(chan struct{}), make(chan struct{})
	walked := make(chan []string)
	go func() {
		var got []string
		err := s.packScan(ctx, l, false, "", func(r bson.Raw) (bool, error) {
			got = append(got, rowID(r))
			if len(got) == 2 {
				close(paused)
				<-resume
			}
			return true, nil
		})
		assert.NoError(t, err)
		walked <- got
	}()
	<-paused
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, s.packPut(wctx, l, "c99", bson.D{{Key: "_id", Value: "c99"}, {Key: "version", Value: 1}}), "a write while a walk is stopped")
	n, err := listCount(wctx, s, l, nil)
	require.NoError(t, err, "a page while a walk is stopped")
	assert.Equal(t, 13, n)
	require.NoError(t, s.packRebuild(wctx, l, func(cur []bson.Raw) []bson.Raw { return cur }))
	close(resume)
	assert.Equal(t, append(ids, "c99"), <-walked)
}

// A directory naming a chunk that is not there (nothing the store does
// leaves one) is an error for pages and writes, not rows quietly missing;
// one unreadable chunk does not stop the start: the repair rebuilds the
// list from its documents.
func TestADamagedListIsAnErrorAndTheStartRebuildsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "damaged")
	coord := domain.Principal{Subject: "c", Role: domain.RoleCoordinator, Org: "operator"}
	for i := range 10 {
		_, err := s.UpsertSpecialist(ctx, coord, SpecialistInput{Name: fmt.Sprintf("Dr %d", i), Specialties: []string{"oncology"}, Languages: []string{"en"}, Country: "CA", OrgID: "prov-x", OrgKind: domain.OrgProvider})
		require.NoError(t, err)
	}
	dir, err := s.readDir(ctx, colSpecialistList)
	require.NoError(t, err)
	require.Greater(t, len(dir.Chunks), 2)
	_, err = s.c(colListChunks).DeleteOne(ctx, bson.D{{Key: "_id", Value: dir.Chunks[0].ID}})
	require.NoError(t, err)
	_, err = s.CountSpecialists(ctx, coord, SpecialistFilter{})
	assert.ErrorIs(t, err, errListDamaged)
	_, err = s.c(colListChunks).ReplaceOne(ctx, bson.D{{Key: "_id", Value: dir.Chunks[1].ID}}, packedChunk{ID: dir.Chunks[1].ID, Rows: []byte{9, 0, 0}})
	require.NoError(t, err)
	_, _, err = s.Specialists(ctx, coord, SpecialistFilter{}, Page{First: 20}, View{})
	assert.ErrorIs(t, err, errListDamaged)

	n, err := s.RepairLists(ctx)
	require.NoError(t, err)
	assert.Positive(t, n)
	got, err := s.CountSpecialists(ctx, coord, SpecialistFilter{})
	require.NoError(t, err)
	assert.Equal(t, 10, got)
}

// A rebuild stopped after its directory's write leaves the old chunks; the
// next rebuild removes every chunk its directory does not name (they hold
// patients' ids).
func TestARebuildRemovesEveryChunkItsDirectoryDoesNotName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := packedStore(t, ctx, "orphans")
	l := caseListing
	row := func(id string) bson.Raw {
		b, err := canonical(bson.D{{Key: "_id", Value: id}, {Key: "patientId", Value: "ins:m"}, {Key: "version", Value: 1}})
		require.NoError(t, err)
		return b
	}
	require.NoError(t, s.packRebuild(ctx, l, func([]bson.Raw) []bson.Raw { return []bson.Raw{row("a"), row("b"), row("c"), row("d")} }))
	first, err := s.readDir(ctx, l.list)
	require.NoError(t, err)
	// A second rebuild that stopped after its directory's write: the
	// first one's chunks stay (written back here), and a chunk a stopped
	// split left past the directory's numbers.
	require.NoError(t, s.packRebuild(ctx, l, func(cur []bson.Raw) []bson.Raw { return cur }))
	for _, c := range first.Chunks {
		require.NoError(t, s.writeChunk(ctx, c.ID, first.Gen, []bson.Raw{row("a")}))
	}
	require.NoError(t, s.writeChunk(ctx, chunkName(l.list, 99), 0, []bson.Raw{row("z")}))
	require.NoError(t, s.packRebuild(ctx, l, func(cur []bson.Raw) []bson.Raw { return cur }))
	dir, err := s.readDir(ctx, l.list)
	require.NoError(t, err)
	named := []string{l.list}
	for _, c := range dir.Chunks {
		named = append(named, c.ID)
	}
	all, err := findAll[bson.Raw](ctx, s, colListChunks, bson.D{}, options.Find())
	require.NoError(t, err)
	var have []string
	for _, d := range all {
		have = append(have, rowID(*d))
	}
	assert.ElementsMatch(t, named, have)
	assert.Equal(t, []string{"a", "b", "c", "d"}, rowsOf(t, ctx, s, l, false, ""))
}
