package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Retention of the audit (internal/audit/retention.go): a pruned day's
// events and chain heads are deleted, and its signed checkpoint is kept in
// audit_checkpoints, one document per day. Nothing else deletes audit rows.

// AuditCheckpoint is a pruned day's signed record.
type AuditCheckpoint struct {
	Day      string
	Chains   []ChainHead
	Events   int
	PrunedAt time.Time
	Alg      string
	KeyID    string
	JWS      string
}

type auditCheckpointDoc struct {
	ID       string               `bson:"_id"` // the day
	Chains   []checkpointChainDoc `bson:"chains"`
	Events   int                  `bson:"events"`
	PrunedAt time.Time            `bson:"prunedAt"`
	Alg      string               `bson:"alg"`
	KeyID    string               `bson:"keyId"`
	JWS      string               `bson:"jws"`
}

type checkpointChainDoc struct {
	Chain string `bson:"chain"`
	Seq   int64  `bson:"seq"`
	Hash  string `bson:"hash"`
}

func toAuditCheckpoint(d auditCheckpointDoc) AuditCheckpoint {
	c := AuditCheckpoint{Day: d.ID, Events: d.Events, PrunedAt: d.PrunedAt.UTC(), Alg: d.Alg, KeyID: d.KeyID, JWS: d.JWS}
	for _, h := range d.Chains {
		c.Chains = append(c.Chains, ChainHead{Chain: h.Chain, Day: d.ID, Seq: h.Seq, Hash: h.Hash})
	}
	return c
}

// AuditDaysBefore lists, oldest first, the UTC days before day that still
// have audit chains.
func (s *Store) AuditDaysBefore(ctx context.Context, day string) ([]string, error) {
	heads, err := findAll[chainHeadDoc](ctx, s, colAuditChains,
		bson.D{{Key: "day", Value: bson.D{{Key: "$lt", Value: day}}}}, options.Find().SetProjection(bson.D{{Key: "day", Value: 1}}))
	if err != nil {
		return nil, translate(err, "audit chains")
	}
	var days []string
	for _, h := range heads {
		days = append(days, h.Day)
	}
	slices.Sort(days)
	return slices.Compact(days), nil
}

// AuditDay reads one UTC day's chain heads and events, for retention.
func (s *Store) AuditDay(ctx context.Context, day string) ([]ChainHead, []domain.AuditEvent, error) {
	return s.auditChains(ctx, day, day)
}

// AuditCheckpoint reads a day's checkpoint; ok is false when the day was
// never pruned.
func (s *Store) AuditCheckpoint(ctx context.Context, day string) (AuditCheckpoint, bool, error) {
	d, err := findByID[auditCheckpointDoc](ctx, s, colAuditCheckpts, day, nil)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return AuditCheckpoint{}, false, nil
	}
	if err != nil {
		return AuditCheckpoint{}, false, translate(err, "audit checkpoint")
	}
	return toAuditCheckpoint(*d), true, nil
}

// AuditCheckpoints returns, for a coordinator, the checkpoints of the
// pruned days from..to; anyone else gets nothing.
func (s *Store) AuditCheckpoints(ctx context.Context, p domain.Principal, from, to time.Time) ([]AuditCheckpoint, error) {
	if auditScope(p).none {
		return nil, nil
	}
	return s.auditCheckpoints(ctx, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly))
}

func (s *Store) auditCheckpoints(ctx context.Context, fromDay, toDay string) ([]AuditCheckpoint, error) {
	docs, err := findAll[auditCheckpointDoc](ctx, s, colAuditCheckpts,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: fromDay}, {Key: "$lte", Value: toDay}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, translate(err, "audit checkpoints")
	}
	out := make([]AuditCheckpoint, 0, len(docs))
	for _, d := range docs {
		out = append(out, toAuditCheckpoint(*d))
	}
	return out, nil
}

// AddAuditCheckpoint stores a day's checkpoint before its rows go. A
// checkpoint already stored for the day (another replica's, or an earlier
// run cut short) stays, and is returned.
func (s *Store) AddAuditCheckpoint(ctx context.Context, c AuditCheckpoint) (AuditCheckpoint, error) {
	d := auditCheckpointDoc{ID: c.Day, Events: c.Events, PrunedAt: c.PrunedAt.UTC(), Alg: c.Alg, KeyID: c.KeyID, JWS: c.JWS,
		Chains: make([]checkpointChainDoc, 0, len(c.Chains))}
	for _, h := range c.Chains {
		d.Chains = append(d.Chains, checkpointChainDoc{Chain: h.Chain, Seq: h.Seq, Hash: h.Hash})
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.c(colAuditCheckpts).InsertOne(cctx, d)
	if mongo.IsDuplicateKeyError(err) {
		got, ok, err := s.AuditCheckpoint(ctx, c.Day)
		if err == nil && !ok {
			err = errors.New("store: audit checkpoint vanished")
		}
		return got, err
	}
	if err != nil {
		return AuditCheckpoint{}, translate(err, "audit checkpoint")
	}
	return c, nil
}

// DeleteAuditChains deletes the events of a checkpointed day's chains, then
// their heads (in that order, so a run cut short leaves the day listed by
// AuditDaysBefore, and the next run finishes it). Only chains of the
// checkpoint's own day are touched. The events are found by chain, as
// AuditDay found them (the {chain, seq} index on MongoDB).
func (s *Store) DeleteAuditChains(ctx context.Context, c AuditCheckpoint) (int64, error) {
	names := make([]string, 0, len(c.Chains))
	for _, h := range c.Chains {
		if chainDay(h.Chain) == c.Day {
			names = append(names, h.Chain)
		}
	}
	dctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.c(colAudit).DeleteMany(dctx, bson.D{{Key: "chain", Value: bson.D{{Key: "$in", Value: names}}}})
	if err != nil {
		return 0, translate(err, "audit events")
	}
	if _, err := s.c(colAuditChains).DeleteMany(dctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: names}}}, {Key: "day", Value: c.Day}}); err != nil {
		return res.DeletedCount, translate(err, "audit chains")
	}
	return res.DeletedCount, nil
}
