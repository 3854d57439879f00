package report_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secondopinion/gateway/internal/domain"
	"github.com/secondopinion/gateway/internal/report"
)

func sample(lang string) report.Input {
	at := time.Date(2026, 3, 12, 15, 4, 0, 0, time.UTC)
	return report.Input{
		Language: lang, CaseReference: "SO-2026-AAAA-BBBB",
		Opinion: &domain.Opinion{ID: "op-1", Status: domain.OpinionDelivered, DeliveredAt: &at,
			Sig: &domain.Signature{KeyID: "kid-1", SignedAt: at, Payload: "{}"},
			Content: &domain.OpinionContent{DiagnosisAssessment: domain.DiagnosisConfirmed, TreatmentAssessment: domain.TreatmentAgree,
				MemberSummary: "Ελληνικά και кириллица: the summary."}},
	}
}

func TestRenderIsTheSameEveryTime(t *testing.T) {
	a, err := report.Render(sample("fr-CA"))
	require.NoError(t, err)
	b, err := report.Render(sample("fr-CA"))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(a, []byte("%PDF-")))
	assert.Equal(t, a, b, "size and SHA-256 read from the field must match the download")

	other, err := report.Render(sample("en"))
	require.NoError(t, err)
	assert.NotEqual(t, a, other, "the labels follow the language")
}

func TestRenderNeedsADeliveredOpinion(t *testing.T) {
	in := sample("en")
	in.Opinion.DeliveredAt = nil
	_, err := report.Render(in)
	assert.Error(t, err)
}
