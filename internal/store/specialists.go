package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// SpecialistFilter narrows specialists.
type SpecialistFilter struct {
	Specialty      *string
	Language       *string
	Country        *string
	AcceptingCases *bool
}

func (f SpecialistFilter) bson() bson.D {
	var d bson.D
	if f.Specialty != nil {
		d = append(d, bson.E{Key: "specialties", Value: strings.ToLower(strings.TrimSpace(*f.Specialty))})
	}
	if f.Language != nil {
		d = append(d, bson.E{Key: "languages", Value: strings.ToLower(strings.TrimSpace(*f.Language))})
	}
	if f.Country != nil {
		d = append(d, bson.E{Key: "country", Value: strings.ToUpper(strings.TrimSpace(*f.Country))})
	}
	if f.AcceptingCases != nil {
		d = append(d, bson.E{Key: "acceptingCases", Value: *f.AcceptingCases})
	}
	return d
}

// Specialist returns one specialist; public profiles are everyone's, the
// internal part only the own org's and coordinators'.
func (s *Store) Specialist(ctx context.Context, p domain.Principal, id string) (*domain.Specialist, error) {
	d, err := findByID[specialistDoc](ctx, s, colSpecialists, id, specialistProjection(p))
	if err != nil {
		return nil, translate(err, "specialist")
	}
	return toSpecialist(d, specialistInternalVisible(p, d)), nil
}

// SpecialistsByIDs returns the specialists among ids.
func (s *Store) SpecialistsByIDs(ctx context.Context, p domain.Principal, ids []string) (map[string]*domain.Specialist, error) {
	docs, err := findByIDs[specialistDoc](ctx, s, colSpecialists, ids, specialistProjection(p))
	if err != nil {
		return nil, translate(err, "specialist")
	}
	out := make(map[string]*domain.Specialist, len(docs))
	for _, d := range docs {
		out[d.ID] = toSpecialist(d, specialistInternalVisible(p, d))
	}
	return out, nil
}

// Specialists returns one page of specialists, read from their list
// documents; a view that shows more reads the page's profiles by _id.
func (s *Store) Specialists(ctx context.Context, p domain.Principal, f SpecialistFilter, pg Page, view View) ([]*domain.Specialist, bool, error) {
	docs, more, err := listPage[specialistDoc](ctx, s, specialistListing, f.bson(), pg, false)
	if err != nil {
		return nil, false, translate(err, "specialists")
	}
	if view.Full {
		if docs, err = fullRows(ctx, s, colSpecialists, docs, func(d *specialistDoc) string { return d.ID }, specialistProjection(p)); err != nil {
			return nil, false, translate(err, "specialists")
		}
	}
	out := make([]*domain.Specialist, 0, len(docs))
	for _, d := range docs {
		out = append(out, toSpecialist(d, specialistInternalVisible(p, d)))
	}
	return out, more, nil
}

// CountSpecialists counts the specialists matching f, over their list
// documents.
func (s *Store) CountSpecialists(ctx context.Context, p domain.Principal, f SpecialistFilter) (int, error) {
	n, err := listCount(ctx, s, specialistListing, f.bson())
	return n, translate(err, "specialists")
}

// SpecialistInput creates or updates a specialist.
type SpecialistInput struct {
	ID             string
	Name           string
	Credentials    string
	Specialties    []string
	SubSpecialties []string
	Languages      []string
	Country        string
	Institution    string
	AcceptingCases *bool
	Email          *string
	OrgID          string
	// OrgKind is the kind of the specialist's org, as registered (the use
	// case reads it).
	OrgKind         domain.OrgKind
	ExpectedVersion *int
}

