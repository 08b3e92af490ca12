package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/hexagonal"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// runOnce runs the program with the W3C propagator that main installs,
// and returns its output and telemetry.
func runOnce(t *testing.T) (out, tel string) {
	t.Helper()
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prev)
	return exampletest.Run(t, 30*time.Second, run)
}

// TestRun runs the scenario on the in-memory store and checks what it
// shows: the rules, the transfers and their trace, the conflict and its
// retry, the idempotent retry of a request, the upcast event, the
// snapshots, the projection's balances and the telemetry.
func TestRun(t *testing.T) {
	t.Setenv(testenv.PostgresURLVar, "") // the in-memory store
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "bank: event-sourced accounts on the in-memory store, in the layers of an onion\n") {
		t.Errorf("first line of the output = %q; want the in-memory store", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)

	for _, want := range []string{
		`"Name":"bank.transfer"`,
		`"Name":"bank.withdraw"`,
		`"Name":"bank.project"`,
		`"bank.conflict"`, // the event on the transfer's span
		`"eventsource.concurrency_conflict"`,
		`"Name":"bank.commands"`,
		`"Value":"rejected"`,
		// The layers' spans and metrics, from package hexagonal.
		`"Name":"Transfers.Transfer"`,
		`"Name":"TransferService.Transfer"`,
		`"Name":"Account.Withdraw"`,
		`"Name":"AccountRepository.Save"`,
		`"Name":"hexagonal.calls"`,
		`"Value":"domain_error"`,    // hexagonal.outcome of a broken rule
		`"bank.insufficient_funds"`, // the error.type of a broken rule
	} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	for _, l := range []hexagonal.Layer{hexagonal.DomainModel, hexagonal.DomainService, hexagonal.ApplicationService, hexagonal.Infrastructure} {
		want := fmt.Sprintf(`{"Key":%q,"Value":{"Type":"STRING","Value":%q}}`, hexagonal.AttrLayer, l)
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	// The projection's spans link to the commands that appended the events,
	// through the trace context the store keeps in the events' metadata.
	if !regexp.MustCompile(`"Name":"bank.project".*?"Links":\[\{"SpanContext":\{"TraceID":"[0-9a-f]{32}"`).MatchString(tel) {
		t.Errorf("telemetry output has no bank.project span with a link")
	}
	if strings.Contains(out, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
}

// TestRunPostgres runs the scenario on PostgreSQL and checks that it shows
// the same as on the in-memory store, and that it drops its schema.
func TestRunPostgres(t *testing.T) {
	url := testenv.PostgresURL(t)
	t.Setenv(testenv.PostgresURLVar, "")
	memOut, _ := runOnce(t)

	t.Setenv(testenv.PostgresURLVar, url)
	before := exampleSchemas(t, url)
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "bank: event-sourced accounts on PostgreSQL") {
		t.Errorf("first line of the output = %q; want PostgreSQL", strings.SplitN(out, "\n", 2)[0])
	}
	checkOutput(t, out)
	_, memRest, _ := strings.Cut(memOut, "\n")
	_, rest, _ := strings.Cut(out, "\n")
	if rest != memRest {
		t.Errorf("output on PostgreSQL differs from the output on the in-memory store after the first line:\n%s\nwant:\n%s", rest, memRest)
	}
	// The store's own spans and metrics, next to the program's.
	for _, want := range []string{`"Name":"bank.project"`, `"Name":"BATCH bank_example_`, `"Name":"eventsource.conflicts"`} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if after := exampleSchemas(t, url); after > before {
		t.Errorf("schemas named bank_example_*: %d after the run, %d before; want the run's schema dropped", after, before)
	}
}

// checkOutput checks the lines of the scenario that do not depend on the
// store.
func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		// Broken rules raise nothing.
		"  deposit -5.00 EUR to account-bob: bank: amount must be positive, not -5.00 EUR\n    account-bob unchanged: balance 50.00 EUR (version 2)\n",
		"  withdraw 80.00 EUR from account-bob: bank: insufficient funds: account-bob has 50.00 EUR, cannot withdraw 80.00 EUR\n    account-bob unchanged: balance 50.00 EUR (version 2)\n",
		"  open account-alice again: bank: account is already open: \"account-alice\" belongs to Alice\n    account-alice unchanged: balance 200.00 EUR (version 2)\n",
		// A transfer is a withdrawal and a deposit.
		"  withdrew 75.00 EUR from account-alice → balance 125.00 EUR (version 3)\n  deposited 75.00 EUR to account-bob → balance 125.00 EUR (version 3)\n",
		// Its trace: a span per layer.
		"" +
			"    span                           hexagonal.layer      kind\n" +
			"    bank.transfer                  (main)               internal\n" +
			"      Transfers.Transfer           application_service  internal\n" +
			"        AccountRepository.Applied  infrastructure       client\n" +
			"        AccountRepository.Applied  infrastructure       client\n" +
			"        AccountRepository.Load     infrastructure       client\n" +
			"        AccountRepository.Load     infrastructure       client\n" +
			"        TransferService.Transfer   domain_service       internal\n" +
			"          Account.Withdraw         domain_model         internal\n" +
			"          Account.Deposit          domain_model         internal\n" +
			"        AccountRepository.Save     infrastructure       client\n" +
			"        AccountRepository.Save     infrastructure       client\n",
		// The old event is upcast on read.
		"  read back: version 4, stored as bank.deposited.v0, decoded as Deposited{Amount: 12.50 EUR}\n",
		"  account-bob loaded → balance 137.50 EUR (version 4)\n",
		// The race: the second save conflicts, and the retry sees the
		// card payment.
		"  transfer:     loaded account-alice → balance 125.00 EUR (version 3)\n" +
			"  card payment: withdrew 20.00 EUR and saved → balance 105.00 EUR (version 4)\n" +
			"  transfer:     withdrew 30.00 EUR, save failed: eventsource: stream \"account-alice\" is at version 4, expected version 3\n",
		"  transfer:     reloaded, withdrew 30.00 EUR again and saved → balance 75.00 EUR (version 5)\n  deposited 30.00 EUR to account-bob → balance 167.50 EUR (version 5)\n",
		// Its trace: the conflict in the infrastructure, then a second
		// decision.
		"  its trace: the first save fails in the infrastructure, and the use case decides again\n",
		"" +
			"          Account.Deposit          domain_model         internal\n" +
			"        AccountRepository.Save     infrastructure       client    error.type=eventsource.concurrency_conflict\n" +
			"        AccountRepository.Applied  infrastructure       client\n",
		// The same request twice moves the money once.
		"  withdrew 40.00 EUR from account-bob → balance 127.50 EUR (version 6)\n  deposited 40.00 EUR to account-alice → balance 115.00 EUR (version 6)\n",
		"the same request again (transfer-3), as a client that lost the response sends it\n" +
			"  applied already: nothing moved\n" +
			"  account-bob balance 127.50 EUR (version 6)\n" +
			"  account-alice balance 115.00 EUR (version 6)\n" +
			"  its trace: the request is found in the store's record, so no domain call and no save\n" +
			"    span                           hexagonal.layer      kind\n" +
			"    bank.transfer                  (main)               internal\n" +
			"      Transfers.Transfer           application_service  internal\n" +
			"        AccountRepository.Applied  infrastructure       client\n" +
			"        AccountRepository.Applied  infrastructure       client\n" +
			"        AccountRepository.Load     infrastructure       client\n" +
			"        AccountRepository.Load     infrastructure       client\n\n",
		// No overdraft.
		"  rejected: bank: insufficient funds: account-bob has 127.50 EUR, cannot withdraw 500.00 EUR\n  nothing was written: account-bob balance 127.50 EUR (version 6)\n",
		// The domain service's rules.
		"  transfer 10.00 EUR from account-alice to account-alice: bank: a transfer needs two accounts: account-alice to itself\n",
		"  transfer 10.00 USD from account-alice to account-bob: bank: currencies differ: account-alice keeps EUR and account-bob keeps EUR; cannot transfer 10.00 USD\n",
		"  transfer 0.00 EUR from account-alice to account-bob: bank: amount must be positive, not 0.00 EUR\n",
		"  account-alice unchanged: balance 115.00 EUR (version 6)\n  account-bob unchanged: balance 127.50 EUR (version 6)\n",
		// Snapshots at the fifth event.
		"  account-alice: at version 5 (owner Alice, balance 75.00 EUR); a load replays 1 event after it\n",
		"  account-bob: at version 5 (owner Bob, balance 167.50 EUR); a load replays 1 event after it\n",
		// The projection.
		"projection: balances from the 12 events in the store's global order (1 of them upcast)\n",
		"  account-alice  Alice    115.00 EUR\n  account-bob    Bob      127.50 EUR\n  total                   242.50 EUR\n",
		"  the same as a rebuild from ReadAll and as the accounts loaded through the repository\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain\n%s", want)
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
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bank\_example\_%'`).Scan(&n); err != nil {
		t.Fatalf("counting schemas: %v", err)
	}
	return n
}
