package shop

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// Each service alone, as separate processes would run them: the order
// service reaches the others by their URLs.
func TestOnly(t *testing.T) {
	alone := map[string]*Shop{}
	for _, name := range []string{Payment, Inventory, Shipping, Catalogue} {
		alone[name] = started(t, Config{Only: name})
	}
	pay := alone[Payment].URLs()
	if pay.Payment == "" || pay.Orders != "" || pay.Inventory != "" || pay.Catalogue != "" || pay.Shipping != "" {
		t.Fatalf("a payment service alone has the URLs %+v", pay)
	}
	if resp, err := http.Get(pay.Payment + "/products"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the payment service serves the catalogue: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if _, err := New(context.Background(), Config{Only: Orders}); err == nil {
		t.Fatal("an order service without the others' URLs was made")
	}
	if _, err := New(context.Background(), Config{Only: "billing"}); err == nil {
		t.Fatal("an unknown service was made")
	}
	// A shop made and never run leaves nothing running once closed
	// (goleak checks).
	idle, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	idle.Close()
	idle.Close()

	orders := started(t, Config{Only: Orders, Remote: Addrs{
		Catalogue: alone[Catalogue].URLs().Catalogue,
		Payment:   pay.Payment,
		Inventory: alone[Inventory].URLs().Inventory,
		Shipping:  alone[Shipping].URLs().Shipping + "/",
	}})
	if u := orders.URLs(); u.Orders == "" || u.Payment != pay.Payment {
		t.Fatalf("the order service alone has the URLs %+v", u)
	}
	_, out := placeOrder(t, orders, "k-alone", "frank", Line{"BOOK-1", 2})
	id, _ := out["order_id"].(string)
	orderEnds(t, orders, id, "completed", 15*time.Second)
	if !alone[Inventory].stock.held(id) {
		t.Errorf("the inventory service alone holds no stock for %s", id)
	}

	// The faults are those of the process that runs the service.
	alone[Payment].Faults().DeclineCustomer("grace")
	_, out = placeOrder(t, orders, "k-alone-declined", "grace", Line{"MUG-1", 1})
	id, _ = out["order_id"].(string)
	orderEnds(t, orders, id, "compensated", 15*time.Second)
	if alone[Inventory].stock.held(id) {
		t.Errorf("the declined order still holds stock")
	}
}

// An order that cannot be priced because the catalogue is down is not
// placed, and the client is told to send it again (after the retries and
// with the breaker counting the failures).
func TestCatalogueDown(t *testing.T) {
	orders := started(t, Config{Only: Orders, Remote: Addrs{
		Catalogue: "http://127.0.0.1:1", Payment: "http://127.0.0.1:1",
		Inventory: "http://127.0.0.1:1", Shipping: "http://127.0.0.1:1",
	}})
	code, out := placeOrder(t, orders, "k-down", "ivan", Line{"BOOK-1", 1})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("POST with the catalogue down: %d %v, want 503", code, out)
	}
}
