// Command orders is a hexagonal (ports and adapters) e-commerce order
// service, laid out as packages by layer:
//
//   - domain: the order aggregate, its value objects (OrderID, Money,
//     Line), its events and its rules (no empty order, no payment after
//     cancellation, no double payment), with errors that carry their kind;
//     standard library only.
//   - ports: the interfaces the application needs: OrderRepository,
//     PaymentGateway, Inventory, Notifier.
//   - app: the use cases (place, pay, cancel, get), on the ports.
//   - adapters: httpapi drives the use cases over HTTP; eventstore keeps
//     orders as event streams (package eventsource); payment calls a
//     payment service through the retry and circuit breaker transports;
//     memory holds an inventory and a notifier.
//   - main (this package): the wiring, run as a hexagonal.App.
//
// arch_test.go checks that layout with archtest.CheckDependencies: the
// domain imports only the standard library, nothing imports outwards.
//
// The program starts the service (an event store, the API's HTTP server,
// health endpoints) as a hexagonal.App, plays a customer against it over
// HTTP, prints the span tree of an order placed and paid (a span per
// layer), breaks the domain's rules to show their problem+json answers,
// asks the health endpoints, and then cancels the App's context, which
// shuts it down gracefully, phase by phase.
//
// Run it from the repository root:
//
//	go run ./examples/orders
//
// By default the events are kept in memory (eventsource.MemoryStore). Set
// PATTERNS_POSTGRES_URL to keep them in PostgreSQL (eventsource/pgstore)
// in a schema of its own that the run drops at the end; readiness then
// checks the database:
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/orders
//
// # Telemetry
//
// Each use case, domain decision, port call and adapter call is a span
// named for its port and operation, with hexagonal.layer, and counted in
// hexagonal.calls by outcome; the payment client adds otelhttp and retry
// spans, the App spans for its start-up and shutdown.
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/orders -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/orders
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/examples/orders/adapters/eventstore"
	"github.com/otelpatterns/patterns/examples/orders/adapters/httpapi"
	"github.com/otelpatterns/patterns/examples/orders/adapters/memory"
	"github.com/otelpatterns/patterns/examples/orders/adapters/payment"
	"github.com/otelpatterns/patterns/examples/orders/app"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
)

// scopeName is the instrumentation scope of the program's own spans: the
// customer's.
const scopeName = "github.com/otelpatterns/patterns/examples/orders"

func main() {
	if err := run(context.Background(), os.Stdout, exampleotel.JSONOut()); err != nil {
		fmt.Fprintln(os.Stderr, "orders example:", err)
		os.Exit(1)
	}
}

