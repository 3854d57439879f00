// Package scalar marshals the schema's custom scalars.
package scalar

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/secondopinion/gateway/internal/domain"
)

// DateLayout is the ISO-8601 calendar date form of the Date scalar.
const DateLayout = "2006-01-02"

// MarshalDate writes t as an ISO-8601 calendar date.
func MarshalDate(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(DateLayout)))
	})
}

// UnmarshalDate reads an ISO-8601 calendar date. A malformed one is the
// client's mistake (BAD_USER_INPUT), never an internal error.
func UnmarshalDate(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, domain.Errorf(domain.CodeBadUserInput, "a Date must be a string like 2026-03-01")
	}
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.CodeBadUserInput, "a Date must be a real calendar date like 2026-03-01")
	}
	return t, nil
}
