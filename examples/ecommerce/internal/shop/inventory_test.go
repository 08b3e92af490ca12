package shop

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// The inventory refuses a line that is not a positive quantity: a
// negative one would add to the stock, and its release take it away.
func TestInventoryRefusesBadQuantities(t *testing.T) {
	s := started(t, Config{Only: Inventory})
	before := s.stock.level("MUG-1")
	for _, qty := range []int{-5, 0} {
		body, _ := json.Marshal(ReserveRequest{OrderID: "ord-bad", Lines: []Line{{"MUG-1", qty}}})
		resp, err := http.Post(s.URLs().Inventory+"/reservations", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("reserve %d of MUG-1: %d, want 400", qty, resp.StatusCode)
		}
	}
	if got := s.stock.level("MUG-1"); got != before || s.stock.held("ord-bad") {
		t.Errorf("MUG-1 on hand %d, want %d (held: %v)", got, before, s.stock.held("ord-bad"))
	}
}
