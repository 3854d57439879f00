package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Packed lists: how the embedded store keeps list documents.
//
// The embedded store answers a read by exactly {_id} from an index and any
// other read by decoding every document of the collection, at a cost per
// document and per field. A page of list documents (lists.go) read with a
// filter and a sort therefore decodes the whole list collection, however
// small its documents. So on the embedded store the list documents of a
// collection are packed, in _id order, into chunks of at most
// packedChunkRows rows: documents of colListChunks holding the rows as one
// binary value (one field to decode, whatever the rows hold), and a
// directory (a document of the same collection, _id the list's name)
// naming the chunks in order with the first _id each holds. A page reads
// the directory and then, by _id, the chunks from its cursor on, newest or
// oldest first, until it has its rows; the filter is applied to the rows
// in Go (match.go). A coordinator's page of the newest 50 cases reads two
// or three small documents instead of decoding them all.
//
// The chunk of a row is the last one whose first _id is not after it (the
// first chunk takes everything before the second), and a reader ignores a
// row outside its chunk's range. Writes to a list are serialised in the
// process (one process writes to the embedded store; the Stores a process
// opens on one database share the lock). Readers take no lock: a chunk is
// one document, written whole, so an edit within a chunk is seen whole or
// not at all; and whatever moves rows between chunks (a split, a rebuild)
// moves the directory's generation, which every chunk written since
// carries. A reader that meets a chunk of a later generation than its
// directory, or a chunk gone, reads the directory again and goes on after
// the last row it took. A split writes the new chunk, then the directory,
// then the old chunk without the rows it gave away; a rebuild its chunks,
// then the directory, then removes the old chunks: a stop between any two
// of these writes leaves every row shown once, and the directory never
// names a chunk not yet written. RepairLists, at every start, rebuilds a
// list whose rows differ from their documents (or that it cannot read).

// MongoDB answers a filtered, sorted read from its indexes and has several
// writing processes: there the list documents stay one per document (the
// list collections). Which of the two a store uses follows serialWrites.

// colListChunks holds the packed lists' chunks and directories.
const colListChunks = "list_chunks"

// packedChunkRows is the most rows a chunk holds before it splits; a chunk
// read or written costs about its bytes. Variable for tests.
var packedChunkRows = 64

// packedDir is a list's directory: its chunks in _id order.
type packedDir struct {
	ID     string           `bson:"_id"`
	Chunks []packedChunkRef `bson:"chunks"`
	// Next numbers the next chunk created.
	Next int `bson:"next"`
	// Gen moves whenever rows move between chunks.
	Gen int `bson:"gen"`
}

// packedChunkRef names a chunk and the first _id it holds ("" for the
// first chunk, which holds everything before the second).
type packedChunkRef struct {
	ID string `bson:"id"`
	Lo string `bson:"lo"`
}

// packedChunk is a chunk: its rows, list documents as BSON one after the
// other, in _id order.
type packedChunk struct {
	ID string `bson:"_id"`
	// Gen is the directory's generation when the chunk was written.
	Gen  int    `bson:"gen"`
	Rows []byte `bson:"rows"`
}

// packLocks serialise the writes to each packed list in this process, for
// every Store open on one database (testenv.Replica opens two).
var packLocks sync.Map // database key + list name → *sync.Mutex

func (s *Store) packLock(list string) *sync.Mutex {
	l, _ := packLocks.LoadOrStore(s.dbKey+"\x00"+list, &sync.Mutex{})
	return l.(*sync.Mutex)
}

// errListDamaged is a packed list whose directory names a chunk that is not
// there (or cannot be read): nothing this store does leaves one, and the
// next start rebuilds it.
var errListDamaged = errors.New("store: a packed list is damaged (rebuilt at the next start)")

// packed reports whether this store packs its lists (the embedded store).
func (s *Store) packed() bool { return s.serialWrites }

// PacksLists reports whether pages read packed lists (tests count their
// reads).
func (s *Store) PacksLists() bool { return s.packed() }

