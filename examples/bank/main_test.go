package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// runOnce runs the program with the telemetry on the stdout exporters and
// the W3C propagator that main installs, and returns its output and
// telemetry. It fails the test if the run fails, leaks a goroutine or takes
// 3s or more.
func runOnce(t *testing.T) (out, tel string) {
	t.Helper()
	defer goleak.VerifyNone(t)
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(prev)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, tl bytes.Buffer
	start := time.Now()
	if err := run(ctx, &o, &tl); err != nil {
		t.Fatalf("run() = %v; want nil\noutput:\n%s", err, o.String())
	}
	took := time.Since(start)
	t.Logf("run took %v; its output:\n%s", took.Round(time.Millisecond), o.String())
	if took >= 3*time.Second {
		t.Errorf("run took %v; want less than 3s", took)
	}
	return o.String(), tl.String()
}

// TestRun runs the scenario on the in-memory store and checks what it
// shows: the rules, the transfers, the conflict and its retry, the upcast
// event, the snapshots, the projection's balances and the telemetry.
func TestRun(t *testing.T) {
	t.Setenv(testenv.PostgresURLVar, "") // the in-memory store
	out, tel := runOnce(t)
	if !strings.HasPrefix(out, "bank: event-sourced accounts on the in-memory store\n") {
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
	} {
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
		"  deposit -5.00 to account-bob: bank: amount must be positive, not -5.00\n    account-bob unchanged: balance 50.00 (version 2)\n",
		"  withdraw 80.00 from account-bob: bank: insufficient funds: account-bob has 50.00, cannot withdraw 80.00\n    account-bob unchanged: balance 50.00 (version 2)\n",
		"  open account-alice again: bank: account is already open: \"account-alice\" belongs to Alice\n    account-alice unchanged: balance 200.00 (version 2)\n",
		// A transfer is a withdrawal and a deposit.
		"  withdrew 75.00 from account-alice → balance 125.00 (version 3)\n  deposited 75.00 to account-bob → balance 125.00 (version 3)\n",
		// The old event is upcast on read.
		"  read back: version 4, stored as bank.deposited.v0, decoded as Deposited{Amount: 12.50}\n",
		"  account-bob loaded → balance 137.50 (version 4)\n",
		// The race: the second save conflicts, and the retry sees the
		// card payment.
		"  card payment: withdrew 20.00 and saved → balance 105.00 (version 4)\n",
		"  transfer:     withdrew 30.00, save failed: eventsource: stream \"account-alice\" is at version 4, expected version 3\n",
		"  transfer:     reloaded, withdrew 30.00 again and saved → balance 75.00 (version 5)\n  deposited 30.00 to account-bob → balance 167.50 (version 5)\n",
		// No overdraft.
		"  rejected: bank: insufficient funds: account-bob has 127.50, cannot withdraw 500.00\n  nothing was written: account-bob balance 127.50 (version 6)\n",
		// Snapshots at the fifth event.
		"  account-alice: at version 5 (owner Alice, balance 75.00); a load replays 1 event after it\n",
		"  account-bob: at version 5 (owner Bob, balance 167.50); a load replays 1 event after it\n",
		// The projection.
		"projection: balances from the 12 events in the store's global order (1 of them upcast)\n",
		"  account-alice  Alice    115.00\n  account-bob    Bob      127.50\n  total                   242.50\n",
		"  the same as a rebuild from ReadAll and as the accounts loaded through the repository\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain\n%s", want)
		}
	}
}

