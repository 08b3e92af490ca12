package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/examples/internal/examplepg"
	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// runOnce runs the scenario in-process and returns what it saw and
// printed.
func runOnce(t *testing.T) (*outcome, string) {
	t.Helper()
	return runWith(t, config{})
}

// runWith runs the scenario in-process with the command line cfg.
func runWith(t *testing.T, cfg config) (*outcome, string) {
	t.Helper()
	var oc *outcome
	out, _ := exampletest.Run(t, 90*time.Second, func(ctx context.Context, out, _ io.Writer) error {
		var err error
		oc, err = runScenario(ctx, cfg, out)
		return err
	})
	return oc, out
}

// TestScenarioKafka runs the scenario with -kafka: the events over Kafka,
// on a kfake cluster in the process (PATTERNS_KAFKA_BROKERS is cleared;
// with it set the program would use that cluster instead), and checks
// that the program stops the cluster and its clients.
func TestScenarioKafka(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, v := range []string{testenv.PostgresURLVar, testenv.RedisAddrVar, testenv.NATSURLVar, kafkaVar} {
		t.Setenv(v, "")
	}
	fs := flag.NewFlagSet("ecommerce", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, err := parseFlags(fs, []string{"-kafka"})
	if err != nil || !cfg.kafka {
		t.Fatalf("parseFlags(-kafka) = %+v, %v; want kafka set", cfg, err)
	}
	oc, out := runWith(t, cfg)
	if !strings.Contains(out, "events over Kafka (kfake, 3 brokers in the process)") {
		t.Errorf("output does not say the events go over Kafka")
	}
	checkScenario(t, oc, out)
}

// TestScenario runs the scenario on the in-memory backends.
func TestScenario(t *testing.T) {
	// The program releases everything it starts: the App's components,
	// and what the shop and the edge hold beyond them (the saga's
	// recovery).
	defer goleak.VerifyNone(t)
	for _, v := range []string{testenv.PostgresURLVar, testenv.RedisAddrVar, testenv.NATSURLVar} {
		t.Setenv(v, "")
	}
	oc, out := runOnce(t)
	if !strings.Contains(out, "\nbackends: orders in memory (event store, saga log, checkpoints); catalogue cache in process; events on the in-memory bus\n") {
		t.Errorf("output does not say the backends are in memory")
	}
	checkScenario(t, oc, out)
}

// TestScenarioBackends runs the scenario on PostgreSQL, Redis and NATS
// JetStream, and checks that it removed its schema and streams.
func TestScenarioBackends(t *testing.T) {
	pgURL, redisAddr, natsURL := testenv.PostgresURL(t), testenv.RedisAddr(t), testenv.NATSURL(t)
	t.Setenv(testenv.PostgresURLVar, pgURL)
	t.Setenv(testenv.RedisAddrVar, redisAddr)
	t.Setenv(testenv.NATSURLVar, natsURL)
	oc, out := runOnce(t)
	for _, want := range []string{"orders in PostgreSQL (schema ecommerce_example_", "L2 in Redis", "events over NATS JetStream"} {
		if !strings.Contains(out, want) {
			t.Errorf("output's backends do not contain %q", want)
		}
	}
	checkScenario(t, oc, out)
	if !strings.HasPrefix(oc.schema, "ecommerce_example_") {
		t.Fatalf("the run's schema is %q; want a private one", oc.schema)
	}
	if schemaExists(t, pgURL, oc.schema) {
		t.Errorf("schema %s is left after the run; want it dropped", oc.schema)
	}
	if left := streams(t, natsURL, oc.streamPrefix); len(left) > 0 {
		t.Errorf("JetStream streams of the run left: %v; want none", left)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	if keys, err := rdb.Keys(testenv.Context(t, 10*time.Second), oc.streamPrefix+"*").Result(); err != nil || len(keys) > 0 {
		t.Errorf("Redis keys of the run left: %v (%v); want none", keys, err)
	}
}

// checkScenario checks what the scenario saw, printed and traced.
func checkScenario(t *testing.T, oc *outcome, out string) {
	t.Helper()
	if oc == nil {
		t.Fatal("no outcome")
	}

	// The statuses of the happy path.
	for _, c := range []struct {
		name string
		x    exchange
		want int
	}{
		{"place an order", oc.placed, http.StatusAccepted},
		{"web BFF", oc.web, http.StatusOK},
		{"mobile BFF", oc.mobile, http.StatusOK},
		{"replay", oc.replay, http.StatusAccepted},
		{"no role", oc.forbidden, http.StatusForbidden},
		{"a 429 of the burst", oc.burst429, http.StatusTooManyRequests},
	} {
		if c.x.status != c.want {
			t.Errorf("%s: status %d; want %d", c.name, c.x.status, c.want)
		}
	}
	if oc.orderID == "" || oc.replayID != oc.orderID {
		t.Errorf("replayed order = %q, first = %q; want the same order", oc.replayID, oc.orderID)
	}
	if oc.order.OrderID != oc.orderID || len(oc.order.Lines) != 2 || oc.order.TotalCents <= 0 {
		t.Errorf("read model = %+v; want order %s with 2 lines and a total", oc.order, oc.orderID)
	}
	if oc.limited == 0 || oc.allowed == 0 {
		t.Errorf("burst: %d allowed, %d limited; want both", oc.allowed, oc.limited)
	}

	// The declined payment compensated; the flaky inventory was retried
	// and the order went through, as the first did.
	if oc.declined.Status == oc.order.Status {
		t.Errorf("declined order's status = %q, as the paid order's; want it compensated", oc.declined.Status)
	}
	if oc.flaky.Status != oc.order.Status {
		t.Errorf("flaky inventory order's status = %q; want %q, as the first order's", oc.flaky.Status, oc.order.Status)
	}
	declined := traceOf(oc, oc.declinedX.trace)
	if !slices.ContainsFunc(declined, spanWith(saga.AttrPhase, string(saga.Compensate))) {
		t.Errorf("the declined order's trace has no span with %s=%s", saga.AttrPhase, saga.Compensate)
	}
	if !slices.ContainsFunc(declined, spanWith(saga.AttrOutcome, string(saga.Compensated))) {
		t.Errorf("the declined order's trace has no span with %s=%s", saga.AttrOutcome, saga.Compensated)
	}
	flaky := traceOf(oc, oc.flakyX.trace)
	if !slices.ContainsFunc(flaky, func(s sdktrace.ReadOnlySpan) bool {
		n, ok := attr(s, retry.AttrAttempts)
		a, ok2 := attr(s, saga.AttrAttempt)
		return ok && n.AsInt64() > 1 || ok2 && a.AsInt64() > 1
	}) {
		t.Errorf("the flaky inventory order's trace has no retried attempt (%s or %s > 1)", retry.AttrAttempts, saga.AttrAttempt)
	}

	// The breaker opened during the shipping outage, and the BFF answered
	// without the shipment.
	if !oc.breakerOpn {
		t.Errorf("no breaker opened during the shipping outage")
	}
	if n := len(oc.outage); n == 0 || degraded(oc.outage[n-1]) == "200, complete" {
		t.Errorf("the web BFF's answer with the breaker open is not degraded (no %s, %s or %s)",
			aggregate.PartialHeader, aggregate.StaleHeader, gateway.FallbackHeader)
	}

	// The order's trace: the gateway's upstream call, under it the order
	// service's server span, under it the saga, under it its steps.
	order := traceOf(oc, oc.placed.trace)
	checkOrderTrace(t, order)

	// The graceful shutdown: the components in reverse order of start,
	// the admin server (started last) first, the backends last.
	if n := len(oc.stopped); n < 3 || oc.stopped[0] != "admin" || oc.stopped[n-1] != "backends" {
		t.Errorf("components stopped in order %v; want admin first and backends last", oc.stopped)
	}

	// The story.
	for _, want := range []string{
		"\n== 1. a client gets a token",
		"\n== 3. the client places an order through the gateway",
		"POST /api/orders → 202 ",
		"  the same order, " + oc.orderID + ": the command bus dropped the duplicate\n",
		"POST /api/orders → 403 ",
		" answered 429 Too Many Requests\n",
		"after ", " a breaker opened;",
		"\n    place an order ",
		"saga.executions = ",
		"\n  stopped gracefully\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	if !strings.Contains(out, string(saga.Compensated)+": ") {
		t.Errorf("the metrics summary has no saga %s", saga.Compensated)
	}
}

// checkOrderTrace checks that the order's trace goes gateway → order
// service → saga → steps.
func checkOrderTrace(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	under := func(s, ancestor sdktrace.ReadOnlySpan) bool {
		for p := s.Parent().SpanID(); p.IsValid(); {
			if p == ancestor.SpanContext().SpanID() {
				return true
			}
			ps, ok := byID[p]
			if !ok {
				return false
			}
			p = ps.Parent().SpanID()
		}
		return false
	}
	// The gateway's spans come from otelhttp: its server span is the one
	// of the public route.
	var gw, svc, sg sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindServer && pathIs(s, "/api/orders") {
			gw = s
			break
		}
	}
	if gw == nil {
		t.Fatalf("the order's trace has no server span of the gateway's POST /api/orders; spans: %v", names(spans))
	}
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindServer && under(s, gw) && pathIs(s, "/orders") {
			svc = s
			break
		}
	}
	if svc == nil {
		t.Fatalf("the order's trace has no server span of POST /orders under the gateway's %q; spans: %v", gw.Name(), names(spans))
	}
	var steps []string
	for _, s := range spans {
		if hasAttr(s, saga.AttrName) && !hasAttr(s, saga.AttrStep) && hasAttr(s, saga.AttrOutcome) && under(s, svc) {
			sg = s
		}
	}
	if sg == nil {
		t.Fatalf("the order's trace has no saga span (%s, %s) under the order service's %q; spans: %v",
			saga.AttrName, saga.AttrOutcome, svc.Name(), names(spans))
	}
	if v, _ := attr(sg, saga.AttrOutcome); v.String() != string(saga.Completed) {
		t.Errorf("the order's saga ended %s; want %s", v.String(), saga.Completed)
	}
	for _, s := range spans {
		if v, ok := attr(s, saga.AttrStep); ok && under(s, sg) && spanWith(saga.AttrPhase, string(saga.Forward))(s) {
			if !slices.Contains(steps, v.String()) {
				steps = append(steps, v.String())
			}
		}
	}
	if len(steps) < 3 {
		t.Errorf("steps under the saga's span: %v; want at least 3 (inventory, payment, shipping)", steps)
	}
}

