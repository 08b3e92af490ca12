package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

type Product struct {
	SKU   string
	Price int
}

// products stands in for a database.
var products = map[string]Product{"sku-1": {"sku-1", 1999}, "sku-2": {"sku-2", 4999}}

func loadProduct(ctx context.Context, sku string) (Product, error) {
	p, ok := products[sku]
	if !ok {
		return Product{}, fmt.Errorf("product %s: %w", sku, cache.ErrNotFound)
	}
	return p, nil
}

// A read-through cache: Get answers from memory, and loads a key it does
// not hold, once however many callers ask for it at the same time. The
// value type, int, is inferred from the loader.
func Example() {
	ctx := context.Background()
	stock := map[string]int{"sku-1": 12} // stands in for a database
	loads := 0
	c, err := cache.New(
		cache.WithLoader(func(ctx context.Context, sku string) (int, error) {
			loads++
			n, ok := stock[sku]
			if !ok {
				return 0, fmt.Errorf("sku %s: %w", sku, cache.ErrNotFound)
			}
			return n, nil
		}),
		cache.WithTTL(time.Minute),
		cache.WithNegativeTTL(10*time.Second), // remember unknown skus briefly
	)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	for range 3 {
		n, err := c.Get(ctx, "sku-1") // loaded once, then from memory
		fmt.Println(n, err)
	}
	for range 2 {
		_, err := c.Get(ctx, "sku-404") // loaded once: "not found" is cached
		fmt.Println(errors.Is(err, cache.ErrNotFound))
	}
	fmt.Println("loads:", loads)

	// After changing the database, Set (or Delete) the key.
	stock["sku-1"] = 11
	if err := c.Set(ctx, "sku-1", 11); err != nil {
		panic(err)
	}
	n, _ := c.Get(ctx, "sku-1")
	fmt.Println(n, "loads:", loads)
	// Output:
	// 12 <nil>
	// 12 <nil>
	// 12 <nil>
	// true
	// true
	// loads: 2
	// 11 loads: 2
}

// Bad options are reported together, each naming the option, before the
// cache exists.
func ExampleNew_invalidOptions() {
	_, err := cache.New(
		cache.WithLoader[Product](nil),
		cache.WithTTL(-time.Minute),
		cache.WithTTLJitter(1.5),
	)
	fmt.Println(err)
	// Output:
	// cache: New: WithLoader(nil): the loader must not be nil
	// WithTTL(-1m0s): must not be negative
	// WithTTLJitter(1.5): must be in [0, 1)
}

// Cache-aside: the caller loads and stores.
func ExampleNew() {
	ctx := context.Background()
	c, err := cache.New[Product](cache.WithMaxEntries(1000), cache.WithTTL(time.Minute))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	p, err := c.Get(ctx, "sku-1")
	if errors.Is(err, cache.ErrNotFound) {
		p, _ = loadProduct(ctx, "sku-1")
		_ = c.Set(ctx, "sku-1", p)
	}
	fmt.Println(p.Price)
	p, _ = c.Get(ctx, "sku-1")
	fmt.Println(p.Price, "from the cache")
	// Output:
	// 1999
	// 1999 from the cache
}

// Read-through: the cache loads misses itself, once per key.
func ExampleWithLoader() {
	ctx := context.Background()
	loads := 0
	c, _ := cache.New[Product](cache.WithLoader(func(ctx context.Context, sku string) (Product, error) {
		loads++
		return loadProduct(ctx, sku)
	}))
	defer c.Close()

	for range 3 {
		p, _ := c.Get(ctx, "sku-2")
		fmt.Println(p.Price)
	}
	_, err := c.Get(ctx, "sku-404")
	fmt.Println(errors.Is(err, cache.ErrNotFound), loads, "loads")
	// Output:
	// 4999
	// 4999
	// 4999
	// true 2 loads
}

// Write-through: the source is written first; the cache only on success.
func ExampleWithWriter() {
	ctx := context.Background()
	c, _ := cache.New[Product](cache.WithWriter(func(ctx context.Context, sku string, p Product) error {
		if p.Price < 0 {
			return errors.New("price must not be negative")
		}
		products[sku] = p
		return nil
	}))
	defer c.Close()

	fmt.Println(c.Set(ctx, "sku-3", Product{"sku-3", -5}))
	_, err := c.Get(ctx, "sku-3")
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	fmt.Println(c.Set(ctx, "sku-3", Product{"sku-3", 500}), products["sku-3"].Price)
	// Output:
	// price must not be negative
	// true
	// <nil> 500
}

// Write-behind: writes are queued and flushed in batches.
func ExampleWithWriteBehind() {
	ctx := context.Background()
	c, _ := cache.New[int](
		cache.WithWriteBehind(func(ctx context.Context, batch []cache.Write[int]) error {
			var keys []string
			for _, w := range batch {
				keys = append(keys, w.Key)
			}
			fmt.Println("writing", strings.Join(keys, ", "))
			return nil
		}),
		cache.WithWriteBatch(100, time.Minute),
	)
	_ = c.Set(ctx, "views:home", 1)
	_ = c.Set(ctx, "views:about", 1)
	v, _ := c.Get(ctx, "views:home")
	fmt.Println("cached at once:", v)
	_ = c.Flush(ctx) // or wait for the batch interval; Close flushes too
	_ = c.Close()
	// Output:
	// cached at once: 1
	// writing views:home, views:about
}

// Refresh-ahead: hot entries are reloaded before they expire.
func ExampleWithRefreshAhead() {
	c, err := cache.New[Product](
		cache.WithLoader(loadProduct),
		cache.WithTTL(time.Minute),
		cache.WithRefreshAhead(0.8), // reload on a read after 48s
	)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p, _ := c.Get(context.Background(), "sku-1")
	fmt.Println(p.Price)
	// Output: 1999
}

// Protection against keys that do not exist.
func ExampleWithBloomFilter() {
	ctx := context.Background()
	loads := 0
	c, _ := cache.New[Product](
		cache.WithLoader(func(ctx context.Context, sku string) (Product, error) {
			loads++
			return loadProduct(ctx, sku)
		}),
		cache.WithBloomFilter(100_000, 0.01),
		cache.WithNegativeTTL(30*time.Second),
	)
	defer c.Close()
	c.AddKeys("sku-1", "sku-2") // every existing key, at start-up

	for range 100 {
		_, _ = c.Get(ctx, "random-garbage") // never reaches the database
	}
	p, _ := c.Get(ctx, "sku-1")
	fmt.Println(p.Price, loads, "load")
	// Output: 1999 1 load
}

// Two instances sharing an L2 store drop each other's stale L1 copies.
func ExampleWithStore() {
	ctx := context.Background()
	shared := &cache.MemoryStore{} // Redis in production: cache/rediscache
	a, _ := cache.New[int](cache.WithStore(shared))
	b, _ := cache.New[int](cache.WithStore(shared))
	defer a.Close()
	defer b.Close()

	_ = a.Set(ctx, "stock:sku-1", 10)
	v, _ := b.Get(ctx, "stock:sku-1") // from L2, now in b's L1 too
	fmt.Println(v)
	_ = a.Set(ctx, "stock:sku-1", 9) // b's L1 copy is dropped
	v, _ = b.Get(ctx, "stock:sku-1")
	fmt.Println(v)
	// Output:
	// 10
	// 9
}
