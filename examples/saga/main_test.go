package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// runOnce runs the program and returns its output and telemetry.
func runOnce(t *testing.T) (out, tel string) {
	t.Helper()
	return exampletest.Run(t, 30*time.Second, run)
}

// TestRun runs the scenario on the in-memory log and checks what it shows.
func TestRun(t *testing.T) {
	t.Setenv(testenv.PostgresURLVar, "")
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "saga: an order saga on the in-memory log\n") {
		t.Errorf("first line of the output = %q; want the in-memory log", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)
	for _, want := range []string{
		`"Name":"saga place-order"`,
		`"Name":"compensate payment"`,
		`"Name":"saga.executions"`,
		`"Name":"saga.steps"`,
	} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if strings.Contains(out, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
}

// TestRunPostgres runs the scenario on PostgreSQL, checks that it shows
// the same as on the in-memory log, but for the durations and the first
// and last lines, and that it drops its schema.
func TestRunPostgres(t *testing.T) {
	url := testenv.PostgresURL(t)
	t.Setenv(testenv.PostgresURLVar, "")
	memOut, _ := runOnce(t)

	t.Setenv(testenv.PostgresURLVar, url)
	before := exampleSchemas(t, url)
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "saga: an order saga on PostgreSQL\n") {
		t.Errorf("first line of the output = %q; want PostgreSQL", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)
	if !regexp.MustCompile(`\n\(the trees leave out the \d+ spans of the log's database calls\)\n$`).MatchString(out) {
		t.Errorf("output does not end with the count of the log's spans")
	}
	if got, want := normalize(out), normalize(memOut); got != want {
		t.Errorf("output on PostgreSQL, normalized, differs from the output on the in-memory log:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(tel, `"Name":"github.com/otelpatterns/patterns/saga/pglog"`) {
		t.Errorf("telemetry output has no spans of saga/pglog")
	}
	if after := exampleSchemas(t, url); after > before {
		t.Errorf("schemas named saga_example_*: %d after the run, %d before; want the run's schema dropped", after, before)
	}
}

var (
	durations = regexp.MustCompile(`\d+ms`)
	spaces    = regexp.MustCompile(`[ \t]+`)
)

// normalize drops the first line, the count of the log's spans and the
// durations of out, and the padding that depends on them.
func normalize(out string) string {
	_, rest, _ := strings.Cut(out, "\n")
	rest, _, _ = strings.Cut(rest, "\n(the trees leave out")
	rest = durations.ReplaceAllString(rest, "Nms")
	return spaces.ReplaceAllString(rest, " ")
}

// checkOutput checks the lines of the scenario that do not depend on the
// log or the timing.
func checkOutput(t *testing.T, out string) {
	t.Helper()
	norm := spaces.ReplaceAllString(durations.ReplaceAllString(out, "Nms"), " ")
	for _, want := range []string{
		// A-1001: the lost reply is retried with the same key.
		" payments charged 64.00 as pay-1 (idempotency key A-1001/payment/forward)\n payments … and the reply is lost on the way back\n payments A-1001/payment/forward seen before: already charged as pay-1, not charged again\n",
		" step payment payment forward 1 failed Nms error.type=payments.connection_reset\n retry Nms retry.outcome=success_after_retry\n step payment payment forward 2 succeeded Nms \n",
		// A-1002: out of stock, refunded and cancelled in reverse order.
		" inventory out of stock: 1 × lamp wanted, 0 left\n payments refunded pay-2 to Grace (idempotency key A-1002/payment/compensate)\n orders A-1002 cancelled\n → compensated: ",
		" saga place-order compensated Nms error.type=inventory.out_of_stock\n",
		" step inventory inventory forward 1 failed Nms error.type=inventory.out_of_stock\n compensate payment payment compensate 1 succeeded Nms \n compensate order order compensate 1 succeeded Nms \n",
		// A-1003: interrupted, recovered, not shipped twice.
		" orchestrator 1 closed: context deadline exceeded\n the log: A-1003 is running; its last transition, 7, is shipping forward started (attempt 1), with no outcome after it\n orchestrator 2 starts and calls Recover\n shipping A-1003/shipping/forward seen before: label label-2 booked already, not booked again\n → completed (Recover resumed 1 saga)\n",
		" 7 shipping forward started attempt 1\n 8 shipping forward started attempt 2\n 9 shipping forward succeeded attempt 2\n 10 status completed\n",
		" step shipping shipping forward 1 timed_out Nms error.type=shipping.no_reply\n",
		" trace 4 saga.step saga.phase attempt saga.outcome took \n start-up Nms \n saga place-order completed Nms saga.resumed=true, linked to trace 3\n step shipping shipping forward 2 succeeded Nms \n",
	} {
		if !strings.Contains(norm, want) {
			t.Errorf("output, normalized, does not contain\n%s", want)
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
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'saga\_example\_%'`).Scan(&n); err != nil {
		t.Fatalf("counting schemas: %v", err)
	}
	return n
}
