// Package store is the MongoDB adapter: documents and converters, indexes,
// the scope of every read built from the caller's principal, projections per
// role, and driver errors translated to domain codes. It is the only package
// that imports the driver.
//
// It runs unchanged on MongoDB and on the embedded FerretDB, so it uses only
// what both support: no transactions, $lookup, $facet, $expr or positional
// updates. Joins and grouping happen in Go; single objects are read by _id
// (the one filter FerretDB's SQLite backend pushes down) and their scope is
// checked on the fetched document before it leaves this package.
//
// One file per aggregate (policies, patients, cases, specialists, opinions,
// audit, ...) holds its stored shape, its converters and its reads and
// writes; write.go and page.go hold the helpers they share.
//
// Every exported read takes the caller's principal and returns only what its
// scope allows; there is no unscoped read. Writes re-read what they change
// under the caller's scope and update with a compare-and-set on version
// (write.go), so no update is lost and nothing outside the scope can be
// touched. The *Doc types are the stored shapes; to*/from* are the only
// places that cross between them and the domain.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/keys"
)

// Collection names.
const (
	colPolicies   = "policies"
	colPatients   = "patients"
	colPseudonyms = "pseudonyms"
	colCases      = "cases"
	// The list collections (lists.go): what pages filter, sort and show.
	colCaseList       = "case_list"
	colOpinionList    = "opinion_list"
	colSpecialistList = "specialist_list"
	colSpecialists    = "specialists"
	colOpinions       = "opinions"
	colAudit          = "audit_events"
	colCounters       = "counters"
	colIdempotency    = "idempotency"
	colCaseEvents     = "case_events"
	colOrgs           = "organizations"
	colAccessLog      = "access_log"
	colAuditChains    = "audit_chains"
	colAuditCheckpts  = "audit_checkpoints"
	// colOutcomeFacts holds what outcome statistics count, one document
	// per calendar month (outcomefacts.go).
	colOutcomeFacts = "outcome_facts"
	colAccessOrgs   = "access_orgs"
	// colKeyring holds the PHI field keys, wrapped by the master key.
	colKeyring = "keyring"

	colWebhookSubs       = "webhook_subscriptions"
	colWebhookDeliveries = "webhook_deliveries"
	colWebhookLeases     = "webhook_leases"
)

// DefaultOpTimeout bounds one database call when the caller's context has no
// earlier deadline.
const DefaultOpTimeout = 5 * time.Second

// Store is the gateway's data layer.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	opTimeout time.Duration
	now       func() time.Time
	// serialWrites is set on FerretDB, which applies a filtered write as a
	// read and a write back and hands its backend only a filter that is
	// exactly {_id: X}: this process, the store's one writer, serialises its
	// writes per document (see write.go).
	serialWrites bool
	locks        *docLocks
	// batchByID is set on FerretDB too: a batch of known ids is read as
	// reads by exactly {_id} (see findEachByID), MongoDB's $in elsewhere.
	batchByID bool
	// beforeWrite, when set (tests only), runs before every write and may
	// fail it: the place to inject a database failure.
	beforeWrite func(coll, id string) error
	// outboxPending is set when a case's events could not be copied from
	// its outbox (see PublishPendingEvents).
	outboxPending atomic.Bool
	// scanSlots admits, on FerretDB, the reads it answers by decoding a
	// whole collection (any filter but exactly {_id}): per collection, as
	// many at once as the process has CPUs (see admitScan). Nil on MongoDB.
	scanSlots map[string]chan struct{}
	// appendMu serialises AppendAudit in this process: the audit chain
	// and the access log are extended by one batch at a time.
	appendMu sync.Mutex
	// lastCase is the id of the last case read by id: a read of a missing
	// id reads it too (see CaseWith), so that a missing id and one outside
	// the caller's scope cost the same.
	lastCase atomic.Pointer[string]
	// seenPairs are the (member, organisation) pairs this process knows
	// have been read before (accessnotice.go); guarded by appendMu.
	seenPairs map[string]struct{}
	// unclaimed are the pairs whose claim failed, to be claimed again by
	// the next batch or the sweeper (accessnotice.go); guarded by appendMu.
	unclaimed map[string]accessOrgDoc
	// fields seals and opens PHI fields (sealed.go); the database's codec
	// registry reads it. Nil without a keyring: PHI can then be neither
	// written nor read.
	fields *fieldCipher
	// reg is the database's codec registry (sealing PHI fields).
	reg *bson.Registry
	// dbKey names the database (URI and name): the Stores of a process on
	// one database share their packed lists' locks (packed.go).
	dbKey string
	// eventSeqs are the case-event numbers reserved on the embedded store,
	// shared by the process's Stores on the database (write.go); nil on
	// MongoDB and once closed.
	eventSeqs atomic.Pointer[eventSeqs]
}

