package gateway

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"
)

// TestGRPCTimeoutFormatNoOverflow: a duration within a unit of
// math.MaxInt64 overflowed in the round-up (d + unit - 1) and came out
// negative ("-9223372036854774u"), a grpc-timeout that a gRPC server
// refuses as malformed (grpc-go: INTERNAL for every call).
func TestGRPCTimeoutFormatNoOverflow(t *testing.T) {
	for _, d := range []time.Duration{
		math.MaxInt64,
		math.MaxInt64 - 500,                  // overflows at 'u'
		math.MaxInt64 - 500*time.Microsecond, // overflows at 'm'
		math.MaxInt64 - time.Minute,          // overflows at 'H'
	} {
		got := formatGRPCTimeout(d)
		back, ok := parseGRPCTimeout(got)
		if !ok || back < d-time.Hour {
			t.Errorf("formatGRPCTimeout(%d) = %q, which reads as %v, %v; want a valid grpc-timeout of about %v", int64(d), got, back, ok, d)
		}
	}
}

// TestPropagateHugeRouteDeadline: a route whose Timeout is
// math.MaxInt64 ("no real bound"), as context.WithTimeout makes it,
// sends the upstream a malformed grpc-timeout.
func TestPropagateHugeRouteDeadline(t *testing.T) {
	r := httptest.NewRequest("POST", "/svc/Method", nil)
	ctx, cancel := context.WithTimeout(r.Context(), math.MaxInt64)
	defer cancel()
	got := PropagateGRPCDeadline(r.WithContext(ctx)).Header.Get("Grpc-Timeout")
	if _, ok := parseGRPCTimeout(got); !ok {
		t.Errorf("grpc-timeout %q sent for a route Timeout of math.MaxInt64: not a valid grpc-timeout", got)
	}
}
