package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// Outcome facts: what outcome statistics count, kept apart from the cases
// and opinions so statistics never read those. On the embedded store every
// document a query returns costs its decoding (a read with any filter but
// {_id} decodes the whole collection): reading the cases and opinions for
// 2,000 cases took over a second, and even 2,000 tiny documents, one per
// case, a quarter of one. So the facts are kept in one document per
// calendar month (_id "2006-01"), read by _id, a dozen reads for a year:
//
//	rows.<case id>   the case's facts (insurer, specialty, submitted,
//	                 records complete, delivered, treatment changed,
//	                 satisfaction) as compact JSON, in the month of its
//	                 submission and, when delivered in another month, in
//	                 that month's too
//	assess.<case id> its delivered opinion's diagnosis assessment, in the
//	                 month of delivery
//
//	vers.<case id>   the case version its row was written from
//
// A case's row is written whole from the case as a write left it, when
// that write's events are published (events.go): every write that adds a
// fact (submission, TRIAGE, delivery, outcome) writes an event, and an
// outbox left by a crash is published by the sweeper, so the facts catch
// up. Publishes of two versions may land in either order (a sweep of an
// old outbox, a slow request), so a row is written only when its version
// is newer than the stored one (setRows): on MongoDB one filtered update,
// on the embedded store a read and a write under the month's lock. Of a
// case's two copies (submission and delivery months) statistics read the
// one of the higher version. The assessment is written when the opinion is
// frozen and never changes; a delivered case without one (a crash between
// the freeze and that write) is completed from its opinion when statistics
// read it.
//
// How large a month gets: a case is in the rows of at most two months, so
// a month holds the cases submitted in it plus those delivered in it, about
// twice its monthly volume. One case costs a month about 220 bytes of BSON
// (its row with its key, its version, its assessment: measured by
// TestAMonthOfFactsStaysFarBelowTheDocumentLimit), so the 16 MB document
// limit is reached at about 75,000 case-months, some 37,000 cases a month
// or 450,000 a year. The busiest second-opinion services report tens of
// thousands a year, an order of magnitude below, so the month is not
// sharded. What a month's size does cost is each write on the embedded
// store reading and rewriting the whole document (under 1 MB at 2,000
// cases a month), serialised per month; MongoDB updates the paths in place.

// factsRow is one case's facts as stored in a month's rows.
type factsRow struct {
	InsurerID         string `json:"i"`
	Specialty         string `json:"s"`
	SubmittedAt       int64  `json:"t"`
	RecordsCompleteAt int64  `json:"r,omitempty"`
	DeliveredAt       int64  `json:"d,omitempty"`
	TreatmentChanged  *bool  `json:"c,omitempty"`
	Satisfaction      *int   `json:"q,omitempty"`
}

// factsMonthDoc is one calendar month's facts.
type factsMonthDoc struct {
	ID     string            `bson:"_id"`
	Rows   map[string]string `bson:"rows"`
	Vers   map[string]int    `bson:"vers,omitempty"`
	Assess map[string]string `bson:"assess"`
}

// versionedRow is one case's row and the case version it was made from.
type versionedRow struct {
	ID      string
	Row     string
	Version int
}

// factsFields are the case fields a row is made of.
var factsFields = bson.D{
	{Key: "insurerId", Value: 1}, {Key: "specialty", Value: 1}, {Key: "submittedAt", Value: 1},
	{Key: "recordsCompleteAt", Value: 1}, {Key: "deliveredAt", Value: 1}, {Key: "outcome", Value: 1},
}

func factsMonth(t time.Time) string { return t.UTC().Format("2006-01") }

