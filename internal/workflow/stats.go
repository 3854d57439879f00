package workflow

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/store"
)

// Outcome statistics (DESIGN.md §5): aggregate only, with small-cell
// suppression that differencing cannot undo.
//
// The figures are sums over cells: calendar month × specialty × insurer
// (a case counts in `cases` in the month it was submitted, in every other
// figure in the month its opinion was delivered). Periods are rounded out
// to whole months, so every query is a union of cells. A count from 1 to
// MaxSuppressed in a cell is suppressed there; inside a cell, when one of
// the diagnosis counts (which add up to `delivered`) is suppressed, the
// smallest other non-zero one is too (complementary suppression). A query's
// figure is shown only when none of its cells is suppressed for it. So any
// two shown figures differ by a sum of cells that are each shown: no
// subtraction of one query from another (with and without a specialty,
// over nested periods, with and without an insurer) recovers a suppressed
// cell. The price is that one small cell hides the figure of every query
// that covers it.

// MaxSuppressed is the largest count that is never shown.
const MaxSuppressed = 10

// Figure names, as the schema's fields and `suppressed` name them.
const (
	FigCases              = "cases"
	FigDelivered          = "delivered"
	FigDiagnosisConfirmed = "diagnosisConfirmed"
	FigDiagnosisModified  = "diagnosisModified"
	FigDiagnosisChanged   = "diagnosisChanged"
	FigTreatmentChanged   = "treatmentChanged"
	FigTurnaroundP50      = "turnaroundDaysP50"
	FigTurnaroundP90      = "turnaroundDaysP90"
	FigSatisfactionMean   = "satisfactionMean"
	figResponses          = "satisfactionResponses"
)

var countFigures = []string{FigCases, FigDelivered, FigDiagnosisConfirmed, FigDiagnosisModified, FigDiagnosisChanged, FigTreatmentChanged, figResponses}

// StatsQuery asks for outcome statistics.
type StatsQuery struct {
	From, To  time.Time
	Specialty string
	// InsurerID narrows a coordinator's statistics to one insurer (an
	// insurer's are always its own).
	InsurerID string
}

// Statistics are the aggregate figures; nil where suppressed (named in
// Suppressed) or where there is nothing to measure.
type Statistics struct {
	From, To           time.Time
	Cases              *int
	Delivered          *int
	DiagnosisConfirmed *int
	DiagnosisModified  *int
	DiagnosisChanged   *int
	TreatmentChanged   *int
	TurnaroundDaysP50  *float64
	TurnaroundDaysP90  *float64
	SatisfactionMean   *float64
	Suppressed         []string
}

