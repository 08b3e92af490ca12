package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// runOnce runs the program and returns its output and telemetry, which
// must not be mixed.
func runOnce(t *testing.T) (out, tel string) {
	t.Helper()
	out, tel = exampletest.Run(t, 90*time.Second, run)
	if strings.Contains(out, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
	return out, tel
}

// TestRun runs the program in memory: the CDC part is skipped, and says
// so; everything else is shown.
func TestRun(t *testing.T) {
	t.Setenv(testenv.PostgresURLVar, "")
	out, tel := runOnce(t)
	if want := "strangler: the legacy monolith and the new services, their data in memory\n"; !strings.HasPrefix(out, want) {
		t.Errorf("first line of the output = %q; want %q", strings.SplitN(out, "\n", 2)[0], want)
	}
	checkOutput(t, out, tel)
	if !strings.Contains(out, "\n== CDC: skipped (the legacy tables are in memory; set PATTERNS_POSTGRES_URL") {
		t.Errorf("output does not say that CDC was skipped")
	}
}

// TestRunPostgres runs the program on PostgreSQL: the same scenes, and
// the monolith's writes streamed by CDC to the new store, the dual
// write's transaction skipped; and nothing left behind on the server.
func TestRunPostgres(t *testing.T) {
	url := testenv.PostgresURL(t)
	before := leftovers(t, url)
	out, tel := runOnce(t)
	if want := "strangler: the legacy monolith and the new services, their data in PostgreSQL\n"; !strings.HasPrefix(out, want) {
		t.Errorf("first line of the output = %q; want %q", strings.SplitN(out, "\n", 2)[0], want)
	}
	checkOutput(t, out, tel)
	for _, re := range []string{
		`(?m)^== CDC: user-\d{4} placed order L-1036 on legacy \(POST /orders through the gateway\)$`,
		`(?m)^== CDC: 3 changes from legacy → 3 events in the new store; 1 transaction skipped \(origin strangler_example_[0-9a-f]{8}: the dual write\)$`,
		`(?m)^   commit [0-9A-F]+/[0-9A-F]+ change 0: insert L-1036 user-\d{4} NEW 19\.99 → event legacy\.order\.insert in stream order-L-1036$`,
		// One transaction, two changes, in the order it made them.
		`(?m)^   commit ([0-9A-F]+/[0-9A-F]+) change 0: update L-1001 user-0001 SHIPPED 12\.31 → event legacy\.order\.update in stream order-L-1001\n   commit ([0-9A-F]+/[0-9A-F]+) change 1: update L-1002 user-0001 SHIPPED 19\.62 `,
		`(?m)^   the last transaction handed to the handler again: 0 events added `,
		`(?m)^   orders-v2 serves user-\d{4}: NEW 19\.99$`,
		// The legacy orders of user-0001, shipped by the monolith, and
		// the order the user placed on orders-v2.
		`(?m)^   orders-v2 serves user-0001: SHIPPED 12\.31, SHIPPED 19\.62, NEW 42\.50$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if strings.Contains(out, "CDC: skipped") {
		t.Errorf("output says CDC was skipped on PostgreSQL")
	}
	for _, want := range []string{`"Name":"process strangler_example_`, `"Name":"pgcdc.changes"`} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
	if after := leftovers(t, url); after != before {
		t.Errorf("strangler_example_* objects on the server: %v after the run, %v before; want the run's removed", after, before)
	}
}

// checkOutput checks the scenes both storages show.
func checkOutput(t *testing.T, out, tel string) {
	t.Helper()
	for _, want := range []string{
		"\n== backfill: 35 legacy orders (of 25 users) copied once into the new event store\n",
		"\n== /products: moved to catalog-v2 (GET /products answered by catalog-v2, 3 products)\n",
		// Every copy compared; the four requests of user-0041, whose
		// cancelled order orders-v2 spells differently, differ.
		"\n== shadow: 4000 compared, 3996 match, 4 mismatch (gateway.strangler.shadow; 0 error, 0 dropped)\n",
		"\n   diffs (GET /admin/strangler/orders): 4 kept\n",
		"\n   GET /orders: body.orders.1.status legacy \"CANCELLED\" new \"CANCELED\" (primary legacy) ×",
		"\n   the event handed to the projection again: 0 rows added (keyed by the event id)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	if n := strings.Count(out, "\n   GET /orders: "); n != strings.Count(out, `legacy "CANCELLED" new "CANCELED"`) {
		t.Errorf("output lists differences other than the status")
	}

	// The shares: within 3 points of the setting, each user on one side,
	// nobody back to legacy as the share rose.
	shares := regexp.MustCompile(`(?m)^== /orders at (\d+)%: (\d+) of 1000 users on orders-v2 \([\d.]+%\); each user stayed on one side over 2 requests(; 0 of the (\d+) already on orders-v2 went back to legacy)?$`).
		FindAllStringSubmatch(out, -1)
	if len(shares) != 2 {
		t.Fatalf("output has %d lines of shares with every user on one side; want 2", len(shares))
	}
	var onNew [2]int
	for i, m := range shares {
		pct, _ := strconv.Atoi(m[1])
		onNew[i], _ = strconv.Atoi(m[2])
		if want := []int{10, 50}[i]; pct != want || onNew[i] < (want-3)*10 || onNew[i] > (want+3)*10 {
			t.Errorf("at %d%%: %d of 1000 users on orders-v2; want %d%% ± 3", pct, onNew[i], want)
		}
	}
	if shares[1][4] != strconv.Itoa(onNew[0]) {
		t.Errorf("at 50%%: the line counts %q users already on orders-v2; want the %d of 10%%", shares[1][4], onNew[0])
	}
	routed := regexp.MustCompile(`(?m)^   gateway\.strangler\.routed: legacy (\d+), new (\d+)$`).FindStringSubmatch(out)
	if routed == nil {
		t.Fatalf("output has no gateway.strangler.routed line")
	}
	legacy, _ := strconv.Atoi(routed[1])
	modern, _ := strconv.Atoi(routed[2])
	if modern != 2*(onNew[0]+onNew[1]) || legacy+modern != 4000 {
		t.Errorf("gateway.strangler.routed: legacy %d, new %d; want new = 2 × (%d + %d), 4000 in all", legacy, modern, onNew[0], onNew[1])
	}

	if !regexp.MustCompile(`(?m)^== dual write: user-\d{4} placed order [0-9a-f-]{36} on orders-v2 \(event orders\.placed\.v2\) → projection → legacy row V2-[0-9A-F-]{36}: there$`).MatchString(out) {
		t.Errorf("output has no dual write reaching the legacy table")
	}
	for _, want := range []string{`"Name":"project dual-write-to-legacy"`, `"Name":"gateway.strangler.shadow"`, `"Name":"POST /orders"`} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
}

// leftovers lists what runs of the example make on the server:
// schemas, replication slots, publications and replication origins
// named strangler_example_*.
func leftovers(t *testing.T, url string) [4]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var n [4]int
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'strangler\_example\_%'),
		(SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'strangler\_example\_%'),
		(SELECT count(*) FROM pg_publication WHERE pubname LIKE 'strangler\_example\_%'),
		(SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'strangler\_example\_%')`).Scan(&n[0], &n[1], &n[2], &n[3])
	if err != nil {
		t.Fatalf("counting leftovers: %v", err)
	}
	return n
}
