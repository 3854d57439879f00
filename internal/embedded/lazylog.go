package embedded

import (
	"context"
	"log/slog"
	"slices"
)

// lazyHandler defers WithAttrs and WithGroup to the records actually
// handled. FerretDB calls Logger.With on every SQL statement with the
// statement's arguments, whole documents among them, and slog's built-in
// handlers format those attributes at once, logged or not: with the level at
// ERROR that formatting was 6 % of the store's CPU in a case-detail
// benchmark, all thrown away.
type lazyHandler struct {
	inner slog.Handler
	ops   []func(slog.Handler) slog.Handler
}

func lazy(h slog.Handler) slog.Handler { return &lazyHandler{inner: h} }

func (h *lazyHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	out := h.inner
	for _, op := range h.ops {
		out = op(out)
	}
	return out.Handle(ctx, r)
}

func (h *lazyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithAttrs(as) })
}

func (h *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(in slog.Handler) slog.Handler { return in.WithGroup(name) })
}

func (h *lazyHandler) with(op func(slog.Handler) slog.Handler) slog.Handler {
	return &lazyHandler{inner: h.inner, ops: append(slices.Clip(h.ops), op)}
}
