// Command cache shows a two-level cache in front of a slow database: a
// product catalogue read by two instances of a service, each with its own
// in-process cache (L1), both sharing one second level (L2).
//
// The "database" holds 200 products and takes 20ms to answer each read. Two
// instances of the service, A and B, each read it through a
// [cache.Cache] built with
//
//	cache.New[Product](
//		cache.WithLoader(db.load),        // read-through: a miss at both levels calls the database
//		cache.WithStore(l2),              // the shared L2, here a *cache.MemoryStore
//		cache.WithMeterProvider(mp), ...) // the cache's metrics, read back for the report
//
// In production the L2 would be Redis (cache/rediscache); the
// [cache.MemoryStore] used here behaves the same way in one process: it is
// also a [cache.Invalidator], so a Set or Delete on one instance drops the
// other instance's L1 copy of the key.
//
// The requests are drawn from a Zipf distribution over the products (a few
// popular ones, a long tail) with fixed seeds, and sent one at a time, so
// the run is repeatable:
//
//   - phase 1: instance A starts cold and serves 200 requests. The first
//     request for a product misses L1 and L2 and loads it from the
//     database, which also fills L2; later ones hit L1.
//   - phase 2: instance B starts with an empty L1 and serves 200 requests.
//     Products A has read come from L2, without touching the database.
//   - phase 3: the price of the most popular product changes. A writes the
//     new product to the database and then to the cache (Set), which updates
//     L2 and invalidates B's L1 copy; B's next read misses L1, finds the new
//     price in L2, and prints it.
//   - phase 4: both instances serve 100 requests each, alternating.
//
// After each phase the program prints, per instance, the L1 and L2 hit
// rates and the number of loads, read from the caches' own metrics
// (cache.requests by cache.level and cache.result, cache.loads) through an
// OpenTelemetry SDK manual reader; at the end, the totals and the number of
// database reads, which equals the loads. Run it from the repository root:
//
//	go run ./examples/cache
//
// # Telemetry
//
// Each phase runs in a span of its own, under which the caches record a
// cache.l2.get span for every L1 miss and cache.load and cache.l2.set spans
// for every load. The metrics are cache.requests, cache.loads,
// cache.load.duration and cache.invalidations, each with a cache.name
// attribute: catalogue-a or catalogue-b. At the end the program prints the
// spans of phases 2 and 3 as trees.
//
// The program keeps the spans and metrics in memory for what it prints.
// All of them are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/cache -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/cache
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// scopeName is the instrumentation scope of the program's own spans.
const scopeName = "github.com/otelpatterns/patterns/examples/cache"

const (
	catalogueSize = 200                   // products in the database
	loadDelay     = 20 * time.Millisecond // how long the database takes per read
	zipfS         = 1.1                   // skew of the requests: the larger, the fewer popular products
)

// Product is what the catalogue holds. The L2 store keeps it as JSON.
type Product struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
}

// Price formats the product's price.
func (p Product) Price() string {
	return fmt.Sprintf("$%d.%02d", p.PriceCents/100, p.PriceCents%100)
}

// productID returns the ID of the product of rank i (0 is the most popular).
func productID(i int) string { return fmt.Sprintf("p-%03d", i+1) }

// database stands in for the catalogue's database: every read takes
// loadDelay, and reads are counted.
type database struct {
	mu       sync.Mutex
	products map[string]Product
	reads    atomic.Int64
}

func newDatabase() *database {
	adjectives := []string{"Blue", "Oak", "Steel", "Linen", "Copper", "Walnut", "Glass", "Wool", "Stone", "Cedar"}
	nouns := []string{"Mug", "Lamp", "Chair", "Towel", "Kettle", "Shelf", "Vase", "Blanket", "Bowl", "Clock",
		"Desk", "Rug", "Jar", "Stool", "Tray", "Mirror", "Basket", "Candle", "Plate", "Hook"}
	db := &database{products: make(map[string]Product, catalogueSize)}
	for i := range catalogueSize {
		p := Product{
			ID:         productID(i),
			Name:       adjectives[i%len(adjectives)] + " " + nouns[i/len(adjectives)%len(nouns)],
			PriceCents: 499 + int64(i*137%9000),
		}
		db.products[p.ID] = p
	}
	return db
}

// load reads a product, as the caches' loader.
func (db *database) load(ctx context.Context, id string) (Product, error) {
	db.reads.Add(1)
	if err := sleep(ctx, loadDelay); err != nil {
		return Product{}, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	p, ok := db.products[id]
	if !ok {
		return Product{}, fmt.Errorf("product %q: %w", id, cache.ErrNotFound)
	}
	return p, nil
}

// update writes a product.
func (db *database) update(p Product) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.products[p.ID] = p
}

// instance is one instance of the service, with its own cache.
type instance struct {
	name  string // A or B
	cache *cache.Cache[Product]
}

