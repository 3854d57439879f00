package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// The member's access log (README, "Who saw my data").
//
// It is an append-only projection of the audit, in its own collection,
// written by AppendAudit with the audit batch that carries the reads: each
// batch inserts one fragment per (member, organisation, role, case, data
// category, actor, UTC day) it touched, with that batch's first and last
// time and count. A reader merges the fragments of one entry. Nothing is
// ever read back and rewritten: on the embedded store an update is a read
// and a write back (about 1.5 ms each, against 0.1 ms per inserted
// document), and folding each batch into one document per entry with
// upserts had put seconds of writes on every audit batch of a busy page
// load. Counting and grouping years of raw audit rows at read time would
// decode the whole audit collection on the embedded store instead.
//
// A fragment's _id is
//
//	<member prefix>:<YYYY-MM-DD>:<key hash>:<fragment id>
//
// where the member prefix is a fixed-length hash of the member key, so one
// member's fragments are one contiguous _id range (no member key is a
// prefix of another's range), the fragments of one entry are contiguous in
// it, and a page, newest day first, is one range read on _id that stops
// once it has the page's entries. The entry's id is the _id without the
// fragment id. Every read is bounded to the caller's own range, so no
// cursor can reach another member's entries.
//
// Only reads that showed data are logged (outcome ALLOWED) and only of
// another party: the member's own reads are left out of the log.

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

// memberPrefix is the fixed-length start of every access-log _id of one
// member: 128 bits of SHA-256 over the member key.
func memberPrefix(member string) string {
	h := sha256.Sum256([]byte(member))
	return hex.EncodeToString(h[:16])
}

func accessLogID(d accessLogDoc) string {
	h := sha256.Sum256([]byte(strings.Join([]string{d.Org, d.Role, d.CaseID, d.Category, d.Actor}, "\x00")))
	return memberPrefix(d.Member) + ":" + d.Day + ":" + hex.EncodeToString(h[:8])
}

// accessLogEntries groups the loggable reads of one audit batch.
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

// insertAccessLog appends one audit batch's fragments: one insert, with
// the audit rows it mirrors.
func (s *Store) insertAccessLog(ctx context.Context, docs []accessLogDoc) error {
	if len(docs) == 0 {
		return nil
	}
	out := make([]any, len(docs))
	for i, d := range docs {
		d.ID += ":" + NewIDAt(d.FirstAt)
		out[i] = d
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colAccessLog).InsertMany(ctx, out, options.InsertMany().SetOrdered(false))
	return err
}

// entryIDPattern is the shape of an entry's id: a cursor names an entry,
// never one of its fragments (which would resume inside the entry and show
// it again, partly counted).
var entryIDPattern = regexp.MustCompile(`^[0-9a-f]{32}:[0-9]{4}-[0-9]{2}-[0-9]{2}:[0-9a-f]{16}$`)

// entryID is the id of the entry a fragment belongs to. A document the
// earlier, folded log wrote has no fragment id: it is its own entry's one
// fragment (and sorts right after the entry's newer fragments).
func entryID(fragmentID string) string {
	if strings.Count(fragmentID, ":") == 3 {
		return fragmentID[:strings.LastIndexByte(fragmentID, ':')]
	}
	return fragmentID
}

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
		// An entry's fragments sort after its id: $lt leaves them all out.
		hi = min(hi, pg.After)
	}
	docs, err := s.accessLogEntriesIn(ctx, member, lo, hi, f, pg.First+1, nil)
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
	proj := bson.D{{Key: "_id", Value: 1}, {Key: "firstAt", Value: 1}, {Key: "lastAt", Value: 1}}
	docs, err := s.accessLogEntriesIn(ctx, member, lo, hi, f, 0, proj)
	return len(docs), translate(err, "access log")
}

// accessLogEntriesIn reads the member's fragments in [lo, hi), newest
// first, merging each entry's fragments (they are contiguous), and keeps
// the entries f's times overlap, stopping at limit entries (0: all). The
// read is one range on _id, left as soon as the page is full.
func (s *Store) accessLogEntriesIn(ctx context.Context, member, lo, hi string, f AccessLogFilter, limit int, proj bson.D) ([]*accessLogDoc, error) {
	filter := bson.D{
		{Key: "_id", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: hi}}},
		// The range is the member's; the key makes sure of it.
		{Key: "member", Value: member},
	}
	if f.OrgKind != nil {
		filter = append(filter, bson.E{Key: "orgKind", Value: string(*f.OrgKind)})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetBatchSize(200)
	if proj != nil {
		opts.SetProjection(proj)
	}
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
		return (f.From == nil || !d.LastAt.Before(*f.From)) && (f.To == nil || !d.FirstAt.After(*f.To))
	}
	var out []*accessLogDoc
	var open *accessLogDoc
	for cur.Next(ctx) {
		var d accessLogDoc
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		d.ID = entryID(d.ID)
		if open != nil && open.ID == d.ID {
			open.Count += d.Count
			if d.FirstAt.Before(open.FirstAt) {
				open.FirstAt = d.FirstAt
			}
			if d.LastAt.After(open.LastAt) {
				open.LastAt = d.LastAt
			}
			continue
		}
		if open != nil && keep(open) {
			if out = append(out, open); limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		open = &d
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	if open != nil && keep(open) && (limit == 0 || len(out) < limit) {
		out = append(out, open)
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
