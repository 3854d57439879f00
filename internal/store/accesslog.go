package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// The member's access log (README, "Who saw my data").
//
// It is an append-only projection of the audit, in its own collection,
// written by AppendAudit with the audit batch that carries the reads. An
// entry is one (member, organisation, role, case, data category, actor,
// UTC day), with its first and last time and a count; each batch inserts,
// per member and day it touched, one fragment holding that batch's share of
// every entry it touched, and a reader merges an entry's shares. Nothing is
// ever read back and rewritten: on the embedded store an update is a read
// and a write back (about 1.5 ms each, against 0.1 ms per inserted
// document), and folding each batch into one document per entry with
// upserts had put seconds of writes on every audit batch of a busy page
// load. Counting and grouping years of raw audit rows at read time would
// decode the whole audit collection on the embedded store instead.
//
// A fragment's _id is
//
//	<member prefix>:<YYYY-MM-DD>:<fragment id>
//
// where the member prefix is a fixed-length hash of the member key, so one
// member's fragments are one contiguous _id range (no member key is a
// prefix of another's range) and one day's fragments are contiguous in it.
// A page, newest day first, is one range read on _id that stops at the end
// of the day that fills it: a day's fragments are merged whole, and its
// entries ordered by their id,
//
//	<member prefix>:<YYYY-MM-DD>:<key hash>
//
// (the key being organisation, role, case, category and actor), which a
// cursor names. Every read is bounded to the caller's own range, so no
// cursor can reach another member's entries.
//
// Why one fragment per member and day rather than one per entry: a case
// detail touches four or five entries of one member, and on the embedded
// store an inserted document costs per document and per field (FerretDB
// encodes every field with its type, SQLite parses the whole text again for
// each _id index), so the entries of a fragment are packed, one short JSON
// array each (packEntry). Fragments written earlier, one per entry with the
// entry's fields (<entry id>:<fragment id>), or folded into one document per
// entry (<entry id>), are read and merged the same way.
//
// Only reads that showed data are logged (outcome ALLOWED) and only of
// another party: the member's own reads are left out of the log.

// accessLogDoc is one entry: as merged for a page, or as stored before
// fragments were packed.
type accessLogDoc struct {
	ID       string    `bson:"_id"`
	Member   string    `bson:"member"`
	Day      string    `bson:"day"`
	Org      string    `bson:"org"`
	OrgKind  string    `bson:"orgKind"`
	Role     string    `bson:"role"`
	CaseID   string    `bson:"caseId,omitempty"`
	Category string    `bson:"category"`
	Actor    string    `bson:"actor"`
	FirstAt  time.Time `bson:"firstAt"`
	LastAt   time.Time `bson:"lastAt"`
	Count    int       `bson:"count"`
}

// accessLogFragment is what one batch writes for one member and day: its
// share of each entry, packed (packEntry).
type accessLogFragment struct {
	ID      string   `bson:"_id"`
	Member  string   `bson:"member"`
	Day     string   `bson:"day"`
	Entries []string `bson:"entries"`
}

// storedAccessLog reads any document of the collection: a packed fragment
// (Entries set) or one entry as stored before (its fields set).
type storedAccessLog struct {
	Doc     accessLogDoc `bson:",inline"`
	Entries []string     `bson:"entries,omitempty"`
}

// memberPrefix is the fixed-length start of every access-log _id of one
// member: 128 bits of SHA-256 over the member key.
func memberPrefix(member string) string {
	h := sha256.Sum256([]byte(member))
	return hex.EncodeToString(h[:16])
}

// accessLogID is the id of the entry d belongs to.
func accessLogID(d accessLogDoc) string {
	h := sha256.Sum256([]byte(strings.Join([]string{d.Org, d.Role, d.CaseID, d.Category, d.Actor}, "\x00")))
	return memberPrefix(d.Member) + ":" + d.Day + ":" + hex.EncodeToString(h[:8])
}

// packEntry is an entry's share in a fragment: a JSON array of its key,
// times (Unix milliseconds) and count. The member and day are the
// fragment's.
func packEntry(d accessLogDoc) string {
	b, _ := json.Marshal([]any{d.Org, d.OrgKind, d.Role, d.CaseID, d.Category, d.Actor, d.FirstAt.UnixMilli(), d.LastAt.UnixMilli(), d.Count})
	return string(b)
}

// unpackEntry reverses packEntry for a fragment of member's day.
func unpackEntry(member, day, packed string) (accessLogDoc, error) {
	var v []json.RawMessage
	if err := json.Unmarshal([]byte(packed), &v); err != nil || len(v) != 9 {
		return accessLogDoc{}, errors.New("store: malformed access-log fragment")
	}
	d := accessLogDoc{Member: member, Day: day}
	var first, last int64
	for i, dst := range []any{&d.Org, &d.OrgKind, &d.Role, &d.CaseID, &d.Category, &d.Actor, &first, &last, &d.Count} {
		if err := json.Unmarshal(v[i], dst); err != nil {
			return accessLogDoc{}, errors.New("store: malformed access-log fragment")
		}
	}
	d.FirstAt, d.LastAt = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	d.ID = accessLogID(d)
	return d, nil
}