// UpsertSpecialist creates a specialist of in.OrgID (of kind in.OrgKind,
// both decided by the use case) or updates one in p's write scope
// (specialistWriteScope): another org's specialist is NOT_FOUND.
func (s *Store) UpsertSpecialist(ctx context.Context, p domain.Principal, in SpecialistInput) (*domain.Specialist, error) {
	org, kind := in.OrgID, in.OrgKind
	now := s.Now()
	set := bson.D{
		{Key: "name", Value: in.Name}, {Key: "credentials", Value: in.Credentials},
		{Key: "specialties", Value: in.Specialties}, {Key: "subSpecialties", Value: nonNil(in.SubSpecialties)},
		{Key: "languages", Value: in.Languages}, {Key: "country", Value: in.Country},
		{Key: "institution", Value: in.Institution}, {Key: "updatedAt", Value: now},
	}
	if in.AcceptingCases != nil {
		set = append(set, bson.E{Key: "acceptingCases", Value: *in.AcceptingCases})
	}
	if in.Email != nil {
		set = append(set, bson.E{Key: "internal.email", Value: *in.Email})
	}
	if in.ID == "" {
		if org == "" {
			return nil, domain.Errorf(domain.CodeBadUserInput, "orgId is required")
		}
		d := specialistDoc{
			ID: NewIDAt(now), Name: in.Name, Credentials: in.Credentials, Specialties: in.Specialties,
			SubSpecialties: nonNil(in.SubSpecialties), Languages: in.Languages, Country: in.Country,
			Institution: in.Institution, OrgID: org, OrgKind: string(kind), AcceptingCases: true,
			Version: 1, UpdatedAt: now,
		}
		if in.AcceptingCases != nil {
			d.AcceptingCases = *in.AcceptingCases
		}
		if in.Email != nil {
			d.Internal.Email = *in.Email
		}
		if err := s.InsertSpecialists(ctx, []any{d}); err != nil {
			return nil, err
		}
		return toSpecialist(&d, specialistInternalVisible(p, &d)), nil
	}
	for attempt := 0; attempt < 10; attempt++ {
		if err := retryPause(ctx, attempt); err != nil {
			return nil, translate(err, "specialist")
		}
		cur, err := findByID[specialistDoc](ctx, s, colSpecialists, in.ID, nil)
		if err != nil {
			return nil, translate(err, "specialist")
		}
		if !specialistWriteScope(p)(cur) {
			return nil, domain.ErrNotFound("specialist")
		}
		if in.ExpectedVersion != nil && *in.ExpectedVersion != cur.Version {
			return nil, domain.Errorf(domain.CodeConflict, "the specialist is at version %d, not %d", cur.Version, *in.ExpectedVersion)
		}
		// Whether the specialist is abroad decides who may read their
		// cases: it follows the country at once. Only a change of country
		// refreshes the cases (on the embedded store that read scans every
		// case); the change marks the profile until the refresh is done,
		// so a refresh that failed halfway is finished by the next write.
		moved := !strings.EqualFold(cur.Country, in.Country) || cur.AbroadPending != 0
		write := set
		if moved {
			// The mark names this write's version: a later change's mark
			// is not cleared by this refresh.
			write = append(append(bson.D{}, set...), bson.E{Key: "abroadPending", Value: cur.Version + 1})
		}
		ok, err := s.casUpdate(ctx, colSpecialists, in.ID, cur.Version, write)
		if err != nil {
			return nil, translate(err, "specialist")
		}
		if ok {
			// Who may read the specialist's cases first; the profile's
			// list document whatever happened to that.
			var settled error
			if moved {
				settled = s.settleAbroad(context.WithoutCancel(ctx), in.ID)
			}
			if err := errors.Join(settled, s.relist(ctx, specialistListing, in.ID)); err != nil {
				return nil, err
			}
			return s.Specialist(ctx, p, in.ID)
		}
		if in.ExpectedVersion != nil {
			return nil, domain.Errorf(domain.CodeConflict, "the specialist changed while it was being updated")
		}
	}
	return nil, errBusy("specialist")
}

// refreshAbroad sets, on every case assigned to the specialist, whether the
// specialist (now in country) is abroad from the case's patient.
func (s *Store) refreshAbroad(ctx context.Context, specialistID, country string) error {
	// The cases themselves, not their list documents: who may read a
	// case follows this field, so it is decided on what the case holds.
	cases, err := findAll[caseDoc](ctx, s, colCases, bson.D{{Key: "specialistId", Value: specialistID}},
		options.Find().SetProjection(bson.D{{Key: "patientId", Value: 1}, {Key: "specialistAbroad", Value: 1}, {Key: "version", Value: 1}}))
	if err != nil {
		return translate(err, "cases")
	}
	for _, c := range cases {
		pd, err := findByID[patientDoc](ctx, s, colPatients, c.PatientID, bson.D{{Key: "country", Value: 1}})
		if err != nil {
			return translate(err, "patient")
		}
		abroad := pd.Country != "" && !strings.EqualFold(pd.Country, country)
		if abroad == c.SpecialistAbroad {
			continue
		}
		// Who may read the case changes: a new version (a move of the
		// case racing with this one is read again, and every copy of a
		// listed field is ordered by version: lists.go).
		if _, err := s.conditional(ctx, colCases, c.ID, bson.D{{Key: "specialistId", Value: specialistID}},
			func(ctx context.Context, filter bson.D) (int64, error) {
				res, err := s.c(colCases).UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "specialistAbroad", Value: abroad}}},
					{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
				if err != nil {
					return 0, err
				}
				return res.MatchedCount, nil
			}); err != nil {
			return translate(err, "case")
		}
		if err := s.relist(ctx, caseListing, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// settleAbroad refreshes the cases of a specialist whose profile carries
// the mark of a change of country, from the country the profile holds when
// the refresh starts, and clears the mark only if the profile has not
// changed meanwhile; otherwise it refreshes again. Two changes of country
// in flight therefore end with the cases following the last one: a slower,
// older refresh is always followed by one from the current profile.
func (s *Store) settleAbroad(ctx context.Context, specialistID string) error {
	for attempt := 0; attempt < 10; attempt++ {
		cur, err := findByID[specialistDoc](ctx, s, colSpecialists, specialistID, nil)
		if err != nil {
			return translate(err, "specialist")
		}
		if cur.AbroadPending == 0 {
			return nil
		}
		if err := s.refreshAbroad(ctx, specialistID, cur.Country); err != nil {
			return err
		}
		done, err := s.conditional(ctx, colSpecialists, specialistID, bson.D{{Key: "version", Value: cur.Version}},
			func(ctx context.Context, filter bson.D) (int64, error) {
				res, err := s.c(colSpecialists).UpdateOne(ctx, filter, bson.D{{Key: "$unset", Value: bson.D{{Key: "abroadPending", Value: ""}}}})
				if err != nil {
					return 0, err
				}
				return res.MatchedCount, nil
			})
		if err != nil {
			return translate(err, "specialist")
		}
		if done {
			return nil
		}
	}
	// The mark stays: the next profile write finishes the refresh.
	return errBusy("specialist")
}

// InsertSpecialists stores new specialist documents (seeding and upserts).
func (s *Store) InsertSpecialists(ctx context.Context, docs []any) error {
	cctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colSpecialists).InsertMany(cctx, docs); err != nil {
		return translate(err, "specialist")
	}
	return s.insertListed(ctx, colSpecialists, docs)
}

