package shop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/rediscache"
	"github.com/otelpatterns/patterns/hexagonal"
)

// Product is a catalogue entry, as GET /products/{sku} answers it.
type Product struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	// StockHint is what the inventory had on hand when the catalogue was
	// seeded; the inventory service is the truth.
	StockHint int `json:"stock_hint,omitempty"`
	stock     int
}

// products is the catalogue's seed: its "database".
var products = []Product{
	{SKU: "BOOK-1", Name: "The Go Programming Language", PriceCents: 3999, stock: 1000},
	{SKU: "MUG-1", Name: "Gopher mug", PriceCents: 1250, stock: 1000},
	{SKU: "TEE-1", Name: "Gopher T-shirt", PriceCents: 2200, stock: 1000},
	{SKU: "STICKER-1", Name: "Sticker pack", PriceCents: 499, stock: 1000},
}

// SKUs returns the catalogue's product SKUs, for scenarios and load mixes.
func SKUs() []string {
	out := make([]string, len(products))
	for i, p := range products {
		out[i] = p.SKU
	}
	return out
}

// catalogue is the catalogue service: products read through the cache
// from the product repository (the seed, with a database's latency).
type catalogue struct {
	cache *cache.Cache[Product]
	store *rediscache.Store // nil without Redis
	loads atomic.Int64      // reads of the repository
	get   func(context.Context, string) (Product, error)
}

// newCatalogue builds the catalogue's two-level cache (L1 only without
// Redis) with the repository as its loader.
func (s *Shop) newCatalogue() (*catalogue, error) {
	c := &catalogue{}
	opts := []cache.Option[Product]{
		cache.WithName("catalogue"),
		cache.WithTTL(time.Minute),
		cache.WithNegativeTTL(5 * time.Second),
		cache.WithLoader(c.load),
		cache.WithTracerProvider(s.cfg.TracerProvider),
		cache.WithMeterProvider(s.cfg.MeterProvider),
	}
	if rdb := s.cfg.Backends.Redis; rdb != nil {
		store, err := rediscache.New(rdb,
			rediscache.WithPrefix(s.cfg.Backends.StreamPrefix+":catalogue:"),
			rediscache.WithChannel(s.cfg.Backends.StreamPrefix+":catalogue:invalidations"),
			rediscache.WithTracerProvider(s.cfg.TracerProvider),
			rediscache.WithMeterProvider(s.cfg.MeterProvider))
		if err != nil {
			return nil, err
		}
		c.store = store
		opts = append(opts, cache.WithStore(store))
	}
	cc, err := cache.New(opts...)
	if err != nil {
		if c.store != nil {
			_ = c.store.Close()
		}
		return nil, err
	}
	c.cache = cc
	c.get = hexagonal.Instrument(hexagonal.Application, "Catalogue", "Get", c.cache.Get)
	return c, nil
}

// load reads a product from the repository, as a database would, with its
// latency: the cost the cache saves.
func (c *catalogue) load(ctx context.Context, sku string) (Product, error) {
	c.loads.Add(1)
	select {
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return Product{}, ctx.Err()
	}
	for _, p := range products {
		if p.SKU == sku {
			p.StockHint = p.stock
			return p, nil
		}
	}
	return Product{}, cache.ErrNotFound
}

// close releases the cache, then its Redis store.
func (c *catalogue) close(context.Context) error {
	err := c.cache.Close()
	if c.store != nil {
		err = errors.Join(err, c.store.Close())
	}
	return err
}

// routes mounts the catalogue API: GET /products and GET /products/{sku}.
func (c *catalogue) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		out := make([]Product, 0, len(products))
		for _, sku := range SKUs() {
			p, err := c.get(r.Context(), sku)
			if err != nil {
				hexagonal.WriteProblem(w, err)
				return
			}
			out = append(out, p)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /products/{sku}", func(w http.ResponseWriter, r *http.Request) {
		sku := r.PathValue("sku")
		p, err := c.get(r.Context(), sku)
		if errors.Is(err, cache.ErrNotFound) {
			err = hexagonal.Errorf(hexagonal.KindNotFound, "no product %s", sku)
		}
		if err != nil {
			hexagonal.WriteProblem(w, fmt.Errorf("product %s: %w", sku, err))
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
}
