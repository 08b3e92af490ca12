package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// request makes a part's request to its upstream.
func (h *Handler) request(in *http.Request, p *part, earlier Results, body []byte) (*http.Request, error) {
	var (
		req *http.Request
		err error
	)
	if p.Request != nil {
		// Each function gets its own copy of the incoming request, whose
		// body it may read, and whose header and URL it may change or
		// send on: the functions run at once.
		c := *in
		c.Header = in.Header.Clone()
		if in.URL != nil {
			u := *in.URL
			c.URL = &u
		}
		c.Body = http.NoBody
		if body != nil {
			c.Body = io.NopCloser(bytes.NewReader(body))
		}
		// A server request's RequestURI, which http.Client refuses to
		// send: in may be changed and sent on.
		c.RequestURI = ""
		req, err = p.Request(&c, earlier)
		if err != nil {
			return nil, err
		}
		if req == nil || req.URL == nil {
			return nil, errors.New("aggregate: Request returned no request, or one without a URL")
		}
		// As for in: one made with in.Clone, or in.WithContext, has it.
		req.RequestURI = ""
		if req.Header == nil {
			// As http.Client allows; the forwarded headers go in it.
			req.Header = http.Header{}
		}
		if req.Method == "" {
			req.Method = http.MethodGet
		}
		if !safeMethod(req.Method) && !h.cfg.unsafe {
			// The opt-in holds for the requests a function makes too.
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, fmt.Errorf("aggregate: Request: %s is unsafe in a fan-out; opt in with WithUnsafeMethods", req.Method)
		}
		u := *req.URL
		u.Scheme, u.Host = "http", p.Upstream
		req.URL = &u
	} else {
		uri, err := expand(p.tmpl, in, earlier)
		if err != nil {
			return nil, err
		}
		var rb io.Reader
		if p.unsafe && body != nil {
			rb = bytes.NewReader(body)
		}
		req, err = http.NewRequest(p.Method, "http://"+p.Upstream+uri, rb)
		if err != nil {
			return nil, err
		}
		if ct := in.Header.Get("Content-Type"); rb != nil && ct != "" {
			req.Header.Set("Content-Type", ct)
		}
	}
	// The target's own host, as the gateway sends to it.
	req.Host = ""
	for _, name := range p.header {
		if vs := in.Header.Values(name); len(vs) > 0 {
			req.Header[name] = append([]string(nil), vs...)
		}
	}
	return req, nil
}

// call sends a part's request and reads its answer, which must be a 2xx
// with a JSON body of at most the part's MaxBytes (none for HEAD). It
// returns the body decoded and as sent.
func (h *Handler) call(req *http.Request, p *part, reqCtx context.Context) (any, []byte, *PartError) {
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, nil, transportFailure(p.Name, err, req.Context(), reqCtx)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drained a little, so that the connection may be used again.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		pe := &PartError{Part: p.Name, Reason: reasonStatus, Status: resp.StatusCode,
			Err: fmt.Errorf("aggregate: upstream %q answered %s", p.Upstream, resp.Status)}
		if resp.StatusCode == http.StatusUnauthorized {
			pe.challenge = resp.Header.Values("WWW-Authenticate")
		}
		return nil, nil, pe
	}
	if req.Method == http.MethodHead {
		// No body to read: an existence check, whose value is null.
		v, _ := p.decode(null)
		return v, null, nil
	}
	tooLarge := &PartError{Part: p.Name, Reason: reasonTooLarge,
		Err: fmt.Errorf("aggregate: the body is over %d bytes", p.maxBytes)}
	if resp.ContentLength > p.maxBytes {
		return nil, nil, tooLarge
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBytes+1))
	if err != nil {
		return nil, nil, transportFailure(p.Name, err, req.Context(), reqCtx)
	}
	if int64(len(raw)) > p.maxBytes {
		return nil, nil, tooLarge
	}
	v, err := p.decode(raw)
	if err != nil {
		return nil, nil, &PartError{Part: p.Name, Reason: reasonInvalid, Err: err}
	}
	return v, raw, nil
}

var null = []byte("null")

// decode returns a part's answer as the document holds it: decoded,
// when a later part or a Shape reads it, or else checked and kept as
// it came, which spares decoding it and encoding it again.
func (p *part) decode(raw []byte) (any, error) {
	if p.raw {
		if !json.Valid(raw) {
			return nil, errors.New("aggregate: the body is not JSON")
		}
		return json.RawMessage(validUTF8(raw)), nil
	}
	return decode(raw)
}

// validUTF8 returns raw, valid JSON, with each byte of an invalid UTF-8
// sequence replaced by U+FFFD, as decoding it would: json.Valid takes
// invalid UTF-8 in strings, and a document of application/json must be
// UTF-8 (RFC 8259, 8.1). Valid input, the usual, is returned as it is,
// not copied. (bytes.ToValidUTF8 would replace a run of invalid bytes
// with one U+FFFD, which is not what a decoded part gets.) Outside
// strings, valid JSON is ASCII: no replacement can change its syntax.
func validUTF8(raw []byte) []byte {
	if utf8.Valid(raw) {
		return raw
	}
	out := make([]byte, 0, len(raw)+8)
	for len(raw) > 0 {
		r, size := utf8.DecodeRune(raw)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, raw[:size]...)
		}
		raw = raw[size:]
	}
	return out
}

// decode decodes one JSON value, numbers as json.Number so that ids keep
// their digits.
func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("aggregate: the body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("aggregate: the body is not JSON: data after the value")
	}
	return v, nil
}

// errorResponse is the document of a response refused or failed as a
// whole.
func errorResponse(status int, why string) *response {
	b, _ := json.Marshal(map[string]string{ErrorField: why})
	return &response{status: status, body: b}
}

func (res *response) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	for _, c := range res.auth {
		h.Add("WWW-Authenticate", c)
	}
	if len(res.partial) > 0 {
		h.Set(PartialHeader, joinNames(res.partial))
	}
	if len(res.stale) > 0 {
		h.Set(StaleHeader, joinNames(res.stale))
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

func joinNames(names []string) string {
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	return b.String()
}
