package gateway

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A gRPC upstream answers HTTP 200 whatever the call's outcome, and puts
// the outcome in grpc-status: among the response headers for an answer
// without a message (trailers-only, how most errors come), in the
// trailers otherwise. The breaker and outlier detection of a target that
// speaks gRPC therefore learn how an attempt went from grpc-status, not
// from the HTTP status: when the trailers-only headers arrive, or when
// the body has been read to its end and its trailers are in.
//
// The breaker counts UNAVAILABLE (14) and DEADLINE_EXCEEDED (4) as
// failures unless Breaker.GRPCFailure says otherwise, as well as a
// response that ends without a grpc-status or whose body fails to read;
// outlier detection counts UNAVAILABLE and DEADLINE_EXCEEDED, gRPC's 503
// and 504, and the broken responses. A DEADLINE_EXCEEDED counts for
// neither when the deadline that ran out was the client's own, nor does
// a stream that broke off then (see clientTimeout). By default every
// other code is the caller's business and counts as a success, INTERNAL
// and RESOURCE_EXHAUSTED included, unlike grpcbreaker's client interceptor:
// grpc-go answers those to a malformed or oversized message, so a client
// sending three of them would open the breaker for every client. (An
// upstream that fails with INTERNAL on its own answers it to every
// caller, and its breaker stays closed; its health checks or outlier
// detection have to catch it.) Breaker.Failure still applies to a gRPC
// response whose HTTP status is not 200 (an intermediary's 502, say).
// The breaker waits for grpc-status only for a request sent as gRPC
// (Content-Type application/grpc...): the attempts of other requests run
// inside the breaker's Execute, which allocates nothing but must be told
// the outcome when the response headers are in, so a gRPC answer to a
// request that was not a gRPC call counts by its HTTP status there
// (outlier detection still reads its grpc-status).
//
// Retries judge a trailers-only UNAVAILABLE as the 503 it stands for
// (retryCode): a request that is safe to repeat goes to another
// target when [Retry].Status accepts 503, as it does by default.

// grpcStatusError is a gRPC answer that counts as a failure of the
// target.
type grpcStatusError struct{ code string }

func (e *grpcStatusError) Error() string { return "gateway: upstream answered grpc-status " + e.code }

// ErrorType returns the gRPC status code, as the RPC semantic conventions
// record it (rpc.grpc.status_code).
func (e *grpcStatusError) ErrorType() string { return e.code }

// errGRPCNoStatus is a gRPC response that ended without a grpc-status.
var errGRPCNoStatus = errors.New("gateway: gRPC response without grpc-status")

// grpcBreakerFailure is the default of Breaker.GRPCFailure.
func grpcBreakerFailure(code int) bool { return code == 4 || code == 14 }

// grpcOutlierFailure classifies a grpc-status value for outlier
// detection.
func grpcOutlierFailure(code string) bool { return code == "4" || code == "14" }

// breakerGRPCFailure reports whether grpc-status code counts as a
// failure for u's breakers. A value that is no status code (the
// gateway answers such a response as UNKNOWN) is judged as UNKNOWN.
func (u *upstream) breakerGRPCFailure(code string) bool {
	n, err := strconv.Atoi(code)
	if err != nil || n < 0 || n > 16 {
		n = 2 // UNKNOWN
	}
	return u.grpcFail(n)
}

// clientTimeout is the deadline a gRPC client gave its call, its
// grpc-timeout sent on as it came, and when the attempt carrying it
// went: the upstream's clock for it starts about then.
type clientTimeout struct {
	d    time.Duration
	sent time.Time
}

// expired reports whether the client's deadline has run out. A
// DEADLINE_EXCEEDED then, or the stream reset that grpc-go sends instead
// when it gives up, is the client's choice (which any server can miss: a
// forged 1ns), not a failure of the target. A DEADLINE_EXCEEDED before
// it is the upstream's own (a dependency of its that timed out), and
// counts, as missing the route's Timeout or a per-try timeout does.
func (c clientTimeout) expired() bool { return c.d > 0 && time.Since(c.sent) >= c.d }

