package server_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/seed"
	"github.com/secondopinion/gateway/internal/testenv"
)

// An 800 KB operation name on a page of cases once wrote megabytes of audit
// per request: the stored label is the name cut to 100 characters.
func TestAHugeOperationNameYieldsABoundedAuditLabel(t *testing.T) {
	env := testenv.Start(t)
	name := "Flood" + strings.Repeat("x", 800<<10)
	doc := "query " + name + " { cases(first: 20) { edges { node { id diagnosis { code } patient { givenName } } } } }"
	res := env.As(t, "member", doc, nil)
	require.Empty(t, res.Errors, "%.300s", res.Raw)

	events := apiAuditOf(t, env, seed.DemoMember)
	var flood int
	for _, e := range events {
		op, _ := e["operation"].(string)
		if !strings.Contains(op, "Flood") {
			continue
		}
		flood++
		assert.LessOrEqual(t, utf8.RuneCountInString(op), 100)
		assert.True(t, strings.HasPrefix("query "+name, op), "the label is the start of the operation: %.120s", op)
	}
	assert.NotZero(t, flood, "the page's reads were audited under the flood's label")
}
