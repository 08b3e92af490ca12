package adapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/domain"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop/orders/ports"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/retry"
)

// ClientConfig configures the HTTP clients of the services the order
// service calls.
type ClientConfig struct {
	// CatalogueURL, InventoryURL, PaymentURL and ShippingURL are the
	// services' base URLs.
	CatalogueURL, InventoryURL, PaymentURL, ShippingURL string
	// Breakers holds the breaker of each service, named for it
	// ("catalogue", "inventory", "payment", "shipping"); nil: a group of
	// the defaults (open after 5 failures in a row, for 2s).
	Breakers *circuitbreaker.Group
	// RetryOptions configure each request's retries; nil: 4 attempts,
	// backing off exponentially from 25ms to 400ms.
	RetryOptions []retry.Option
	// Timeout bounds a call, retries included; 0 means 5s.
	Timeout        time.Duration
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// DefaultBreakers returns the breaker group the clients use by default:
// a breaker per service that opens after 5 failures in a row and probes
// again after openFor.
func DefaultBreakers(mp metric.MeterProvider, openFor time.Duration, onChange func(circuitbreaker.StateChange)) *circuitbreaker.Group {
	opts := []circuitbreaker.GroupOption{
		circuitbreaker.WithConsecutiveFailures(5),
		circuitbreaker.WithOpenDuration(openFor),
		circuitbreaker.WithMeterProvider(mp),
	}
	if onChange != nil {
		opts = append(opts, circuitbreaker.WithOnStateChange(onChange))
	}
	return circuitbreaker.NewGroup(opts...)
}

// Clients are the order service's driven adapters for the catalogue,
// inventory, payment and shipping services: ports.Catalogue,
// ports.Inventory, ports.Payments and ports.Shipping. Each service is
// called through
//
//	retry.NewTransport(             // attempts, backoff, Retry-After
//	    circuitbreaker.NewTransport( // the service's breaker, judging each attempt
//	        otelhttp.NewTransport(...)))
//
// so that a flaky service is retried and a failing one is cut off. Clients
// are safe for concurrent use.
type Clients struct {
	cfg     ClientConfig
	clients map[string]*http.Client

	price   func(context.Context, string) (int64, error)
	reserve func(context.Context, reserveIn) (struct{}, error)
	release func(context.Context, domain.OrderID) error
	charge  func(context.Context, ports.Charge) (string, error)
	refund  func(context.Context, domain.OrderID) error
	create  func(context.Context, shipIn) (ports.Shipment, error)
}

type reserveIn struct {
	id    domain.OrderID
	lines []domain.Line
}

type shipIn struct {
	id       domain.OrderID
	customer string
}

// NewClients returns the clients of cfg.
func NewClients(cfg ClientConfig) *Clients {
	if cfg.Breakers == nil {
		cfg.Breakers = DefaultBreakers(cfg.MeterProvider, 2*time.Second, nil)
	}
	if cfg.RetryOptions == nil {
		cfg.RetryOptions = []retry.Option{retry.WithMaxAttempts(4),
			retry.WithBackoff(retry.Exponential(25*time.Millisecond, 2, 400*time.Millisecond))}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c := &Clients{cfg: cfg, clients: map[string]*http.Client{}}
	for _, name := range []string{"catalogue", "inventory", "payment", "shipping"} {
		c.clients[name] = c.client(name)
	}
	c.price = hexagonal.Instrument(hexagonal.DrivenAdapter, "CatalogueClient", "Price", c.doPrice)
	c.reserve = hexagonal.Instrument(hexagonal.DrivenAdapter, "InventoryClient", "Reserve", c.doReserve)
	c.release = hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "InventoryClient", "Release", c.doRelease)
	c.charge = hexagonal.Instrument(hexagonal.DrivenAdapter, "PaymentClient", "Charge", c.doCharge)
	c.refund = hexagonal.InstrumentErr(hexagonal.DrivenAdapter, "PaymentClient", "Refund", c.doRefund)
	c.create = hexagonal.Instrument(hexagonal.DrivenAdapter, "ShippingClient", "Create", c.doCreate)
	return c
}

// client returns the HTTP client of service name, its breaker the
// group's breaker of that name.
func (c *Clients) client(name string) *http.Client {
	var otelOpts []otelhttp.Option
	if c.cfg.TracerProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithTracerProvider(c.cfg.TracerProvider))
	}
	if c.cfg.MeterProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithMeterProvider(c.cfg.MeterProvider))
	}
	otelOpts = append(otelOpts, otelhttp.WithClientTrace(retry.ClientTrace))
	retryOpts := []retry.TransportOption{retry.WithName(name)}
	for _, o := range c.cfg.RetryOptions {
		retryOpts = append(retryOpts, o)
	}
	if c.cfg.TracerProvider != nil {
		retryOpts = append(retryOpts, retry.WithTracerProvider(c.cfg.TracerProvider))
	}
	if c.cfg.MeterProvider != nil {
		retryOpts = append(retryOpts, retry.WithMeterProvider(c.cfg.MeterProvider))
	}
	return &http.Client{
		Timeout: c.cfg.Timeout,
		Transport: retry.NewTransport(
			circuitbreaker.NewTransport(
				otelhttp.NewTransport(http.DefaultTransport, otelOpts...),
				circuitbreaker.WithGroup(c.cfg.Breakers),
				circuitbreaker.WithKey(func(*http.Request) string { return name })),
			retryOpts...),
	}
}

