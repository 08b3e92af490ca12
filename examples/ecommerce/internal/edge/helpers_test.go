package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/hexagonal"
)

// stub is a stand-in for one of the shop's services that answers the
// contract's JSON. While down is set it answers 503.
type stub struct {
	srv  *httptest.Server
	down atomic.Bool

	mu   sync.Mutex
	seen []*http.Request // clones of the requests it got
}

func newStub(t *testing.T, routes map[string]http.HandlerFunc) *stub {
	t.Helper()
	s := &stub{}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Clone(context.Background()))
		s.mu.Unlock()
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// calls returns how many requests the stub got.
func (s *stub) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// last returns the last request the stub got whose path is path.
func (s *stub) last(path string) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.seen) - 1; i >= 0; i-- {
		if s.seen[i].URL.Path == path {
			return s.seen[i]
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// services are stand-ins for orders, catalogue and shipping.
type services struct{ orders, catalogue, shipping *stub }

func newServices(t *testing.T) *services {
	return &services{
		orders: newStub(t, map[string]http.HandlerFunc{
			"POST /orders": func(w http.ResponseWriter, r *http.Request) {
				var body struct {
					CustomerID string `json:"customer_id"`
					Lines      []struct {
						SKU string `json:"sku"`
						Qty int    `json:"qty"`
					} `json:"lines"`
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.CustomerID == "" || len(body.Lines) == 0 {
					writeJSON(w, http.StatusBadRequest, map[string]string{"title": "bad order"})
					return
				}
				w.Header().Set("Location", "/orders/o-1")
				writeJSON(w, http.StatusAccepted, map[string]string{"order_id": "o-1", "status": "pending"})
			},
			"GET /orders/{id}": func(w http.ResponseWriter, r *http.Request) {
				if r.PathValue("id") != "o-1" {
					writeJSON(w, http.StatusNotFound, map[string]string{"title": "no such order"})
					return
				}
				writeJSON(w, http.StatusOK, map[string]any{
					"order_id": "o-1", "customer_id": "alice", "status": "confirmed",
					"lines": []map[string]any{
						{"sku": "lamp", "qty": 2, "price_cents": 1999},
						{"sku": "mug", "qty": 1, "price_cents": 599},
					},
					"total_cents": 4597, "updated_at": "2026-12-06T15:00:00Z",
				})
			},
		}),
		catalogue: newStub(t, map[string]http.HandlerFunc{
			"GET /products": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, []map[string]any{
					{"sku": "lamp", "name": "Desk lamp", "price_cents": 1999},
					{"sku": "mug", "name": "Mug", "price_cents": 599},
					{"sku": "chair", "name": "Chair", "price_cents": 8999},
				})
			},
			"GET /products/{sku}": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, map[string]any{"sku": r.PathValue("sku"), "name": "Desk lamp", "price_cents": 1999})
			},
		}),
		shipping: newStub(t, map[string]http.HandlerFunc{
			"GET /shipments/{id}": func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, map[string]any{
					"order_id": r.PathValue("id"), "status": "in_transit", "carrier": "postal", "tracking": "PX-42",
				})
			},
		}),
	}
}

// config is an edge's configuration over svcs.
func (svcs *services) config() Config {
	return Config{
		OrdersURL: svcs.orders.srv.URL, CatalogueURL: svcs.catalogue.srv.URL, ShippingURL: svcs.shipping.srv.URL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// running is an edge whose components run in a hexagonal.App.
type running struct {
	*Edge
	client *http.Client // trusts the gateway
	stop   func() error
}

// start runs e's components until the test ends (or stop is called)
// and fails the test if they do not stop cleanly.
func start(t *testing.T, e *Edge) *running {
	t.Helper()
	app, err := hexagonal.New(
		hexagonal.WithComponent(e.Components()...),
		hexagonal.WithSignals(make(chan os.Signal)),
		hexagonal.WithStopTimeout(5*time.Second),
		hexagonal.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	r := &running{Edge: e, client: &http.Client{Transport: &http.Transport{TLSClientConfig: e.ClientTLS()}, Timeout: 10 * time.Second}}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("the app did not stop")
			}
			r.client.CloseIdleConnections()
			stopErr = errors.Join(stopErr, e.Close())
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("App.Run() = %v; want nil", err)
		}
	})
	return r
}

// startEdge makes an edge over svcs with cfg's changes and runs it.
func startEdge(t *testing.T, svcs *services, change func(*Config)) *running {
	t.Helper()
	cfg := svcs.config()
	if change != nil {
		change(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return start(t, e)
}

// token gets a token for one of the default clients.
func (r *running) token(t *testing.T, id string) string {
	t.Helper()
	for _, c := range DefaultClients() {
		if c.ID == id {
			tok, err := FetchToken(context.Background(), r.client, r.TokenURL(), c.ID, c.Secret)
			if err != nil {
				t.Fatalf("FetchToken(%s) = %v", id, err)
			}
			return tok
		}
	}
	t.Fatalf("no client %s", id)
	return ""
}

// response is what a client got.
type response struct {
	status int
	header http.Header
	body   []byte
	resp   *http.Response
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// do sends a request to the gateway; header holds name, value pairs.
func (r *running) do(t *testing.T, method, path, token, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.GatewayURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, resp: resp}
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }
