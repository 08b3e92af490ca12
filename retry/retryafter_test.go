package retry

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// retryAfterNow is the "now" of the Retry-After tests: a fixed instant with
// a fractional second, as a real clock has.
var retryAfterNow = time.Date(2026, time.November, 25, 12, 0, 0, 250_000_000, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	now := retryAfterNow
	tests := []struct {
		name   string
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"empty", "", 0, false},
		{"blank", " \t ", 0, false},
		{"zero", "0", 0, true},
		{"seconds", "120", 120 * time.Second, true},
		{"surrounding space", "  7\t", 7 * time.Second, true},
		{"leading zeros", "0042", 42 * time.Second, true},
		{"largest exact", "9223372036", 9223372036 * time.Second, true},
		{"saturates", "9223372037", maxDuration, true},
		{"saturates at the uint63 limit", "9223372036854775807", maxDuration, true},
		{"saturates past uint64", "99999999999999999999999999", maxDuration, true},
		{"negative", "-5", 0, false},
		{"plus sign", "+5", 0, false},
		{"fraction", "1.5", 0, false},
		{"exponent", "1e3", 0, false},
		{"hex", "0x10", 0, false},
		{"underscore", "1_000", 0, false},
		{"trailing garbage", "120s", 0, false},
		{"trailing garbage after an overflow", "10000000000000000000A", 0, false},
		{"two numbers", "1 2", 0, false},
		{"word", "soon", 0, false},
		{"IMF-fixdate in the future", now.Add(90 * time.Second).Format(http.TimeFormat), 90*time.Second - 250*time.Millisecond, true},
		{"RFC 850 date in the future", now.Add(time.Hour).Format(time.RFC850), time.Hour - 250*time.Millisecond, true},
		{"asctime date in the future", now.Add(time.Minute).Format(time.ANSIC), time.Minute - 250*time.Millisecond, true},
		{"date now", now.Format(http.TimeFormat), 0, true},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"date long ago", "Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
		{"date far ahead saturates", "Fri, 31 Dec 9999 23:59:59 GMT", maxDuration, true},
		{"date with a bad day", "Fri, 32 Dec 2026 00:00:00 GMT", 0, false},
		{"date without zone", "Wed, 25 Nov 2026 12:01:00", 0, false},
		{"ISO 8601 is not an HTTP date", "2026-11-25T12:01:00Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseRetryAfter(%q) = %v, %t; want %v, %t", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := retryAfterNow
	for _, s := range []string{
		"", "0", "120", " 3600 ", "-1", "1.5", "9223372037", "18446744073709551616",
		now.Add(time.Minute).Format(http.TimeFormat),
		now.Add(-time.Minute).Format(time.RFC850),
		now.Format(time.ANSIC),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := parseRetryAfter(v, now)
		if got < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, %t; want a wait that is not negative", v, got, ok)
		}
		if !ok && got != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false; want 0 with false", v, got)
		}
		s := strings.TrimSpace(v)
		if s == "" {
			if ok {
				t.Fatalf("parseRetryAfter(%q) = %v, true; want false for a blank value", v, got)
			}
			return
		}

		if allDigits(s) {
			// The seconds form: every string of digits is a wait, exact
			// when it fits in a Duration, saturated when it does not.
			want := maxDuration
			if n, err := strconv.ParseUint(s, 10, 64); err == nil && n <= uint64(maxDuration/time.Second) {
				want = time.Duration(n) * time.Second
				// Round trip: the wait formats back to the same number.
				if back, ok := parseRetryAfter(strconv.FormatInt(int64(want/time.Second), 10), now); !ok || back != want {
					t.Fatalf("parseRetryAfter(format(%v)) = %v, %t; want %v, true", want, back, ok, want)
				}
			}
			if !ok || got != want {
				t.Fatalf("parseRetryAfter(%q) = %v, %t; want %v, true", v, got, ok, want)
			}
			return
		}

		date, err := http.ParseTime(s)
		if s[0] >= '0' && s[0] <= '9' || err != nil {
			// Neither a number nor an HTTP date: garbage.
			if ok {
				t.Fatalf("parseRetryAfter(%q) = %v, true; want false for neither seconds nor an HTTP date", v, got)
			}
			return
		}
		if !ok {
			t.Fatalf("parseRetryAfter(%q) = 0, false; want true for the HTTP date %v", v, date)
		}
		if !date.After(now) {
			if got != 0 {
				t.Fatalf("parseRetryAfter(%q) = %v; want 0 for a date (%v) that is not after now (%v)", v, got, date, now)
			}
			return
		}
		if got == 0 || got != date.Sub(now) {
			t.Fatalf("parseRetryAfter(%q) = %v; want %v until %v", v, got, date.Sub(now), date)
		}
	})
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
