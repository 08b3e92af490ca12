// Command strangler moves a legacy monolith to new services behind an
// API gateway (package gateway), route by route, with the strangler
// facade of gateway/strangler, and keeps the data of the two systems in
// step both ways. It prints, in short lines, what moved and what
// differed:
//
//   - /products has moved to catalog-v2 wholesale: a plain gateway route
//     to the new upstream;
//   - /orders goes through a strangler.Facade between the upstreams
//     legacy and orders-v2: 10% of the users, then 50% (SetPercent at
//     run time), each kept on one side by a hash of its X-User-Id
//     header. 1000 users send two requests at each step; the program
//     checks that each user stayed on one side and that nobody went back
//     from orders-v2 to legacy when the share rose, and prints the
//     shares;
//   - meanwhile every GET /orders is shadowed to the other side and the
//     two answers are compared, ids and timestamps left out (they differ
//     by nature). orders-v2 has one deliberate difference: it spells the
//     status CANCELLED as CANCELED. The program prints the counts of
//     gateway.strangler.shadow by result and the differences, read from
//     the facade's diff handler on an admin route of the gateway;
//   - orders placed on orders-v2 (by the users it serves) are appended
//     to its event store (eventsource), and a projection (a cqrs.Runner
//     over the store) writes them into the legacy orders table, once,
//     keyed by the event's id: the dual write from new to legacy;
//   - with PostgreSQL, the monolith's own writes reach the new store by
//     change data capture (gateway/strangler/pgcdc, logical replication):
//     each change becomes an event whose id comes from the transaction's
//     commit LSN and the change's index, so a change delivered twice is
//     stored once, and orders-v2 serves the orders it learned that way.
//     The dual write's transactions come through the replication slot
//     too; they carry a replication origin and the handler skips them.
//
// The three services and the gateway run on 127.0.0.1; the run ends by
// itself in a few seconds. Run it from the repository root:
//
//	go run ./examples/strangler
//
// By default the monolith's tables and the new event store are in
// memory, and the CDC part is skipped (the output says so): the new
// store is filled by a one-off copy of the legacy rows (the backfill),
// as it is on PostgreSQL before CDC takes over. To run on PostgreSQL,
// with wal_level=logical, set PATTERNS_POSTGRES_URL:
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/strangler
//
// The program then works in a schema of its own (strangler_example_ and
// a random suffix) and drops it at the end, with the replication slot,
// the publication and the replication origin it made, leaving nothing
// behind.
//
// At the end the program prints the spans of one request of each kind that
// went through the gateway while tracing was on.
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/strangler -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/strangler
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/sync/errgroup"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/strangler"
)

// users is how many users send requests; requestsPerUser how many each
// sends at each percentage.
const (
	users           = 1000
	requestsPerUser = 2
)

// waitLimit bounds each wait for the projections and the CDC stream.
const waitLimit = 15 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strangler example:", err)
		os.Exit(1)
	}
}

// user returns the id of the i-th user, from 1.
func user(i int) string { return fmt.Sprintf("user-%04d", i) }

