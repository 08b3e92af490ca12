package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// runOnce runs the program and returns its output and telemetry.
func runOnce(t *testing.T) (out, tel string) {
	t.Helper()
	return exampletest.Run(t, 30*time.Second, run)
}

// TestRun runs the program on the in-memory event store and checks what
// it shows.
func TestRun(t *testing.T) {
	t.Setenv(testenv.PostgresURLVar, "")
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "orders: a hexagonal order service on the in-memory event store\n") {
		t.Errorf("first line = %q; want the in-memory store", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)
	if !strings.Contains(out, "GET /health\n  → 200\n    {\"status\":\"pass\",\"phase\":\"running\",\"checks\":[]}\n") {
		t.Errorf("output has no /health answer without checks")
	}
	checkTelemetry(t, tel)
}

// TestRunPostgres runs the program on PostgreSQL: the same scenario, a
// readiness check on the store, and the run's schema dropped at the end.
func TestRunPostgres(t *testing.T) {
	url := testenv.PostgresURL(t)
	t.Setenv(testenv.PostgresURLVar, url)
	before := exampleSchemas(t, url)
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "orders: a hexagonal order service on PostgreSQL") {
		t.Errorf("first line = %q; want PostgreSQL", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)
	for _, want := range []string{
		"GET /readyz?verbose\n  → 200\n    [+]lifecycle ok\n    [+]eventstore ok\n    readyz check passed\n",
		`{"status":"pass","phase":"running","checks":[{"name":"eventstore","kind":"readiness","status":"pass"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain\n%s", want)
		}
	}
	// The store's database calls, under the repository adapter's span.
	if !regexp.MustCompile(`(?m)^ +EventStore\.Save +client +adapter *\n +read_stream orders_example_[0-9a-f]+\.events +client`).MatchString(out) {
		t.Errorf("output has no pgstore span under EventStore.Save")
	}
	checkTelemetry(t, tel)
	if after := exampleSchemas(t, url); after > before {
		t.Errorf("schemas named orders_example_*: %d after the run, %d before; want the run's schema dropped", after, before)
	}
}

// checkOutput checks the lines that do not depend on the store.
func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		// Readiness is false while the app starts.
		"GET /readyz (during start-up)\n  → 503\n    [-]lifecycle failed: reason withheld\n",
		"  [app] started; ready components=3\n",
		// An order placed and paid; the charge retried once.
		`  → 201 application/json {"id":"o-1","status":"placed","total":3700,"version":1}` + "\n",
		"  payment client: attempt 1 failed (retry: server answered 503 Service Unavailable); retrying\n",
		"  notify alice: order o-1: payment received: 37.00\n",
		`  → 200 application/json {"id":"o-1","status":"paid","total":3700,"payment_id":"pay-1","version":2}` + "\n",
		// Domain errors as problem+json.
		`  → 422 application/problem+json {"detail":"an order needs at least one line: order o-2","kind":"rejected","status":422,"title":"Unprocessable Entity"}` + "\n",
		`  → 409 application/problem+json {"detail":"out of stock: 1 of teapot wanted, 0 left","kind":"conflict","status":409,"title":"Conflict"}` + "\n",
		"POST /orders/o-3/pay {\"amount\":3000}\n" +
			`  → 409 application/problem+json {"detail":"order o-3 cannot be paid: the order is cancelled","kind":"conflict","status":409,"title":"Conflict"}` + "\n",
		`  → 409 application/problem+json {"detail":"order o-1 cannot be paid: the order is already paid (payment pay-1)","kind":"conflict","status":409,"title":"Conflict"}` + "\n",
		`  → 404 application/problem+json {"detail":"order not found: o-404","kind":"not_found","status":404,"title":"Not Found"}` + "\n",
		`  → 200 application/json {"id":"o-3","status":"cancelled","total":3000,"version":2}` + "\n",
		// Health.
		"GET /livez\n  → 200\n    ok\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain\n%s", want)
		}
	}

	// The shutdown, phase by phase: readiness off (the API still serving),
	// the drain, the components stopped in reverse order.
	shutdown := regexp.MustCompile(`(?s)\n  \[app\] shutting down reason=context canceled components=3\n` +
		`  \[app\] draining delay=20ms\n` +
		`  \[app\] stopping component component=customer\n` +
		`GET /readyz \(during shutdown\)\n  → 503\n    \[-\]lifecycle failed: reason withheld\n.*?` +
		`  \[app\] component stopped component=customer\n` +
		`  \[app\] stopping component component=api\n` +
		`  \[app\] component stopped component=api\n` +
		`  \[app\] stopping component component=eventstore\n` +
		`  \[app\] component stopped component=eventstore\n` +
		`  \[app\] stopped\n$`)
	if !shutdown.MatchString(out) {
		t.Errorf("output does not end with the shutdown's phases, in order (%s)", shutdown)
	}

	// The span trees: a span per layer, each of its layer's kind, nested
	// as the calls are.
	tree := func(title string) string {
		_, rest, ok := strings.Cut(out, title+"\n")
		if !ok {
			t.Fatalf("output has no %q", title)
		}
		tree, _, _ := strings.Cut(rest, "\n\n")
		return tree
	}
	for _, tc := range []struct {
		title string
		spans [][3]string // name, kind, layer, in order of depth-first walk
	}{
		{"spans of POST /orders (a span per layer)", [][3]string{
			{"POST /orders", "client", "-"},
			{"OrdersAPI.PlaceOrder", "server", "adapter"},
			{"Orders.Place", "internal", "application"},
			{"Order.Place", "internal", "domain"},
			{"Inventory.Reserve", "internal", "port"},
			{"OrderRepository.Save", "internal", "port"},
			{"EventStore.Save", "client", "adapter"},
			{"Notifier.Notify", "internal", "port"},
		}},
		{"spans of POST /orders/o-1/pay", [][3]string{
			{"POST /orders/o-1/pay", "client", "-"},
			{"OrdersAPI.PayOrder", "server", "adapter"},
			{"Orders.Pay", "internal", "application"},
			{"OrderRepository.Load", "internal", "port"},
			{"EventStore.Load", "client", "adapter"},
			{"Order.CheckPayable", "internal", "domain"},
			{"PaymentGateway.Charge", "internal", "port"},
			{"PaymentClient.Charge", "client", "adapter"},
			{"HTTP POST", "client", "-"},
			{"retry", "internal", "-"},
			{"HTTP POST", "client", "-"},
			{"Order.Pay", "internal", "domain"},
			{"OrderRepository.Save", "internal", "port"},
			{"EventStore.Save", "client", "adapter"},
			{"Notifier.Notify", "internal", "port"},
		}},
	} {
		got := tree(tc.title)
		var pat strings.Builder
		pat.WriteString(`(?s)^`)
		for _, s := range tc.spans {
			pat.WriteString(`.*?\n? +` + regexp.QuoteMeta(s[0]) + ` +` + s[1] + ` +` + regexp.QuoteMeta(s[2]) + `(?: |\n|$)`)
		}
		if !regexp.MustCompile(pat.String()).MatchString(got) {
			t.Errorf("%s:\n%s\nwant these spans in this order: %v", tc.title, got, tc.spans)
		}
	}
	// The nesting: each layer's span one level under its caller's.
	for _, want := range []string{
		"\n    OrdersAPI.PlaceOrder ", "\n      Orders.Place ", "\n        Order.Place ",
		"\n        OrderRepository.Save ", "\n          EventStore.Save ",
		"\n          PaymentClient.Charge ", "\n              HTTP POST ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output has no %q at that depth", strings.TrimPrefix(want, "\n"))
		}
	}
}

// checkTelemetry checks the spans and metrics written as JSON.
func checkTelemetry(t *testing.T, tel string) {
	t.Helper()
	for _, want := range []string{
		`"Name":"hexagonal.startup"`,
		`"Name":"hexagonal.shutdown"`,
		`"Name":"Orders.Pay"`,
		`"Name":"hexagonal.calls"`,
		`"Value":"domain_error"`,
		`"Name":"retry.calls"`,
	} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
}

// TestDomainErrorStatus checks that each domain error answers the status
// of its kind at the edge, though the domain does not import hexagonal.
func TestDomainErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{domain.ErrInvalid, 400},
		{domain.ErrNotFound, 404},
		{domain.ErrCancelled, 409},
		{domain.ErrAlreadyPaid, 409},
		{domain.ErrOutOfStock, 409},
		{domain.ErrEmptyOrder, 422},
		{domain.ErrWrongAmount, 422},
		{domain.ErrPaymentDeclined, 422},
	} {
		var _ hexagonal.DomainError = tc.err.(*domain.Error)
		if got := hexagonal.StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d; want %d", tc.err, got, tc.want)
		}
	}
}

// exampleSchemas counts the schemas that runs of the example create.
func exampleSchemas(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'orders\_example\_%'`).Scan(&n); err != nil {
		t.Fatalf("counting schemas: %v", err)
	}
	return n
}