// CloseIdleConnections closes the clients' idle connections, at stop.
func (c *Clients) CloseIdleConnections() {
	for _, hc := range c.clients {
		hc.CloseIdleConnections()
	}
}

// Price returns sku's price from the catalogue.
func (c *Clients) Price(ctx context.Context, sku string) (int64, error) { return c.price(ctx, sku) }

func (c *Clients) doPrice(ctx context.Context, sku string) (int64, error) {
	var p struct {
		PriceCents int64 `json:"price_cents"`
	}
	err := c.call(ctx, "catalogue", http.MethodGet, c.cfg.CatalogueURL+"/products/"+url.PathEscape(sku), "", nil, &p)
	return p.PriceCents, err
}

// Reserve asks the inventory to hold the order's lines.
func (c *Clients) Reserve(ctx context.Context, id domain.OrderID, lines []domain.Line) error {
	_, err := c.reserve(ctx, reserveIn{id, lines})
	return err
}

func (c *Clients) doReserve(ctx context.Context, in reserveIn) (struct{}, error) {
	type line struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	body := struct {
		OrderID string `json:"order_id"`
		Lines   []line `json:"lines"`
	}{OrderID: string(in.id)}
	for _, l := range in.lines {
		body.Lines = append(body.Lines, line{l.SKU, l.Qty})
	}
	// The key makes the POST safe to retry: the inventory holds an order
	// once.
	return struct{}{}, c.call(ctx, "inventory", http.MethodPost, c.cfg.InventoryURL+"/reservations", "reserve/"+string(in.id), body, nil)
}

// Release gives back what the order holds.
func (c *Clients) Release(ctx context.Context, id domain.OrderID) error { return c.release(ctx, id) }

func (c *Clients) doRelease(ctx context.Context, id domain.OrderID) error {
	return c.call(ctx, "inventory", http.MethodDelete, c.cfg.InventoryURL+"/reservations/"+url.PathEscape(string(id)), "", nil, nil)
}

// Charge asks the payment service for the order's total.
func (c *Clients) Charge(ctx context.Context, ch ports.Charge) (string, error) {
	return c.charge(ctx, ch)
}

func (c *Clients) doCharge(ctx context.Context, ch ports.Charge) (string, error) {
	body := map[string]any{"order_id": ch.OrderID, "customer_id": ch.CustomerID, "amount_cents": ch.AmountCents}
	key := ch.IdempotencyKey
	if key == "" {
		key = "charge/" + string(ch.OrderID)
	}
	var res struct {
		PaymentID string `json:"payment_id"`
	}
	err := c.call(ctx, "payment", http.MethodPost, c.cfg.PaymentURL+"/charges", key, body, &res)
	return res.PaymentID, err
}

// Refund gives back the order's payment, if any.
func (c *Clients) Refund(ctx context.Context, id domain.OrderID) error { return c.refund(ctx, id) }

func (c *Clients) doRefund(ctx context.Context, id domain.OrderID) error {
	return c.call(ctx, "payment", http.MethodPost, c.cfg.PaymentURL+"/refunds", "refund/"+string(id), map[string]any{"order_id": id}, nil)
}

// Create creates the order's shipment.
func (c *Clients) Create(ctx context.Context, id domain.OrderID, customer string) (ports.Shipment, error) {
	return c.create(ctx, shipIn{id, customer})
}

func (c *Clients) doCreate(ctx context.Context, in shipIn) (ports.Shipment, error) {
	var sh ports.Shipment
	var res struct {
		Carrier  string `json:"carrier"`
		Tracking string `json:"tracking"`
	}
	err := c.call(ctx, "shipping", http.MethodPost, c.cfg.ShippingURL+"/shipments", "ship/"+string(in.id),
		map[string]any{"order_id": in.id, "customer_id": in.customer}, &res)
	sh.Carrier, sh.Tracking = res.Carrier, res.Tracking
	return sh, err
}

// UnavailableError is a call not made because the service's breaker is
// open: transient, to be tried again once the breaker lets a probe
// through (the retry.After delay it carries).
type UnavailableError struct {
	Service, Reason string
}

// Error says which service and why.
func (e *UnavailableError) Error() string { return e.Service + " is unavailable: " + e.Reason }

// call sends a JSON request to service and decodes a 2xx answer into out.
// A 4xx answer other than 408 and 429 is the service's refusal: an error
// matching domain.ErrRejected, permanent. Anything else (5xx, a transport
// error, an open breaker) is transient.
func (c *Clients) call(ctx context.Context, service, method, u, key string, in, out any) error {
	var body io.Reader
	var data []byte
	if in != nil {
		var err error
		if data, err = json.Marshal(in); err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.clients[service].Do(req)
	var rejected *circuitbreaker.RejectedError
	if errors.As(err, &rejected) {
		// The breaker cut the service off: the call is not made, and a
		// caller with time to wait (a saga step after its pivot) should
		// wait for the breaker's probe rather than give up, as retriers
		// do on ErrOpen. So the rejection is passed on as push-back, not
		// as ErrOpen.
		return retry.After(rejected.RetryAfter(time.Now()), &UnavailableError{Service: service, Reason: rejected.Error()})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out == nil || len(raw) == 0 {
			return nil
		}
		return json.Unmarshal(raw, out)
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(raw, &p)
		if p.Detail == "" {
			p.Detail = http.StatusText(resp.StatusCode)
		}
		return domain.Refused(fmt.Sprintf("%s refused (%d): %s", service, resp.StatusCode, p.Detail))
	}
	return fmt.Errorf("%s answered %d", service, resp.StatusCode)
}