// Options configure Open.
type Options struct {
	URI      string
	Database string
	// OpTimeout bounds each database call (default DefaultOpTimeout).
	OpTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Monitor observes every command (tests count them; metrics time them).
	Monitor *event.CommandMonitor
	// BatchByID, when set, overrides how a batch of known ids is read: as
	// reads by exactly {_id} (the embedded store's default) or as one $in
	// read (MongoDB's). Tests run both paths on the embedded store.
	BatchByID *bool
	// Keys are the master keys of DATA_KEY_FILE: they unwrap the field key
	// that seals PHI fields at rest. Without them the store opens, but
	// every read or write of a PHI field fails (tools that touch none).
	Keys *keys.Keyring
	// Prepare runs once every collection and index exists, with the
	// database's name: the embedded store adds there the indexes its own
	// backend needs (embedded.Store.IndexIDs).
	Prepare func(ctx context.Context, database string) error
}

// Open connects, checks the database answers and creates the indexes.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URI == "" || o.Database == "" {
		return nil, errors.New("store: URI and Database are required")
	}
	co := options.Client().ApplyURI(o.URI).
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second)
	if o.Monitor != nil {
		co.SetMonitor(o.Monitor)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	s := &Store{client: client, opTimeout: o.OpTimeout, now: o.Now, seenPairs: map[string]struct{}{}}
	// Every collection encodes and decodes through the sealing registry, so
	// a PHI field is encrypted wherever its document type is written.
	s.reg = sealingRegistry(&s.fields)
	s.dbKey = o.URI + "\x00" + o.Database
	s.locks = sharedDocLocks(s.dbKey)
	s.db = client.Database(o.Database, options.Database().SetRegistry(s.reg))
	if s.opTimeout <= 0 {
		s.opTimeout = DefaultOpTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	s.serialWrites = s.isFerretDB(ctx)
	s.batchByID = s.serialWrites
	if o.BatchByID != nil {
		s.batchByID = *o.BatchByID
	}
	if s.serialWrites {
		s.scanSlots = make(map[string]chan struct{}, len(collections))
		for _, c := range collections {
			s.scanSlots[c] = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
		}
	}
	if err := s.ensureCollections(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if o.Keys != nil {
		if s.fields, err = s.loadFieldKeys(ctx, o.Keys); err != nil {
			_ = client.Disconnect(context.Background())
			return nil, err
		}
		if err := s.sealLegacyOnce(ctx); err != nil {
			_ = client.Disconnect(context.Background())
			return nil, err
		}
	}
	if err := s.numberOldEvents(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if o.Prepare != nil {
		if err := o.Prepare(ctx, o.Database); err != nil {
			_ = client.Disconnect(context.Background())
			return nil, fmt.Errorf("store: prepare: %w", err)
		}
	}
	s.eventSeqs.Store(sharedEventSeqs(s.dbKey))
	return s, nil
}

// Drop deletes the whole database (tests clean up with it), and with it
// the case-event numbers reserved in it.
func (s *Store) Drop(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if b := s.eventSeqs.Load(); b != nil {
		// Held across the drop, so that no publish reserves numbers from
		// the counter being dropped.
		b.mu.Lock()
		defer b.mu.Unlock()
		b.left = 0
	}
	return s.db.Drop(ctx)
}

// Close gives the case-event numbers the embedded store reserved and did
// not use back to their counter (write.go: at most one write; if it fails
// the next process leaves a gap in the sequence, nothing worse), then
// disconnects.
func (s *Store) Close(ctx context.Context) error {
	gaveBack := s.giveBackEventSeqs(ctx)
	return errors.Join(gaveBack, s.client.Disconnect(ctx))
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now().UTC() }

// op bounds one database call.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opTimeout)
}

func (s *Store) c(name string) *mongo.Collection { return s.db.Collection(name) }

type index struct {
	coll   string
	keys   bson.D
	unique bool
}

// indexes back every filter and sort the API offers (on MongoDB; FerretDB
// accepts them and scans anyway).
var indexes = []index{
	{colPolicies, bson.D{{Key: "insurerId", Value: 1}, {Key: "policyNumber", Value: 1}}, true},
	{colPolicies, bson.D{{Key: "insuredIds", Value: 1}}, false},
	{colPolicies, bson.D{{Key: "status", Value: 1}}, false},
	{colPseudonyms, bson.D{{Key: "pseudonym", Value: 1}}, true},
	{colPatients, bson.D{{Key: "insurerId", Value: 1}}, false},
	{colCases, bson.D{{Key: "reference", Value: 1}}, true},
	// The cases themselves are read by these only where a list document
	// may not be trusted: a member's migration, a specialist's move.
	{colCases, bson.D{{Key: "patientId", Value: 1}}, false},
	{colCases, bson.D{{Key: "specialistId", Value: 1}}, false},
	{colCaseList, bson.D{{Key: "patientId", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colCaseList, bson.D{{Key: "insurerId", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colCaseList, bson.D{{Key: "specialistOrgId", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colCaseList, bson.D{{Key: "specialistId", Value: 1}}, false},
	{colCaseList, bson.D{{Key: "status", Value: 1}, {Key: "dueAt", Value: 1}}, false},
	{colCaseList, bson.D{{Key: "specialty", Value: 1}}, false},
	{colSpecialists, bson.D{{Key: "orgId", Value: 1}}, false},
	{colSpecialistList, bson.D{{Key: "specialties", Value: 1}}, false},
	{colOpinions, bson.D{{Key: "caseId", Value: 1}}, true},
	{colOpinionList, bson.D{{Key: "orgId", Value: 1}}, false},
	{colOpinionList, bson.D{{Key: "patientId", Value: 1}}, false},
	{colOpinionList, bson.D{{Key: "insurerId", Value: 1}}, false},
	{colAudit, bson.D{{Key: "caseId", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colCaseEvents, bson.D{{Key: "seq", Value: 1}}, true},
	{colOrgs, bson.D{{Key: "kind", Value: 1}}, false},
	{colAudit, bson.D{{Key: "subject", Value: 1}, {Key: "_id", Value: -1}}, false},
	{colAudit, bson.D{{Key: "chain", Value: 1}, {Key: "seq", Value: 1}}, false},
	{colAuditChains, bson.D{{Key: "day", Value: 1}}, false},
	{colAccessOrgs, bson.D{{Key: "pending", Value: 1}}, false},
	{colWebhookSubs, bson.D{{Key: "org", Value: 1}, {Key: "role", Value: 1}, {Key: "_id", Value: 1}}, false},
	{colWebhookDeliveries, bson.D{{Key: "subscriptionId", Value: 1}, {Key: "status", Value: 1}, {Key: "seq", Value: 1}}, false},
	// One delivery per (subscription, event): the key that keeps enqueueing
	// idempotent now that delivery ids are random; it also orders listings.
	{colWebhookDeliveries, bson.D{{Key: "subscriptionId", Value: 1}, {Key: "seq", Value: 1}}, true},
	{colWebhookDeliveries, bson.D{{Key: "status", Value: 1}, {Key: "createdAt", Value: 1}}, false},
}

// admitScan waits for a slot to scan coll (on FerretDB; at once
// elsewhere). More whole-collection decodes at once than there are CPUs
// finish no sooner; they only hold more decoded documents in memory and
// starve the cheap reads by _id running beside them: with 16 clients on the
// embedded store, a case detail among pages of cases waited 0.9 s at p99.
// Slots are per collection, so a search of 200 specialists never queues
// behind pages of 2,000 cases.
func (s *Store) admitScan(ctx context.Context, coll string) (release func(), err error) {
	slots := s.scanSlots[coll]
	if slots == nil {
		return func() {}, nil
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// isFerretDB reports whether the server is FerretDB, which answers buildInfo
// with a ferretdbVersion.
func (s *Store) isFerretDB(ctx context.Context) bool {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var info bson.M
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false
	}
	_, ok := info["ferretdbVersion"]
	return ok
}

// collections are all the store uses.
var collections = []string{
	colPolicies, colPatients, colPseudonyms, colCases, colSpecialists, colOpinions, colAudit,
	colCounters, colIdempotency, colCaseEvents, colOrgs, colWebhookSubs, colWebhookDeliveries, colWebhookLeases,
	colAccessLog, colAuditChains, colAuditCheckpts, colOutcomeFacts, colAccessOrgs, colKeyring,
	colCaseList, colOpinionList, colSpecialistList, colListChunks,
}

// ensureCollections creates the collections up front (rather than at first
// insert), so Options.Prepare sees every one of them.
func (s *Store) ensureCollections(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	have, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("store: list collections: %w", err)
	}
	for _, name := range collections {
		if slices.Contains(have, name) {
			continue
		}
		var ce mongo.CommandError
		// 48 NamespaceExists: another replica created it meanwhile.
		if err := s.db.CreateCollection(ctx, name); err != nil && !(errors.As(err, &ce) && ce.Code == 48) {
			return fmt.Errorf("store: create %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) ensureIndexes(ctx context.Context) error {
	for _, ix := range indexes {
		ctx, cancel := s.op(ctx)
		opts := options.Index()
		if ix.unique {
			opts.SetUnique(true)
		}
		_, err := s.c(ix.coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts})
		cancel()
		if err != nil {
			return fmt.Errorf("store: index on %s: %w", ix.coll, err)
		}
	}
	return nil
}

// isDuplicate reports a unique-index violation. FerretDB reports one on
// update as InternalError code 1 with a message, not E11000.
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Message), "duplicate") {
		return true
	}
	return strings.Contains(err.Error(), "E11000")
}

// translate turns a driver error into a domain error once, here.
func translate(err error, kind string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return domain.ErrNotFound(kind)
	default:
		var de *domain.Error
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("store: %s: %w", kind, err)
	}
}

// NewID returns a new time-ordered id: its lexical order is creation order,
// which keyset pagination relies on.
func NewID() string { return bson.NewObjectID().Hex() }

// NewIDAt returns a time-ordered id for an object created at t.
func NewIDAt(t time.Time) string {
	id := bson.NewObjectID()
	binary.BigEndian.PutUint32(id[0:4], uint32(t.Unix()))
	return id.Hex()
}

// numberOldEvents gives the case events stored before events had a seq
// field (their _id was the sequence) that number as seq, so the unique
// index on seq can be built over them. Idempotent; one read when none is
// left.
func (s *Store) numberOldEvents(ctx context.Context) error {
	old, err := findAll[bson.Raw](ctx, s, colCaseEvents, bson.D{{Key: "seq", Value: bson.D{{Key: "$exists", Value: false}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("store: number old case events: %w", err)
	}
	for _, d := range old {
		id := (*d).Lookup("_id")
		seq, ok := id.AsInt64OK()
		if !ok {
			continue
		}
		cctx, cancel := s.op(ctx)
		_, err := s.c(colCaseEvents).UpdateOne(cctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}}})
		cancel()
		if err != nil {
			return fmt.Errorf("store: number old case events: %w", err)
		}
	}
	return nil
}
