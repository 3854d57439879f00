package documents_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/testenv"
	"github.com/secondopinion/gateway/internal/workflow"
)

func BenchmarkZZUploadTiny(b *testing.B) {
	env := testenv.Start(b)
	member := testenv.Persona("member")
	caseID := openDemoCase(b, env)
	ctx := context.Background()
	f := []byte("%PDF-1.7\nhello\n")
	for b.Loop() {
		_, rec, err := env.Documents.Upload(ctx, member, caseID, workflow.RecordInput{Title: "bench", Kind: domain.RecordImaging}, bytes.NewReader(f))
		require.NoError(b, err)
		b.StopTimer()
		_, err = env.Documents.Remove(ctx, member, caseID, rec.ID)
		require.NoError(b, err)
		b.StartTimer()
	}
}
