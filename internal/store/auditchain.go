package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// The heads of the audit hash chains (see internal/audit/chain.go): one
// document per chain, its last position and hash, rewritten with every
// batch by the one process that writes that chain (under appendMu).

type chainHeadDoc struct {
	ID        string    `bson:"_id"`
	Day       string    `bson:"day"`
	Seq       int64     `bson:"seq"`
	Hash      string    `bson:"hash"`
	UpdatedAt time.Time `bson:"updatedAt"`
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

// recordChainHeads writes the head of each chain the batch extended.
func (s *Store) recordChainHeads(ctx context.Context, events []domain.AuditEvent) error {
	last := map[string]domain.AuditEvent{}
	for _, e := range events {
		if e.Chain != "" && e.Seq > last[e.Chain].Seq {
			last[e.Chain] = e
		}
	}
	for chain, e := range last {
		err := s.locked(ctx, colAuditChains, chain, func(ctx context.Context) error {
			_, err := s.c(colAuditChains).UpdateOne(ctx, bson.D{{Key: "_id", Value: chain}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "day", Value: chainDay(chain)}, {Key: "seq", Value: e.Seq},
					{Key: "hash", Value: e.Hash}, {Key: "updatedAt", Value: s.Now()}}}},
				options.UpdateOne().SetUpsert(true))
			return err
		})
		if err != nil {
			return err
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
	return s.auditChains(ctx, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
}

// auditChains reads the heads and events of the days fromDay..toDay, for
// AuditChains and retention.
func (s *Store) auditChains(ctx context.Context, fromDay, toDay string) ([]ChainHead, []domain.AuditEvent, error) {
	heads, err := findAll[chainHeadDoc](ctx, s, colAuditChains,
		bson.D{{Key: "day", Value: bson.D{{Key: "$gte", Value: fromDay}, {Key: "$lte", Value: toDay}}}}, options.Find())
	if err != nil {
		return nil, nil, translate(err, "audit chains")
	}
	names := make([]string, 0, len(heads))
	out := make([]ChainHead, 0, len(heads))
	for _, h := range heads {
		names = append(names, h.ID)
		out = append(out, ChainHead{Chain: h.ID, Day: h.Day, Seq: h.Seq, Hash: h.Hash})
	}
	start, err := time.Parse(time.DateOnly, fromDay)
	if err != nil {
		return nil, nil, err
	}
	end, err := time.Parse(time.DateOnly, toDay)
	if err != nil {
		return nil, nil, err
	}
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
	heads, err := findAll[chainHeadDoc](ctx, s, colAuditChains,
		bson.D{{Key: "day", Value: bson.D{{Key: "$gte", Value: fromDay}, {Key: "$lte", Value: toDay}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return translate(err, "audit chains")
	}
	last := make(map[string]int64, len(heads))
	for _, h := range heads {
		last[h.ID] = h.Seq
		if err := head(ChainHead{Chain: h.ID, Day: h.Day, Seq: h.Seq, Hash: h.Hash}); err != nil {
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
