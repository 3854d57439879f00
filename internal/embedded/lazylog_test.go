package embedded

import (
	"bytes"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

type countingValue struct{ n *atomic.Int32 }

func (v countingValue) LogValue() slog.Value {
	v.n.Add(1)
	return slog.StringValue("whole document")
}

func TestTheStoreLoggerFormatsOnlyWhatItLogs(t *testing.T) {
	var buf bytes.Buffer
	var resolved atomic.Int32
	logger := slog.New(lazy(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})))

	l := logger.With("sql", "INSERT …").WithGroup("q").With("args", countingValue{&resolved})
	l.Warn("statement")
	assert.Zero(t, resolved.Load(), "attributes of a record below the level are never formatted")
	assert.Empty(t, buf.String())

	l.Error("failed", "code", 1)
	assert.EqualValues(t, 1, resolved.Load())
	assert.Contains(t, buf.String(), `sql="INSERT …"`)
	assert.Contains(t, buf.String(), `q.args="whole document"`)
	assert.Contains(t, buf.String(), `q.code=1`)
	assert.Contains(t, buf.String(), `msg=failed`)
}
