package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// The heads of the audit hash chains (see internal/audit/chain.go).
//
// A batch records its chain's head in its own insert: after the audit
// rows, one more document in audit_events, the head record
//
//	+<chain>/<the batch's first position, 12 digits>
//
// holding the chain's position and hash after the batch, and the ids of
// the rows whose access-log fragments (accesslog.go) are written later. The
// insert is ordered: on the embedded store it is one SQLite transaction, so
// the rows and their head land together or not at all; on MongoDB the head
// is written last, so a head that is there means its rows are. Why one
// insert: on the embedded store every command is a commit (about 1 ms,
// more under load, besides about 0.2 ms a document), and the head's upsert
// and the fragments' insert had made every audit batch, which the requests
// wait for, three of them.
//
// audit_chains holds one checkpoint per chain: inserted when this process
// starts the chain, before its first rows (so a chain whose first insert
// failed is still known, and verification does not report its segment
// missing), then moved forward, at most every auditFlushEvery, to a head
// whose batches' fragments are all in access_log. A chain's head is its
// checkpoint followed forward through the head records, each read by _id:
// the one after a head at position n is the record whose batch starts at
// n+1 (chainHead). A crash loses no fragment: those of the batches past a
// chain's checkpoint are rebuilt from the rows their head records list and
// written at the next start (recoverAuditTails); their _ids are fixed by
// those rows, so a second copy is refused.
//
// Head records' _ids start with "+", below every audit event's id (hex
// digits), so a read of events by _id range, case, subject or chain never
// meets one, and auditEvents leaves them out by _id (auditRowsOnly).

type chainHeadDoc struct {
	ID        string    `bson:"_id"`
	Day       string    `bson:"day"`
	Seq       int64     `bson:"seq"`
	Hash      string    `bson:"hash"`
	UpdatedAt time.Time `bson:"updatedAt"`
	// Done is set once nothing past the checkpoint is left to recover
	// and the chain's day is over.
	Done bool `bson:"done,omitempty"`
}

// headRecordDoc is a batch's head record in audit_events.
type headRecordDoc struct {
	ID     string `bson:"_id"`
	HeadOf string `bson:"headOf"`
	Seq    int64  `bson:"seq"`
	Hash   string `bson:"hash"`
	// Rows are the batch's rows that make access-log fragments, in the
	// batch's order.
	Rows []string `bson:"rows,omitempty"`
}

// headRecordPrefix starts every head record's _id; it sorts below the
// hex digits that start an audit event's.
const headRecordPrefix = "+"

func headRecordID(chain string, first int64) string {
	return fmt.Sprintf("%s%s/%012d", headRecordPrefix, chain, first)
}

// auditRowsOnly leaves the head records out of a read of audit events.
func auditRowsOnly() bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "0"}}}}
}

// auditFlushEvery and auditFlushMax decide when a batch also writes the
// fragments waiting before it (a member's read of the log, the sweeper and
// Close write them at once): once the oldest has waited auditFlushEvery,
// or auditFlushMax are waiting. On the embedded store a fragment costs
// about 0.2 ms to insert and a command about 1 ms more; 64 at a time keep
// the command's share small without holding one batch's callers for the
// fragments of hundreds of batches.
const (
	auditFlushEvery = 250 * time.Millisecond
	auditFlushMax   = 64
)

// auditTail is what this process holds of the chains it writes; guarded
// by appendMu.
type auditTail struct {
	// chains are the chains this process has started (their checkpoints
	// exist).
	chains map[string]bool
	// pending are fragments of stored batches not yet in access_log, and
	// heads the head of each chain after the last of those batches: the
	// checkpoints to move to once the fragments are written.
	pending []accessLogDoc
	heads   map[string]ChainHead
	since   time.Time
	// flushEvery replaces auditFlushEvery when set (tests).
	flushEvery time.Duration
}

// ChainHead is a chain's recorded last link.
type ChainHead struct {
	Chain string
	Day   string
	Seq   int64
	Hash  string
}