// grpcDeadline readies attempt out of a gRPC call. A grpc-timeout that
// [PropagateGRPCDeadline] set from the route's deadline is set again to
// the time left, or to the per-try timeout if shorter: a retry has less
// time than the first attempt. A client's own is kept, and returned
// with the time the attempt goes. Every other request pays a map lookup.
func grpcDeadline(out *http.Request, perTry time.Duration) clientTimeout {
	v := out.Header["Grpc-Timeout"]
	if len(v) == 0 {
		return clientTimeout{}
	}
	ctx := out.Context()
	if ctx.Value(routeDeadlineKey{}) != nil {
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl)
			if perTry > 0 && perTry < left {
				left = perTry
			}
			v[0] = formatGRPCTimeout(left)
		}
		return clientTimeout{}
	}
	d, ok := parseGRPCTimeout(v[0])
	if !ok {
		return clientTimeout{}
	}
	return clientTimeout{d: d, sent: time.Now()}
}

// clientDeadlineError is an attempt that broke off once the client's
// own deadline had run out (see clientTimeout): not charged to the
// target, not retried, and answered as a timeout.
type clientDeadlineError struct{ err error }

func (e *clientDeadlineError) Error() string {
	return "gateway: the call broke off as the client's grpc-timeout ran out: " + e.err.Error()
}

func (e *clientDeadlineError) Unwrap() error { return e.err }

func (e *clientDeadlineError) Is(target error) bool { return target == context.DeadlineExceeded }

func isClientDeadline(err error) bool {
	var cde *clientDeadlineError
	return errors.As(err, &cde)
}

// retryCode is the status by which the retry policy judges resp: 503
// for a gRPC answer that says UNAVAILABLE in its headers (trailers-only,
// so nothing of it has reached the client yet), as gRPC maps that code
// to HTTP; resp's own status otherwise. A gRPC call that is safe to
// repeat (an Idempotency-Key) then goes to another target, as an HTTP
// request answered 503 does.
func retryCode(resp *http.Response) int {
	if resp.StatusCode == http.StatusOK {
		if st := resp.Header["Grpc-Status"]; len(st) > 0 && st[0] == "14" && isGRPC(resp) {
			return http.StatusServiceUnavailable
		}
	}
	return resp.StatusCode
}

// routeDeadlineKey marks the context of a request whose grpc-timeout is
// the route's deadline, not the client's (see [PropagateGRPCDeadline]).
type routeDeadlineKey struct{}

// PropagateGRPCDeadline returns r, a gRPC call that a route's handler
// sends through the gateway ([ProxyTo], [Gateway.Transport]) on a
// client's behalf, with its Grpc-Timeout header set to the time left on
// r's context (the route's Timeout), so that the gRPC server stops
// working on the call when the gateway stops waiting for it, and passes
// the deadline on to its own calls. A grpc-timeout that r already
// carries is the client's own: it stays when it is the shorter. Package
// gateway/transcode calls it for every call it makes.
//
// The gateway tells the two apart when the server answers
// DEADLINE_EXCEEDED: missing the client's deadline is the client's
// choice and counts against neither the target's breaker nor its
// outlier detection, while missing the route's is a failure of the
// target. For that, when it sets the route's deadline, it returns a copy
// of r whose context is marked (two allocations, and one or two for the
// header); otherwise it returns r itself, and allocates nothing. The
// copy shares r's Header map, where the header is set.
func PropagateGRPCDeadline(r *http.Request) *http.Request {
	dl, ok := r.Context().Deadline()
	if !ok {
		return r
	}
	left := time.Until(dl)
	vals := r.Header["Grpc-Timeout"]
	if len(vals) > 0 {
		if d, ok := parseGRPCTimeout(vals[0]); ok && d <= left {
			return r // the client's deadline comes first
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), routeDeadlineKey{}, true))
	v := formatGRPCTimeout(left)
	if len(vals) == 1 {
		vals[0] = v
	} else {
		r.Header["Grpc-Timeout"] = []string{v}
	}
	return r
}

// maxTimeoutValue is the largest number a grpc-timeout may carry: at
// most 8 digits, then the unit.
const maxTimeoutValue = 1e8 - 1

