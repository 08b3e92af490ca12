package brief_test

import (
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/internal/brief"
)

func TestString(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	tests := []struct{ in, want string }{
		{"", ""},
		{"order-1", "order-1"},
		{strings.Repeat("a", brief.MaxLen), strings.Repeat("a", brief.MaxLen)},
		{long, strings.Repeat("a", brief.MaxLen) + "…(1048576 bytes)"},
		// A character across the cut is left out whole.
		{strings.Repeat("a", brief.MaxLen-1) + "é" + "zz", strings.Repeat("a", brief.MaxLen-1) + "…(131 bytes)"},
	}
	for _, tt := range tests {
		if got := brief.String(tt.in); got != tt.want {
			t.Errorf("String(%d bytes) = %q; want %q", len(tt.in), got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got := brief.Quote("a\nb"); got != `"a\nb"` {
		t.Errorf(`Quote("a\nb") = %s`, got)
	}
	got := brief.Quote(strings.Repeat("x", 1<<20))
	if want := `"` + strings.Repeat("x", brief.MaxLen) + `"…(1048576 bytes)`; got != want {
		t.Errorf("Quote(1 MiB) = %.40s… (%d bytes); want %d bytes", got, len(got), len(want))
	}
}
