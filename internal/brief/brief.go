// Package brief shortens identifiers that come from callers or from stored
// data (stream ids, keys, saga ids, subjects) before they go into error
// messages and span attributes: an id can be megabytes long, and an error
// or an attribute that carries it whole floods logs and trace backends.
package brief

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxLen is how many bytes of an identifier errors and attributes keep.
const MaxLen = 128

// String returns s when it is at most MaxLen bytes long, and otherwise
// its first MaxLen bytes or fewer (ending on a whole character) followed
// by "…(N bytes)", where N is the length of s.
func String(s string) string {
	if len(s) <= MaxLen {
		return s
	}
	cut := MaxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes)", len(s))
}

// Quote returns s quoted as %q quotes it, shortened like [String]: the
// quoted part is the first MaxLen bytes of s at most.
func Quote(s string) string {
	if len(s) <= MaxLen {
		return strconv.Quote(s)
	}
	cut := MaxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("…(%d bytes)", len(s))
}
