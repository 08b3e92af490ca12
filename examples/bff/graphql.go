package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/graph-gophers/graphql-go"
	otelgraphql "github.com/graph-gophers/graphql-go/trace/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/gateway"
)

// schemaSDL is the GraphQL schema of the BFF: one graph over the four
// upstreams, from which each client selects what it shows.
const schemaSDL = `
schema { query: Query }

type Query {
	# The latest orders, at most first of them.
	orders(first: Int = 10): [Order!]!
	order(id: ID!): Order
}

type Order {
	id: ID!
	status: String!
	placedAt: String!
	total: Float!
	customer: Customer
	items: [OrderItem!]!
}

type OrderItem {
	quantity: Int!
	product: Product
}

type Customer {
	id: ID!
	name: String!
	email: String!
	tier: String!
}

type Product {
	id: ID!
	name: String!
	price: Float!
	description: String!
	# The mean of the reviews' stars; null without reviews.
	rating: Float
	reviews(first: Int = 3): [Review!]!
}

type Review {
	stars: Int!
	text: String!
	author: String!
}
`

// Bounds on what one request may ask or receive.
const (
	graphQLTimeout   = 5 * time.Second
	graphQLBodyBytes = 64 << 10 // the request: a query and its variables
	upstreamBytes    = 1 << 20  // each upstream response read
)

// graphQLRoutes returns the route of the GraphQL endpoint, POST /graphql.
// Its resolvers call the upstreams through rt (gateway.UpstreamTransport),
// so that each call has the upstream's balancing, breaker, retries and
// client span, under the span of the resolver that made it; products
// are kept in products across requests. tp makes graphql-go's spans: one
// per request, one for its validation, one per resolver that does work
// (graphql-go leaves plain field reads, trivial resolvers, unspanned).
func graphQLRoutes(rt http.RoundTripper, products *cache.Cache[product], tp trace.TracerProvider) ([]gateway.Route, error) {
	h := &graphQLHandler{client: &http.Client{Transport: rt}, products: products}
	schema, err := graphql.ParseSchema(schemaSDL, &queryResolver{h},
		graphql.Tracer(&otelgraphql.Tracer{Tracer: tp.Tracer("github.com/graph-gophers/graphql-go/trace/otel")}),
		graphql.MaxDepth(8),
		graphql.MaxQueryLength(8<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("bff: the GraphQL schema: %w", err)
	}
	h.schema = schema
	return []gateway.Route{{
		Pattern:      "POST /graphql",
		Handler:      h,
		Timeout:      graphQLTimeout,
		MaxBodyBytes: graphQLBodyBytes,
	}}, nil
}

// graphQLHandler serves GraphQL requests (POST, a JSON body of query,
// operationName and variables) with a fresh set of batchers each.
type graphQLHandler struct {
	schema   *graphql.Schema
	client   *http.Client
	products *cache.Cache[product]
}

func (h *graphQLHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query         string         `json:"query"`
		OperationName string         `json:"operationName"`
		Variables     map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			http.Error(w, "bff: the GraphQL request is too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bff: the body is not a GraphQL request", http.StatusBadRequest)
		return
	}
	ctx := context.WithValue(r.Context(), loadersKey{}, h.newLoaders())
	resp := h.schema.Exec(ctx, req.Query, req.OperationName, req.Variables)
	body, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, "bff: encoding the response failed", http.StatusInternalServerError)
		return
	}
	// Errors of single fields (an upstream down) come with the rest of
	// the data, with status 200, as GraphQL over HTTP has it for
	// application/json.
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// loaders are the batchers of one request.
type loaders struct {
	customers *batcher[string, customer]
	products  *batcher[string, product]
	reviews   *batcher[string, []review] // by product id
}

type loadersKey struct{}

func loadersFrom(ctx context.Context) *loaders {
	l, _ := ctx.Value(loadersKey{}).(*loaders)
	return l
}