// run starts the service, plays the scenario against it, and shuts it
// down, writing what happens to out and the telemetry (as JSON, all of
// it) to telemetryOut, if not nil. It returns once the app has stopped,
// the store is closed (its schema dropped, on PostgreSQL) and the telemetry
// flushed, leaving no goroutine behind.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	out = &lockedWriter{w: out}
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()
	tel := []hexagonal.InstrumentOption{hexagonal.WithTracerProvider(otelp.tp), hexagonal.WithMeterProvider(otelp.mp)}

	be, err := openBackend(ctx, otelp)
	if err != nil {
		return err
	}
	// The app's eventstore component closes the store when it stops; this
	// closes it when the app did not get to start it.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := be.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the store: %w", cerr))
		}
	}()
	fmt.Fprintf(out, "orders: a hexagonal order service on %s\n", be.name)

	payments := newPaymentService()
	defer payments.Close()

	// The driven adapters.
	repo, err := eventstore.New(be.store, tel...)
	if err != nil {
		return err
	}
	payClient, err := payment.New(payment.Config{
		BaseURL: payments.URL, TracerProvider: otelp.tp, MeterProvider: otelp.mp,
		OnRetry: func(attempt int, err error, delay time.Duration) {
			fmt.Fprintf(out, "  payment client: attempt %d failed (%v); retrying\n", attempt, err)
		},
	}, tel...)
	if err != nil {
		return err
	}
	defer payClient.CloseIdleConnections()
	inventory := memory.NewInventory(map[string]int{"mug": 10, "tea": 50, "teapot": 1})
	var n atomic.Int64
	orders, err := app.New(app.Ports{
		Repository: repo, Payments: payClient, Inventory: inventory, Notifier: memory.NewNotifier(out),
		NewID: func() domain.OrderID { return domain.OrderID(fmt.Sprintf("o-%d", n.Add(1))) },
	}, tel...)
	if err != nil {
		return err
	}

	// Health: the store's readiness on PostgreSQL; the app's own phase
	// (starting, running, stopping) always.
	var checks []hexagonal.HealthOption
	if be.ready != nil {
		checks = append(checks, hexagonal.WithReadinessCheck("eventstore", be.ready))
	}
	health, err := hexagonal.NewHealth(append(checks, hexagonal.WithMeterProvider(otelp.mp))...)
	if err != nil {
		return err
	}

	// The driving adapter and the health endpoints, on one server.
	mux := http.NewServeMux()
	mux.Handle("/", httpapi.New(orders, tel...))
	for _, p := range []string{"/livez", "/livez/", "/readyz", "/readyz/", "/health"} {
		mux.Handle(p, health.Handler())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	customer := &customer{
		out: out, base: base, tracer: otelp.tp.Tracer(scopeName),
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 5 * time.Second},
	}
	defer customer.client.CloseIdleConnections()

	log := newPhases(out)
	runCtx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	a, err := hexagonal.New(
		hexagonal.WithHealth(health),
		hexagonal.WithLogger(slog.New(log)),
		hexagonal.WithTracerProvider(otelp.tp),
		hexagonal.WithMeterProvider(otelp.mp),
		hexagonal.WithDrainDelay(20*time.Millisecond),
		hexagonal.WithStopTimeout(5*time.Second),
		hexagonal.WithComponent(
			hexagonal.Component{
				Name: "eventstore",
				Start: func(context.Context) error {
					// What a load balancer sees while the app starts.
					customer.probe(health.Handler(), "/readyz", "during start-up")
					return nil
				},
				Stop: be.close,
			},
			hexagonal.HTTPServerListener("api", &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln),
			hexagonal.Component{
				// The customer plays the scenario, then ends the app as a
				// SIGTERM would: by the end of Run's context.
				Name: "customer",
				Run: func(context.Context) error {
					defer shutdown()
					return customer.scenario(ctx, log.ready, otelp)
				},
				// The customer stops first (the reverse order), while the
				// API still serves: its readiness already says no.
				Stop: func(context.Context) error {
					return customer.get("/readyz", "during shutdown")
				},
			},
		),
	)
	if err != nil {
		return err
	}
	return a.Run(runCtx)
}

// customer is the service's client, over HTTP.
type customer struct {
	out    io.Writer
	base   string
	client *http.Client
	tracer trace.Tracer
}