func (s *Store) readDir(ctx context.Context, list string) (*packedDir, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var d packedDir
	err := s.c(colListChunks).FindOne(ctx, bson.D{{Key: "_id", Value: list}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return &packedDir{ID: list}, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// readChunk returns the rows of chunk i of dir that lie in its range, and
// the chunk's generation; found is false when the chunk is not there.
func (s *Store) readChunk(ctx context.Context, dir *packedDir, i int) (rows []bson.Raw, gen int, found bool, err error) {
	var c packedChunk
	cctx, cancel := s.op(ctx)
	defer cancel()
	err = s.c(colListChunks).FindOne(cctx, bson.D{{Key: "_id", Value: dir.Chunks[i].ID}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	all, err := splitRows(c.Rows)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: chunk %s: %v", errListDamaged, c.ID, err)
	}
	lo, hi := dir.Chunks[i].Lo, ""
	if i+1 < len(dir.Chunks) {
		hi = dir.Chunks[i+1].Lo
	}
	for _, r := range all {
		id := rowID(r)
		if id >= lo && (hi == "" || id < hi) {
			rows = append(rows, r)
		}
	}
	return rows, c.Gen, true, nil
}

func (s *Store) writeChunk(ctx context.Context, id string, gen int, rows []bson.Raw) error {
	if s.beforeWrite != nil {
		if err := s.beforeWrite(colListChunks, id); err != nil {
			return err
		}
	}
	var b []byte
	for _, r := range rows {
		b = append(b, r...)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colListChunks).ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, packedChunk{ID: id, Gen: gen, Rows: b}, options.Replace().SetUpsert(true))
	return err
}

func (s *Store) writeDir(ctx context.Context, d *packedDir) error {
	if s.beforeWrite != nil {
		if err := s.beforeWrite(colListChunks, d.ID); err != nil {
			return err
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colListChunks).ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d, options.Replace().SetUpsert(true))
	return err
}

// splitRows cuts a chunk's bytes into its rows.
func splitRows(b []byte) ([]bson.Raw, error) {
	var rows []bson.Raw
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, errors.New("a row cut short")
		}
		n := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		if n < 5 || n > len(b) {
			return nil, errors.New("a row cut short")
		}
		rows = append(rows, bson.Raw(b[:n:n]))
		b = b[n:]
	}
	return rows, nil
}

func rowID(r bson.Raw) string {
	id, _ := r.Lookup("_id").StringValueOK()
	return id
}

// chunkOf is the index in dir of the chunk that holds id.
func chunkOf(dir *packedDir, id string) int {
	// The first chunk whose first id is after id, less one.
	i := sort.Search(len(dir.Chunks), func(i int) bool { return i > 0 && dir.Chunks[i].Lo > id })
	return max(i-1, 0)
}

// packPut writes doc as the row of id in list l unless the row there has a
// later version (as putListed).
func (s *Store) packPut(ctx context.Context, l listing, id string, doc bson.D) error {
	row, err := canonical(doc)
	if err != nil {
		return err
	}
	return s.packEdit(ctx, l, id, func(old bson.Raw) (bson.Raw, bool) {
		if old != nil && versionOf(l.of(old)) > versionOf(doc) {
			return nil, false
		}
		return row, true
	})
}

// packAdd writes the rows of new documents to list l: one by one when
// they are a few (three commands each), or else by writing the list anew
// with them (a command per chunk).
func (s *Store) packAdd(ctx context.Context, l listing, docs []any) error {
	// The rows follow stored documents: the caller's cancellation does not
	// stop them (each command has its own time limit).
	ctx = context.WithoutCancel(ctx)
	rows := make([]bson.Raw, 0, len(docs))
	for _, d := range docs {
		r, err := canonical(d.(bson.D))
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	if len(rows) <= 8 {
		for i, r := range rows {
			if err := s.packPut(ctx, l, rowID(r), docs[i].(bson.D)); err != nil {
				return err
			}
		}
		return nil
	}
	return s.packRebuild(ctx, l, func(cur []bson.Raw) []bson.Raw {
		return mergeRows(l, cur, rows, nil)
	})
}

// mergeRows returns the rows of cur and add, by _id, the later version of
// each _id (add's at the same version), without the _ids of drop, in _id
// order.
func mergeRows(l listing, cur, add []bson.Raw, drop map[string]bool) []bson.Raw {
	byID := make(map[string]bson.Raw, len(cur)+len(add))
	for _, r := range cur {
		if id := rowID(r); !drop[id] {
			byID[id] = r
		}
	}
	for _, w := range add {
		id := rowID(w)
		if c, ok := byID[id]; ok && versionOf(l.of(c)) > versionOf(l.of(w)) {
			continue
		}
		byID[id] = w
	}
	out := make([]bson.Raw, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b bson.Raw) int { return strings.Compare(rowID(a), rowID(b)) })
	return out
}

// packDelete removes the row of id from list l.
func (s *Store) packDelete(ctx context.Context, l listing, id string) error {
	return s.packEdit(ctx, l, id, func(old bson.Raw) (bson.Raw, bool) { return nil, old != nil })
}

// packEdit replaces the row of id in list l (nil when it has none) by what
// edit returns (nil: none), if edit says to write; a chunk grown past
// packedChunkRows splits.
func (s *Store) packEdit(ctx context.Context, l listing, id string, edit func(old bson.Raw) (bson.Raw, bool)) error {
	lk := s.packLock(l.list)
	lk.Lock()
	defer lk.Unlock()
	dir, err := s.readDir(ctx, l.list)
	if err != nil {
		return err
	}
	if len(dir.Chunks) == 0 {
		// A new list: its first chunk, written by the edit below, is
		// named once it is there.
		dir.Chunks = []packedChunkRef{{ID: chunkName(l.list, dir.Next)}}
		dir.Next++
		row, write := edit(nil)
		if !write || row == nil {
			return nil
		}
		if err := s.writeChunk(ctx, dir.Chunks[0].ID, dir.Gen, []bson.Raw{row}); err != nil {
			return err
		}
		return s.writeDir(ctx, dir)
	}
	i := chunkOf(dir, id)
	rows, _, found, err := s.readChunk(ctx, dir, i)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: chunk %s is missing", errListDamaged, dir.Chunks[i].ID)
	}
	at, has := slices.BinarySearchFunc(rows, id, func(r bson.Raw, id string) int { return strings.Compare(rowID(r), id) })
	var old bson.Raw
	if has {
		old = rows[at]
	}
	row, write := edit(old)
	if !write {
		return nil
	}
	switch {
	case row == nil && has:
		rows = slices.Delete(rows, at, at+1)
	case row == nil:
		return nil
	case has:
		rows[at] = row
	default:
		rows = slices.Insert(rows, at, row)
	}
	if len(rows) <= packedChunkRows {
		return s.writeChunk(ctx, dir.Chunks[i].ID, dir.Gen, rows)
	}
	// Split, in a new generation. The last chunk, grown at its end (new
	// documents come in _id order), keeps its rows and a new chunk starts
	// with the newest one; any other splits in halves.
	cut := len(rows) / 2
	if i == len(dir.Chunks)-1 && at == len(rows)-1 {
		cut = len(rows) - 1
	}
	ref := packedChunkRef{ID: chunkName(l.list, dir.Next), Lo: rowID(rows[cut])}
	dir.Next++
	dir.Gen++
	if err := s.writeChunk(ctx, ref.ID, dir.Gen, rows[cut:]); err != nil {
		return err
	}
	dir.Chunks = slices.Insert(dir.Chunks, i+1, ref)
	if err := s.writeDir(ctx, dir); err != nil {
		return err
	}
	return s.writeChunk(ctx, dir.Chunks[i].ID, dir.Gen, rows[:cut])
}

