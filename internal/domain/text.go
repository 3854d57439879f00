package domain

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextProblem says what is wrong with a text a client sends, or "" when
// nothing is: it must be valid UTF-8 and hold no control character but
// tab, no line or paragraph separator, and no bidirectional embedding,
// override or isolate (U+202A–U+202E, U+2066–U+2069: they make a stored
// text display other than it reads, "Trojan Source"); line breaks (LF, or
// CRLF) only where multiline. Both doors apply it: the GraphQL input
// limits and the use cases' own checks, which the FHIR door reaches.
func TextProblem(s string, multiline bool) string {
	for i, r := range s {
		switch {
		case r == '\t':
		case r == '\n' && multiline:
		case r == '\r' && multiline && strings.HasPrefix(s[i+1:], "\n"):
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return "is not valid UTF-8"
			}
		case r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			return "may not contain line breaks"
		case unicode.IsControl(r), r >= '\u202A' && r <= '\u202E', r >= '\u2066' && r <= '\u2069':
			return fmt.Sprintf("may not contain the control character U+%04X", r)
		}
	}
	return ""
}