// chainDay is the day in a chain name "<instance>/<day>/<segment>".
func chainDay(chain string) string {
	parts := strings.Split(chain, "/")
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// batchHeads is, per chain a batch extends (in the order it first names
// them), the batch's first position and the head after it.
func batchHeads(events []domain.AuditEvent) ([]ChainHead, map[string]int64) {
	var heads []ChainHead
	at := map[string]int{}
	first := map[string]int64{}
	for _, e := range events {
		if e.Chain == "" {
			continue
		}
		i, ok := at[e.Chain]
		if !ok {
			i = len(heads)
			at[e.Chain] = i
			heads = append(heads, ChainHead{Chain: e.Chain, Day: chainDay(e.Chain)})
			first[e.Chain] = e.Seq
		}
		if e.Seq > heads[i].Seq {
			heads[i].Seq, heads[i].Hash = e.Seq, e.Hash
		}
		first[e.Chain] = min(first[e.Chain], e.Seq)
	}
	return heads, first
}

// startChain inserts the checkpoint of a chain this process has not
// written yet, with those of the same instance and day's earlier segments
// it has not written either (a segment whose first insert failed before
// its checkpoint was stored held nothing: recorded empty, it is not
// reported missing). Checkpoints already there (another process named
// the chain) are kept. The caller holds appendMu.
func (s *Store) startChain(ctx context.Context, chain string) error {
	if s.tail.chains[chain] {
		return nil
	}
	names := []string{chain}
	if i := strings.LastIndexByte(chain, '/'); i > 0 {
		if seg, err := strconv.Atoi(chain[i+1:]); err == nil {
			for k := range min(seg, 1000) {
				if name := fmt.Sprintf("%s/%d", chain[:i], k); !s.tail.chains[name] {
					names = append(names, name)
				}
			}
		}
	}
	docs := make([]any, len(names))
	for i, name := range names {
		docs[i] = chainHeadDoc{ID: name, Day: chainDay(name), UpdatedAt: s.Now()}
	}
	if s.beforeWrite != nil {
		if err := s.beforeWrite(colAuditChains, chain); err != nil {
			return err
		}
	}
	ictx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colAuditChains).InsertMany(ictx, docs, options.InsertMany().SetOrdered(false)); err != nil && !allDuplicates(err) {
		return err
	}
	if s.tail.chains == nil {
		s.tail.chains = map[string]bool{}
	}
	for _, name := range names {
		s.tail.chains[name] = true
	}
	return nil
}

// advanceCheckpoint moves a chain's checkpoint to h, never back. On
// MongoDB the filter says so (another replica's recoverAuditTails may have
// moved it further). On the embedded store one process writes, and it only
// ever moves a checkpoint forward (its own chains' under appendMu, in
// order; a stopped process's from where it was), so the write is by _id
// alone, with no read before it.
func (s *Store) advanceCheckpoint(ctx context.Context, h ChainHead, done bool) error {
	return s.locked(ctx, colAuditChains, h.Chain, func(ctx context.Context) error {
		filter := bson.D{{Key: "_id", Value: h.Chain}}
		if !s.serialWrites {
			filter = append(filter, bson.E{Key: "seq", Value: bson.D{{Key: "$lte", Value: h.Seq}}})
		}
		set := bson.D{{Key: "seq", Value: h.Seq}, {Key: "hash", Value: h.Hash}, {Key: "updatedAt", Value: s.Now()}}
		if done {
			set = append(set, bson.E{Key: "done", Value: true})
		}
		_, err := s.c(colAuditChains).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
		return err
	})
}

// chainHead follows a chain from its checkpoint through its head records
// to its head, and returns the records it passed when withRows (else only
// their positions are read).
func (s *Store) chainHead(ctx context.Context, cp *chainHeadDoc, withRows bool) (ChainHead, []*headRecordDoc, error) {
	h := ChainHead{Chain: cp.ID, Day: cp.Day, Seq: cp.Seq, Hash: cp.Hash}
	proj := bson.D{{Key: "headOf", Value: 1}, {Key: "seq", Value: 1}, {Key: "hash", Value: 1}}
	if withRows {
		proj = nil
	}
	var recs []*headRecordDoc
	for {
		rec, err := findByID[headRecordDoc](ctx, s, colAudit, headRecordID(h.Chain, h.Seq+1), proj)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return h, recs, nil
		}
		if err != nil {
			return ChainHead{}, nil, err
		}
		if rec.HeadOf != h.Chain || rec.Seq <= h.Seq {
			// Not a head this process could have written: the chain's
			// head is where its records end.
			return h, recs, nil
		}
		h.Seq, h.Hash = rec.Seq, rec.Hash
		if withRows {
			recs = append(recs, rec)
		}
	}
}

