package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/edge"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/saga"
)

// The scenario's clients, from edge.DefaultClients.
const (
	webClient       = "web-app"    // orders:read orders:write catalogue:read
	mobileClient    = "mobile-app" // the same roles; its own rate limit
	reportingClient = "reporting"  // orders:read only
)

// The scenario's customers; payment declines declinedCustomer's orders.
const (
	customer         = "alice"
	declinedCustomer = "bob"
	flakyCustomer    = "carol"
)

// outcome is what the scenario saw, for the tests.
type outcome struct {
	backends     []string
	schema       string // the PostgreSQL schema, "" in memory
	streamPrefix string // the JetStream streams' prefix

	products   []product
	placed     exchange // the first order
	orderID    string
	order      orderView // its read model
	web        exchange
	mobile     exchange
	replay     exchange
	replayID   string
	declined   orderView
	declinedX  exchange
	flaky      orderView
	flakyX     exchange
	outage     []exchange // the BFF's answers while shipping was down
	breakerOpn bool       // a breaker opened during the outage
	forbidden  exchange
	limited    int // answers 429 in the burst
	allowed    int // answers 200 in the burst
	burst429   exchange
	shutdown   error    // the App's Run
	stopped    []string // the components, in the order they stopped
	spans      []sdktrace.ReadOnlySpan
}

// product is the catalogue's view of one.
type product struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
}

// orderView is the order read model.
type orderView struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Status     string `json:"status"`
	Lines      []struct {
		SKU        string `json:"sku"`
		Qty        int    `json:"qty"`
		PriceCents int64  `json:"price_cents"`
	} `json:"lines"`
	TotalCents int64 `json:"total_cents"`
}

// placed is the answer to POST /api/orders.
type placedView struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// orderLine is a line of PlaceOrder.
type orderLine struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// placeOrder is the body of POST /api/orders.
type placeOrder struct {
	CustomerID string      `json:"customer_id"`
	Lines      []orderLine `json:"lines"`
}

// runScenario builds the system on private backends, plays the scenario
// against it, prints the story to out, and shuts the system down. It
// returns once everything stopped and the telemetry is flushed.
func runScenario(ctx context.Context, cfg config, out io.Writer) (oc *outcome, err error) {
	out = &lockedWriter{w: out}
	logs := &logBuffer{}
	var logOut io.Writer = logs
	if cfg.logToStderr {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	s, err := build(ctx, buildOptions{cfg: cfg, story: true, private: true, logOutput: logOut, scenario: true})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, s.shutdownTelemetry(ctx)) }()
	oc = &outcome{backends: s.be.names, schema: s.be.shop.Schema, streamPrefix: s.be.shop.StreamPrefix}
	fmt.Fprintf(out, "ecommerce: a gateway, two BFFs and five services, as one hexagonal.App\n")
	fmt.Fprintf(out, "backends: %s\n", strings.Join(s.be.names, "; "))

	start := time.Now()
	stop, err := s.start(ctx)
	if err != nil {
		return oc, err
	}
	fmt.Fprintf(out, "started in %v: gateway %s, token server %s, admin %s\n",
		time.Since(start).Round(time.Millisecond), s.edge.GatewayURL(), s.edge.TokenURL(), s.admin)

	st := &story{out: out, s: s, logs: logs}
	playErr := st.play(ctx, oc)

	fmt.Fprintln(out, "\n== shut down: the App turns readiness off and stops its components in reverse order")
	oc.shutdown = stop()
	stopped, appErrs := s.phases.stoppedOrder()
	oc.stopped = stopped
	fmt.Fprintf(out, "  components stopped, in order: %s\n", strings.Join(stopped, ", "))
	for _, e := range appErrs {
		fmt.Fprintf(out, "  app error: %s\n", e)
	}
	if oc.shutdown == nil {
		fmt.Fprintln(out, "  stopped gracefully")
	}
	oc.spans = s.spans.Ended()
	return oc, errors.Join(playErr, oc.shutdown)
}

// story plays the scenario and tells it.
type story struct {
	out    io.Writer
	s      *system
	logs   *logBuffer
	c      *client
	tokens map[string]string // by client id
	n      int               // the chapter
}

// chapter prints a chapter's heading.
func (st *story) chapter(title string) {
	st.n++
	fmt.Fprintf(st.out, "\n== %d. %s\n", st.n, title)
}

