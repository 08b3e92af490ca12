package retry

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseRetryAfter reads a Retry-After header (RFC 9110, section 10.2.3):
// either a number of seconds or an HTTP date. It returns how long to wait
// from now, and false when the value is missing or malformed. A date in the
// past means no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			// ParseUint reports ErrRange before it looks at the rest of v.
			if errors.Is(err, strconv.ErrRange) && strings.TrimLeft(v, "0123456789") == "" {
				return maxDuration, true // all digits, just too many of them
			}
			return 0, false
		}
		// Saturate instead of overflowing: a silly value is simply long.
		if secs > uint64(maxDuration/time.Second) {
			return maxDuration, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

const maxDuration = time.Duration(1<<63 - 1)