// cacheName is the cache.name attribute of the instance's metrics.
func (in *instance) cacheName() string { return "catalogue-" + strings.ToLower(in.name) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cache example:", err)
		os.Exit(1)
	}
}

// run plays the four phases, writing what happens to out and the telemetry
// (as JSON, all of it) to telemetryOut, if not nil. It returns once the
// caches are closed and the telemetry flushed, leaving no goroutine behind.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() {
		// Flush even when ctx was cancelled (Ctrl-C), with a deadline of
		// its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()
	tracer := otelp.tp.Tracer(scopeName)

	db := newDatabase()
	l2 := &cache.MemoryStore{} // shared by both instances, as a Redis would be
	var instances []*instance
	for _, name := range []string{"A", "B"} {
		in := &instance{name: name}
		in.cache, err = cache.New[Product](
			cache.WithName(in.cacheName()),
			cache.WithLoader(db.load),
			cache.WithStore(l2),
			cache.WithTracerProvider(otelp.tp),
			cache.WithMeterProvider(otelp.mp),
		)
		if err != nil {
			return err
		}
		defer in.cache.Close()
		instances = append(instances, in)
	}
	a, b := instances[0], instances[1]
	rep := &reporter{out: out, reader: otelp.reader, instances: instances}

	fmt.Fprintf(out, "catalogue of %d products; each database read takes %v\n", catalogueSize, loadDelay)
	fmt.Fprintln(out, "instances A and B: an L1 each (in-process), one shared L2 (a cache.MemoryStore standing in for Redis)")

	// Phase 1: A starts cold.
	err = rep.phase(ctx, tracer, "phase 1: instance A starts cold and serves 200 requests", func(ctx context.Context) error {
		return serve(ctx, a, zipfIDs(1, 200))
	})
	if err != nil {
		return err
	}

	// Phase 2: B starts; L2 is warm.
	err = rep.phase(ctx, tracer, "phase 2: instance B starts and serves 200 requests; L2 is warm", func(ctx context.Context) error {
		return serve(ctx, b, zipfIDs(2, 200))
	})
	if err != nil {
		return err
	}

	// Phase 3: a price change, written on A, read on B.
	hot := productID(0)
	err = rep.phase(ctx, tracer, "phase 3: the price of "+hot+" changes; instance A writes it, instance B reads it", func(ctx context.Context) error {
		before, err := rep.read(ctx, b, hot)
		if err != nil {
			return err
		}
		updated := before
		updated.PriceCents -= 100
		db.update(updated)
		if err := a.cache.Set(ctx, hot, updated); err != nil {
			return fmt.Errorf("instance A: Set(%q): %w", hot, err)
		}
		fmt.Fprintf(out, "  instance A sets %s to %s: L2 updated, invalidation published\n", hot, updated.Price())
		after, err := rep.read(ctx, b, hot)
		if err != nil {
			return err
		}
		if after.PriceCents != updated.PriceCents {
			return fmt.Errorf("instance B reads %s at %s after the update; want %s", hot, after.Price(), updated.Price())
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Phase 4: both serve, alternating.
	err = rep.phase(ctx, tracer, "phase 4: both instances serve 100 requests each, alternating", func(ctx context.Context) error {
		ids := zipfIDs(3, 200)
		for i, id := range ids {
			if err := serve(ctx, instances[i%2], []string{id}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	if err := rep.totals(ctx, db.reads.Load()); err != nil {
		return err
	}
	otelp.printTrees(out, "phase 2", "phase 3")
	return nil
}

// zipfIDs returns n product IDs drawn from a Zipf distribution over the
// catalogue, the same for the same seed.
func zipfIDs(seed uint64, n int) []string {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed)), zipfS, 1, catalogueSize-1)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = productID(int(z.Uint64()))
	}
	return ids
}

// serve reads each product through the instance's cache.
func serve(ctx context.Context, in *instance, ids []string) error {
	for _, id := range ids {
		p, err := in.cache.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("instance %s: Get(%q): %w", in.name, id, err)
		}
		if p.ID != id {
			return fmt.Errorf("instance %s: Get(%q) returned product %q", in.name, id, p.ID)
		}
	}
	return nil
}

// counts are one cache's counters, as its metrics report them.
type counts struct {
	l1Hits, l1Lookups int64 // cache.requests{cache.level=l1}; every request is an L1 lookup
	l2Hits, l2Lookups int64 // cache.requests{cache.level=l2}
	loads             int64 // cache.loads
	invalidations     int64 // cache.invalidations{cache.direction=received}
}

func (c counts) minus(o counts) counts {
	return counts{
		c.l1Hits - o.l1Hits, c.l1Lookups - o.l1Lookups,
		c.l2Hits - o.l2Hits, c.l2Lookups - o.l2Lookups,
		c.loads - o.loads, c.invalidations - o.invalidations,
	}
}

// reporter reads the caches' metrics and prints them.
type reporter struct {
	out       io.Writer
	reader    *sdkmetric.ManualReader
	instances []*instance
}

// collect reads the counters of every cache, by cache name.
func (r *reporter) collect(ctx context.Context) (map[string]counts, error) {
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(ctx, &rm); err != nil {
		return nil, fmt.Errorf("reading the metrics: %w", err)
	}
	byName := map[string]counts{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != cache.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				name := value(dp.Attributes, cache.AttrName)
				c := byName[name]
				switch m.Name {
				case "cache.requests":
					hit := int64(0)
					if value(dp.Attributes, cache.AttrResult) == "hit" {
						hit = dp.Value
					}
					switch value(dp.Attributes, cache.AttrLevel) {
					case "l1":
						c.l1Hits += hit
						c.l1Lookups += dp.Value
					case "l2":
						c.l2Hits += hit
						c.l2Lookups += dp.Value
					}
				case "cache.loads":
					c.loads += dp.Value
				case "cache.invalidations":
					if value(dp.Attributes, cache.AttrDirection) == "received" {
						c.invalidations += dp.Value
					}
				}
				byName[name] = c
			}
		}
	}
	return byName, nil
}

