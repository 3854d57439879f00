package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// legacyPatientDoc is a member as stored before members belonged to an
// insurer: _id the bare member id, shared by every insurer naming it, the
// first insurer's identity on top and the others' copies in identityBy.
type legacyPatientDoc struct {
	ID             string                 `bson:"_id"`
	GivenName      string                 `bson:"givenName,omitempty"`
	FamilyName     string                 `bson:"familyName,omitempty"`
	DateOfBirth    time.Time              `bson:"dateOfBirth,omitempty"`
	Email          string                 `bson:"email,omitempty"`
	Phone          string                 `bson:"phone,omitempty"`
	BirthYear      int                    `bson:"birthYear"`
	Sex            string                 `bson:"sex"`
	Country        string                 `bson:"country,omitempty"`
	Language       string                 `bson:"language,omitempty"`
	InsurerIDs     []string               `bson:"insurerIds"`
	PrimaryInsurer string                 `bson:"primaryInsurer,omitempty"`
	IdentityBy     map[string]identityDoc `bson:"identityBy,omitempty"`
}

type identityDoc struct {
	GivenName   string    `bson:"givenName"`
	FamilyName  string    `bson:"familyName"`
	DateOfBirth time.Time `bson:"dateOfBirth"`
	Email       string    `bson:"email,omitempty"`
	Phone       string    `bson:"phone,omitempty"`
}

// MigrateMembers moves members stored before members belonged to an insurer
// into each insurer's namespace: one record per (insurer, member id), with
// the identity that insurer supplied, and the policies, cases, opinions and
// pseudonyms that named the bare id renamed to it. It runs at start; every
// step is keyed, so it is idempotent and a run stopped halfway is finished
// by the next. With nothing to migrate it costs one read.
func (s *Store) MigrateMembers(ctx context.Context) error {
	legacy, err := findAll[legacyPatientDoc](ctx, s, colPatients,
		bson.D{{Key: "insurerIds", Value: bson.D{{Key: "$exists", Value: true}}}}, options.Find())
	if err != nil {
		return translate(err, "patients")
	}
	for _, l := range legacy {
		if err := s.migrateMember(ctx, l); err != nil {
			return fmt.Errorf("store: migrate member %s: %w", l.ID, err)
		}
	}
	return nil
}

func (s *Store) migrateMember(ctx context.Context, l *legacyPatientDoc) error {
	primary := l.PrimaryInsurer
	if primary == "" && len(l.InsurerIDs) > 0 {
		primary = l.InsurerIDs[0]
	}
	for _, ins := range l.InsurerIDs {
		key := domain.MemberKey(ins, l.ID)
		d := patientDoc{
			ID: key, InsurerID: ins, MemberID: l.ID, Version: 1,
			GivenName: seal(l.GivenName), FamilyName: seal(l.FamilyName), DateOfBirth: sealTime(l.DateOfBirth), Email: seal(l.Email), Phone: seal(l.Phone),
			BirthYear: l.BirthYear, Sex: l.Sex, Country: l.Country, Language: l.Language,
		}
		if ins != primary {
			// Another insurer reads only what it recorded itself.
			x := l.IdentityBy[ins]
			d.GivenName, d.FamilyName, d.DateOfBirth, d.Email, d.Phone = seal(x.GivenName), seal(x.FamilyName), sealTime(x.DateOfBirth), seal(x.Email), seal(x.Phone)
			if !x.DateOfBirth.IsZero() {
				d.BirthYear = x.DateOfBirth.Year()
			}
		}
		cctx, cancel := s.op(ctx)
		_, err := s.c(colPatients).InsertOne(cctx, d)
		cancel()
		if err != nil && !isDuplicate(err) {
			return err
		}
		scoped := bson.D{{Key: "insurerId", Value: ins}}
		pols, err := findAll[policyDoc](ctx, s, colPolicies, append(scoped, bson.E{Key: "insuredIds", Value: l.ID}),
			options.Find().SetProjection(bson.D{{Key: "insuredIds", Value: 1}, {Key: "version", Value: 1}}))
		if err != nil {
			return err
		}
		for _, p := range pols {
			if err := s.replaceInsured(ctx, p.ID, l.ID, key); err != nil {
				return err
			}
		}
		for _, coll := range []string{colCases, colOpinions} {
			docs, err := findAll[versionedID](ctx, s, coll, append(slices.Clone(scoped), bson.E{Key: "patientId", Value: l.ID}),
				options.Find().SetProjection(bson.D{{Key: "version", Value: 1}}))
			if err != nil {
				return err
			}
			for _, d := range docs {
				if _, err := s.conditional(ctx, coll, d.ID, bson.D{{Key: "patientId", Value: l.ID}},
					func(ctx context.Context, filter bson.D) (int64, error) {
						res, err := s.c(coll).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "patientId", Value: key}}}})
						if err != nil {
							return 0, err
						}
						return res.MatchedCount, nil
					}); err != nil {
					return err
				}
			}
		}
		// A network's pseudonym of the member follows the member of the
		// insurer whose cases the network was given.
		pseuds, err := findAll[pseudonymDoc](ctx, s, colPseudonyms, bson.D{{Key: "memberId", Value: l.ID}}, options.Find())
		if err != nil {
			return err
		}
		for _, pd := range pseuds {
			n, err := count(ctx, s, colCases, bson.D{{Key: "patientId", Value: key}, {Key: "specialistOrgId", Value: pd.Network}})
			if err != nil {
				return err
			}
			if n == 0 && len(l.InsurerIDs) > 1 {
				continue
			}
			if _, err := s.conditional(ctx, colPseudonyms, pd.ID, bson.D{{Key: "memberId", Value: l.ID}}, s.deleteOne(colPseudonyms)); err != nil {
				return err
			}
			cctx, cancel := s.op(ctx)
			_, err = s.c(colPseudonyms).InsertOne(cctx, pseudonymDoc{ID: pd.Network + "/" + key, Pseudonym: pd.Pseudonym, MemberID: key, Network: pd.Network})
			cancel()
			if err != nil && !isDuplicate(err) {
				return err
			}
		}
	}
	_, err := s.conditional(ctx, colPatients, l.ID, bson.D{{Key: "memberId", Value: nil}}, s.deleteOne(colPatients))
	return err
}

// replaceInsured renames member old to key in a policy's insured, a
// compare-and-set retried while other writes land.
func (s *Store) replaceInsured(ctx context.Context, policyID, old, key string) error {
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return err
		}
		cur, err := findByID[policyDoc](ctx, s, colPolicies, policyID, bson.D{{Key: "insuredIds", Value: 1}, {Key: "version", Value: 1}})
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return err
		}
		i := slices.Index(cur.InsuredIDs, old)
		if i < 0 {
			return nil
		}
		ids := slices.Clone(cur.InsuredIDs)
		ids[i] = key
		ok, err := s.casUpdate(ctx, colPolicies, policyID, cur.Version, bson.D{{Key: "insuredIds", Value: ids}})
		if err != nil || ok {
			return err
		}
	}
	return errBusy("policy")
}