func chunkName(list string, n int) string { return fmt.Sprintf("%s/%d", list, n) }

// packScan calls each with the rows of list l in _id order (newest first
// when desc) after the id after ("": from the first), until it returns
// false. It takes no lock: when the rows it reads moved meanwhile, it
// reads the directory again and goes on after the last row it gave.
func (s *Store) packScan(ctx context.Context, l listing, desc bool, after string, each func(bson.Raw) (bool, error)) error {
	for attempt := 0; ; attempt++ {
		dir, err := s.readDir(ctx, l.list)
		if err != nil {
			return err
		}
		done, err := s.scanDir(ctx, dir, desc, &after, each)
		if done || err != nil {
			return err
		}
		if attempt >= 16 {
			return errBusy(l.list)
		}
		// The rows moved: once more from the directory, unless it did not
		// change, which nothing this store does leaves.
		again, err := s.readDir(ctx, l.list)
		if err != nil {
			return err
		}
		if again.Gen == dir.Gen {
			return errListDamaged
		}
	}
}

// scanDir is packScan over dir, moving after along the rows it gives; done
// is false when a chunk was gone or of a later generation than dir.
func (s *Store) scanDir(ctx context.Context, dir *packedDir, desc bool, after *string, each func(bson.Raw) (bool, error)) (done bool, err error) {
	n := len(dir.Chunks)
	for k := range n {
		i := k
		if desc {
			i = n - 1 - k
		}
		if *after != "" {
			// Skip the chunks wholly on the near side of the cursor.
			if desc && i > 0 && dir.Chunks[i].Lo >= *after {
				continue
			}
			if !desc && i+1 < n && dir.Chunks[i+1].Lo <= *after {
				continue
			}
		}
		rows, gen, found, err := s.readChunk(ctx, dir, i)
		if err != nil {
			return false, err
		}
		if !found || gen > dir.Gen {
			return false, nil
		}
		for j := range rows {
			r := rows[j]
			if desc {
				r = rows[len(rows)-1-j]
			}
			id := rowID(r)
			if *after != "" && (desc && id >= *after || !desc && id <= *after) {
				continue
			}
			*after = id
			more, err := each(r)
			if err != nil || !more {
				return true, err
			}
		}
	}
	return true, nil
}

// packRows returns every row of list l, in _id order.
func (s *Store) packRows(ctx context.Context, l listing) ([]bson.Raw, error) {
	var out []bson.Raw
	err := s.packScan(ctx, l, false, "", func(r bson.Raw) (bool, error) {
		out = append(out, r)
		return true, nil
	})
	return out, err
}