// OutcomeStatistics answers insurers (their own policies) and coordinators
// (all, or one insurer's).
func (s *Service) OutcomeStatistics(ctx context.Context, p domain.Principal, q StatsQuery) (*Statistics, error) {
	if err := p.Require(domain.ScopeCasesRead); err != nil {
		return nil, err
	}
	if err := p.RequireRole(domain.RoleInsurer, domain.RoleCoordinator); err != nil {
		return nil, err
	}
	if p.Role == domain.RoleInsurer {
		if q.InsurerID != "" && q.InsurerID != p.Org {
			return nil, domain.Errorf(domain.CodeForbidden, "an insurer reads the statistics of its own policies")
		}
		q.InsurerID = p.Org
	}
	from, to, err := statsPeriod(q.From, q.To)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.StatsRows(ctx, store.StatsFilter{From: from, To: to, InsurerID: q.InsurerID, Specialty: strings.ToLower(strings.TrimSpace(q.Specialty))})
	if err != nil {
		return nil, err
	}
	st := ComputeStatistics(rows, from, to)
	return &st, nil
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// statsPeriod rounds [from, to] out to whole calendar months (UTC): to is
// exclusive when it is a month's first day.
func statsPeriod(from, to time.Time) (time.Time, time.Time, error) {
	if !to.After(from) {
		return time.Time{}, time.Time{}, bad("to must be after from")
	}
	f, t := monthStart(from), monthStart(to)
	if !t.Equal(to.UTC()) {
		t = t.AddDate(0, 1, 0)
	}
	if t.Sub(f) > 5*366*24*time.Hour {
		return time.Time{}, time.Time{}, bad("a period spans at most 5 years")
	}
	return f, t, nil
}

type cellKey struct {
	month     time.Time
	specialty string
	insurer   string
}

type cell struct {
	counts     map[string]int
	suppressed map[string]bool
}

// ComputeStatistics aggregates rows (as the store returns them for the
// period) with the suppression rules above. It is pure: tests give it
// exact data sets.
func ComputeStatistics(rows []store.StatsRow, from, to time.Time) Statistics {
	cells := map[cellKey]*cell{}
	get := func(k cellKey) *cell {
		c := cells[k]
		if c == nil {
			c = &cell{counts: map[string]int{}, suppressed: map[string]bool{}}
			cells[k] = c
		}
		return c
	}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var turnaround, satisfaction []float64
	for _, r := range rows {
		if in(r.SubmittedAt) {
			get(cellKey{monthStart(r.SubmittedAt), r.Specialty, r.InsurerID}).counts[FigCases]++
		}
		if r.DeliveredAt == nil || !in(*r.DeliveredAt) {
			continue
		}
		c := get(cellKey{monthStart(*r.DeliveredAt), r.Specialty, r.InsurerID})
		c.counts[FigDelivered]++
		switch r.Assessment {
		case domain.DiagnosisConfirmed:
			c.counts[FigDiagnosisConfirmed]++
		case domain.DiagnosisModified:
			c.counts[FigDiagnosisModified]++
		case domain.DiagnosisChanged:
			c.counts[FigDiagnosisChanged]++
		}
		if r.TreatmentChanged != nil && *r.TreatmentChanged {
			c.counts[FigTreatmentChanged]++
		}
		if r.Satisfaction != nil {
			c.counts[figResponses]++
			satisfaction = append(satisfaction, float64(*r.Satisfaction))
		}
		start := r.SubmittedAt
		if r.RecordsCompleteAt != nil {
			start = *r.RecordsCompleteAt
		}
		turnaround = append(turnaround, r.DeliveredAt.Sub(start).Hours()/24)
	}

	out := Statistics{From: from, To: to}
	hidden := map[string]bool{}
	totals := map[string]int{}
	for _, c := range cells {
		suppressCell(c)
		for _, f := range countFigures {
			totals[f] += c.counts[f]
			if c.suppressed[f] {
				hidden[f] = true
			}
		}
	}
	show := func(f string) *int {
		if hidden[f] {
			return nil
		}
		v := totals[f]
		return &v
	}
	out.Cases, out.Delivered = show(FigCases), show(FigDelivered)
	out.DiagnosisConfirmed, out.DiagnosisModified, out.DiagnosisChanged = show(FigDiagnosisConfirmed), show(FigDiagnosisModified), show(FigDiagnosisChanged)
	out.TreatmentChanged = show(FigTreatmentChanged)
	// Percentiles and the mean describe the people counted: shown only
	// where their count is.
	if hidden[FigDelivered] {
		hidden[FigTurnaroundP50], hidden[FigTurnaroundP90] = true, true
	} else if len(turnaround) > 0 {
		out.TurnaroundDaysP50, out.TurnaroundDaysP90 = percentile(turnaround, 50), percentile(turnaround, 90)
	}
	if hidden[figResponses] {
		hidden[FigSatisfactionMean] = true
	} else if len(satisfaction) > 0 {
		out.SatisfactionMean = mean(satisfaction)
	}
	out.Suppressed = []string{}
	for _, f := range []string{FigCases, FigDelivered, FigDiagnosisConfirmed, FigDiagnosisModified, FigDiagnosisChanged,
		FigTreatmentChanged, FigTurnaroundP50, FigTurnaroundP90, FigSatisfactionMean} {
		if hidden[f] {
			out.Suppressed = append(out.Suppressed, f)
		}
	}
	return out
}

func small(n int) bool { return n >= 1 && n <= MaxSuppressed }

// suppressCell marks the cell's small counts, then the complementary
// diagnosis count: the three add up to delivered, so one hidden among
// shown siblings and a shown total would be worked out by subtraction.
func suppressCell(c *cell) {
	for _, f := range countFigures {
		if small(c.counts[f]) {
			c.suppressed[f] = true
		}
	}
	if c.suppressed[FigDelivered] {
		return
	}
	parts := []string{FigDiagnosisConfirmed, FigDiagnosisModified, FigDiagnosisChanged}
	hiddenParts := 0
	for _, f := range parts {
		if c.suppressed[f] {
			hiddenParts++
		}
	}
	// Assessments missing (older opinions) also make the parts fall short
	// of delivered; the rule only needs two hidden where any is.
	if hiddenParts != 1 {
		return
	}
	var pick string
	for _, f := range parts {
		if c.suppressed[f] || c.counts[f] == 0 {
			continue
		}
		if pick == "" || c.counts[f] < c.counts[pick] {
			pick = f
		}
	}
	if pick == "" {
		c.suppressed[FigDelivered] = true // nothing else to hide: hide the total
		return
	}
	c.suppressed[pick] = true
}

// percentile is the nearest-rank percentile, in days to one decimal.
func percentile(xs []float64, p float64) *float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	v := math.Round(s[max(rank, 1)-1]*10) / 10
	return &v
}

func mean(xs []float64) *float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	v := math.Round(sum/float64(len(xs))*100) / 100
	return &v
}
