package transcode

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/otelpatterns/patterns/gateway"
)

// upstreamHandler is the handler vanguard sends each transcoded call
// to: the gateway's upstream (or [WithUpstreamHandler]'s handler), with
// what vanguard leaves to it done around it, in one wrapper:
//
//   - A call the transcoder refused before vanguard (see [call]) is
//     answered here, as a gRPC status, without calling the upstream.
//   - The request's grpc-timeout becomes the shorter of the client's
//     and the time left on the route ([gateway.PropagateGRPCDeadline]).
//   - Vanguard's request body is wrapped (see [bodyReader]) when it may
//     fail on its own.
//   - The answer's status is made one that vanguard can read (see
//     [upstreamWriter]), and so are the trailers, once the upstream
//     handler has returned and before vanguard reads them.
//   - When vanguard refuses the answer (a response message over the
//     limit, say), it writes the client its own error and fails the
//     upstream handler's writes, on which ReverseProxy panics with
//     [http.ErrAbortHandler] to abort the response: that would cut the
//     client's connection under the error it has been sent, so the
//     panic stops here.
//
// On the happy path of a unary call it allocates nothing: the call is
// pooled, and a body is wrapped only when the client's may fail in
// vanguard's hands. (On a route with a Timeout, sending the deadline
// costs a few, see [gateway.PropagateGRPCDeadline].)
type upstreamHandler struct{ h http.Handler }

func (u *upstreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, passed := callOf(w)
	if c == nil {
		c = new(call) // vanguard called it from elsewhere: nothing known of the call
	}
	c.reached, c.up, c.passed = true, w, passed
	if c.refusal != 0 {
		writeStatus(w.Header(), c.refusal, c.message)
		w.WriteHeader(http.StatusOK)
		return
	}
	if c.wrapBody && !passed && r.Body != nil {
		// Passed on unchanged, the body is the client's own, which the
		// gateway reads and marks itself.
		c.body = &bodyReader{ReadCloser: r.Body}
		r.Body = c.body
	}
	defer func() {
		if c.refused {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		}
	}()
	u.h.ServeHTTP((*upstreamWriter)(c), gateway.PropagateGRPCDeadline(r))
	// The trailers, as ReverseProxy leaves them: announced ones under
	// their names, the others under http.TrailerPrefix.
	h := w.Header()
	fixStatus(h, "Grpc-Status")
	fixMessage(h, "Grpc-Message")
	fixStatus(h, http.TrailerPrefix+"Grpc-Status")
	fixMessage(h, http.TrailerPrefix+"Grpc-Message")
}

// callOf returns the call of the ResponseWriter vanguard gives the
// upstream handler, and whether vanguard passed the call on unchanged
// (w is the transcoder's own clientWriter then, else vanguard's writer
// wrapping it), or nil.
func callOf(w http.ResponseWriter) (*call, bool) {
	if cw, ok := w.(*clientWriter); ok {
		return (*call)(cw), true
	}
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		if cw, ok := u.Unwrap().(*clientWriter); ok {
			return (*call)(cw), false
		}
	}
	return nil, false
}

// upstreamWriter is a call as the ResponseWriter the upstream handler
// writes to. At WriteHeader it makes the answer one that vanguard reads
// as it should:
//
//   - A gRPC answer's grpc-status outside 0..16 becomes 2 (UNKNOWN), as
//     the gRPC spec has a receiver read it; vanguard would index its
//     status table with it and panic, dropping the client's connection.
//   - A % in its grpc-message that does not start a percent-encoded
//     byte is escaped: the spec has a receiver keep such a message as it
//     is, where vanguard would turn the whole status into INTERNAL.
//   - An answer that is not gRPC (neither a grpc-status nor a 200 of a
//     gRPC content type), with a status the gateway answers itself,
//     becomes the trailers-only gRPC answer of the code that says why
//     (see [gatewayStatus]), its headers kept (Retry-After, RateLimit-*,
//     WWW-Authenticate) and its body dropped. Vanguard would map it as
//     gRPC maps HTTP statuses to codes, which makes a route timeout
//     UNAVAILABLE (a call Connect and gRPC clients retry, though the
//     upstream may have run it), a 413 UNKNOWN and a 429 UNAVAILABLE.
//     When vanguard's body failed (see [bodyReader]), the code is that
//     of vanguard's error, the one the client should get.
type upstreamWriter call

func (w *upstreamWriter) Header() http.Header { return w.up.Header() }