// packRebuild writes list l anew with the rows merge returns (in _id
// order) from the rows it holds now (those it can read): chunks three
// quarters full in a new generation, then the directory naming them, then
// every other chunk of the list is removed (the old list's, and any a
// stopped rebuild or split left). A stop before the directory's write
// leaves the old list whole.
func (s *Store) packRebuild(ctx context.Context, l listing, merge func(cur []bson.Raw) []bson.Raw) error {
	lk := s.packLock(l.list)
	lk.Lock()
	defer lk.Unlock()
	old, err := s.readDir(ctx, l.list)
	if err != nil {
		return err
	}
	var cur []bson.Raw
	for i := range old.Chunks {
		rows, _, _, err := s.readChunk(ctx, old, i)
		if errors.Is(err, errListDamaged) {
			slog.Default().Warn("store: a packed list's chunk cannot be read; the list is rebuilt from its documents", "list", l.list, "chunk", old.Chunks[i].ID)
			continue
		}
		if err != nil {
			return err
		}
		cur = append(cur, rows...)
	}
	rows := merge(cur)
	dir := &packedDir{ID: l.list, Next: old.Next, Gen: old.Gen + 1}
	per := max(1, packedChunkRows*3/4)
	parts := [][]bson.Raw{nil}
	if len(rows) > 0 {
		parts = parts[:0]
		for start := 0; start < len(rows); start += per {
			parts = append(parts, rows[start:min(start+per, len(rows))])
		}
	}
	for k, part := range parts {
		ref := packedChunkRef{ID: chunkName(l.list, dir.Next)}
		if k > 0 {
			ref.Lo = rowID(part[0])
		}
		dir.Next++
		if err := s.writeChunk(ctx, ref.ID, dir.Gen, part); err != nil {
			return err
		}
		dir.Chunks = append(dir.Chunks, ref)
	}
	if err := s.writeDir(ctx, dir); err != nil {
		return err
	}
	keep := make(map[string]bool, len(dir.Chunks))
	for _, c := range dir.Chunks {
		keep[c.ID] = true
	}
	// The list's chunks are the _ids from "<list>/" up to "<list>0" ('0'
	// follows '/'): one read that decodes the chunks, as rebuilds are rare.
	ids, err := findAll[struct {
		ID string `bson:"_id"`
	}](ctx, s, colListChunks, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: l.list + "/"}, {Key: "$lt", Value: l.list + "0"}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return err
	}
	for _, c := range ids {
		if keep[c.ID] {
			continue
		}
		cctx, cancel := s.op(ctx)
		_, err := s.c(colListChunks).DeleteOne(cctx, bson.D{{Key: "_id", Value: c.ID}})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// listPage is a page of list l's documents matching filter, in _id order
// (newest first when newestFirst), as findPage on the list collection.
func listPage[D any](ctx context.Context, s *Store, l listing, filter bson.D, pg Page, newestFirst bool) ([]*D, bool, error) {
	if !s.packed() {
		return findPage[D](ctx, s, l.list, filter, pg, newestFirst, nil)
	}
	var out []*D
	err := s.listEach(ctx, l, filter, newestFirst, pg.After, func(r bson.Raw) (bool, error) {
		var d D
		if err := unmarshalWith(s.reg, r, &d); err != nil {
			return false, err
		}
		out = append(out, &d)
		return len(out) <= pg.First, nil
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > pg.First
	if more {
		out = out[:pg.First]
	}
	return out, more, nil
}

// listAll is every document of list l matching filter, in _id order.
func listAll[D any](ctx context.Context, s *Store, l listing, filter bson.D) ([]*D, error) {
	if !s.packed() {
		return findAll[D](ctx, s, l.list, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	}
	var out []*D
	err := s.listEach(ctx, l, filter, false, "", func(r bson.Raw) (bool, error) {
		var d D
		if err := unmarshalWith(s.reg, r, &d); err != nil {
			return false, err
		}
		out = append(out, &d)
		return true, nil
	})
	return out, err
}

// listCount counts the documents of list l matching filter.
func listCount(ctx context.Context, s *Store, l listing, filter bson.D) (int, error) {
	if !s.packed() {
		return count(ctx, s, l.list, filter)
	}
	n := 0
	err := s.listEach(ctx, l, filter, false, "", func(bson.Raw) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// listEach calls each with the rows of list l matching filter.
func (s *Store) listEach(ctx context.Context, l listing, filter bson.D, desc bool, after string, each func(bson.Raw) (bool, error)) error {
	match, err := compileFilter(filter)
	if err != nil {
		return err
	}
	return s.packScan(ctx, l, desc, after, func(r bson.Raw) (bool, error) {
		if !match(r) {
			return true, nil
		}
		return each(r)
	})
}