// TestAccount checks the account's rules: a command that breaks one returns
// the error and raises nothing.
func TestAccount(t *testing.T) {
	opened := func() *Account {
		a := &Account{}
		if err := a.Open("Alice"); err != nil {
			t.Fatalf("Open() = %v; want nil", err)
		}
		if err := a.Deposit(100); err != nil {
			t.Fatalf("Deposit(100) = %v; want nil", err)
		}
		return a
	}
	tests := []struct {
		name    string
		account func() *Account
		cmd     func(*Account) error
		wantErr error
		want    any // the event raised, when wantErr is nil
		balance Money
	}{
		{"open", func() *Account { return &Account{} }, func(a *Account) error { return a.Open("Bob") }, nil, AccountOpened{Owner: "Bob"}, 0},
		{"open without an owner", func() *Account { return &Account{} }, func(a *Account) error { return a.Open(" ") }, ErrNoOwner, nil, 0},
		{"open twice", opened, func(a *Account) error { return a.Open("Bob") }, ErrAlreadyOpen, nil, 100},
		{"deposit", opened, func(a *Account) error { return a.Deposit(50) }, nil, Deposited{Amount: 50}, 150},
		{"deposit zero", opened, func(a *Account) error { return a.Deposit(0) }, ErrInvalidAmount, nil, 100},
		{"deposit negative", opened, func(a *Account) error { return a.Deposit(-1) }, ErrInvalidAmount, nil, 100},
		{"deposit before opening", func() *Account { return &Account{} }, func(a *Account) error { return a.Deposit(1) }, ErrNotOpen, nil, 0},
		{"withdraw", opened, func(a *Account) error { return a.Withdraw(40) }, nil, Withdrawn{Amount: 40}, 60},
		{"withdraw everything", opened, func(a *Account) error { return a.Withdraw(100) }, nil, Withdrawn{Amount: 100}, 0},
		{"overdraw", opened, func(a *Account) error { return a.Withdraw(101) }, ErrInsufficientFunds, nil, 100},
		{"withdraw negative", opened, func(a *Account) error { return a.Withdraw(-5) }, ErrInvalidAmount, nil, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.account()
			before := len(a.Uncommitted())
			err := tt.cmd(a)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("command = %v; want %v", err, tt.wantErr)
			}
			raised := a.Uncommitted()[before:]
			switch {
			case tt.wantErr != nil && len(raised) != 0:
				t.Errorf("command raised %v; want nothing", raised)
			case tt.wantErr == nil && (len(raised) != 1 || raised[0] != tt.want):
				t.Errorf("command raised %v; want [%v]", raised, tt.want)
			}
			if a.Balance != tt.balance {
				t.Errorf("Balance = %s; want %s", a.Balance, tt.balance)
			}
		})
	}
}

// TestUpcastDepositedV0 checks the upcaster of the old deposit event.
func TestUpcastDepositedV0(t *testing.T) {
	reg := newRegistry()
	tests := []struct {
		data    string
		want    Money
		wantErr bool
	}{
		{`{"value":"12.50","currency":"EUR"}`, 1250, false},
		{`{"value":"12.5","currency":"EUR"}`, 1250, false},
		{`{"value":"7","currency":"EUR"}`, 700, false},
		{`{"value":"0.05","currency":"EUR"}`, 5, false},
		{`{"value":"12.50","currency":"USD"}`, 0, true},
		{`{"value":"12.505","currency":"EUR"}`, 0, true},
		{`{"value":"-3.00","currency":"EUR"}`, 0, true},
		{`{"value":"+3.00","currency":"EUR"}`, 0, true},
		{`{"value":"3.","currency":"EUR"}`, 0, true},
		{`{"value":".5","currency":"EUR"}`, 0, true},
		{`{"value":"","currency":"EUR"}`, 0, true},
		{`{"value":12.5,"currency":"EUR"}`, 0, true},
		{`not json`, 0, true},
	}
	for _, tt := range tests {
		got, err := reg.Decode(eventsource.Event{Type: typeDepositedV0, Data: []byte(tt.data)})
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("Decode(%s) = %v; want an error", tt.data, got)
		case !tt.wantErr && (err != nil || got != Deposited{Amount: tt.want}):
			t.Errorf("Decode(%s) = %v, %v; want %v", tt.data, got, err, Deposited{Amount: tt.want})
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
