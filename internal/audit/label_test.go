package audit_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/secondopinion/gateway/internal/audit"
)

func TestOperationLabelIsCutOnACharacterBoundary(t *testing.T) {
	for name, in := range map[string]string{
		"ascii":             "query " + strings.Repeat("A", 800<<10),
		"two-byte runes":    strings.Repeat("é", 1000),
		"four-byte runes":   strings.Repeat("𝄞", 1000),
		"mixed":             "q " + strings.Repeat("aé€𝄞", 300),
		"invalid UTF-8":     strings.Repeat("\xff", 1000),
		"a cut mid-rune":    strings.Repeat("a", 99) + "€€€",
		"short stays as is": "query memberReadsCase",
	} {
		t.Run(name, func(t *testing.T) {
			got := audit.OperationLabel(in)
			assert.True(t, utf8.ValidString(got))
			assert.LessOrEqual(t, utf8.RuneCountInString(got), audit.MaxOperationLabel)
			if utf8.ValidString(in) {
				assert.True(t, strings.HasPrefix(in, got), "a prefix of the name")
				assert.Equal(t, min(utf8.RuneCountInString(in), audit.MaxOperationLabel), utf8.RuneCountInString(got))
			}
		})
	}
}
