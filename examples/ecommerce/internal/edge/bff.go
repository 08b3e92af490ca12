package edge

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/hexagonal"
)

// The two BFFs.
const (
	webBFF    = "web"
	mobileBFF = "mobile"
)

// BFF bounds and cache lifetimes.
const (
	bffTimeout = 5 * time.Second
	// shipmentTimeout bounds the shipment, which the page can do
	// without: a slow shipping service costs it this much at most.
	shipmentTimeout = 500 * time.Millisecond
	// productsTTL keeps the catalogue's list this long: prices and names
	// change rarely.
	productsTTL = 30 * time.Second
	// bffCacheTTL is how long a part's answer is kept, and so how long
	// after its last success it may stand in, stale, for a failing
	// service.
	bffCacheTTL  = 10 * time.Minute
	bffPartBytes = 1 << 20
)

// bffServer is a BFF's component, "web-bff" or "mobile-bff": a gateway
// of its own over the services, whose one route, GET /{kind}/orders/{id},
// aggregates the order with what the client shows beside it. The public
// gateway routes the same path to it.
func (e *Edge) bffServer(kind string) hexagonal.Component {
	ln := e.webLn
	if kind == mobileBFF {
		ln = e.mobileLn
	}
	return e.server(kind+"-bff", ln, nil, 0, func() (http.Handler, func() error, error) { return e.buildBFF(kind) })
}

// bffParts are the parts of each BFF. The web page shows the order, the
// catalogue's product of each line and the shipment; the app the order
// and the shipment, so it makes no call to the catalogue. The shipment
// is optional: with shipping down (or no shipment yet) the document
// comes without it and says so in "_partial". The web page's products
// are optional too, and kept: a catalogue outage serves the last list
// (stale) or, without one, the page without names and prices.
//
// The order and the shipment pass the caller's client ID, which the
// gateway set from the token, on to their services, as the gateway's
// own routes do (parts forward no header unless named). The products,
// the same for every caller, do not: the list is shared.
func bffParts(kind string) []aggregate.Part {
	caller := []string{ClientIDHeader}
	order := aggregate.Part{Name: "order", Upstream: "orders", Path: "/orders/{id}", Header: caller, MaxBytes: bffPartBytes}
	shipment := aggregate.Part{Name: "shipment", Upstream: "shipping", Path: "/shipments/{id}", Header: caller,
		Optional: true, Timeout: shipmentTimeout, MaxBytes: bffPartBytes}
	if kind == mobileBFF {
		return []aggregate.Part{order, shipment}
	}
	// The catalogue has no batch endpoint: the list, fetched beside the
	// order rather than after it, and kept for every caller (Public),
	// costs one call a productsTTL.
	products := aggregate.Part{Name: "products", Upstream: "catalogue", Path: "/products",
		Optional: true, TTL: productsTTL, Public: true, MaxBytes: bffPartBytes}
	return []aggregate.Part{order, products, shipment}
}

// buildBFF builds a BFF's gateway and aggregation, and returns what
// closes them.
func (e *Edge) buildBFF(kind string) (http.Handler, func() error, error) {
	kept, err := cache.New[aggregate.Entry](
		cache.WithName("edge."+kind+"-bff"), cache.WithTTL(bffCacheTTL),
		cache.WithTracerProvider(e.tp), cache.WithMeterProvider(e.mp),
	)
	if err != nil {
		return nil, nil, err
	}
	shape := webShape
	if kind == mobileBFF {
		shape = mobileShape
	}
	agg, err := aggregate.New(bffParts(kind),
		aggregate.WithCache(kept),
		// One client type per BFF: its own shape.
		aggregate.WithShapes(func(*http.Request) string { return kind }, map[string]aggregate.Shape{kind: shape}),
		aggregate.WithTracerProvider(e.tp), aggregate.WithMeterProvider(e.mp),
	)
	if err != nil {
		return nil, nil, errors.Join(err, kept.Close())
	}
	upstreams := []gateway.Upstream{
		e.upstream("orders", e.cfg.OrdersURL, retryAttempts),
		e.upstream("shipping", e.cfg.ShippingURL, retryAttempts),
	}
	if kind == webBFF {
		upstreams = append(upstreams, e.upstream("catalogue", e.cfg.CatalogueURL, retryAttempts))
	}
	g, err := gateway.New(
		gateway.WithTracerProvider(e.tp), gateway.WithMeterProvider(e.mp),
		gateway.WithStrictPaths(),
		gateway.WithUpstreams(upstreams...),
		gateway.WithRoutes(gateway.Route{Pattern: "GET /" + kind + "/orders/{id}", Handler: agg, Timeout: bffTimeout}),
	)
	if err != nil {
		return nil, nil, errors.Join(err, kept.Close())
	}
	return g, func() error { return errors.Join(g.Close(), kept.Close()) }, nil
}

// webShape is the web page: the order, its lines' products by SKU, and
// the shipment when there is one.
func webShape(doc map[string]any) map[string]any {
	out := map[string]any{"order": doc["order"]}
	if s, ok := doc["shipment"]; ok {
		out["shipment"] = s
	}
	if list, ok := doc["products"]; ok {
		out["products"] = linesProducts(doc["order"], list)
	}
	return out
}

// linesProducts picks, from the catalogue's list, the products of the
// order's lines, by SKU. The list may be an array or an object holding
// one under "products" or "items".
func linesProducts(order, list any) map[string]any {
	bySKU := map[string]any{}
	items, _ := list.([]any)
	if m, ok := list.(map[string]any); ok {
		for _, k := range []string{"products", "items"} {
			if a, ok := m[k].([]any); ok {
				items = a
				break
			}
		}
	}
	for _, it := range items {
		if p, ok := it.(map[string]any); ok {
			if sku, ok := p["sku"].(string); ok {
				bySKU[sku] = p
			}
		}
	}
	out := map[string]any{}
	for _, l := range orderLines(order) {
		if sku, ok := l["sku"].(string); ok {
			if p, ok := bySKU[sku]; ok {
				out[sku] = p
			}
		}
	}
	return out
}

func orderLines(order any) []map[string]any {
	o, _ := order.(map[string]any)
	raw, _ := o["lines"].([]any)
	var lines []map[string]any
	for _, l := range raw {
		if m, ok := l.(map[string]any); ok {
			lines = append(lines, m)
		}
	}
	return lines
}

// mobileShape is the app's order line: a few flat fields.
func mobileShape(doc map[string]any) map[string]any {
	o, _ := doc["order"].(map[string]any)
	out := map[string]any{}
	for _, k := range []string{"order_id", "status", "total_cents"} {
		if v, ok := o[k]; ok {
			out[k] = v
		}
	}
	// The aggregation decodes numbers as json.Number.
	var items int64
	for _, l := range orderLines(o) {
		if q, ok := l["qty"].(json.Number); ok {
			n, _ := q.Int64()
			items += n
		}
	}
	out["items"] = items
	if s, ok := doc["shipment"].(map[string]any); ok {
		out["shipment"] = s["status"]
		if t, ok := s["tracking"]; ok {
			out["tracking"] = t
		}
	}
	return out
}
