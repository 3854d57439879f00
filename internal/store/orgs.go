package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/secondopinion/gateway/internal/domain"
)

// Organisations: the registry of who may call. Every role
// reads names and kinds (the field guard hides the rest); only coordinators
// write, which the use case checks.

type orgDoc struct {
	ID        string    `bson:"_id"`
	Name      string    `bson:"name"`
	Kind      string    `bson:"kind"`
	Country   string    `bson:"country"`
	Status    string    `bson:"status"`
	Version   int       `bson:"version"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

func toOrg(d *orgDoc) *domain.Organization {
	return &domain.Organization{
		ID: d.ID, Name: d.Name, Kind: domain.OrgKind(d.Kind), Country: d.Country, Status: domain.OrgStatus(d.Status),
		Version: d.Version, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
}

// OrgFilter narrows organisations.
type OrgFilter struct {
	Kind *domain.OrgKind
}

// Org returns an organisation's kind and whether it is active, for the
// token verifier (auth.OrgDirectory): one read by _id. An unregistered org
// is NOT_FOUND.
func (s *Store) Org(ctx context.Context, id string) (domain.OrgKind, bool, error) {
	d, err := findByID[orgDoc](ctx, s, colOrgs, id, bson.D{{Key: "kind", Value: 1}, {Key: "status", Value: 1}})
	if err != nil {
		return "", false, translate(err, "organization")
	}
	return domain.OrgKind(d.Kind), d.Status == string(domain.OrgActive), nil
}

// Organization returns one registered organisation.
func (s *Store) Organization(ctx context.Context, id string) (*domain.Organization, error) {
	d, err := findByID[orgDoc](ctx, s, colOrgs, id, nil)
	if err != nil {
		return nil, translate(err, "organization")
	}
	return toOrg(d), nil
}

// Organizations returns one page of organisations by id.
func (s *Store) Organizations(ctx context.Context, f OrgFilter, pg Page) ([]*domain.Organization, bool, error) {
	docs, more, err := findPage[orgDoc](ctx, s, colOrgs, f.bson(), pg, false, nil)
	if err != nil {
		return nil, false, translate(err, "organizations")
	}
	out := make([]*domain.Organization, 0, len(docs))
	for _, d := range docs {
		out = append(out, toOrg(d))
	}
	return out, more, nil
}

// CountOrganizations counts the organisations matching f.
func (s *Store) CountOrganizations(ctx context.Context, f OrgFilter) (int, error) {
	n, err := count(ctx, s, colOrgs, f.bson())
	return n, translate(err, "organizations")
}

func (f OrgFilter) bson() bson.D {
	if f.Kind == nil {
		return nil
	}
	return bson.D{{Key: "kind", Value: string(*f.Kind)}}
}

// InsertOrganization registers an organisation; an id already registered
// is CONFLICT.
func (s *Store) InsertOrganization(ctx context.Context, o domain.Organization) (*domain.Organization, error) {
	now := s.Now()
	d := orgDoc{ID: o.ID, Name: o.Name, Kind: string(o.Kind), Country: o.Country, Status: string(domain.OrgActive), Version: 1, CreatedAt: now, UpdatedAt: now}
	cctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colOrgs).InsertOne(cctx, d); err != nil {
		if isDuplicate(err) {
			return nil, domain.Errorf(domain.CodeConflict, "organization %q is already registered", o.ID)
		}
		return nil, translate(err, "organization")
	}
	return toOrg(&d), nil
}

// EnsureOrganization registers o unless its id is registered already (the
// operator's own org at start, the demo orgs).
func (s *Store) EnsureOrganization(ctx context.Context, o domain.Organization) error {
	_, err := s.InsertOrganization(ctx, o)
	if domain.ErrorCode(err) == domain.CodeConflict {
		return nil
	}
	return err
}

// OrgChange is what updateOrganization may change.
type OrgChange struct {
	Name   *string
	Status *domain.OrgStatus
}

// UpdateOrganization applies ch to the organisation, a compare-and-set on
// its version (with expectedVersion, CONFLICT when it moved on).
func (s *Store) UpdateOrganization(ctx context.Context, id string, ch OrgChange, expectedVersion *int) (*domain.Organization, error) {
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "organization")
		}
		cur, err := findByID[orgDoc](ctx, s, colOrgs, id, nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, domain.ErrNotFound("organization")
		}
		if err != nil {
			return nil, translate(err, "organization")
		}
		if expectedVersion != nil && *expectedVersion != cur.Version {
			return nil, domain.Errorf(domain.CodeConflict, "the organization is at version %d, not %d", cur.Version, *expectedVersion)
		}
		set := bson.D{{Key: "updatedAt", Value: s.Now()}}
		if ch.Name != nil {
			set = append(set, bson.E{Key: "name", Value: *ch.Name})
		}
		if ch.Status != nil {
			set = append(set, bson.E{Key: "status", Value: string(*ch.Status)})
		}
		ok, err := s.casUpdate(ctx, colOrgs, id, cur.Version, set)
		if err != nil {
			return nil, translate(err, "organization")
		}
		if ok {
			return s.Organization(ctx, id)
		}
		if expectedVersion != nil {
			return nil, domain.Errorf(domain.CodeConflict, "the organization changed while it was being updated")
		}
	}
	return nil, errBusy("organization")
}
