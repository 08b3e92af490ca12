package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// clientScope is the instrumentation scope of the scenario's client.
const clientScope = "github.com/otelpatterns/patterns/examples/ecommerce"

// client is the shop's customer-facing app: it calls the gateway over
// TLS, each request in a trace of its own whose root span is named for
// what the customer does.
type client struct {
	http    *http.Client
	tracer  trace.Tracer
	gateway string
}

// newClient returns a client of the gateway at base, trusting tlsc.
func newClient(base string, transport *http.Transport, tp trace.TracerProvider) *client {
	return &client{
		http: &http.Client{
			Transport: otelhttp.NewTransport(transport,
				otelhttp.WithTracerProvider(tp),
				otelhttp.WithPropagators(propagation.TraceContext{})),
			Timeout: 10 * time.Second,
		},
		tracer:  tp.Tracer(clientScope),
		gateway: base,
	}
}

// exchange is one request of the scenario and its answer.
type exchange struct {
	title        string // what the customer does
	method, path string
	status       int
	header       http.Header
	body         []byte
	trace        trace.TraceID
	err          error // the request failed without an answer
}

// request is what to send.
type request struct {
	title, method, path string
	token               string
	body                any    // JSON-encoded when not nil
	idempotencyKey      string // the Idempotency-Key header
}

// do sends r in a new trace and returns the answer; a transport error is
// in the exchange, not returned, so that the story can tell it.
func (c *client) do(ctx context.Context, r request) exchange {
	ctx, span := c.tracer.Start(ctx, r.title, trace.WithSpanKind(trace.SpanKindClient), trace.WithNewRoot())
	defer span.End()
	x := exchange{title: r.title, method: r.method, path: r.path, trace: span.SpanContext().TraceID()}
	var body io.Reader
	if r.body != nil {
		data, err := json.Marshal(r.body)
		if err != nil {
			x.err = err
			return x
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.gateway+r.path, body)
	if err != nil {
		x.err = err
		return x
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.idempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		x.err = err
		span.SetStatus(codes.Error, err.Error())
		return x
	}
	defer resp.Body.Close()
	x.status, x.header = resp.StatusCode, resp.Header
	x.body, x.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return x
}

// decode decodes the answer's JSON into v.
func (x exchange) decode(v any) error {
	if x.err != nil {
		return x.err
	}
	if err := json.Unmarshal(x.body, v); err != nil {
		return fmt.Errorf("%s %s: answer %d is not the JSON expected: %w (%s)", x.method, x.path, x.status, err, short(string(x.body), 120))
	}
	return nil
}

// line is the exchange in one line: request, status, a short body.
func (x exchange) line() string {
	if x.err != nil && x.status == 0 {
		return fmt.Sprintf("%s %s → %v", x.method, x.path, x.err)
	}
	return fmt.Sprintf("%s %s → %d %s", x.method, x.path, x.status, short(strings.TrimSpace(string(x.body)), 110))
}

// want returns an error unless the answer's status is status.
func (x exchange) want(status int) error {
	if x.err != nil && x.status == 0 {
		return fmt.Errorf("%s: %s %s: %w", x.title, x.method, x.path, x.err)
	}
	if x.status != status {
		return fmt.Errorf("%s: %s %s answered %d; want %d: %s", x.title, x.method, x.path, x.status, status, short(string(x.body), 200))
	}
	return nil
}

// short returns s cut to n runes, marked with "…".
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