// run starts the systems and the gateway, plays the scenes, writing them
// to out and the telemetry to telemetryOut, and stops everything,
// leaving nothing behind (on PostgreSQL: no schema, slot, publication or
// origin).
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, otelp.shutdown(context.WithoutCancel(ctx))) }()
	// The gateway sends trace context to upstreams, and the event store
	// keeps it in the events, with the global propagator.
	otel.SetTextMapPropagator(propagation.TraceContext{})

	be, err := openBackend(ctx, otelp)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if cerr := be.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the storage: %w", cerr))
		}
	}()
	fmt.Fprintf(out, "strangler: the legacy monolith and the new services, their data %s\n", be.name)

	// The monolith's history: the orders placed before the migration.
	seeded, err := seed(ctx, be.legacy)
	if err != nil {
		return err
	}
	if be.startCDC != nil {
		if err := be.startCDC(ctx); err != nil {
			return fmt.Errorf("starting CDC: %w", err)
		}
	}
	copied, err := backfill(ctx, be.legacy, be.store)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	fmt.Fprintf(out, "== backfill: %d legacy orders (of %d users) copied once into the new event store\n", copied, seeded)

	// The new system's projections: its read model, and the dual write.
	runner, err := cqrs.NewRunner(be.store, &cqrs.MemoryCheckpoints{},
		cqrs.WithTracerProvider(otelp.tp), cqrs.WithMeterProvider(otelp.mp))
	if err != nil {
		return err
	}
	defer runner.Close()
	model := newReadModel()
	dual := &dualWrite{db: be.legacy}
	for _, p := range []cqrs.Projection{model, dual} {
		if err := runner.Start(p); err != nil {
			return err
		}
	}
	if err := caughtUp(ctx, be.store, &model.progress); err != nil {
		return err
	}

	legacySrv := httptest.NewServer(&legacyService{db: be.legacy})
	defer legacySrv.Close()
	ordersSrv := httptest.NewServer(&ordersService{store: be.store, model: model})
	defer ordersSrv.Close()
	catalogSrv := httptest.NewServer(catalogService{})
	defer catalogSrv.Close()

	// The facade proxies to the upstreams of the gateway that serves the
	// request (gateway.ProxyTo), so it is built first and mounted as a
	// route's handler.
	facade, err := strangler.New(gateway.ProxyTo("legacy"), gateway.ProxyTo("orders-v2"),
		strangler.WithStickyKey(strangler.ByHeader(userHeader)),
		strangler.WithPercent(10),
		strangler.WithShadow(strangler.Shadow{
			// The new service makes its own ids, and writes timestamps
			// in RFC 3339 where the monolith wrote "2006-01-02 15:04:05".
			Ignore: []string{"orders.*.id", "orders.*.placed_at"},
			// Room for every copy of the run, so that none is dropped.
			Queue: 2 * users * requestsPerUser, // two percentages
		}),
		strangler.WithTracerProvider(otelp.quiet), strangler.WithMeterProvider(otelp.mp))
	if err != nil {
		return err
	}
	g, err := gateway.New(
		gateway.WithTracerProvider(otelp.quiet), gateway.WithMeterProvider(otelp.mp),
		gateway.WithUpstreams(
			gateway.Upstream{Name: "legacy", Targets: []gateway.Target{{URL: legacySrv.URL}}},
			gateway.Upstream{Name: "orders-v2", Targets: []gateway.Target{{URL: ordersSrv.URL}}},
			gateway.Upstream{Name: "catalog-v2", Targets: []gateway.Target{{URL: catalogSrv.URL}}},
		),
		gateway.WithRoutes(
			gateway.Route{Pattern: "GET /products", Upstream: "catalog-v2"},
			gateway.Route{Pattern: "/orders", Handler: facade},
			// Behind authentication in real life: it shows parts of the
			// answers.
			gateway.Route{Pattern: "GET /admin/strangler/orders", Handler: facade.DiffHandler()},
		),
	)
	if err != nil {
		_ = facade.Close()
		return err
	}
	defer g.Close()
	defer facade.Close() // before the gateway, whose proxies it uses
	front := httptest.NewServer(g)
	defer front.Close()
	c := &client{base: front.URL, http: front.Client()}

	if err := productsScene(ctx, out, c); err != nil {
		return err
	}
	otelp.quiet.quiet.Store(true) // see quietable
	if err := splitScene(ctx, out, c, facade, otelp); err != nil {
		return err
	}
	err = shadowScene(ctx, out, c, facade, otelp) // waits for the copies
	otelp.quiet.quiet.Store(false)
	if err != nil {
		return err
	}
	if err := dualWriteScene(ctx, out, c, be, dual); err != nil {
		return err
	}
	if err := cdcScene(ctx, out, c, &client{base: ordersSrv.URL, http: ordersSrv.Client()}, be, model); err != nil {
		return err
	}
	otelp.printTrees(out)
	// Flush the telemetry while the gateway and the facade are open:
	// closing them unregisters their metrics, which would then be
	// missing from the last export.
	return otelp.shutdown(ctx)
}