// pathIs reports whether span s is of a request to path.
func pathIs(s sdktrace.ReadOnlySpan, path string) bool {
	v, ok := attr(s, semconv.URLPathKey)
	return ok && v.String() == path
}

func traceOf(oc *outcome, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range oc.spans {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

func spanWith(key attribute.Key, value string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		v, ok := attr(s, key)
		return ok && v.String() == value
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

// TestBackendVars checks that the program reads the variables the tests
// set.
func TestBackendVars(t *testing.T) {
	if examplepg.URLVar != testenv.PostgresURLVar || redisVar != testenv.RedisAddrVar || natsVar != testenv.NATSURLVar {
		t.Errorf("the program reads %s, %s, %s; testenv sets %s, %s, %s",
			examplepg.URLVar, redisVar, natsVar, testenv.PostgresURLVar, testenv.RedisAddrVar, testenv.NATSURLVar)
	}
}

// TestFlags checks the command line's rules.
func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-serve", "-gateway", "127.0.0.1:8443", "-admin", "127.0.0.1:9464"}, true},
		{[]string{"-load", "30s", "-rate", "500"}, true},
		{[]string{"-load", "30s", "-rate", "0"}, false},
		{[]string{"-load", "30s", "-target", "https://127.0.0.1:8443", "-token", "http://127.0.0.1:1/oauth2/token"}, true},
		{[]string{"-target", "https://127.0.0.1:8443"}, false},
		{[]string{"-service", "orders", "-listen", ":8081"}, true},
		{[]string{"-service", "billing"}, false},
		{[]string{"-cert", "x.pem"}, false},
		{[]string{"extra"}, false},
		{[]string{"-kafka"}, true},
		{[]string{"-kafka", "-serve"}, true},
	} {
		fs := flag.NewFlagSet("ecommerce", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := parseFlags(fs, tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("parseFlags(%q) = %v; want ok=%v", tc.args, err, tc.ok)
		}
	}
}

// schemaExists reports whether the schema exists.
func schemaExists(t *testing.T, url, schema string) bool {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil {
		t.Fatalf("looking for schema %s: %v", schema, err)
	}
	return n > 0
}

// streams returns the JetStream streams whose names start with prefix.
func streams(t *testing.T, url, prefix string) []string {
	t.Helper()
	if prefix == "" {
		t.Fatal("no stream prefix")
	}
	ctx := testenv.Context(t, 10*time.Second)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out
}