func (h *graphQLHandler) newLoaders() *loaders {
	l := &loaders{}
	l.customers = newBatcher(h.fetchCustomers)
	l.reviews = newBatcher(h.fetchReviews)
	l.products = newBatcher(func(ctx context.Context, ids []string) (map[string]product, error) {
		ps, err := h.fetchProducts(ctx, ids)
		// The products' reviews are the next level down: primed here,
		// before any Product resolver can ask for them.
		for _, id := range ids {
			if _, ok := ps[id]; ok {
				l.reviews.prime(id)
			}
		}
		return ps, err
	})
	return l
}

// errNoLoaders is what a resolver gets when the schema is run outside
// graphQLHandler, which sets the batchers up.
var errNoLoaders = errors.New("bff: no batchers in the request's context")

// upstreamError is an upstream's answer other than 200.
type upstreamError struct {
	upstream string
	status   int
}

func (e *upstreamError) Error() string {
	return fmt.Sprintf("bff: upstream %s answered %d %s", e.upstream, e.status, http.StatusText(e.status))
}

// getJSON decodes the JSON answer to a GET of path on the upstream named
// upstream, through the gateway.
func (h *graphQLHandler) getJSON(ctx context.Context, upstream, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+upstream+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("bff: upstream %s: %w", upstream, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, upstreamBytes))
		return &upstreamError{upstream: upstream, status: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, upstreamBytes)).Decode(v); err != nil {
		return fmt.Errorf("bff: upstream %s: decoding its answer: %w", upstream, err)
	}
	return nil
}

// idList joins ids for a batch endpoint's query parameter, each escaped
// but the commas between them not.
func idList(ids []string) string {
	esc := make([]string, len(ids))
	for i, id := range ids {
		esc[i] = url.QueryEscape(id)
	}
	return strings.Join(esc, ",")
}

func (h *graphQLHandler) fetchCustomers(ctx context.Context, ids []string) (map[string]customer, error) {
	var cs []customer
	if err := h.getJSON(ctx, "customers", "/customers?ids="+idList(ids), &cs); err != nil {
		return nil, err
	}
	out := make(map[string]customer, len(cs))
	for _, c := range cs {
		out[c.ID] = c
	}
	return out, nil
}

