package graph_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/graph"
	"github.com/secondopinion/gateway/internal/domain"
)

func TestErrorPresenter(t *testing.T) {
	var logs bytes.Buffer
	present := graph.ErrorPresenter(slog.New(slog.NewTextHandler(&logs, nil)), func(context.Context) string { return "req-1" })

	t.Run("a domain error keeps its code and message", func(t *testing.T) {
		e := present(context.Background(), domain.Errorf(domain.CodeConflict, "the case is at version 3, not 2"))
		assert.Equal(t, "CONFLICT", e.Extensions["code"])
		assert.Equal(t, "the case is at version 3, not 2", e.Message)
	})
	t.Run("anything else is INTERNAL with the request id, detail only in the log, PHI scrubbed", func(t *testing.T) {
		e := present(context.Background(), errors.New(`store: policy: E11000 duplicate key error dup key: { givenName: "Alice" }`))
		assert.Equal(t, "INTERNAL", e.Extensions["code"])
		assert.Equal(t, "req-1", e.Extensions["requestId"])
		assert.NotContains(t, e.Message, "E11000")
		assert.NotContains(t, e.Message, "store")
		assert.Contains(t, logs.String(), "E11000")
		assert.NotContains(t, logs.String(), "Alice")
	})
	t.Run("a panic is recovered as an error", func(t *testing.T) {
		err := graph.Recover(slog.New(slog.NewTextHandler(&logs, nil)))(context.Background(), `boom "Bob"`)
		assert.Error(t, err)
		assert.NotContains(t, logs.String(), "Bob")
	})
}