// scenario places and pays an order and prints its trace, breaks the
// rules, and asks the health endpoints.
func (c *customer) scenario(ctx context.Context, ready <-chan struct{}, otelp *providers) error {
	// Readiness turns true once every component has started, just after
	// this Run began: wait for it.
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		return errors.New("the service did not become ready within 10s")
	case <-ctx.Done():
		return ctx.Err()
	}

	fmt.Fprintln(c.out, "\nplace an order and pay it")
	placed, placeTrace, err := c.call(ctx, http.MethodPost, "/orders",
		`{"customer":"alice","lines":[{"sku":"mug","quantity":2,"unit_price":1250},{"sku":"tea","quantity":3,"unit_price":400}]}`, http.StatusCreated)
	if err != nil {
		return err
	}
	id := placed["id"].(string)
	_, payTrace, err := c.call(ctx, http.MethodPost, "/orders/"+id+"/pay", `{"amount":3700}`, http.StatusOK)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, "\nspans of POST /orders (a span per layer)")
	printTree(c.out, otelp.rec.Ended(), placeTrace)
	fmt.Fprintln(c.out, "\nspans of POST /orders/"+id+"/pay")
	printTree(c.out, otelp.rec.Ended(), payTrace)

	fmt.Fprintln(c.out, "\nbreak the rules: domain errors answered as problem+json")
	if _, _, err := c.call(ctx, http.MethodPost, "/orders", `{"customer":"bob","lines":[]}`, http.StatusUnprocessableEntity); err != nil {
		return err
	}
	second, _, err := c.call(ctx, http.MethodPost, "/orders", `{"customer":"bob","lines":[{"sku":"teapot","quantity":1,"unit_price":3000}]}`, http.StatusCreated)
	if err != nil {
		return err
	}
	id2 := second["id"].(string)
	if _, _, err := c.call(ctx, http.MethodPost, "/orders", `{"customer":"carol","lines":[{"sku":"teapot","quantity":1,"unit_price":3000}]}`, http.StatusConflict); err != nil {
		return err
	}
	if _, _, err := c.call(ctx, http.MethodPost, "/orders/"+id2+"/cancel", `{"reason":"changed my mind"}`, http.StatusOK); err != nil {
		return err
	}
	for _, step := range []struct {
		path, body string
		want       int
	}{
		{"/orders/" + id2 + "/pay", `{"amount":3000}`, http.StatusConflict}, // after cancellation
		{"/orders/" + id + "/pay", `{"amount":3700}`, http.StatusConflict},  // twice
		{"/orders/" + id + "/cancel", `{"reason":"too late"}`, http.StatusConflict},
		{"/orders/o-404/pay", `{"amount":100}`, http.StatusNotFound},
	} {
		if _, _, err := c.call(ctx, http.MethodPost, step.path, step.body, step.want); err != nil {
			return err
		}
	}
	if _, _, err := c.call(ctx, http.MethodGet, "/orders/"+id2, "", http.StatusOK); err != nil {
		return err
	}

	fmt.Fprintln(c.out, "\nhealth")
	for _, p := range []string{"/livez", "/readyz?verbose", "/health"} {
		if err := c.get(p, ""); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.out, "\nshut down: the program cancels the app's context, as SIGTERM would")
	return nil
}

// call sends body to path in a trace of the customer's, prints the
// answer, and returns it decoded and the trace's ID. An answer of another
// status than want is an error.
func (c *customer) call(ctx context.Context, method, path, body string, want int) (map[string]any, trace.TraceID, error) {
	ctx, span := c.tracer.Start(ctx, method+" "+path, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	shown := body
	if len(shown) > 60 {
		shown = shown[:57] + "..."
	}
	if shown != "" {
		shown = " " + shown
	}
	fmt.Fprintf(c.out, "%s %s%s\n", method, path, shown)
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, trace.TraceID{}, err
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, trace.TraceID{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, trace.TraceID{}, err
	}
	data = bytes.TrimSpace(data)
	fmt.Fprintf(c.out, "  → %d %s %s\n", resp.StatusCode, resp.Header.Get("Content-Type"), brief(data))
	if resp.StatusCode != want {
		return nil, trace.TraceID{}, fmt.Errorf("%s %s answered %d; want %d", method, path, resp.StatusCode, want)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, trace.TraceID{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return v, span.SpanContext().TraceID(), nil
}

// brief returns an order's JSON without its lines and customer, for short
// lines; other answers as they are.
func brief(data []byte) string {
	var v struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		Total     int64  `json:"total"`
		PaymentID string `json:"payment_id,omitempty"`
		Version   int64  `json:"version"`
	}
	if json.Unmarshal(data, &v) != nil || v.ID == "" {
		return string(data)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// get prints the answer to GET path.
func (c *customer) get(path, when string) error {
	resp, err := c.client.Get(c.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	c.printHealth(path, when, resp.StatusCode, data)
	return nil
}

// probe prints the answer of h to GET path, without the network.
func (c *customer) probe(h http.Handler, path, when string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	c.printHealth(path, when, w.Code, w.Body.Bytes())
}

func (c *customer) printHealth(path, when string, status int, body []byte) {
	if when != "" {
		when = " (" + when + ")"
	}
	fmt.Fprintf(c.out, "GET %s%s\n  → %d\n", path, when, status)
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		fmt.Fprintf(c.out, "    %s\n", l)
	}
}