// seed places the monolith's orders of before the migration, for every
// 40th user: one each, a second one for every third of them, and a
// cancelled one for user-0041.
func seed(ctx context.Context, db legacyDB) (usersWithOrders int, err error) {
	base := time.Date(2019, 3, 1, 9, 0, 0, 0, time.UTC)
	n := 0
	place := func(u, status string) error {
		n++
		_, err := db.place(ctx, legacyOrder{
			User: u, Status: status, TotalCents: 500 + int64(n*731%9000),
			PlacedAt: base.Add(time.Duration(n) * 37 * time.Minute),
		})
		return err
	}
	for k, i := 0, 1; i <= users; k, i = k+1, i+40 {
		status := "SHIPPED"
		if k%2 == 1 {
			status = "NEW"
		}
		err := place(user(i), status)
		if err == nil && k%3 == 0 {
			err = place(user(i), "NEW")
		}
		if err == nil && i == 41 {
			err = place(user(i), "CANCELLED")
		}
		if err != nil {
			return 0, err
		}
		usersWithOrders++
	}
	return usersWithOrders, nil
}

// caughtUp waits until the projection of p has handled every event the
// store holds now.
func caughtUp(ctx context.Context, store eventsource.Store, p *progress) error {
	head, err := store.(eventsource.HeadReader).Head(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	return p.waitFor(ctx, head)
}

// client sends requests to the gateway.
type client struct {
	base string
	http *http.Client
}

// do sends a request as user (none if empty) and decodes a JSON answer
// into v (unless nil); it returns the service that answered.
func (c *client) do(ctx context.Context, method, path, user string, body, v any) (string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return "", err
	}
	if user != "" {
		req.Header.Set(userHeader, user)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return "", fmt.Errorf("%s %s: %w", method, path, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.Header.Get(servedByHeader), nil
}

func productsScene(ctx context.Context, out io.Writer, c *client) error {
	var body struct{ Products []product }
	by, err := c.do(ctx, http.MethodGet, "/products", "", nil, &body)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== /products: moved to catalog-v2 (GET /products answered by %s, %d products)\n", by, len(body.Products))
	return nil
}

// splitScene sends every user's requests at 10%, then at 50%, and shows
// where they went.
func splitScene(ctx context.Context, out io.Writer, c *client, facade *strangler.Facade, otelp *providers) error {
	var before map[string]string
	for _, pct := range []float64{10, 50} {
		if err := facade.SetPercent(pct); err != nil {
			return err
		}
		sides, err := sendAll(ctx, c)
		if err != nil {
			return err
		}
		onNew, split := 0, 0
		for _, s := range sides {
			switch s {
			case "orders-v2":
				onNew++
			case "split":
				split++
			}
		}
		stayed := "each user stayed on one side"
		if split > 0 {
			stayed = fmt.Sprintf("%d users were answered by both sides", split)
		}
		line := fmt.Sprintf("== /orders at %v%%: %d of %d users on orders-v2 (%.1f%%); %s over %d requests",
			pct, onNew, users, float64(onNew)*100/users, stayed, requestsPerUser)
		if before != nil {
			was, back := 0, 0
			for u, s := range before {
				if s == "orders-v2" {
					was++
					if sides[u] != "orders-v2" {
						back++
					}
				}
			}
			line += fmt.Sprintf("; %d of the %d already on orders-v2 went back to legacy", back, was)
		}
		fmt.Fprintln(out, line)
		before = sides
	}
	routed, err := otelp.stranglerCounts(ctx, "gateway.strangler.routed", strangler.AttrTarget)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   gateway.strangler.routed: legacy %d, new %d\n", routed["legacy"], routed["new"])
	return nil
}

// sendAll sends requestsPerUser GET /orders for each user, a few at a
// time, and returns who answered each user: a service, or "split".
func sendAll(ctx context.Context, c *client) (map[string]string, error) {
	var mu sync.Mutex
	sides := map[string]string{}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for range requestsPerUser {
		for i := 1; i <= users; i++ {
			u := user(i)
			eg.Go(func() error {
				by, err := c.do(ectx, http.MethodGet, "/orders", u, nil, nil)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if s, ok := sides[u]; ok && s != by {
					by = "split"
				}
				sides[u] = by
				return nil
			})
		}
	}
	return sides, eg.Wait()
}

// shadowScene waits for the shadow copies, then prints their counts and
// the differences found.
func shadowScene(ctx context.Context, out io.Writer, c *client, facade *strangler.Facade, otelp *providers) error {
	sctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	// Shutdown stops shadowing and waits for the queued copies; the
	// facade goes on routing.
	if err := facade.Shutdown(sctx); err != nil {
		return err
	}
	results, err := otelp.stranglerCounts(ctx, "gateway.strangler.shadow", strangler.AttrShadowResult)
	if err != nil {
		return err
	}
	compared := results["match"] + results["mismatch"]
	fmt.Fprintf(out, "== shadow: %d compared, %d match, %d mismatch (gateway.strangler.shadow; %d error, %d dropped)\n",
		compared, results["match"], results["mismatch"], results["error"], results["dropped"])

	var rep strangler.DiffReport
	if _, err := c.do(ctx, http.MethodGet, "/admin/strangler/orders", "", nil, &rep); err != nil {
		return err
	}
	// The same difference, once per line, with how often it was seen.
	seen := map[string]int{}
	var lines []string
	for _, d := range rep.Diffs {
		for _, f := range d.Fields {
			line := fmt.Sprintf("%s %s: %s legacy %s new %s (primary %s)", d.Method, d.Path, f.Field, f.Legacy, f.New, d.Primary)
			if seen[line] == 0 {
				lines = append(lines, line)
			}
			seen[line]++
		}
	}
	slices.Sort(lines)
	fmt.Fprintf(out, "   diffs (GET /admin/strangler/orders): %d kept\n", len(rep.Diffs))
	for _, l := range lines {
		fmt.Fprintf(out, "   %s ×%d\n", l, seen[l])
	}
	return nil
}

// dualWriteScene places an order on orders-v2 and shows it reach the
// legacy table through the projection, once.
func dualWriteScene(ctx context.Context, out io.Writer, c *client, be *backend, dual *dualWrite) error {
	u, err := userOn(ctx, c, "orders-v2")
	if err != nil {
		return err
	}
	var placed struct{ ID string }
	by, err := c.do(ctx, http.MethodPost, "/orders", u, map[string]any{"total": 42.5}, &placed)
	if err != nil {
		return err
	}
	if err := caughtUp(ctx, be.store, &dual.progress); err != nil {
		return err
	}
	var id string
	var ev eventsource.Event
	for e, err := range be.store.ReadStream(ctx, "order-"+placed.ID, 1) {
		if err != nil {
			return err
		}
		ev, id = e, legacyIDOf(e.ID)
	}
	orders, err := be.legacy.ordersOf(ctx, u)
	if err != nil {
		return err
	}
	found := slices.ContainsFunc(orders, func(o legacyOrder) bool { return o.ID == id })
	fmt.Fprintf(out, "== dual write: %s placed order %s on %s (event %s) → projection → legacy row %s: %s\n",
		u, placed.ID, by, ev.Type, id, map[bool]string{true: "there", false: "MISSING"}[found])
	// As after a crash between Handle and the checkpoint's save.
	rows := dual.rows()
	if err := dual.Handle(ctx, ev); err != nil {
		return err
	}
	fmt.Fprintf(out, "   the event handed to the projection again: %d rows added (keyed by the event id)\n", dual.rows()-rows)
	return nil
}

// userOn returns the first user whose requests go to side.
func userOn(ctx context.Context, c *client, side string) (string, error) {
	for i := 1; i <= users; i++ {
		by, err := c.do(ctx, http.MethodGet, "/orders", user(i), nil, nil)
		if err != nil {
			return "", err
		}
		if by == side {
			return user(i), nil
		}
	}
	return "", fmt.Errorf("no user on %s", side)
}

// cdcScene has the monolith write (an order placed through the gateway
// by a user it still serves, then two orders shipped in one transaction)
// and shows the changes reach the new store and orders-v2.
func cdcScene(ctx context.Context, out io.Writer, c, direct *client, be *backend, model *readModel) error {
	if be.cdc == nil {
		fmt.Fprintln(out, "== CDC: skipped (the legacy tables are in memory; set PATTERNS_POSTGRES_URL to stream them from PostgreSQL by logical replication)")
		return nil
	}
	u, err := userOn(ctx, c, "legacy")
	if err != nil {
		return err
	}
	var placed struct{ ID string }
	by, err := c.do(ctx, http.MethodPost, "/orders", u, map[string]any{"total": 19.99}, &placed)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== CDC: %s placed order %s on %s (POST /orders through the gateway)\n", u, placed.ID, by)
	if err := be.legacy.ship(ctx, "L-1001", "L-1002"); err != nil {
		return err
	}
	fmt.Fprintln(out, "   and the monolith shipped L-1001 and L-1002, in one transaction")
	// Three changes, after the dual write's transaction, which comes
	// first in commit order and is skipped.
	wctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if err := be.cdc.progress.waitFor(wctx, 4); err != nil {
		return fmt.Errorf("CDC: %w", err)
	}
	arrived, changes, skipped, origins, last := be.cdc.report()
	events, err := countEvents(ctx, be.store, func(e eventsource.Event) bool {
		return fromLegacy(e) && e.Type != typeImported
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== CDC: %d changes from legacy → %d events in the new store; %d transaction skipped (origin %s: the dual write)\n",
		changes, events, skipped, strings.Join(origins, ", "))
	for _, l := range arrived {
		fmt.Fprintln(out, l)
	}
	// As after a crash before the consumer confirmed it to the server.
	every := func(eventsource.Event) bool { return true }
	before, err := countEvents(ctx, be.store, every)
	if err != nil {
		return err
	}
	if err := be.cdc.handle(ctx, last); err != nil {
		return err
	}
	after, err := countEvents(ctx, be.store, every)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   the last transaction handed to the handler again: %d events added (ids from its commit LSN and the change's index)\n", after-before)
	if err := caughtUp(ctx, be.store, &model.progress); err != nil {
		return err
	}
	for _, who := range []string{u, user(1)} {
		var body struct {
			Orders []struct {
				Status string
				Total  float64
			}
		}
		if _, err := direct.do(ctx, http.MethodGet, "/orders", who, nil, &body); err != nil {
			return err
		}
		var list []string
		for _, o := range body.Orders {
			list = append(list, fmt.Sprintf("%s %.2f", o.Status, o.Total))
		}
		fmt.Fprintf(out, "   orders-v2 serves %s: %s\n", who, strings.Join(list, ", "))
	}
	return nil
}

// countEvents counts the events of store that match.
func countEvents(ctx context.Context, store eventsource.Store, match func(eventsource.Event) bool) (int, error) {
	// pgstore holds committed events back from readers while a
	// transaction that could still commit a lower position runs anywhere
	// on the server: wait until the events written so far can be read.
	if v, ok := store.(interface{ AwaitVisible(context.Context) error }); ok {
		if err := v.AwaitVisible(ctx); err != nil {
			return 0, err
		}
	}
	n := 0
	for e, err := range store.ReadAll(ctx, 0) {
		if err != nil {
			return 0, err
		}
		if match(e) {
			n++
		}
	}
	return n, nil
}