type specialistInternalDoc struct {
	ActiveCases int    `bson:"activeCases"`
	Email       string `bson:"email,omitempty"`
}

type specialistDoc struct {
	ID             string                `bson:"_id"`
	Name           string                `bson:"name"`
	Credentials    string                `bson:"credentials,omitempty"`
	Specialties    []string              `bson:"specialties"`
	SubSpecialties []string              `bson:"subSpecialties"`
	Languages      []string              `bson:"languages"`
	Country        string                `bson:"country"`
	Institution    string                `bson:"institution,omitempty"`
	OrgID          string                `bson:"orgId"`
	OrgKind        string                `bson:"orgKind"`
	AcceptingCases bool                  `bson:"acceptingCases"`
	Internal       specialistInternalDoc `bson:"internal"`
	// AbroadPending marks a change of country whose refresh of the
	// specialist's cases (specialistAbroad) has not finished yet.
	AbroadPending int `bson:"abroadPending,omitempty"`
	// Version moves when the profile changes; the load (an $inc) leaves
	// it alone.
	Version   int       `bson:"version"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

func toSpecialist(d *specialistDoc, withInternal bool) *domain.Specialist {
	s := &domain.Specialist{
		ID: d.ID, Name: d.Name, Credentials: d.Credentials, Specialties: nonNil(d.Specialties),
		SubSpecialties: nonNil(d.SubSpecialties), Languages: nonNil(d.Languages), Country: d.Country,
		Institution: d.Institution, OrgID: d.OrgID, OrgKind: domain.OrgKind(d.OrgKind),
		AcceptingCases: d.AcceptingCases, Version: d.Version,
	}
	if withInternal {
		s.Internal = &domain.SpecialistInternal{ActiveCases: max(0, d.Internal.ActiveCases), Email: d.Internal.Email}
	}
	return s
}

// AdjustLoad changes a specialist's count of active cases with an $inc
// (serialised with the specialist's other writes on FerretDB); the profile's
// version does not move. The stored count is the raw sum (a release may land
// before the assignment it releases); reads floor it at zero.
func (s *Store) AdjustLoad(ctx context.Context, specialistID string, delta int) error {
	if specialistID == "" || delta == 0 {
		return nil
	}
	return translate(s.inc(ctx, colSpecialists, specialistID, bson.D{{Key: "internal.activeCases", Value: delta}}), "specialist")
}

// CandidateSpecialists returns every specialist with the given specialty, for
// matching (the public profile plus load, which matching ranks on).
func (s *Store) CandidateSpecialists(ctx context.Context, specialty string) ([]*domain.Specialist, []int, error) {
	docs, err := findAll[specialistDoc](ctx, s, colSpecialists, bson.D{{Key: "specialties", Value: specialty}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(1000))
	if err != nil {
		return nil, nil, translate(err, "specialists")
	}
	out := make([]*domain.Specialist, 0, len(docs))
	loads := make([]int, 0, len(docs))
	for _, d := range docs {
		out = append(out, toSpecialist(d, false))
		loads = append(loads, max(0, d.Internal.ActiveCases))
	}
	return out, loads, nil
}
