package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The upstream services' data, as their JSON endpoints answer it.
type (
	order struct {
		ID         string      `json:"id"`
		CustomerID string      `json:"customer_id"`
		Status     string      `json:"status"`
		PlacedAt   string      `json:"placed_at"`
		Items      []orderItem `json:"items"`
		Total      float64     `json:"total"`
	}
	orderItem struct {
		ProductID string `json:"product_id"`
		Quantity  int32  `json:"quantity"`
	}
	customer struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
		Tier  string `json:"tier"`
	}
	product struct {
		ID          string  `json:"id"`
		Name        string  `json:"name"`
		Price       float64 `json:"price"`
		Description string  `json:"description"`
	}
	review struct {
		ProductID string `json:"product_id"`
		Stars     int32  `json:"stars"`
		Text      string `json:"text"`
		Author    string `json:"author"`
	}
)

// service is a fake upstream: a ServeMux of JSON endpoints that counts
// the requests each endpoint served (health checks aside), so that the
// program can show how many upstream calls a query made.
type service struct {
	name    string
	failing atomic.Bool // answer 500 (health checks aside), to test partial answers
	// held, when set, holds every request (health checks aside) until it
	// is closed, to have identical requests overlap at the gateway.
	held   atomic.Pointer[chan struct{}]
	mux    *http.ServeMux
	mu     sync.Mutex
	hits   map[string]int // by the endpoint's pattern
	server *httptest.Server
}

func newService(name string) *service {
	s := &service{name: name, mux: http.NewServeMux(), hits: map[string]int{}}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return s
}

// handle registers an endpoint whose answer f gives as a value to encode,
// or as an error status.
func (s *service) handle(pattern string, f func(r *http.Request) (any, int)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[pattern]++
		s.mu.Unlock()
		if held := s.held.Load(); held != nil {
			select {
			case <-*held:
			case <-r.Context().Done():
				return
			}
		}
		if s.failing.Load() {
			http.Error(w, s.name+": internal error", http.StatusInternalServerError)
			return
		}
		v, code := f(r)
		if code != http.StatusOK {
			http.Error(w, http.StatusText(code), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

// hold holds the service's requests until release is called.
func (s *service) hold() (release func()) {
	ch := make(chan struct{})
	s.held.Store(&ch)
	return func() {
		s.held.Store(nil)
		close(ch)
	}
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// counts returns the number of requests served so far per endpoint.
func (s *service) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.hits)
}

// services are the four upstreams of the BFF, each on its own loopback
// listener.
type services struct {
	orders, customers, products, reviews *service
}

func (s *services) all() []*service {
	return []*service{s.orders, s.customers, s.products, s.reviews}
}

// calls is a count of upstream requests per "service endpoint".
type calls map[string]int

// counts returns the requests each endpoint of each service served so far.
func (s *services) counts() calls {
	c := calls{}
	for _, svc := range s.all() {
		for pattern, n := range svc.counts() {
			c[svc.name+" "+pattern] = n
		}
	}
	return c
}

// since returns the calls made after before was taken.
func (c calls) since(before calls) calls {
	d := calls{}
	for k, n := range c {
		if n > before[k] {
			d[k] = n - before[k]
		}
	}
	return d
}

func (c calls) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

func (c calls) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, c[k]))
	}
	return strings.Join(parts, ", ")
}

