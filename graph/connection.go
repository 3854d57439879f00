package graph

import (
	"github.com/secondopinion/gateway/graph/model"
	"github.com/secondopinion/gateway/internal/workflow"
)

// identified is an object with a raw id, the key of cursors.
type identified interface{ GetID() string }

// pageOf builds the edges and the page info of one page of items, the one
// connection builder every list uses: each edge's cursor is its node's id,
// encoded; more says whether a page follows.
func pageOf[T identified, E any](items []T, more bool, pg workflow.Page, edge func(cursor string, node T) E) ([]E, model.PageInfo) {
	edges := make([]E, 0, len(items))
	ids := make([]string, 0, len(items))
	for _, it := range items {
		edges = append(edges, edge(workflow.EncodeCursor(it.GetID()), it))
		ids = append(ids, it.GetID())
	}
	return edges, model.NewPageInfo(ids, more, pg.After != "", workflow.EncodeCursor)
}