// formatGRPCTimeout writes d as a grpc-timeout: the finest unit whose
// count fits in 8 digits, rounded up (as grpc-go does), so that the
// server never gives up before the gateway. A deadline already passed
// is 1n, which the server misses at once.
func formatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	for _, u := range [...]struct {
		unit time.Duration
		c    byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}} {
		n := d / u.unit
		if d%u.unit != 0 {
			n++ // rounded up, without the overflow of d + unit - 1
		}
		if n <= maxTimeoutValue {
			var buf [9]byte
			b := strconv.AppendInt(buf[:0], int64(n), 10)
			return string(append(b, u.c))
		}
	}
	n := d / time.Hour
	if d%time.Hour != 0 {
		n++
	}
	return strconv.FormatInt(int64(n), 10) + "H" // beyond 190 years
}

// parseGRPCTimeout reads a grpc-timeout: 1 to 8 digits, then the unit
// (H, M, S, m, u or n).
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for i := range len(s) - 1 {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if unit == time.Hour && n > math.MaxInt64/int64(time.Hour) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// isGRPC reports whether resp is a gRPC answer (HTTP/2, 200,
// application/grpc or application/grpc+codec, in any case); gRPC-Web
// answers carry their status in the body and are not.
func isGRPC(resp *http.Response) bool {
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		return false
	}
	ct := resp.Header.Get("Content-Type")
	return strings.EqualFold(ct, "application/grpc") || hasPrefixFold(ct, "application/grpc+") || hasPrefixFold(ct, "application/grpc;")
}

// hasPrefixFold reports whether s begins with prefix, in any case: media
// types are case-insensitive (RFC 9110, section 8.3.1), so a peer that
// sends "Application/GRPC" must not pass for another kind of answer.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// finishGRPC takes over [upstream.finish] for a gRPC answer: it reports
// the outcome at once for a trailers-only answer, or when resp's body
// ends, and returns true; for any other answer it does nothing and
// returns false.
func (u *upstream) finishGRPC(ctx context.Context, t *target, done func(error), resp *http.Response, ct clientTimeout) bool {
	if !isGRPC(resp) {
		return false
	}
	if st, ok := resp.Header["Grpc-Status"]; ok && len(st) > 0 {
		u.finishGRPCStatus(ctx, t, done, st[0], nil, ct)
		return true
	}
	resp.Body = &grpcBody{ReadCloser: resp.Body, resp: resp, report: func(code string, err error) {
		u.finishGRPCStatus(ctx, t, done, code, err, ct)
	}}
	return true
}

// finishGRPCStatus reports a gRPC attempt's outcome: its grpc-status, or
// err when the response broke or ended without one. An attempt whose
// client went away counts for neither the breaker nor outlier detection.
func (u *upstream) finishGRPCStatus(ctx context.Context, t *target, done func(error), code string, err error, ct clientTimeout) {
	// A stream that broke off once the client's deadline ran out was
	// reset for that reason (a server stream ending at it, say).
	gone := clientGone(ctx) || errors.Is(err, context.Canceled) || err != nil && ct.expired()
	clients := code == "4" && ct.expired()
	if done != nil {
		berr := err
		switch {
		case gone:
			berr = context.Canceled
		case err == nil && u.breakerGRPCFailure(code) && !clients:
			berr = &grpcStatusError{code}
		}
		done(berr)
	}
	if !gone {
		u.record(t, err != nil || grpcOutlierFailure(code) && !clients)
	}
}

// grpcBody reports its response's grpc-status once the body has been
// read to its end (the trailers are in then), or a failure when reading
// it fails; closed before its end, it reports the attempt as abandoned.
type grpcBody struct {
	io.ReadCloser
	resp     *http.Response
	report   func(code string, err error)
	reported atomic.Bool
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.reported.CompareAndSwap(false, true) {
		switch {
		case err != io.EOF:
			b.report("", err)
		case b.resp.Trailer.Get("Grpc-Status") == "":
			b.report("", errGRPCNoStatus)
		default:
			b.report(b.resp.Trailer.Get("Grpc-Status"), nil)
		}
	}
	return n, err
}

func (b *grpcBody) Close() error {
	err := b.ReadCloser.Close()
	if b.reported.CompareAndSwap(false, true) {
		// Closed before its end: the proxy stopped copying, its client
		// having gone away. Not the target's doing.
		b.report("", context.Canceled)
	}
	return err
}