// fetchProducts takes the products it has from the cache and fetches the
// others in one call, keeping them for the next requests.
func (h *graphQLHandler) fetchProducts(ctx context.Context, ids []string) (map[string]product, error) {
	out := make(map[string]product, len(ids))
	var missing []string
	for _, id := range ids {
		// Anything but a hit (a miss, a closed cache) sends the id
		// upstream.
		if p, err := h.products.Get(ctx, id); err == nil {
			out[id] = p
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	var ps []product
	if err := h.getJSON(ctx, "products", "/products?ids="+idList(missing), &ps); err != nil {
		return nil, err
	}
	for _, p := range ps {
		out[p.ID] = p
		// With no L2 store, Set fails only once the cache is closed: the
		// product is then fetched again next time, which is harmless.
		_ = h.products.Set(ctx, p.ID, p)
	}
	return out, nil
}

func (h *graphQLHandler) fetchReviews(ctx context.Context, productIDs []string) (map[string][]review, error) {
	var rs []review
	if err := h.getJSON(ctx, "reviews", "/reviews?product_ids="+idList(productIDs), &rs); err != nil {
		return nil, err
	}
	out := make(map[string][]review, len(productIDs))
	for _, id := range productIDs {
		out[id] = []review{} // a product without reviews has an empty list
	}
	for _, r := range rs {
		out[r.ProductID] = append(out[r.ProductID], r)
	}
	return out, nil
}

// queryResolver resolves the Query type.
type queryResolver struct{ h *graphQLHandler }

func (q *queryResolver) Orders(ctx context.Context, args struct{ First int32 }) ([]*orderResolver, error) {
	l := loadersFrom(ctx)
	if l == nil {
		return nil, errNoLoaders
	}
	if args.First <= 0 {
		return []*orderResolver{}, nil
	}
	var os []order
	if err := q.h.getJSON(ctx, "orders", "/orders?limit="+strconv.Itoa(int(args.First)), &os); err != nil {
		return nil, err
	}
	out := make([]*orderResolver, len(os))
	for i, o := range os {
		out[i] = newOrderResolver(o, l)
	}
	return out, nil
}

func (q *queryResolver) Order(ctx context.Context, args struct{ ID graphql.ID }) (*orderResolver, error) {
	l := loadersFrom(ctx)
	if l == nil {
		return nil, errNoLoaders
	}
	var o order
	err := q.h.getJSON(ctx, "orders", "/orders/"+url.PathEscape(string(args.ID)), &o)
	if e := (*upstreamError)(nil); errors.As(err, &e) && e.status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return newOrderResolver(o, l), nil
}

// orderResolver resolves an Order; making one primes the batchers with
// the keys of its customer and products.
type orderResolver struct {
	o order
	l *loaders
}

func newOrderResolver(o order, l *loaders) *orderResolver {
	l.customers.prime(o.CustomerID)
	for _, it := range o.Items {
		l.products.prime(it.ProductID)
	}
	return &orderResolver{o: o, l: l}
}

func (r *orderResolver) ID() graphql.ID   { return graphql.ID(r.o.ID) }
func (r *orderResolver) Status() string   { return r.o.Status }
func (r *orderResolver) PlacedAt() string { return r.o.PlacedAt }
func (r *orderResolver) Total() float64   { return r.o.Total }

func (r *orderResolver) Customer(ctx context.Context) (*customerResolver, error) {
	c, ok, err := r.l.customers.load(ctx, r.o.CustomerID)
	if err != nil || !ok {
		return nil, err
	}
	return &customerResolver{c}, nil
}

func (r *orderResolver) Items() []*itemResolver {
	out := make([]*itemResolver, len(r.o.Items))
	for i, it := range r.o.Items {
		out[i] = &itemResolver{it: it, l: r.l}
	}
	return out
}

type itemResolver struct {
	it orderItem
	l  *loaders
}

func (r *itemResolver) Quantity() int32 { return r.it.Quantity }

func (r *itemResolver) Product(ctx context.Context) (*productResolver, error) {
	p, ok, err := r.l.products.load(ctx, r.it.ProductID)
	if err != nil || !ok {
		return nil, err
	}
	return &productResolver{p: p, l: r.l}, nil
}

type customerResolver struct{ c customer }

func (r *customerResolver) ID() graphql.ID { return graphql.ID(r.c.ID) }
func (r *customerResolver) Name() string   { return r.c.Name }
func (r *customerResolver) Email() string  { return r.c.Email }
func (r *customerResolver) Tier() string   { return r.c.Tier }

type productResolver struct {
	p product
	l *loaders
}

func (r *productResolver) ID() graphql.ID      { return graphql.ID(r.p.ID) }
func (r *productResolver) Name() string        { return r.p.Name }
func (r *productResolver) Price() float64      { return r.p.Price }
func (r *productResolver) Description() string { return r.p.Description }

func (r *productResolver) Rating(ctx context.Context) (*float64, error) {
	rs, _, err := r.l.reviews.load(ctx, r.p.ID)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	sum := 0
	for _, rv := range rs {
		sum += int(rv.Stars)
	}
	mean := float64(int(float64(sum)/float64(len(rs))*10+0.5)) / 10
	return &mean, nil
}

func (r *productResolver) Reviews(ctx context.Context, args struct{ First int32 }) ([]*reviewResolver, error) {
	rs, _, err := r.l.reviews.load(ctx, r.p.ID)
	if err != nil {
		return nil, err
	}
	if int(args.First) < len(rs) {
		rs = rs[:max(0, int(args.First))]
	}
	out := make([]*reviewResolver, len(rs))
	for i, rv := range rs {
		out[i] = &reviewResolver{rv}
	}
	return out, nil
}

type reviewResolver struct{ r review }

func (r *reviewResolver) Stars() int32   { return r.r.Stars }
func (r *reviewResolver) Text() string   { return r.r.Text }
func (r *reviewResolver) Author() string { return r.r.Author }
