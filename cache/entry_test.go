package cache

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestEntryPacking: an entry's expiry and refresh survive packing into one
// word, expiry never earlier and less than a unit later, a refresh never
// earlier, at most 0.1% of its lead and a unit later, and never mistaken
// for a cached "not found".
func TestEntryPacking(t *testing.T) {
	now := time.Now().UnixNano()
	rapid.Check(t, func(t *rapid.T) {
		notFound := rapid.Bool().Draw(t, "notFound")
		var expires, refreshAt int64
		if rapid.Bool().Draw(t, "expires") {
			expires = now + rapid.Int64Range(1, int64(10*365*24*time.Hour)).Draw(t, "ttl")
			if rapid.Bool().Draw(t, "refreshes") {
				refreshAt = rapid.Int64Range(now, expires-1).Draw(t, "refreshAt")
			}
		}
		e := entry[string]{v: "v"}
		if notFound {
			e = notFoundEntry[string]()
		}
		p := e.packed(expires, refreshAt)
		if p.notFound() != notFound {
			t.Fatalf("notFound() = %v; want %v", p.notFound(), notFound)
		}
		// Exact, unless refreshed ahead: then rounded up to a unit.
		if got := p.expires(); got != expires && (p.refreshAt() == 0 || got < expires || got-expires > codeMask) {
			t.Fatalf("expires() = %d; want %d", got, expires)
		}
		got := p.refreshAt()
		switch {
		case notFound || refreshAt == 0:
			if got != 0 {
				t.Fatalf("refreshAt() = %d; want 0 (no refresh)", got)
			}
		case got == 0:
			// Only a lead under a unit is dropped.
			if p.expires()-refreshAt >= 1<<codeBits {
				t.Fatalf("refreshAt() = 0; want about %d", refreshAt)
			}
		case p.expires()-refreshAt > leadOf(leadCode(math.MaxInt64)):
			// Past about 9 years, the longest lead.
			if want := p.expires() - leadOf(leadCode(math.MaxInt64)); got != want {
				t.Fatalf("refreshAt() = %d; want %d, the longest lead", got, want)
			}
		default:
			lead := float64(p.expires() - refreshAt)
			if got < refreshAt || float64(got-refreshAt) > lead/(1<<(mantissaBits-1))+1<<codeBits {
				t.Fatalf("refreshAt() = %d; want %d, or up to 0.1%% of its lead %v and a unit later", got, refreshAt, time.Duration(lead))
			}
		}
	})
}

// TestLeadCodeBounds: the longest leads saturate within the code's bits.
func TestLeadCodeBounds(t *testing.T) {
	for _, ns := range []int64{math.MaxInt64, math.MaxInt64 >> 3, int64(9 * 365 * 24 * time.Hour)} {
		if c := leadCode(ns); c == 0 || c > codeMask || leadOf(c) <= 0 {
			t.Errorf("leadCode(%d) = %#x (lead %d); want a lead code", ns, c, leadOf(c))
		}
	}
	if c := leadCode(1<<codeBits - 1); c != 0 {
		t.Errorf("leadCode(under a unit) = %#x; want 0", c)
	}
}
