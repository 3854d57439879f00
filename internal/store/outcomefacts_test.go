package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/secondopinion/gateway/internal/domain"
)

// factsCase is a case delivered in the month after its submission, at
// version, with the outcome a member may have recorded.
func factsCase(id string, version int, changed *bool, satisfaction *int) *caseDoc {
	submitted := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	complete, delivered := submitted.Add(48*time.Hour), submitted.AddDate(0, 0, 14)
	d := &caseDoc{ID: id, InsurerID: "ins", Specialty: "oncology", SubmittedAt: submitted, RecordsCompleteAt: &complete,
		DeliveredAt: &delivered, Version: version}
	if changed != nil || satisfaction != nil {
		d.Outcome = &outcomeDoc{TreatmentChanged: changed, Satisfaction: satisfaction}
	}
	return d
}

// Two versions' facts published out of order leave the newer one, in
// both months that hold the case, on both write paths.
func TestOutOfOrderFactsLeaveTheNewerRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "factsorder")
	onBothPaths(t, s, func(t *testing.T, serial bool) {
		id := fmt.Sprintf("case-%v", serial)
		yes, four := true, 4
		v5, v6 := factsCase(id, 5, nil, nil), factsCase(id, 6, &yes, &four)

		require.NoError(t, s.writeCaseFacts(ctx, v6))
		require.NoError(t, s.writeCaseFacts(ctx, v5), "the older publish lands last")
		require.NoError(t, s.writeCaseFacts(ctx, v6), "a repeated publish changes nothing")

		want, months := caseFacts(v6)
		require.Len(t, months, 2)
		for _, m := range months {
			got, err := findByID[factsMonthDoc](ctx, s, colOutcomeFacts, m, nil)
			require.NoError(t, err)
			assert.Equal(t, want, got.Rows[id], "month %s", m)
			assert.Equal(t, 6, got.Vers[id], "month %s", m)
		}
		rows, err := s.StatsRows(ctx, StatsFilter{From: v6.SubmittedAt.AddDate(0, -1, 0), To: v6.SubmittedAt.AddDate(0, 2, 0)})
		require.NoError(t, err)
		var mine []StatsRow
		for _, r := range rows {
			if r.TreatmentChanged != nil || r.Satisfaction != nil || r.DeliveredAt != nil {
				mine = append(mine, r)
			}
		}
		require.NotEmpty(t, mine)
		for _, r := range mine {
			require.NotNil(t, r.Satisfaction, "the newer facts")
			assert.Equal(t, 4, *r.Satisfaction)
		}

		// A row from before versions is replaced by any versioned one.
		legacy := factsCase(id+"-legacy", 2, nil, nil)
		row, months := caseFacts(legacy)
		_, err = s.c(colOutcomeFacts).UpdateOne(ctx, bson.D{{Key: "_id", Value: months[0]}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "rows." + legacy.ID, Value: row}}}})
		require.NoError(t, err)
		require.NoError(t, s.writeCaseFacts(ctx, factsCase(legacy.ID, 1, &yes, &four)))
		got, err := findByID[factsMonthDoc](ctx, s, colOutcomeFacts, months[0], nil)
		require.NoError(t, err)
		assert.Equal(t, 1, got.Vers[legacy.ID])
	})
}

// Of a case's two copies, statistics read the newer version's, also when
// it is the shorter one (treatment changed: true is shorter than false).
func TestStatisticsPickTheNewerRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "factspick")
	yes, no, five := true, false, 5
	older, newer := factsCase("older-first", 3, &no, &five), factsCase("older-first", 4, &yes, &five)
	oldRow, months := caseFacts(older)
	newRow, _ := caseFacts(newer)
	require.Less(t, len(newRow), len(oldRow), "the newer row is the shorter")
	put := func(month, id, row string, v int) {
		_, err := s.c(colOutcomeFacts).UpdateOne(ctx, bson.D{{Key: "_id", Value: month}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "rows." + id, Value: row}, {Key: "vers." + id, Value: v}}}}, options.UpdateOne().SetUpsert(true))
		require.NoError(t, err)
	}
	// One case with its newer copy in the submission month (read first),
	// another with it in the delivery month.
	put(months[0], "older-first", newRow, 4)
	put(months[1], "older-first", oldRow, 3)
	put(months[0], "older-last", oldRow, 3)
	put(months[1], "older-last", newRow, 4)

	rows, err := s.StatsRows(ctx, StatsFilter{From: older.SubmittedAt.AddDate(0, -1, 0), To: older.SubmittedAt.AddDate(0, 2, 0)})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.NotNil(t, r.TreatmentChanged)
		assert.True(t, *r.TreatmentChanged, "the newer copy")
	}
}

// The size a month's document reaches per case, measured: the figure the
// comment in outcomefacts.go reasons from.
func TestAMonthOfFactsStaysFarBelowTheDocumentLimit(t *testing.T) {
	const cases = 2_000
	yes, five := true, 5
	var docs []*caseDoc
	for i := range cases {
		d := factsCase(NewIDAt(time.Now()), 9, &yes, &five)
		d.InsurerID = fmt.Sprintf("insurer-%02d", i%20)
		d.Specialty = "cardiothoracic-surgery"
		d.DeliveredAt = &d.SubmittedAt // both in one month: row, version and assessment
		docs = append(docs, d)
	}
	assess := map[string]string{}
	for _, d := range docs {
		assess[d.ID] = string(domain.DiagnosisModified)
	}
	months := factsDocs(docs, assess)
	require.Len(t, months, 1)
	b, err := bson.Marshal(months[0])
	require.NoError(t, err)
	perCase := len(b) / cases
	t.Logf("%d bytes per case-month; 16 MB holds %d", perCase, 16<<20/perCase)
	assert.LessOrEqual(t, perCase, 230)
	// A month holds its submissions and its deliveries: 30,000 case-months
	// is 15,000 cases a month, 180,000 a year.
	assert.Greater(t, 16<<20/perCase, 30_000)
}
