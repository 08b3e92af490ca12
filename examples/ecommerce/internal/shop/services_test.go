package shop

import (
	"encoding/json"
	"net/http"
	"testing"
)

// getJSON GETs url into out and returns the status.
func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// Every service serves /livez, /readyz and /health.
func TestHealth(t *testing.T) {
	s := started(t, Config{})
	u := s.URLs()
	for _, base := range []string{u.Orders, u.Catalogue, u.Payment, u.Inventory, u.Shipping} {
		for _, path := range []string{"/livez", "/readyz"} {
			if code := getJSON(t, base+path, nil); code != http.StatusOK {
				t.Errorf("GET %s%s: %d", base, path, code)
			}
		}
		var h struct {
			Status string `json:"status"`
		}
		if code := getJSON(t, base+"/health", &h); code != http.StatusOK || h.Status == "" {
			t.Errorf("GET %s/health: %d %+v", base, code, h)
		}
	}
	// Faults do not make a service unhealthy: it is up, and failing.
	s.Faults().ShippingDown(true)
	defer s.Faults().Reset()
	if code := getJSON(t, u.Shipping+"/livez", nil); code != http.StatusOK {
		t.Errorf("shipping down: /livez %d", code)
	}
	if code := getJSON(t, u.Shipping+"/shipments/ord-x", nil); code != http.StatusServiceUnavailable {
		t.Errorf("shipping down: GET /shipments answered %d, want 503", code)
	}
}

// The catalogue reads products through its cache: the repository is read
// once per product, however often it is asked.
func TestCatalogueCache(t *testing.T) {
	s := started(t, Config{Only: Catalogue})
	base := s.URLs().Catalogue
	var list []Product
	for range 3 {
		if code := getJSON(t, base+"/products", &list); code != http.StatusOK {
			t.Fatalf("GET /products: %d", code)
		}
	}
	if len(list) != len(products) {
		t.Fatalf("GET /products listed %d products, want %d", len(list), len(products))
	}
	var p Product
	if code := getJSON(t, base+"/products/MUG-1", &p); code != http.StatusOK || p.Name != products[1].Name || p.PriceCents != products[1].PriceCents {
		t.Errorf("GET /products/MUG-1: %d %+v", code, p)
	}
	if n := s.catalogue.loads.Load(); n != int64(len(products)) {
		t.Errorf("the repository was read %d times, want %d (once per product)", n, len(products))
	}
	for range 2 {
		if code := getJSON(t, base+"/products/NOPE", nil); code != http.StatusNotFound {
			t.Errorf("GET /products/NOPE: %d, want 404", code)
		}
	}
	if n := s.catalogue.loads.Load(); n != int64(len(products))+1 {
		t.Errorf("the repository was read %d times, want %d: a missing product is cached as missing", n, len(products)+1)
	}
}