// accessLogOf rebuilds the access-log fragments of the batches whose head
// records are recs, from the rows they list: each batch's in its order,
// as AppendAudit made them.
func (s *Store) accessLogOf(ctx context.Context, recs []*headRecordDoc) ([]accessLogDoc, error) {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.Rows...)
	}
	docs, err := findByIDs[auditDoc](ctx, s, colAudit, ids, nil)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*auditDoc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	var out []accessLogDoc
	for _, r := range recs {
		events := make([]domain.AuditEvent, 0, len(r.Rows))
		for _, id := range r.Rows {
			if d := byID[id]; d != nil {
				events = append(events, *toAuditEvent(d))
			}
		}
		frags, _ := accessLogEntries(events)
		out = append(out, frags...)
	}
	return out, nil
}

// chainHeads reads the checkpoints of the UTC days from..to and follows
// each to its chain's head.
func (s *Store) chainHeads(ctx context.Context, fromDay, toDay string) ([]ChainHead, error) {
	cps, err := findAll[chainHeadDoc](ctx, s, colAuditChains,
		bson.D{{Key: "day", Value: bson.D{{Key: "$gte", Value: fromDay}, {Key: "$lte", Value: toDay}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	out := make([]ChainHead, 0, len(cps))
	for _, cp := range cps {
		h, _, err := s.chainHead(ctx, cp, false)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// flushAudit writes the access-log fragments of stored batches and moves
// the chains' checkpoints past them.
func (s *Store) flushAudit(ctx context.Context) error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	return s.flushAuditLocked(ctx)
}

// flushAuditLocked is flushAudit for a caller holding appendMu. What fails
// stays pending, for the next batch, read or sweep; after a crash, the
// head records past the checkpoints hold it (recoverAuditTails).
func (s *Store) flushAuditLocked(ctx context.Context) error {
	if len(s.tail.pending) > 0 {
		if err := s.insertAccessLog(ctx, s.tail.pending); err != nil {
			s.auditPending.Store(true)
			return err
		}
		s.tail.pending = nil
	}
	for chain, h := range s.tail.heads {
		if err := s.advanceCheckpoint(ctx, h, false); err != nil {
			s.auditPending.Store(true)
			return err
		}
		delete(s.tail.heads, chain)
	}
	s.auditPending.Store(false)
	return nil
}

// recoverAuditTails writes the access-log fragments of the batches past
// each chain's checkpoint, which a process that stopped may not have
// written (rebuilt from the rows their head records list), moves those
// checkpoints to the chains' heads, and marks done the chains of days
// before yesterday. This process's own chains are its own to flush.
func (s *Store) recoverAuditTails(ctx context.Context) error {
	cps, err := findAll[chainHeadDoc](ctx, s, colAuditChains, bson.D{{Key: "done", Value: bson.D{{Key: "$ne", Value: true}}}}, options.Find())
	if err != nil {
		return err
	}
	s.appendMu.Lock()
	own := maps.Clone(s.tail.chains)
	s.appendMu.Unlock()
	old := s.Now().AddDate(0, 0, -1).Format(time.DateOnly)
	for _, cp := range cps {
		if own[cp.ID] {
			continue
		}
		h, recs, err := s.chainHead(ctx, cp, true)
		if err != nil {
			return err
		}
		access, err := s.accessLogOf(ctx, recs)
		if err != nil {
			return err
		}
		if err := s.insertAccessLog(ctx, access); err != nil {
			return err
		}
		if done := cp.Day < old; h.Seq > cp.Seq || done {
			if err := s.advanceCheckpoint(ctx, h, done); err != nil {
				return err
			}
		}
	}
	return nil
}

// AuditChains returns, for a coordinator, the heads of the chains of the
// UTC days from..to and every audit event that belongs to them, plus the
// events of those days that belong to no chain. Anyone else gets nothing.
func (s *Store) AuditChains(ctx context.Context, p domain.Principal, from, to time.Time) ([]ChainHead, []domain.AuditEvent, error) {
	if auditScope(p).none {
		return nil, nil, nil
	}
	fromDay, toDay := from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)
	out, err := s.chainHeads(ctx, fromDay, toDay)
	if err != nil {
		return nil, nil, translate(err, "audit chains")
	}
	names := make([]string, 0, len(out))
	for _, h := range out {
		names = append(names, h.Chain)
	}
	start, _ := time.Parse(time.DateOnly, fromDay)
	end, _ := time.Parse(time.DateOnly, toDay)
	// Events that name a chain of these days (whether or not its head
	// survived), and those of these days that name none.
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "chain", Value: bson.D{{Key: "$in", Value: names}}}},
		bson.D{{Key: "chain", Value: bson.D{{Key: "$regex", Value: "/(" + strings.Join(daysBetween(start, end), "|") + ")/"}}}},
		bson.D{{Key: "at", Value: bson.D{{Key: "$gte", Value: start}, {Key: "$lt", Value: end.AddDate(0, 0, 1)}}}, {Key: "chain", Value: bson.D{{Key: "$exists", Value: false}}}},
	}}}
	docs, err := findAll[auditDoc](ctx, s, colAudit, filter, options.Find().SetSort(bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		return nil, nil, translate(err, "audit events")
	}
	events := make([]domain.AuditEvent, 0, len(docs))
	for _, d := range docs {
		events = append(events, *toAuditEvent(d))
	}
	return out, events, nil
}