// show prints an exchange and its trace tree (with the spans' events if
// events).
func (st *story) show(x exchange, events ...bool) {
	fmt.Fprintf(st.out, "  %s\n", x.line())
	st.tree(x.trace, events...)
}

// play is the scenario, chapter by chapter. It stops at the first answer
// that is not what the chapter expects.
func (st *story) play(ctx context.Context, oc *outcome) error {
	transport := &http.Transport{TLSClientConfig: st.s.edge.ClientTLS(), MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}
	defer transport.CloseIdleConnections()
	tp := st.s.tel.TracerProvider
	st.c = newClient(st.s.edge.GatewayURL(), transport, tp)

	// 1. Tokens.
	st.chapter("a client gets a token (OAuth2 client credentials, RS256 JWT)")
	secrets := map[string]string{}
	for _, c := range edge.DefaultClients() {
		secrets[c.ID] = c.Secret
	}
	tokenClient := &http.Client{
		Transport: otelhttp.NewTransport(http.DefaultTransport.(*http.Transport).Clone(),
			otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})),
		Timeout: 10 * time.Second,
	}
	defer tokenClient.CloseIdleConnections()
	st.tokens = map[string]string{}
	for _, id := range []string{webClient, mobileClient, reportingClient} {
		tctx, span := st.c.tracer.Start(ctx, "get token "+id, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient))
		tok, err := edge.FetchToken(tctx, tokenClient, st.s.edge.TokenURL(), id, secrets[id])
		span.End()
		if err != nil {
			return fmt.Errorf("token for %s: %w", id, err)
		}
		st.tokens[id] = tok
		fmt.Fprintf(st.out, "  POST %s (client %s) → a bearer token, %d bytes\n", st.s.edge.TokenURL(), id, len(tok))
		if id == webClient {
			st.tree(span.SpanContext().TraceID())
		}
	}
	web := st.tokens[webClient]

	// 2. The catalogue, through the cache.
	st.chapter("the client reads the catalogue (cache.Cache in front of the catalogue service)")
	var products []product
	for i := range 2 {
		x := st.c.do(ctx, request{title: "browse the catalogue", method: http.MethodGet, path: "/api/products", token: web})
		if err := x.want(http.StatusOK); err != nil {
			return err
		}
		if err := x.decode(&products); err != nil {
			return err
		}
		if i == 0 {
			st.show(x)
		} else {
			fmt.Fprintf(st.out, "  again (from the cache this time):\n")
			st.show(x)
		}
	}
	if len(products) < 2 {
		return fmt.Errorf("the catalogue lists %d products; want at least 2", len(products))
	}
	oc.products = products
	lines := []orderLine{{SKU: products[0].SKU, Qty: 2}, {SKU: products[1].SKU, Qty: 1}}

	// 3. An order.
	st.chapter("the client places an order through the gateway (TLS, JWT, role orders:write)")
	key := "order-" + customer + "-1"
	oc.placed = st.c.do(ctx, request{title: "place an order", method: http.MethodPost, path: "/api/orders", token: web,
		body: placeOrder{CustomerID: customer, Lines: lines}, idempotencyKey: key})
	if err := oc.placed.want(http.StatusAccepted); err != nil {
		return err
	}
	var placed placedView
	if err := oc.placed.decode(&placed); err != nil {
		return err
	}
	oc.orderID = placed.OrderID
	fmt.Fprintf(st.out, "  %s\n", oc.placed.line())
	fmt.Fprintln(st.out, "  waiting for the read model (outbox relay → bus → projection)…")
	var err error
	if oc.order, err = st.waitOrder(ctx, web, oc.orderID); err != nil {
		return err
	}
	fmt.Fprintf(st.out, "  GET /api/orders/%s → %s, %d lines, total %s\n", oc.orderID, oc.order.Status, len(oc.order.Lines), money(oc.order.TotalCents))
	st.waitSaga(ctx, oc.placed.trace)
	fmt.Fprintln(st.out, "  the order's trace: gateway → order service → saga steps → outbox and projection")
	st.tree(oc.placed.trace)
	st.logLines(oc.placed.trace)

	// 4. The BFFs.
	st.chapter("the web and mobile BFFs aggregate the order, its products and its shipment")
	oc.web = st.c.do(ctx, request{title: "web order page", method: http.MethodGet, path: "/web/orders/" + oc.orderID, token: web})
	if err := oc.web.want(http.StatusOK); err != nil {
		return err
	}
	st.show(oc.web)
	oc.mobile = st.c.do(ctx, request{title: "mobile order page", method: http.MethodGet, path: "/mobile/orders/" + oc.orderID, token: web})
	if err := oc.mobile.want(http.StatusOK); err != nil {
		return err
	}
	st.show(oc.mobile)
	fmt.Fprintf(st.out, "  (%d bytes for the web, %d for the mobile app)\n", len(oc.web.body), len(oc.mobile.body))

	// 5. The same order again.
	st.chapter("the client sends the same order again, same Idempotency-Key (a retry after a lost answer)")
	oc.replay = st.c.do(ctx, request{title: "place the order again", method: http.MethodPost, path: "/api/orders", token: web,
		body: placeOrder{CustomerID: customer, Lines: lines}, idempotencyKey: key})
	if err := oc.replay.want(http.StatusAccepted); err != nil {
		return err
	}
	var again placedView
	if err := oc.replay.decode(&again); err != nil {
		return err
	}
	oc.replayID = again.OrderID
	st.show(oc.replay)
	if again.OrderID != oc.orderID {
		return fmt.Errorf("the same Idempotency-Key made order %s after %s; want one order", again.OrderID, oc.orderID)
	}
	fmt.Fprintf(st.out, "  the same order, %s: the command bus dropped the duplicate\n", again.OrderID)

	// 6. Faults: a declined payment.
	st.chapter("fault: the payment service declines " + declinedCustomer + "'s card (the saga compensates)")
	st.s.shop.Faults().DeclineCustomer(declinedCustomer)
	if oc.declinedX, oc.declined, err = st.orderAndWait(ctx, declinedCustomer, lines); err != nil {
		return err
	}
	fmt.Fprintf(st.out, "  %s\n  the read model says: %s\n", oc.declinedX.line(), oc.declined.Status)
	st.tree(oc.declinedX.trace)

	// 7. Faults: a flaky inventory.
	st.chapter("fault: the inventory service fails twice (503) and then answers (retries)")
	st.s.shop.Faults().FlakyInventory(2)
	if oc.flakyX, oc.flaky, err = st.orderAndWait(ctx, flakyCustomer, lines); err != nil {
		return err
	}
	fmt.Fprintf(st.out, "  %s\n  the read model says: %s\n", oc.flakyX.line(), oc.flaky.Status)
	st.tree(oc.flakyX.trace, true)

	// 8. Faults: shipping down.
	st.chapter("fault: the shipping service is down (the breaker opens; the BFF answers without the shipment)")
	st.s.shop.Faults().ShippingDown(true)
	if err := st.outage(ctx, oc, web); err != nil {
		return err
	}
	st.s.shop.Faults().ShippingDown(false)

	// 9. No role.
	st.chapter("a client without the role orders:write tries to order (RBAC at the gateway)")
	oc.forbidden = st.c.do(ctx, request{title: "order without the role", method: http.MethodPost, path: "/api/orders",
		token: st.tokens[reportingClient], body: placeOrder{CustomerID: customer, Lines: lines}, idempotencyKey: "order-reporting-1"})
	if err := oc.forbidden.want(http.StatusForbidden); err != nil {
		return err
	}
	st.show(oc.forbidden, true)

	// 10. A burst.
	st.chapter(fmt.Sprintf("a burst: the mobile app sends %d requests at once (rate limit %d/s, burst %d per client)",
		3*scenarioBurst, scenarioRate, scenarioBurst))
	if err := st.burst(ctx, oc, st.tokens[mobileClient], 3*scenarioBurst); err != nil {
		return err
	}

	st.chapter("what the patterns did (from the metrics)")
	return st.printMetrics(ctx)
}

