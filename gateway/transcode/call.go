package transcode

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/otelpatterns/patterns/gateway"
)

// call is what the transcoder knows of one request, between its
// ServeHTTP and the handler that vanguard calls in place of the upstream
// ([upstreamHandler]). Vanguard hands that handler nothing of the
// request's but the request it made and a ResponseWriter, so the call
// travels in the writer: the transcoder gives vanguard the call as a
// [clientWriter], which the handler gets back either as it is (a gRPC
// request that vanguard passes on unchanged) or from vanguard's own
// writer's Unwrap. Calls are pooled, so that a request costs no
// allocation for them; nothing that may outlive the request (a request
// body, which the transport may still read after the handler returned)
// points into one.
type call struct {
	t *Transcoder
	w http.ResponseWriter // the client's
	r *http.Request       // as the transcoder got it

	// Set before vanguard runs.
	refusal  connect.Code // nonzero: answer this instead of calling the upstream
	message  string       // the refusal's message
	wrapBody bool         // vanguard's request body may fail on its own: mark its errors

	// Set by the upstream handler.
	reached bool                // the upstream handler ran
	passed  bool                // vanguard passed the call on unchanged
	up      http.ResponseWriter // the writer vanguard gave it
	body    *bodyReader         // the body it sent, if wrapped
	wrote   bool                // the upstream's WriteHeader came
	mapped  bool                // it was the gateway's own answer, rewritten as a gRPC status: drop its body
	refused bool                // vanguard failed a write of the answer
	swallow bool                // vanguard's own answer was replaced: drop its body
}

// refuse notes that the call is to be answered with code and msg.
func (c *call) refuse(code connect.Code, msg string) {
	if c.refusal == 0 {
		c.refusal, c.message = code, msg
	}
}

// checkHeaders looks at the headers of a request that is not gRPC:
//
//   - It deletes the grpc-* headers (grpc-timeout, grpc-encoding,
//     grpc-status, ...) of a request that is not gRPC-Web either (web):
//     those are the gRPC protocol's own, which the transcoder sets from
//     what the REST or Connect request says (Connect-Timeout-Ms becomes
//     grpc-timeout), and a REST client has no business forging them. A
//     forged grpc-timeout of 1ns would have the upstream answer
//     DEADLINE_EXCEEDED to every call.
//   - It refuses, as INVALID_ARGUMENT (HTTP 400), a header whose name
//     ends in -bin and whose value is not base64 (padded or not, as gRPC
//     decodes it): gRPC carries such headers as binary metadata, and the
//     gRPC server would refuse the call as INTERNAL, a 500 for the
//     client's own mistake. A gRPC client's headers go through as they
//     are: its library base64-encodes them.
//   - It deletes Expect, which is for the gateway's server (it answers
//     100 Continue as the transcoder reads the body). Sent on, it had a
//     gRPC server built on net/http answer 100, which vanguard took for
//     the call's status, and native grpc-go make the gateway wait a
//     second for it.
func (c *call) checkHeaders(r *http.Request, web bool) {
	delete(r.Header, "Expect")
	for k, vals := range r.Header {
		if !web && len(k) > 5 && strings.EqualFold(k[:5], "grpc-") {
			delete(r.Header, k)
			continue
		}
		if len(k) > 4 && strings.EqualFold(k[len(k)-4:], "-bin") {
			for _, v := range vals {
				if !isBase64(v) {
					c.refuse(connect.CodeInvalidArgument, fmt.Sprintf("header %s: binary metadata (a name ending in -bin) must be base64", k))
					return
				}
			}
		}
	}
}

// isBase64 reports whether s is standard base64 as gRPC decodes binary
// metadata: padded when its length is a multiple of 4 (padding is then
// optional: none is needed), unpadded otherwise.
func isBase64(s string) bool {
	n := len(s)
	switch {
	case n%4 == 1:
		return false
	case n%4 == 0 && n > 0 && s[n-1] == '=':
		n--
		if s[n-1] == '=' {
			n--
		}
	}
	for i := range n {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// prepareBody checks a request's body against the route's limit (limit,
// 0 for none) and the message limit before vanguard reads it, content
// type ct:
//
//   - A Content-Length over the route's limit is refused as
//     RESOURCE_EXHAUSTED; a body of unknown length is bounded, failing
//     with [*http.MaxBytesError], which the gateway does not charge to
//     the target and answers 413 (RESOURCE_EXHAUSTED once transcoded).
//   - A gzip body (REST or Connect unary, whose Content-Encoding covers
//     the whole body) is decompressed here, at most the message limit,
//     so that a body that inflates past it is refused before the
//     upstream is called. (Vanguard would decompress it after starting
//     the call; its decompression is bounded too, see [boundedGzip].)
//   - A body that vanguard may fail to convert for reasons of its own
//     (a message over the limit, a malformed envelope) is marked to be
//     wrapped in a [bodyReader] once the upstream handler has it.
func (c *call) prepareBody(r *http.Request, ct string, limit int64) {
	enveloped := strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "application/connect+")
	if limit > 0 && r.ContentLength > limit {
		c.refuse(connect.CodeResourceExhausted, fmt.Sprintf("request body of %d bytes over the route's limit of %d", r.ContentLength, limit))
		return
	}
	if ce := r.Header["Content-Encoding"]; !enveloped && len(ce) == 1 && ce[0] == "gzip" {
		c.inflate(r, limit)
		return
	}
	if limit > 0 && r.ContentLength < 0 {
		r.Body = http.MaxBytesReader(nil, r.Body, limit)
	}
	// A body of known length within the message limit fails only if the
	// client's own body does, which the gateway sees itself: vanguard's
	// limit checks and envelopes are the other causes.
	c.wrapBody = enveloped || r.ContentLength < 0 || r.ContentLength > c.t.maxBytes
}

// Errors of a body over a limit, while it is read before vanguard.
var (
	errCompressedTooLarge   = errors.New("compressed request body over the limit")
	errDecompressedTooLarge = errors.New("decompressed request body over the message limit")
)

// inflate replaces a gzip body with its decompressed bytes, or refuses
// the call: RESOURCE_EXHAUSTED for a body over the route's limit (limit)
// or the message limit, compressed or not; INVALID_ARGUMENT for one
// that is not gzip or cannot be read.
func (c *call) inflate(r *http.Request, limit int64) {
	in := c.t.maxBytes
	if limit > 0 && limit < in {
		in = limit
	}
	var buf bytes.Buffer
	zr, err := gzip.NewReader(&capReader{r: r.Body, left: in, err: errCompressedTooLarge})
	if err == nil {
		_, err = buf.ReadFrom(&capReader{r: zr, left: c.t.maxBytes, err: errDecompressedTooLarge})
	}
	switch {
	case errors.Is(err, errCompressedTooLarge):
		c.refuse(connect.CodeResourceExhausted, fmt.Sprintf("%v of %d bytes", err, in))
	case errors.Is(err, errDecompressedTooLarge):
		c.refuse(connect.CodeResourceExhausted, fmt.Sprintf("%v of %d bytes", err, c.t.maxBytes))
	case r.Context().Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		// The client stalled until the route's time ran out (the
		// connection's read deadline), or went away: not a malformed
		// body. The message names no address.
		if errors.Is(r.Context().Err(), context.Canceled) && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.refuse(connect.CodeCanceled, "the client went away")
		} else {
			c.refuse(connect.CodeDeadlineExceeded, "the request body did not arrive in time")
		}
	case err != nil:
		c.refuse(connect.CodeInvalidArgument, "the gzip request body is malformed")
	default:
		r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
		r.ContentLength = int64(buf.Len())
		delete(r.Header, "Content-Encoding")
	}
}

// capReader reads at most left bytes of r, and fails with err past them.
type capReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		p = p[:c.left+1] // one byte more tells a body of exactly left from a longer one
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		return int(c.left), c.err
	}
	c.left -= int64(n)
	return n, err
}

// bodyReader is vanguard's request body (the client's, converted) as
// the upstream handler sends it. Vanguard's reader fails when the
// client's message is over the limit or malformed, which the transport
// would report as a failure of the target: bodyReader marks such errors
// with [gateway.ErrClientBody], so that the gateway neither charges the
// target nor retries, and keeps vanguard's error (a *connect.Error with
// the status the client should get) for the upstream handler to answer.
type bodyReader struct {
	io.ReadCloser
	failed atomic.Pointer[connect.Error] // read by the handler's goroutine, set by the transport's
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var ce *connect.Error
		if errors.As(err, &ce) {
			b.failed.CompareAndSwap(nil, ce)
		}
		err = fmt.Errorf("%w: %w", gateway.ErrClientBody, err)
	}
	return n, err
}

// boundedGzip is the gzip decompressor the transcoder registers with
// vanguard in place of its default, which decompresses without any
// bound: a message that inflates past limit (the message limit) fails
// with RESOURCE_EXHAUSTED rather than filling the gateway's memory.
type boundedGzip struct {
	zr    gzip.Reader
	limit int64
	left  int64
}

func (d *boundedGzip) Reset(r io.Reader) error {
	d.left = d.limit
	return d.zr.Reset(r)
}

func (d *boundedGzip) Read(p []byte) (int, error) {
	if int64(len(p)) > d.left {
		p = p[:d.left+1]
	}
	n, err := d.zr.Read(p)
	if int64(n) > d.left {
		return int(d.left), connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("decompressed message over the limit of %d bytes", d.limit))
	}
	d.left -= int64(n)
	return n, err
}

func (d *boundedGzip) Close() error { return d.zr.Close() }

// clientWriter is a call as the ResponseWriter vanguard writes the
// client's answer to. It passes everything on to the client's writer,
// but for vanguard's 415 to a REST request for a streaming method that
// REST cannot carry, which it answers 501 instead (see [restStream]).
type clientWriter call

func (w *clientWriter) Header() http.Header { return w.w.Header() }

func (w *clientWriter) WriteHeader(code int) {
	if code == http.StatusUnsupportedMediaType && !w.reached && !w.swallow && len(w.t.restStreams) > 0 {
		if s := w.t.unservable(w.r); s != nil {
			w.swallow = true // vanguard's own body
			h := w.w.Header()
			h.Set("Content-Type", "application/json")
			w.w.WriteHeader(http.StatusNotImplemented)
			_, _ = w.w.Write(s.answer)
			return
		}
	}
	w.w.WriteHeader(code)
}

func (w *clientWriter) Write(p []byte) (int, error) {
	if w.swallow {
		return len(p), nil
	}
	return w.w.Write(p)
}

// Flush flushes the client's writer: vanguard requires an http.Flusher,
// and flushes each message of a stream.
func (w *clientWriter) Flush() { flush(w.w) }

// Unwrap gives [http.ResponseController] the client's writer, and the
// upstream handler the call (see [callOf]).
func (w *clientWriter) Unwrap() http.ResponseWriter { return w.w }

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}
