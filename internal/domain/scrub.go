package domain

import "regexp"

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)

// Scrub blanks quoted values in an error text before it is logged: driver
// errors may quote document values (a duplicate key names the value), and
// those may be PHI.
func Scrub(s string) string { return quoted.ReplaceAllString(s, `"…"`) }