// orderAndWait places an order for customer and waits until the read
// model shows it settled.
func (st *story) orderAndWait(ctx context.Context, customer string, lines []orderLine) (exchange, orderView, error) {
	web := st.tokens[webClient]
	x := st.c.do(ctx, request{title: "place an order for " + customer, method: http.MethodPost, path: "/api/orders", token: web,
		body: placeOrder{CustomerID: customer, Lines: lines}, idempotencyKey: "order-" + customer + "-1"})
	if err := x.want(http.StatusAccepted); err != nil {
		return x, orderView{}, err
	}
	var p placedView
	if err := x.decode(&p); err != nil {
		return x, orderView{}, err
	}
	v, err := st.waitOrder(ctx, web, p.OrderID)
	if err == nil {
		st.waitSaga(ctx, x.trace)
	}
	return x, v, err
}

// settledStatuses are the read model's statuses of an order whose saga
// ended.
var settledStatuses = []string{"completed", "confirmed", "shipped", "cancelled", "canceled", "compensated", "rejected", "failed", "declined"}

// waitOrder polls the read model of order id until it is settled.
func (st *story) waitOrder(ctx context.Context, token, id string) (orderView, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last exchange
	for {
		// Polls are not part of the story: no trees.
		last = st.c.do(ctx, request{title: "poll the order", method: http.MethodGet, path: "/api/orders/" + id, token: token})
		if last.status == http.StatusOK {
			var v orderView
			if err := last.decode(&v); err != nil {
				return v, err
			}
			if slices.Contains(settledStatuses, strings.ToLower(v.Status)) {
				return v, nil
			}
		}
		select {
		case <-ctx.Done():
			return orderView{}, fmt.Errorf("order %s not settled in the read model: %w (last answer: %s)", id, ctx.Err(), last.line())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitSaga waits, briefly, until the saga's span in trace id has ended,
// so that its tree is whole.
func (st *story) waitSaga(ctx context.Context, id trace.TraceID) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, s := range st.s.spans.Trace(id) {
			if hasAttr(s, saga.AttrOutcome) && hasAttr(s, saga.AttrName) && !hasAttr(s, saga.AttrStep) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outage reads the web BFF's order page while shipping is down, until a
// breaker opened (at most 20 times).
func (st *story) outage(ctx context.Context, oc *outcome, token string) error {
	before := st.breakerOpens(ctx)
	for i := 0; i < 20; i++ {
		x := st.c.do(ctx, request{title: "web order page, shipping down", method: http.MethodGet, path: "/web/orders/" + oc.orderID, token: token})
		if err := x.want(http.StatusOK); err != nil {
			return err
		}
		oc.outage = append(oc.outage, x)
		if st.breakerOpens(ctx) > before {
			oc.breakerOpn = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := oc.outage[0]
	fmt.Fprintf(st.out, "  the first request: %s\n", degraded(first))
	st.show(first, true)
	if !oc.breakerOpn {
		return fmt.Errorf("no breaker opened after %d requests with shipping down", len(oc.outage))
	}
	fmt.Fprintf(st.out, "  after %d requests a breaker opened; then, without calling shipping:\n", len(oc.outage))
	x := st.c.do(ctx, request{title: "web order page, breaker open", method: http.MethodGet, path: "/web/orders/" + oc.orderID, token: token})
	if err := x.want(http.StatusOK); err != nil {
		return err
	}
	oc.outage = append(oc.outage, x)
	fmt.Fprintf(st.out, "  %s\n", degraded(x))
	st.show(x, true)
	return nil
}

// degraded says how the BFF's answer is degraded: its partial parts or
// the gateway's fallback.
func degraded(x exchange) string {
	var parts []string
	if v := x.header.Get(aggregate.PartialHeader); v != "" {
		parts = append(parts, "partial: "+v)
	}
	if v := x.header.Get(aggregate.StaleHeader); v != "" {
		parts = append(parts, "stale: "+v)
	}
	if v := x.header.Get(gateway.FallbackHeader); v != "" {
		parts = append(parts, "gateway fallback: "+v)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d, complete", x.status)
	}
	return fmt.Sprintf("%d, %s", x.status, strings.Join(parts, "; "))
}

// burst sends n catalogue requests at once with token.
func (st *story) burst(ctx context.Context, oc *outcome, token string, n int) error {
	xs := make([]exchange, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			xs[i] = st.c.do(ctx, request{title: "burst", method: http.MethodGet, path: "/api/products", token: token})
		})
	}
	wg.Wait()
	for _, x := range xs {
		switch x.status {
		case http.StatusOK:
			oc.allowed++
		case http.StatusTooManyRequests:
			if oc.limited == 0 {
				oc.burst429 = x
			}
			oc.limited++
		default:
			return x.want(http.StatusOK)
		}
	}
	fmt.Fprintf(st.out, "  %d answered 200, %d answered 429 Too Many Requests\n", oc.allowed, oc.limited)
	if oc.limited == 0 {
		return errors.New("no request of the burst was rate limited")
	}
	fmt.Fprintf(st.out, "  one of the 429s (Retry-After: %s):\n", oc.burst429.header.Get("Retry-After"))
	st.show(oc.burst429, true)
	return nil
}

// money formats cents.
func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }
