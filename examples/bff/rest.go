package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
)

// The REST BFF's bounds and cache lifetimes.
const (
	restTimeout = 2 * time.Second
	// reviewsTimeout bounds the reviews, which the page can do without:
	// a slow reviews service costs the page this much at most.
	reviewsTimeout = 150 * time.Millisecond
	// A customer's details and the products change rarely; the order
	// (its status) and the reviews are fetched every time.
	customerTTL = 30 * time.Second
	productsTTL = 5 * time.Minute
	// documentTTL keeps whole complete documents: a client that reloads
	// the page within it runs no part at all.
	documentTTL = 2 * time.Second
	// restCacheTTL is how long the cache keeps an answer, and so how long
	// after its last success a part's answer may stand in, stale, for a
	// failing upstream: longer than every part's TTL.
	restCacheTTL  = 10 * time.Minute
	restPartBytes = 256 << 10 // each part's answer
)

// restShapes are the shapes of the REST BFF's client types, the first
// segment of its path: the web page gets the document as merged, the
// mobile app's order line a few fields, renamed. Other client types get
// 404.
var restShapes = map[string]aggregate.Shape{
	"web": func(doc map[string]any) map[string]any { return doc },
	"mobile": aggregate.Select(map[string]string{
		"id":       "order.id",
		"status":   "order.status",
		"total":    "order.total",
		"placed":   "order.placed_at",
		"customer": "customer.name",
	}),
}

// restRoute returns the REST BFF's route, GET /{client}/orders/{id}: an
// order page aggregated from the four upstreams, shaped per client type
// ({client}: web or mobile). The order comes first; its customer, the
// products of its items and their reviews then, at once. The reviews
// are optional: without them the page comes all the same, and says so.
// The parts call the upstreams of the gateway serving the request, with
// their breakers and retries; the customer and the products are kept in
// c, and so are whole documents, for a short while.
func restRoute(c *cache.Cache[aggregate.Entry], tp trace.TracerProvider, mp metric.MeterProvider) (gateway.Route, *restHandler, error) {
	agg, err := aggregate.New([]aggregate.Part{
		{Name: "order", Upstream: "orders", Path: "/orders/{id}", MaxBytes: restPartBytes},
		// Not Public: a customer's details are cached per caller.
		{Name: "customer", Upstream: "customers", Path: "/customers/{order.customer_id}",
			TTL: customerTTL, MaxBytes: restPartBytes},
		// The batch endpoints take the ids of every item at once.
		{Name: "products", Upstream: "products", Request: byItems("/products?ids="), After: []string{"order"},
			TTL: productsTTL, Public: true, MaxBytes: restPartBytes},
		{Name: "reviews", Upstream: "reviews", Request: byItems("/reviews?product_ids="), After: []string{"order"},
			Optional: true, Timeout: reviewsTimeout, MaxBytes: restPartBytes},
	},
		aggregate.WithShapes(aggregate.FromPathValue("client"), restShapes),
		aggregate.WithCache(c),
		aggregate.WithTTL(documentTTL),
		aggregate.WithTracerProvider(tp), aggregate.WithMeterProvider(mp),
	)
	if err != nil {
		return gateway.Route{}, nil, err
	}
	h := &restHandler{agg: agg}
	return gateway.Route{Pattern: "GET /{client}/orders/{id}", Handler: h, Timeout: restTimeout}, h, nil
}

// byItems returns the Request of a part that asks a batch endpoint for
// the products of the order's items: prefix followed by their ids. An
// order without items has no such part.
func byItems(prefix string) func(*http.Request, aggregate.Results) (*http.Request, error) {
	return func(_ *http.Request, earlier aggregate.Results) (*http.Request, error) {
		items, _ := earlier.Lookup("order.items")
		list, _ := items.([]any)
		var ids []string
		for _, it := range list {
			item, _ := it.(map[string]any)
			if id, ok := item["product_id"].(string); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil, aggregate.ErrSkip
		}
		return http.NewRequest(http.MethodGet, prefix+idList(ids), nil)
	}
}

// restHandler serves the REST BFF's client types, and no other, with the
// aggregation.
type restHandler struct {
	agg *aggregate.Handler
	// active counts the requests being served, for the program to know
	// when identical requests overlap.
	active atomic.Int64
}

func (h *restHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := restShapes[r.PathValue("client")]; !ok {
		b, _ := json.Marshal(map[string]string{aggregate.ErrorField: "unknown_client"})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(b)
		return
	}
	h.active.Add(1)
	defer h.active.Add(-1)
	h.agg.ServeHTTP(w, r)
}