func (w *upstreamWriter) WriteHeader(code int) {
	if code < http.StatusOK {
		// No part of gRPC: vanguard would take it for the call's status.
		return
	}
	if w.wrote {
		w.up.WriteHeader(code) // a second call, for net/http to report
		return
	}
	w.wrote = true
	h := w.up.Header()
	_, status := h["Grpc-Status"]
	if ct := h["Content-Type"]; status || code == http.StatusOK && len(ct) > 0 && isGRPC(ct[0]) {
		fixStatus(h, "Grpc-Status")
		fixMessage(h, "Grpc-Message")
		w.up.WriteHeader(code)
		return
	}
	if code == http.StatusBadGateway && w.deadlinePassed() {
		// The upstream broke off the call as the route's deadline came:
		// a grpc-go server resets the stream once the grpc-timeout it
		// was sent runs out, which can reach the gateway before its own
		// timer goes off. The call ran out of time; it did not fail.
		code = http.StatusGatewayTimeout
	}
	st, msg := gatewayStatus(code)
	if w.body != nil {
		if ce := w.body.failed.Load(); ce != nil {
			st, msg = ce.Code(), ce.Message()
		}
	}
	if st == 0 {
		w.up.WriteHeader(code)
		return
	}
	w.mapped = true
	delete(h, "Content-Length")
	delete(h, "Content-Encoding")
	writeStatus(h, st, msg)
	w.up.WriteHeader(http.StatusOK)
}

// deadlinePassed reports whether the request's deadline (the route's
// Timeout) has passed, whether or not its context knows it yet.
func (w *upstreamWriter) deadlinePassed() bool {
	if w.r == nil {
		return false
	}
	dl, ok := w.r.Context().Deadline()
	return ok && !time.Now().Before(dl)
}

func (w *upstreamWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.mapped {
		return len(p), nil
	}
	n, err := w.up.Write(p)
	if err != nil && !w.passed {
		w.refused = true // by vanguard, which has answered the client (or lost it)
	}
	return n, err
}

// Flush flushes vanguard's writer, which passes each message of a
// stream on to the client at once.
func (w *upstreamWriter) Flush() { flush(w.up) }

func (w *upstreamWriter) Unwrap() http.ResponseWriter { return w.up }

// isGRPC reports whether ct is a gRPC content type, as vanguard reads it.
func isGRPC(ct string) bool {
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")
}

// gatewayStatus is the gRPC status of the gateway's own answer code,
// and its message, or 0. The codes are those of google.rpc's HTTP
// mapping (and so what a REST client gets back, 504 for 504), except
// 502 and 503, which gRPC maps to UNAVAILABLE: the target could not
// answer, and trying again may work.
func gatewayStatus(code int) (connect.Code, string) {
	switch code {
	case http.StatusBadRequest: // the client's body could not be read
		return connect.CodeInvalidArgument, "HTTP 400 Bad Request"
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated, "HTTP 401 Unauthorized"
	case http.StatusForbidden:
		return connect.CodePermissionDenied, "HTTP 403 Forbidden"
	case http.StatusRequestTimeout: // the route's time ran out as the client sent its body
		return connect.CodeDeadlineExceeded, "HTTP 408 Request Timeout"
	case http.StatusRequestEntityTooLarge:
		return connect.CodeResourceExhausted, "HTTP 413 Request Entity Too Large"
	case http.StatusTooManyRequests:
		return connect.CodeResourceExhausted, "HTTP 429 Too Many Requests"
	case gateway.StatusClientClosedRequest:
		return connect.CodeCanceled, "HTTP 499 Client Closed Request"
	case http.StatusBadGateway:
		return connect.CodeUnavailable, "HTTP 502 Bad Gateway"
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable, "HTTP 503 Service Unavailable"
	case http.StatusGatewayTimeout:
		return connect.CodeDeadlineExceeded, "HTTP 504 Gateway Timeout"
	}
	return 0, ""
}

// writeStatus makes h the headers of a trailers-only gRPC answer of
// code and msg.
func writeStatus(h http.Header, code connect.Code, msg string) {
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(int(code))}
	h["Grpc-Message"] = []string{percentEncode(msg)}
}

// fixStatus rewrites a grpc-status of h[key] that is a number outside
// 0..16 to 2, UNKNOWN. One that is no number is left for vanguard to
// refuse as a protocol error (INTERNAL, as grpc-go does).
func fixStatus(h http.Header, key string) {
	vals := h[key]
	if len(vals) == 0 {
		return
	}
	v := vals[0]
	n := 0
	for i := range len(v) {
		c := v[i]
		if c < '0' || c > '9' {
			return
		}
		if n = n*10 + int(c-'0'); n > 16 {
			vals[0] = "2"
			return
		}
	}
}

// fixMessage escapes each % of the grpc-message of h[key] that does not
// start a percent-encoded byte (%XX), so that the message decodes to
// what the server sent ("50% off") rather than failing to.
func fixMessage(h http.Header, key string) {
	vals := h[key]
	if len(vals) == 0 || strings.IndexByte(vals[0], '%') < 0 {
		return
	}
	v := vals[0]
	var b strings.Builder
	last := 0 // v[:last] is in b
	for i := range len(v) {
		if v[i] != '%' || i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(v) + 8)
		}
		b.WriteString(v[last:i])
		b.WriteString("%25")
		last = i + 1
	}
	if b.Cap() > 0 {
		b.WriteString(v[last:])
		vals[0] = b.String()
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// percentEncode encodes msg for grpc-message, as the gRPC spec has it:
// bytes outside printable ASCII, and %, as %XX.
func percentEncode(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(msg) {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			if b.Cap() > 0 {
				b.WriteByte(c)
			}
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(msg) + 16)
			b.WriteString(msg[:i])
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	if b.Cap() == 0 {
		return msg
	}
	return b.String()
}
