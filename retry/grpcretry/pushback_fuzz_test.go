package grpcretry

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// FuzzPushback feeds the pushback trailer, which comes from the network,
// to the parser: it never panics, waits only for a well-formed value in
// 0..max, and refuses every other value (gRFC A6: malformed means do not
// retry).
func FuzzPushback(f *testing.F) {
	for _, s := range []string{"0", "1", "1500", "30000", "30001", "-1", "-0", "+5", " 5", "5 ", "1.5", "1e3", "abc", "", "99999999999999999999", "9223372036854775807"} {
		f.Add(s, uint8(codes.Unavailable))
	}
	c := newConfig("fuzz", nil)
	f.Fuzz(func(t *testing.T, v string, code uint8) {
		md := metadata.Pairs(PushbackKey, v)
		wait, pushed, refused := c.pushback(md)
		if !pushed {
			t.Fatalf("pushback(%q): not seen", v)
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		valid := err == nil && ms >= 0 && ms <= int64(c.maxPushback/time.Millisecond)
		if refused == valid {
			t.Fatalf("pushback(%q) refused = %v; want %v", v, refused, !valid)
		}
		if valid && wait != time.Duration(ms)*time.Millisecond {
			t.Fatalf("pushback(%q) wait = %v; want %dms", v, wait, ms)
		}
		_, _, retryable := c.judge(status.Error(codes.Code(code%20), "x"), md, false)
		if refused && retryable {
			t.Fatalf("judge with pushback %q: retryable; want not", v)
		}
	})
}