func value(set attribute.Set, key attribute.Key) string {
	v, _ := set.Value(key)
	return v.AsString()
}

// phase runs f in a span called title and prints, per instance, what the
// caches counted meanwhile.
func (r *reporter) phase(ctx context.Context, tracer trace.Tracer, title string, f func(context.Context) error) error {
	fmt.Fprintf(r.out, "\n%s\n", title)
	before, err := r.collect(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, span := tracer.Start(ctx, title)
	err = f(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	if err != nil {
		return err
	}
	took := time.Since(start)
	after, err := r.collect(ctx)
	if err != nil {
		return err
	}
	for _, in := range r.instances {
		d := after[in.cacheName()].minus(before[in.cacheName()])
		if d.l1Lookups == 0 {
			continue
		}
		fmt.Fprintf(r.out, "  instance %s: %s\n", in.name, describe(d))
	}
	if took < time.Millisecond {
		took = took.Round(time.Microsecond)
	} else {
		took = took.Round(time.Millisecond)
	}
	fmt.Fprintf(r.out, "  took %v\n", took)
	return nil
}

// read reads one product on an instance and prints where it came from.
func (r *reporter) read(ctx context.Context, in *instance, id string) (Product, error) {
	before, err := r.collect(ctx)
	if err != nil {
		return Product{}, err
	}
	p, err := in.cache.Get(ctx, id)
	if err != nil {
		return Product{}, fmt.Errorf("instance %s: Get(%q): %w", in.name, id, err)
	}
	after, err := r.collect(ctx)
	if err != nil {
		return Product{}, err
	}
	d := after[in.cacheName()].minus(before[in.cacheName()])
	from := "L1 and L2 miss, loaded from the database"
	switch {
	case d.l1Hits > 0:
		from = "L1 hit"
	case d.l2Hits > 0:
		from = "L1 miss, L2 hit"
	}
	fmt.Fprintf(r.out, "  instance %s reads %s %q: %s (%s)\n", in.name, id, p.Name, p.Price(), from)
	return p, nil
}

// totals prints the counters of the whole run, and the database reads.
func (r *reporter) totals(ctx context.Context, dbReads int64) error {
	all, err := r.collect(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(r.out, "\ntotals, from the cache.requests, cache.loads and cache.invalidations metrics:")
	var sum counts
	for _, in := range r.instances {
		c := all[in.cacheName()]
		fmt.Fprintf(r.out, "  instance %s: %s; invalidations received: %d\n", in.name, describe(c), c.invalidations)
		sum.l1Lookups += c.l1Lookups
		sum.loads += c.loads
	}
	fmt.Fprintf(r.out, "database reads: %d for %d requests (cache.loads: %d)\n", dbReads, sum.l1Lookups, sum.loads)
	return nil
}

// describe prints a cache's counters as hit rates per level and loads.
func describe(c counts) string {
	return fmt.Sprintf("%3d requests, L1 hits %s (%d/%d), L2 hits %s (%d/%d), %d loads",
		c.l1Lookups, rate(c.l1Hits, c.l1Lookups), c.l1Hits, c.l1Lookups,
		rate(c.l2Hits, c.l2Lookups), c.l2Hits, c.l2Lookups, c.loads)
}

// rate formats hits out of n as a percentage, "-" when n is 0.
func rate(hits, n int64) string {
	if n == 0 {
		return "    -"
	}
	return fmt.Sprintf("%5.1f%%", 100*float64(hits)/float64(n))
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