// daysBetween lists the days from..to (at most about a year's worth).
func daysBetween(from, to time.Time) []string {
	var out []string
	for d := from; !d.After(to) && len(out) < 400; d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// ExportAudit streams, for a coordinator, the audit of the UTC days
// from..to: first the heads of those days' chains (head), then every event
// of those chains and every event of those days that names no chain
// (event), as the cursor reads them; nothing is collected. The heads are
// read first, so an event written after the export began (beyond its
// chain's head) is left out rather than reported as a break. Anyone else
// gets nothing.
//
// The read is one _id range (audit ids start with their time's seconds),
// from a day before from, since an event is chained when its batch is
// written, a little after its time; on MongoDB it is an index range, on
// the embedded store a scan admitted like the others.
func (s *Store) ExportAudit(ctx context.Context, p domain.Principal, from, to time.Time, head func(ChainHead) error, event func(domain.AuditEvent) error) error {
	if auditScope(p).none {
		return nil
	}
	fromDay, toDay := from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)
	heads, err := s.chainHeads(ctx, fromDay, toDay)
	if err != nil {
		return translate(err, "audit chains")
	}
	last := make(map[string]int64, len(heads))
	for _, h := range heads {
		last[h.Chain] = h.Seq
		if err := head(h); err != nil {
			return err
		}
	}
	start, _ := time.Parse(time.DateOnly, fromDay)
	end, _ := time.Parse(time.DateOnly, toDay)
	end = end.AddDate(0, 0, 1)
	idAt := func(t time.Time) string { return fmt.Sprintf("%08x%016x", uint32(t.Unix()), 0) }
	release, err := s.admitScan(ctx, colAudit)
	if err != nil {
		return err
	}
	defer release()
	cur, err := s.c(colAudit).Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: idAt(start.AddDate(0, 0, -1))}, {Key: "$lt", Value: idAt(end)}}}},
		options.Find().SetBatchSize(500))
	if err != nil {
		return translate(err, "audit events")
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	for cur.Next(ctx) {
		var d auditDoc
		if err := cur.Decode(&d); err != nil {
			return translate(err, "audit events")
		}
		if d.Chain == "" {
			if d.At.Before(start) || !d.At.Before(end) {
				continue
			}
		} else {
			if day := chainDay(d.Chain); day < fromDay || day > toDay {
				continue
			}
			if seq, ok := last[d.Chain]; ok && d.Seq > seq {
				continue // written after the export began
			}
		}
		if err := event(*toAuditEvent(&d)); err != nil {
			return err
		}
	}
	return translate(cur.Err(), "audit events")
}
