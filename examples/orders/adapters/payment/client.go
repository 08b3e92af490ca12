// Package payment is the payment gateway adapter: a client of a payment
// service's HTTP API, through the house resilience stack:
//
//	retry.NewTransport(             // attempts, backoff, Retry-After
//	    circuitbreaker.NewTransport(  // one breaker per host, judging each attempt
//	        otelhttp.NewTransport(base)))  // a client span per attempt
//
// A charge is a POST, which the retry transport sends again only because
// it carries an Idempotency-Key header: the service charges once per key.
package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/examples/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/retry"
)

// Config configures a [Client].
type Config struct {
	// BaseURL is the payment service's, such as "http://127.0.0.1:8081".
	BaseURL string
	// Base is the transport under the stack; nil means a clone of
	// http.DefaultTransport.
	Base http.RoundTripper
	// TracerProvider and MeterProvider are the telemetry's; nil means the
	// global ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// OnRetry, when set, is told of each retry.
	OnRetry func(attempt int, err error, delay time.Duration)
}

// Client is a ports.PaymentGateway on a payment service's HTTP API.
type Client struct {
	base   string
	client *http.Client
	under  http.RoundTripper // the base transport, whose connections Close closes
	charge func(context.Context, ports.Charge) (string, error)
}

// New returns a payment client for cfg.
func New(cfg Config, opts ...hexagonal.InstrumentOption) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("payment.New: Config.BaseURL is empty")
	}
	base := cfg.Base
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	var otelOpts []otelhttp.Option
	if cfg.TracerProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.MeterProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithMeterProvider(cfg.MeterProvider))
	}
	breakerOpts := []circuitbreaker.TransportOption{
		circuitbreaker.WithConsecutiveFailures(5),
		circuitbreaker.WithOpenDuration(5 * time.Second),
	}
	retryOpts := []retry.TransportOption{
		retry.WithName("payments"),
		retry.WithMaxAttempts(3),
		retry.WithBackoff(retry.Exponential(10*time.Millisecond, 2, 100*time.Millisecond)),
	}
	if cfg.MeterProvider != nil {
		breakerOpts = append(breakerOpts, circuitbreaker.WithMeterProvider(cfg.MeterProvider))
		retryOpts = append(retryOpts, retry.WithMeterProvider(cfg.MeterProvider))
	}
	if cfg.TracerProvider != nil {
		retryOpts = append(retryOpts, retry.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.OnRetry != nil {
		retryOpts = append(retryOpts, retry.WithOnRetry(func(_ context.Context, attempt int, err error, delay time.Duration) {
			cfg.OnRetry(attempt, err, delay)
		}))
	}
	c := &Client{
		base:  cfg.BaseURL,
		under: base,
		client: &http.Client{
			Transport: retry.NewTransport(
				circuitbreaker.NewTransport(
					otelhttp.NewTransport(base, append(otelOpts, otelhttp.WithClientTrace(retry.ClientTrace))...),
					breakerOpts...),
				retryOpts...),
			Timeout: 5 * time.Second,
		},
	}
	c.charge = hexagonal.Instrument(hexagonal.DrivenAdapter, "PaymentClient", "Charge", c.post, opts...)
	return c, nil
}

// Charge asks the payment service for c.Amount, and returns the payment's
// ID, or an error matching domain.ErrPaymentDeclined when the service
// declines (402).
func (c *Client) Charge(ctx context.Context, ch ports.Charge) (string, error) {
	return c.charge(ctx, ch)
}

// ChargeRequest is the payment service's request body.
type ChargeRequest struct {
	Reference string `json:"reference"`
	Cents     int64  `json:"cents"`
}

// ChargeResponse is the payment service's answer to a charge it accepts.
type ChargeResponse struct {
	PaymentID string `json:"payment_id"`
}

func (c *Client) post(ctx context.Context, ch ports.Charge) (string, error) {
	body, err := json.Marshal(ChargeRequest{Reference: string(ch.OrderID), Cents: int64(ch.Amount)})
	if err != nil {
		return "", err
	}
	// A bytes.Reader body gets a GetBody, so that a retry can send it again.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/charges", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", ch.IdempotencyKey)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("payment service: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("payment service: reading the answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		var r ChargeResponse
		if err := json.Unmarshal(data, &r); err != nil || r.PaymentID == "" {
			return "", fmt.Errorf("payment service: malformed answer %q", data)
		}
		return r.PaymentID, nil
	case http.StatusPaymentRequired:
		return "", fmt.Errorf("%w: %s of order %s", domain.ErrPaymentDeclined, ch.Amount, ch.OrderID)
	}
	return "", fmt.Errorf("payment service answered %s", resp.Status)
}

// CloseIdleConnections closes the idle connections of the base transport,
// which the layers above it do not all pass on.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.under.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}
