package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/otelpatterns/patterns/examples/orders/adapters/payment"
)

// declineAbove is the largest charge, in cents, the fake payment service
// accepts.
const declineAbove = 1000_00

// paymentService is a stand-in for a payment provider: it charges once per
// Idempotency-Key, declines charges above declineAbove with 402, and
// answers the first attempt of each key with 503, as a flaky dependency
// does, so that the client's retry shows.
type paymentService struct {
	*httptest.Server
	mu       sync.Mutex
	attempts map[string]int
	payments map[string]string // by idempotency key
}

func newPaymentService() *paymentService {
	s := &paymentService{attempts: map[string]int{}, payments: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charges", s.charge)
	s.Server = httptest.NewServer(mux)
	return s
}

func (s *paymentService) charge(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	var req payment.ChargeRequest
	if key == "" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "bad charge", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[key]++
	if s.attempts[key] == 1 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if req.Cents > declineAbove {
		http.Error(w, "declined", http.StatusPaymentRequired)
		return
	}
	id, ok := s.payments[key]
	if !ok {
		id = fmt.Sprintf("pay-%d", len(s.payments)+1)
		s.payments[key] = id
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(payment.ChargeResponse{PaymentID: id})
}