// accessLogEntries groups the loggable reads of one audit batch into
// entries.
func accessLogEntries(events []domain.AuditEvent) []accessLogDoc {
	byID := map[string]int{}
	var out []accessLogDoc
	for _, e := range events {
		if e.Outcome != "ALLOWED" || e.PatientID == "" || e.Role == domain.RoleMember {
			continue
		}
		cat, ok := domain.CategoryOf(e.ResourceType, e.FieldGroup)
		if !ok {
			continue
		}
		actor := domain.ActorPerson
		if e.ClientID != "" {
			actor = domain.ActorSystem
		}
		at := e.At.UTC().Truncate(time.Millisecond)
		d := accessLogDoc{
			Member: e.PatientID, Day: at.Format(time.DateOnly), Org: e.Org, OrgKind: string(domain.OrgKindOf(e.Role)),
			Role: string(e.Role), CaseID: e.CaseID, Category: string(cat), Actor: string(actor),
			FirstAt: at, LastAt: at, Count: 1,
		}
		d.ID = accessLogID(d)
		if i, ok := byID[d.ID]; ok {
			o := &out[i]
			o.Count++
			if at.Before(o.FirstAt) {
				o.FirstAt = at
			}
			if at.After(o.LastAt) {
				o.LastAt = at
			}
			continue
		}
		byID[d.ID] = len(out)
		out = append(out, d)
	}
	return out
}

// accessLogFragments packs one batch's entries into one fragment per member
// and day.
func accessLogFragments(entries []accessLogDoc) []accessLogFragment {
	byDay := map[string]int{}
	var out []accessLogFragment
	for _, d := range entries {
		key := d.Member + "\x00" + d.Day
		i, ok := byDay[key]
		if !ok {
			i = len(out)
			byDay[key] = i
			out = append(out, accessLogFragment{
				ID: memberPrefix(d.Member) + ":" + d.Day + ":" + NewIDAt(d.FirstAt), Member: d.Member, Day: d.Day,
			})
		}
		out[i].Entries = append(out[i].Entries, packEntry(d))
	}
	return out
}

// insertAccessLog appends one audit batch's fragments: one insert, with
// the audit rows it mirrors.
func (s *Store) insertAccessLog(ctx context.Context, entries []accessLogDoc) error {
	frags := accessLogFragments(entries)
	if len(frags) == 0 {
		return nil
	}
	out := make([]any, len(frags))
	for i, f := range frags {
		out[i] = f
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colAccessLog).InsertMany(ctx, out, options.InsertMany().SetOrdered(false))
	return err
}

// entryIDPattern is the shape of an entry's id: a cursor names an entry,
// never a fragment (which would resume inside a day at a place no entry
// holds).
var entryIDPattern = regexp.MustCompile(`^[0-9a-f]{32}:[0-9]{4}-[0-9]{2}-[0-9]{2}:[0-9a-f]{16}$`)

// AccessLogFilter narrows a member's access log.
type AccessLogFilter struct {
	From, To *time.Time
	OrgKind  *domain.OrgKind
}

// AccessLog returns one page of the access log of the member p is, newest
// day first, with each entry's organisation from the registry. Any other
// principal has no access log: the page is empty. The cursor is an entry's
// id; one outside the member's own range is refused.
func (s *Store) AccessLog(ctx context.Context, p domain.Principal, f AccessLogFilter, pg Page) ([]*domain.AccessLogEntry, bool, error) {
	member := accessLogMember(p)
	if member == "" {
		return nil, false, nil
	}
	prefix := memberPrefix(member)
	lo, hi := accessLogRange(member, f)
	if pg.After != "" {
		if !strings.HasPrefix(pg.After, prefix+":") || !entryIDPattern.MatchString(pg.After) {
			return nil, false, domain.Errorf(domain.CodeBadUserInput, "after is not a cursor of this list")
		}
		// The cursor's day is read whole again (its fragments lie on
		// both sides of the cursor); its entries from the cursor on are
		// left out when merged.
		hi = min(hi, pg.After[:len(prefix)+len(":YYYY-MM-DD")]+";")
	}
	docs, err := s.accessLogEntriesIn(ctx, member, lo, hi, pg.After, f, pg.First+1)
	if err != nil {
		return nil, false, translate(err, "access log")
	}
	return s.accessLogPage(ctx, docs, pg)
}

// CountAccessLog counts the entries of the member p is that match f.
func (s *Store) CountAccessLog(ctx context.Context, p domain.Principal, f AccessLogFilter) (int, error) {
	member := accessLogMember(p)
	if member == "" {
		return 0, nil
	}
	lo, hi := accessLogRange(member, f)
	docs, err := s.accessLogEntriesIn(ctx, member, lo, hi, "", f, 0)
	return len(docs), translate(err, "access log")
}

