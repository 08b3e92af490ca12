package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// A gRPC upstream answers HTTP 200 whatever the call's outcome, and puts
// the outcome in grpc-status: among the response headers for an answer
// without a message (trailers-only, how most errors come), in the
// trailers otherwise. The breaker and outlier detection of a target that
// speaks gRPC therefore learn how an attempt went from grpc-status, not
// from the HTTP status: when the trailers-only headers arrive, or when
// the body has been read to its end and its trailers are in.
//
// The breaker counts UNAVAILABLE (14), DEADLINE_EXCEEDED (4, unless the
// request carried the client's own grpc-timeout),
// RESOURCE_EXHAUSTED (8) and INTERNAL (13) as failures, the default
// failure codes of circuitbreaker/grpcbreaker's client interceptors, as
// well as a response that ends without a grpc-status or whose body fails
// to read; outlier detection counts UNAVAILABLE and DEADLINE_EXCEEDED,
// gRPC's 503 and 504, and the broken responses. Other codes (NOT_FOUND,
// INVALID_ARGUMENT, ...) are the caller's business and count as
// successes. Breaker.Failure still applies to a gRPC response whose HTTP
// status is not 200 (an intermediary's 502, say). The breaker waits for
// grpc-status only for a request sent as gRPC (Content-Type
// application/grpc...): the attempts of other requests run inside the
// breaker's Execute, which allocates nothing but must be told the
// outcome when the response headers are in, so a gRPC answer to a
// request that was not a gRPC call counts by its HTTP status there
// (outlier detection still reads its grpc-status).

// grpcStatusError is a gRPC answer that counts as a failure of the
// target.
type grpcStatusError struct{ code string }

func (e *grpcStatusError) Error() string { return "gateway: upstream answered grpc-status " + e.code }

// ErrorType returns the gRPC status code, as the RPC semantic conventions
// record it (rpc.grpc.status_code).
func (e *grpcStatusError) ErrorType() string { return e.code }

// errGRPCNoStatus is a gRPC response that ended without a grpc-status.
var errGRPCNoStatus = errors.New("gateway: gRPC response without grpc-status")

// grpcBreakerFailure and grpcOutlierFailure classify a grpc-status value.
func grpcBreakerFailure(code string) bool {
	switch code {
	case "4", "8", "13", "14":
		return true
	}
	return false
}

func grpcOutlierFailure(code string) bool { return code == "4" || code == "14" }

// clientDeadline reports whether a DEADLINE_EXCEEDED answer is due to
// the deadline the client gave (the request's grpc-timeout): the
// client's choice, which any server can miss (a forged 1ns), and not a
// failure of the target. The gateway's own route timeout and per-try
// timeout still count.
func clientDeadline(resp *http.Response, code string) bool {
	return code == "4" && resp.Request != nil && resp.Request.Header.Get("Grpc-Timeout") != ""
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
func (u *upstream) finishGRPC(ctx context.Context, t *target, done func(error), resp *http.Response) bool {
	if !isGRPC(resp) {
		return false
	}
	if st, ok := resp.Header["Grpc-Status"]; ok && len(st) > 0 {
		u.finishGRPCStatus(ctx, t, done, resp, st[0], nil)
		return true
	}
	resp.Body = &grpcBody{ReadCloser: resp.Body, resp: resp, report: func(code string, err error) {
		u.finishGRPCStatus(ctx, t, done, resp, code, err)
	}}
	return true
}

// finishGRPCStatus reports a gRPC attempt's outcome: its grpc-status, or
// err when the response broke or ended without one. An attempt whose
// client went away counts for neither the breaker nor outlier detection.
func (u *upstream) finishGRPCStatus(ctx context.Context, t *target, done func(error), resp *http.Response, code string, err error) {
	gone := clientGone(ctx) || errors.Is(err, context.Canceled)
	if done != nil {
		berr := err
		switch {
		case gone:
			berr = context.Canceled
		case err == nil && grpcBreakerFailure(code) && !clientDeadline(resp, code):
			berr = &grpcStatusError{code}
		}
		done(berr)
	}
	if !gone {
		u.record(t, err != nil || grpcOutlierFailure(code) && !clientDeadline(resp, code))
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