// startServices starts the upstreams on generated data: ten orders of six
// customers over eight products, and their reviews. close stops them.
func startServices() *services {
	customers := []customer{
		{"c1", "Ada Lovelace", "ada@example.test", "gold"},
		{"c2", "Grace Hopper", "grace@example.test", "silver"},
		{"c3", "Alan Turing", "alan@example.test", "gold"},
		{"c4", "Edsger Dijkstra", "edsger@example.test", "bronze"},
		{"c5", "Barbara Liskov", "barbara@example.test", "silver"},
		{"c6", "Ken Thompson", "ken@example.test", "bronze"},
	}
	products := []product{
		{"p1", "Desk lamp", 39.90, "An adjustable LED desk lamp."},
		{"p2", "Notebook", 4.50, "A5, dotted, 120 pages."},
		{"p3", "Fountain pen", 24.00, "Steel nib, medium."},
		{"p4", "Ink bottle", 9.90, "50 ml, blue-black."},
		{"p5", "Desk mat", 19.00, "Felt, 80 × 30 cm."},
		{"p6", "Pencil set", 7.20, "Six grades, HB to 6B."},
		{"p7", "Monitor arm", 89.00, "Gas spring, up to 9 kg."},
		{"p8", "Headphones", 129.00, "Closed back, wired."},
	}
	byProduct := map[string]product{}
	for _, p := range products {
		byProduct[p.ID] = p
	}
	var reviews []review
	authors := []string{"sam", "kim", "lee", "max"}
	for i, p := range products {
		for j := range i%3 + 1 {
			reviews = append(reviews, review{
				ProductID: p.ID, Stars: int32(3 + (i+j)%3),
				Text: fmt.Sprintf("review %d of %s", j+1, p.Name), Author: authors[(i+j)%len(authors)],
			})
		}
	}
	var orders []order
	statuses := []string{"placed", "paid", "shipped", "delivered"}
	for i := range 10 {
		o := order{
			ID:         strconv.Itoa(1001 + i),
			CustomerID: customers[i%len(customers)].ID,
			Status:     statuses[i%len(statuses)],
			PlacedAt:   fmt.Sprintf("2026-11-%02dT10:%02d:00Z", 10+i, 7*i%60),
		}
		for j := range i%3 + 1 {
			p := products[(3*i+j)%len(products)]
			it := orderItem{ProductID: p.ID, Quantity: int32(1 + (i+j)%2)}
			o.Items = append(o.Items, it)
			o.Total += p.Price * float64(it.Quantity)
		}
		o.Total = float64(int(o.Total*100+0.5)) / 100
		orders = append(orders, o)
	}

	s := &services{
		orders:    newService("orders"),
		customers: newService("customers"),
		products:  newService("products"),
		reviews:   newService("reviews"),
	}
	s.orders.handle("GET /orders", func(r *http.Request) (any, int) {
		n, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || n <= 0 || n > len(orders) {
			n = len(orders)
		}
		return orders[:n], http.StatusOK
	})
	s.orders.handle("GET /orders/{id}", func(r *http.Request) (any, int) {
		for _, o := range orders {
			if o.ID == r.PathValue("id") {
				return o, http.StatusOK
			}
		}
		return nil, http.StatusNotFound
	})
	// The batch endpoints answer the entities they have among ?ids=,
	// skipping unknown ids, as most batch APIs do.
	s.customers.handle("GET /customers", func(r *http.Request) (any, int) {
		out := []customer{}
		for _, id := range ids(r, "ids") {
			for _, c := range customers {
				if c.ID == id {
					out = append(out, c)
				}
			}
		}
		return out, http.StatusOK
	})
	// The REST aggregation fetches the one customer of an order.
	s.customers.handle("GET /customers/{id}", func(r *http.Request) (any, int) {
		for _, c := range customers {
			if c.ID == r.PathValue("id") {
				return c, http.StatusOK
			}
		}
		return nil, http.StatusNotFound
	})
	s.products.handle("GET /products", func(r *http.Request) (any, int) {
		out := []product{}
		for _, id := range ids(r, "ids") {
			if p, ok := byProduct[id]; ok {
				out = append(out, p)
			}
		}
		return out, http.StatusOK
	})
	s.reviews.handle("GET /reviews", func(r *http.Request) (any, int) {
		out := []review{}
		for _, id := range ids(r, "product_ids") {
			for _, rv := range reviews {
				if rv.ProductID == id {
					out = append(out, rv)
				}
			}
		}
		return out, http.StatusOK
	})
	for _, svc := range s.all() {
		svc.server = httptest.NewServer(svc)
	}
	return s
}

// ids returns the comma-separated values of the query parameter name.
func ids(r *http.Request, name string) []string {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func (s *services) close() {
	for _, svc := range s.all() {
		svc.server.Close()
	}
}
