package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A batch of known ids reads the same documents on both paths: one $in
// read (MongoDB's) and reads by exactly {_id} (the embedded store's), which
// skip missing ids and keep no duplicates.
func TestBatchesOfKnownIDsReadTheSameOnBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openCAS(t, ctx, "batch")
	var docs []any
	for i := range 30 {
		docs = append(docs, counterDoc{ID: fmt.Sprintf("c-%02d", i), Seq: int64(i)})
	}
	require.NoError(t, s.insertMany(ctx, colCounters, docs))
	ids := []string{"c-03", "missing", "c-17", "c-03", "c-29", "c-00"}
	var got [2][]int64
	for i, byID := range []bool{false, true} {
		s.batchByID = byID
		out, err := findByIDs[counterDoc](ctx, s, colCounters, ids, nil)
		require.NoError(t, err)
		for _, d := range out {
			got[i] = append(got[i], d.Seq)
		}
	}
	assert.ElementsMatch(t, []int64{3, 17, 29, 0}, got[0])
	assert.ElementsMatch(t, got[0], got[1])
}