func millis(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) *time.Time {
	if ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// caseFacts returns case d's row and the months that hold it.
func caseFacts(d *caseDoc) (string, []string) {
	r := factsRow{InsurerID: d.InsurerID, Specialty: d.Specialty, SubmittedAt: d.SubmittedAt.UnixMilli(),
		RecordsCompleteAt: millis(d.RecordsCompleteAt), DeliveredAt: millis(d.DeliveredAt)}
	if o := d.Outcome; o != nil {
		r.TreatmentChanged, r.Satisfaction = o.TreatmentChanged, o.Satisfaction
	}
	b, _ := json.Marshal(r) // plain fields: cannot fail
	months := []string{factsMonth(d.SubmittedAt)}
	if d.DeliveredAt != nil && factsMonth(*d.DeliveredAt) != months[0] {
		months = append(months, factsMonth(*d.DeliveredAt))
	}
	return string(b), months
}

// setRows writes each row to a month's facts, creating the month, unless
// the month holds the case's row of the same or a newer version. On
// MongoDB each row is one update filtered by the stored version; on the
// embedded store, under the month's lock, one read of the versions and one
// write of the newer rows.
func (s *Store) setRows(ctx context.Context, month string, rows []versionedRow) error {
	if len(rows) == 0 {
		return nil
	}
	set := func(rows []versionedRow) bson.D {
		d := make(bson.D, 0, 2*len(rows))
		for _, r := range rows {
			d = append(d, bson.E{Key: "rows." + r.ID, Value: r.Row}, bson.E{Key: "vers." + r.ID, Value: r.Version})
		}
		return bson.D{{Key: "$set", Value: d}}
	}
	err := s.locked(ctx, colOutcomeFacts, month, func(ctx context.Context) error {
		coll := s.c(colOutcomeFacts)
		if s.serialWrites {
			var cur factsMonthDoc
			err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: month}}, options.FindOne().SetProjection(bson.D{{Key: "vers", Value: 1}})).Decode(&cur)
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return err
			}
			newer := make([]versionedRow, 0, len(rows))
			for _, r := range rows {
				if v, ok := cur.Vers[r.ID]; !ok || v < r.Version {
					newer = append(newer, r)
				}
			}
			if len(newer) == 0 {
				return nil
			}
			_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: month}}, set(newer), options.UpdateOne().SetUpsert(true))
			return err
		}
		for _, r := range rows {
			filter := bson.D{{Key: "_id", Value: month}, {Key: "$or", Value: bson.A{
				bson.D{{Key: "vers." + r.ID, Value: bson.D{{Key: "$lt", Value: r.Version}}}},
				bson.D{{Key: "vers." + r.ID, Value: bson.D{{Key: "$exists", Value: false}}}},
			}}}
			// A filter that matches nothing makes the upsert insert the
			// month, refused as a duplicate when the month exists: the
			// first time because another write created it meanwhile (so
			// once more), the second because its row is not older.
			for attempt := 0; ; attempt++ {
				_, err := coll.UpdateOne(ctx, filter, set([]versionedRow{r}), options.UpdateOne().SetUpsert(true))
				if err == nil || (isDuplicate(err) && attempt == 1) {
					break
				}
				if !isDuplicate(err) {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: outcome facts: %w", err)
	}
	return nil
}

// setFact $sets one path of a month's facts, creating the month.
func (s *Store) setFact(ctx context.Context, month, path, value string) error {
	return s.locked(ctx, colOutcomeFacts, month, func(ctx context.Context) error {
		_, err := s.c(colOutcomeFacts).UpdateOne(ctx, bson.D{{Key: "_id", Value: month}},
			bson.D{{Key: "$set", Value: bson.D{{Key: path, Value: value}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("store: outcome facts: %w", err)
		}
		return nil
	})
}

// writeCaseFacts writes case d's row, as d holds it, to its months.
func (s *Store) writeCaseFacts(ctx context.Context, d *caseDoc) error {
	row, months := caseFacts(d)
	for _, m := range months {
		if err := s.setRows(ctx, m, []versionedRow{{ID: d.ID, Row: row, Version: d.Version}}); err != nil {
			return err
		}
	}
	return nil
}

// factsEvent reports whether an event may have added a fact to its case.
func factsEvent(r CaseEventRecord) bool {
	switch domain.CaseStatus(r.ToStatus) {
	case domain.StatusSubmitted, domain.StatusTriage, domain.StatusOpinionDelivered, domain.StatusClosed:
		return true
	}
	return r.Type == "OUTCOME_RECORDED"
}

// setAssessmentFact records the assessment of case caseID's opinion,
// delivered at delivered.
func (s *Store) setAssessmentFact(ctx context.Context, caseID, a string, delivered time.Time) error {
	if a == "" {
		return nil
	}
	return s.setFact(ctx, factsMonth(delivered), "assess."+caseID, a)
}

// factsDocs returns the month documents of a whole data set (the demo, the
// migration): cases with their delivered opinions' assessments.
func factsDocs(cases []*caseDoc, assessment map[string]string) []*factsMonthDoc {
	months := map[string]*factsMonthDoc{}
	get := func(m string) *factsMonthDoc {
		if months[m] == nil {
			months[m] = &factsMonthDoc{ID: m, Rows: map[string]string{}, Vers: map[string]int{}, Assess: map[string]string{}}
		}
		return months[m]
	}
	for _, c := range cases {
		row, ms := caseFacts(c)
		for _, m := range ms {
			get(m).Rows[c.ID], get(m).Vers[c.ID] = row, c.Version
		}
		if a := assessment[c.ID]; a != "" && c.DeliveredAt != nil {
			get(factsMonth(*c.DeliveredAt)).Assess[c.ID] = a
		}
	}
	out := make([]*factsMonthDoc, 0, len(months))
	for _, m := range months {
		out = append(out, m)
	}
	return out
}

// mergeFacts adds the rows and assessments of each month document to the
// stored month, creating it: a second data set, or a second run, adds to
// what is there, and a row never replaces one of a newer version.
func (s *Store) mergeFacts(ctx context.Context, months []*factsMonthDoc) error {
	for _, m := range months {
		rows := make([]versionedRow, 0, len(m.Rows))
		for id, row := range m.Rows {
			rows = append(rows, versionedRow{ID: id, Row: row, Version: m.Vers[id]})
		}
		if err := s.setRows(ctx, m.ID, rows); err != nil {
			return err
		}
		set := bson.D{}
		for id, a := range m.Assess {
			set = append(set, bson.E{Key: "assess." + id, Value: a})
		}
		if len(set) == 0 {
			continue
		}
		err := s.locked(ctx, colOutcomeFacts, m.ID, func(ctx context.Context) error {
			_, err := s.c(colOutcomeFacts).UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, bson.D{{Key: "$set", Value: set}},
				options.UpdateOne().SetUpsert(true))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: outcome facts: %w", err)
		}
	}
	return nil
}

// MigrateOutcomeFacts builds the facts of every case stored before facts
// existed, or before rows carried their case's version: once (a marker in
// counters records that it ran to its end), with one read of the cases and
// of the delivered opinions. Later writes keep the facts themselves; a
// second run, or a write racing this one, never replaces a newer row.
func (s *Store) MigrateOutcomeFacts(ctx context.Context) error {
	const marker = "migration:outcome-facts-versioned"
	if _, err := findByID[counterDoc](ctx, s, colCounters, marker, nil); err == nil {
		return nil
	} else if !errors.Is(err, mongo.ErrNoDocuments) {
		return translate(err, "counters")
	}
	cases, err := findAll[caseDoc](ctx, s, colCases, bson.D{}, options.Find().SetProjection(append(bson.D{{Key: "version", Value: 1}}, factsFields...)))
	if err != nil {
		return translate(err, "cases")
	}
	ops, err := findAll[opinionDoc](ctx, s, colOpinions, bson.D{{Key: "status", Value: string(domain.OpinionDelivered)}},
		options.Find().SetProjection(bson.D{{Key: "caseId", Value: 1}, {Key: "content.diagnosisAssessment", Value: 1}}))
	if err != nil {
		return translate(err, "opinions")
	}
	assessment := make(map[string]string, len(ops))
	for _, o := range ops {
		if o.Content != nil {
			assessment[o.CaseID] = o.Content.DiagnosisAssessment
		}
	}
	if err := s.mergeFacts(ctx, factsDocs(cases, assessment)); err != nil {
		return err
	}
	cctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.c(colCounters).InsertOne(cctx, counterDoc{ID: marker, Seq: int64(len(cases))}); err != nil && !isDuplicate(err) {
		return translate(err, "counters")
	}
	return nil
}

// StatsFilter narrows the rows outcome statistics are computed from.
type StatsFilter struct {
	From, To  time.Time
	InsurerID string
	Specialty string
}

// StatsRow is one case as outcome statistics read it: no identity, no
// clinical text.
type StatsRow struct {
	InsurerID         string
	Specialty         string
	SubmittedAt       time.Time
	RecordsCompleteAt *time.Time
	DeliveredAt       *time.Time
	Assessment        domain.DiagnosisAssessment
	TreatmentChanged  *bool
	Satisfaction      *int
}

// StatsRows returns the cases submitted or delivered in [From, To) of the
// filter, from the facts of the months the period covers, each read by _id
// (statistics are aggregate only; the workflow decides who may ask).
func (s *Store) StatsRows(ctx context.Context, f StatsFilter) ([]StatsRow, error) {
	rows := map[string]factsRow{}
	rowVer := map[string]int{}
	assess := map[string]string{}
	from := time.Date(f.From.Year(), f.From.Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := from; m.Before(f.To); m = m.AddDate(0, 1, 0) {
		d, err := findByID[factsMonthDoc](ctx, s, colOutcomeFacts, factsMonth(m), nil)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, translate(err, "outcome facts")
		}
		for id, raw := range d.Rows {
			// A case is in two months' rows when delivered in another
			// month than submitted: the copy of the newer version wins
			// (a row from before versions counts as version 0).
			if v, ok := rowVer[id]; ok && v >= d.Vers[id] {
				continue
			}
			var r factsRow
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return nil, fmt.Errorf("store: outcome facts of %s: %w", id, err)
			}
			rows[id], rowVer[id] = r, d.Vers[id]
		}
		for id, a := range d.Assess {
			assess[id] = a
		}
	}
	in := func(ms int64) bool {
		t := fromMillis(ms)
		return t != nil && !t.Before(f.From) && t.Before(f.To)
	}
	out := make([]StatsRow, 0, len(rows))
	for id, r := range rows {
		if (f.InsurerID != "" && r.InsurerID != f.InsurerID) || (f.Specialty != "" && r.Specialty != f.Specialty) {
			continue
		}
		if !in(r.SubmittedAt) && !in(r.DeliveredAt) {
			continue
		}
		a := assess[id]
		if r.DeliveredAt != 0 && a == "" {
			var err error
			if a, err = s.healAssessment(ctx, id); err != nil {
				return nil, err
			}
		}
		out = append(out, StatsRow{
			InsurerID: r.InsurerID, Specialty: r.Specialty, SubmittedAt: *fromMillis(r.SubmittedAt),
			RecordsCompleteAt: fromMillis(r.RecordsCompleteAt), DeliveredAt: fromMillis(r.DeliveredAt),
			Assessment: domain.DiagnosisAssessment(a), TreatmentChanged: r.TreatmentChanged, Satisfaction: r.Satisfaction,
		})
	}
	return out, nil
}

// healAssessment reads the assessment of case caseID's opinion when it is
// delivered (a write of its facts was lost, or the freeze is under way)
// and records it in the facts.
func (s *Store) healAssessment(ctx context.Context, caseID string) (string, error) {
	o, err := findByID[opinionDoc](ctx, s, colOpinions, OpinionIDForCase(caseID),
		bson.D{{Key: "status", Value: 1}, {Key: "deliveredAt", Value: 1}, {Key: "content.diagnosisAssessment", Value: 1}})
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", translate(err, "opinion")
	}
	if o.Status != string(domain.OpinionDelivered) || o.Content == nil || o.DeliveredAt == nil {
		return "", nil
	}
	a := o.Content.DiagnosisAssessment
	if err := s.setAssessmentFact(ctx, caseID, a, *o.DeliveredAt); err != nil {
		return "", err
	}
	return a, nil
}