// accessLogEntriesIn reads the member's fragments in [lo, hi), newest day
// first, merges each day's into entries, and keeps those before after (an
// entry id; "" for all) that f matches, newest day first and by id within
// a day, stopping at the end of the day that brings limit entries (0: all).
// The read is one range on _id, left as soon as the page is full.
func (s *Store) accessLogEntriesIn(ctx context.Context, member, lo, hi, after string, f AccessLogFilter, limit int) ([]*accessLogDoc, error) {
	filter := bson.D{
		{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}},
		// The range is the member's; the key makes sure of it.
		{Key: "member", Value: member},
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetBatchSize(200)
	ctx, cancel := s.op(ctx)
	defer cancel()
	release, err := s.admitScan(ctx, colAccessLog)
	if err != nil {
		return nil, err
	}
	defer release()
	cur, err := s.c(colAccessLog).Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	keep := func(d *accessLogDoc) bool {
		return (after == "" || d.ID < after) &&
			(f.From == nil || !d.LastAt.Before(*f.From)) && (f.To == nil || !d.FirstAt.After(*f.To)) &&
			(f.OrgKind == nil || d.OrgKind == string(*f.OrgKind))
	}
	var out []*accessLogDoc
	day, entries := "", map[string]*accessLogDoc{}
	// endDay appends the day's entries that are kept, by id, newest
	// first (the order of their ids in the collection).
	endDay := func() {
		ids := make([]string, 0, len(entries))
		for id, d := range entries {
			if keep(d) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range slices.Backward(ids) {
			out = append(out, entries[id])
		}
		clear(entries)
	}
	add := func(d accessLogDoc) {
		o := entries[d.ID]
		if o == nil {
			entries[d.ID] = &d
			return
		}
		o.Count += d.Count
		if d.FirstAt.Before(o.FirstAt) {
			o.FirstAt = d.FirstAt
		}
		if d.LastAt.After(o.LastAt) {
			o.LastAt = d.LastAt
		}
	}
	for cur.Next(ctx) {
		var d storedAccessLog
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		if d.Doc.Day != day {
			if endDay(); limit > 0 && len(out) >= limit {
				return out[:limit], nil
			}
			day = d.Doc.Day
		}
		if d.Entries == nil {
			// One entry, stored whole before fragments were packed.
			e := d.Doc
			e.FirstAt, e.LastAt = e.FirstAt.UTC(), e.LastAt.UTC()
			e.ID = accessLogID(e)
			add(e)
			continue
		}
		for _, packed := range d.Entries {
			e, err := unpackEntry(d.Doc.Member, d.Doc.Day, packed)
			if err != nil {
				return nil, err
			}
			add(e)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	if endDay(); limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// accessLogRange is the _id range of one member's entries within f's days.
func accessLogRange(member string, f AccessLogFilter) (lo, hi string) {
	prefix := memberPrefix(member)
	lo, hi = prefix+":", prefix+";"
	if f.From != nil {
		lo = prefix + ":" + f.From.UTC().Format(time.DateOnly)
	}
	if f.To != nil {
		hi = min(hi, prefix+":"+f.To.UTC().Format(time.DateOnly)+";")
	}
	return lo, hi
}

// accessLogPage cuts a page and names each entry's organisation from the
// registry (one read by _id for the page's organisations).
func (s *Store) accessLogPage(ctx context.Context, docs []*accessLogDoc, pg Page) ([]*domain.AccessLogEntry, bool, error) {
	more := len(docs) > pg.First
	if more {
		docs = docs[:pg.First]
	}
	orgIDs := make([]string, 0, len(docs))
	for _, d := range docs {
		orgIDs = append(orgIDs, d.Org)
	}
	orgs, err := findByIDs[orgDoc](ctx, s, colOrgs, orgIDs, nil)
	if err != nil {
		return nil, false, translate(err, "organizations")
	}
	byOrg := make(map[string]*domain.Organization, len(orgs))
	for _, o := range orgs {
		byOrg[o.ID] = toOrg(o)
	}
	out := make([]*domain.AccessLogEntry, 0, len(docs))
	for _, d := range docs {
		org := byOrg[d.Org]
		if org == nil {
			// Registered when it read; kept by name if since removed.
			org = &domain.Organization{ID: d.Org, Name: d.Org, Kind: domain.OrgKind(d.OrgKind)}
		}
		out = append(out, &domain.AccessLogEntry{
			ID: d.ID, Day: d.Day, FirstAt: d.FirstAt.UTC(), LastAt: d.LastAt.UTC(), Count: d.Count,
			OrgID: d.Org, Org: org, Role: domain.Role(d.Role), CaseID: d.CaseID,
			Category: domain.DataCategory(d.Category), Actor: domain.Actor(d.Actor),
		})
	}
	return out, more, nil
}
