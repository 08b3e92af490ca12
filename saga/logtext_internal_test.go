package saga

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// TestLogTextBounded checks what Transition.Error's doc says of the text
// the orchestrator writes: at most 8 KiB of the message, cut on a
// character and followed by its length, valid text; and that text
// written once is written again as it is (a resumed or retried run writes
// the error it read from the log with the saga's final status). Before,
// the cut came before ValidText, which turns each NUL byte into three
// bytes (a message of NUL bytes was kept at 24 KiB), and a cut message
// written again was cut again, its length replaced by that of the cut
// text ("…(8206 bytes)" for a message of 20000).
func TestLogTextBounded(t *testing.T) {
	tests := []struct {
		name string
		msg  string
	}{
		{"short", "no courier"},
		{"8 KiB", strings.Repeat("x", maxErrorText)},
		{"long", strings.Repeat("x", 20000)},
		{"long, multi-byte", strings.Repeat("é", 10000)},
		{"NUL bytes", strings.Repeat("\x00", 9000)},
		{"NUL bytes under 8 KiB", strings.Repeat("\x00", 4000)},
		{"invalid UTF-8", strings.Repeat("a\xff", 6000)},
		{"like a cut one", strings.Repeat("x", 100) + "…(20000 bytes)"},
		{"like a cut one, long", "…(" + strings.Repeat("1", 10000) + " bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := logText(tt.msg)
			assert.True(t, utf8.ValidString(got) && !strings.Contains(got, "\x00"), "not valid text")
			suffix := fmt.Sprintf("…(%d bytes)", len(tt.msg))
			if len(ValidText(tt.msg)) <= maxErrorText {
				assert.True(t, got == ValidText(tt.msg), "the message changed")
			} else {
				assert.True(t, strings.HasSuffix(got, suffix), "…%q does not end with %q", tail(got), suffix)
				assert.LessOrEqual(t, len(got)-len(suffix), maxErrorText, "bytes kept of the message")
			}
			again := logText(got)
			assert.True(t, again == got, "written again: %d bytes, ending …%q; want %d, ending …%q",
				len(again), tail(again), len(got), tail(got))
		})
	}
}

// tail returns the end of s, for a message.
func tail(s string) string { return s[max(0, len(s)-20):] }
