package hexagonal_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/otelpatterns/patterns/hexagonal"
)

// cancelledError is a domain error as a domain package defines it,
// without importing hexagonal.
type cancelledError struct{ id string }

func (e *cancelledError) Error() string      { return "order " + e.id + " is cancelled" }
func (e *cancelledError) DomainKind() string { return "rejected" }

type oddKindError struct{}

func (oddKindError) Error() string      { return "odd" }
func (oddKindError) DomainKind() string { return "something_else" }

func TestWriteProblem(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   map[string]any
	}{
		{"not found", hexagonal.Errorf(hexagonal.KindNotFound, "order %s not found", "o-1"), 404,
			map[string]any{"title": "Not Found", "status": 404.0, "detail": "order o-1 not found", "kind": "not_found"}},
		{"wrapped domain error", fmt.Errorf("pay: %w", &cancelledError{"o-2"}), 422,
			map[string]any{"title": "Unprocessable Entity", "status": 422.0, "detail": "pay: order o-2 is cancelled", "kind": "rejected"}},
		{"wrapped with two %w", fmt.Errorf("pay: %w: %w", &cancelledError{"o-3"}, errors.New("pq: deadlock detected")), 422,
			map[string]any{"title": "Unprocessable Entity", "status": 422.0, "detail": "order o-3 is cancelled", "kind": "rejected"}},
		{"joined under a wrapper", fmt.Errorf("save: %w", errors.Join(errors.New("pq: deadlock detected"),
			fmt.Errorf("order o-4: %w", &cancelledError{"o-4"}))), 422,
			map[string]any{"title": "Unprocessable Entity", "status": 422.0, "detail": "order o-4: order o-4 is cancelled", "kind": "rejected"}},
		{"joined with an internal error, whose text is not told", errors.Join(errors.New("pq: password authentication failed"),
			hexagonal.Errorf(hexagonal.KindConflict, "version 3 != 4")), 409,
			map[string]any{"title": "Conflict", "status": 409.0, "detail": "version 3 != 4", "kind": "conflict"}},
		{"invalid", hexagonal.Errorf(hexagonal.KindInvalid, "bad"), 400, nil},
		{"unauthorized", hexagonal.Errorf(hexagonal.KindUnauthorized, "who"), 401, nil},
		{"forbidden", hexagonal.Errorf(hexagonal.KindForbidden, "no"), 403, nil},
		{"unavailable", hexagonal.Errorf(hexagonal.KindUnavailable, "later"), 503, nil},
		{"unknown kind", oddKindError{}, 422, nil},
		{"internal error tells nothing", fmt.Errorf("query: %w", errors.New("pq: password authentication failed")), 500,
			map[string]any{"title": "Internal Server Error", "status": 500.0}},
		{"a problem chosen by the adapter", fmt.Errorf("x: %w", &hexagonal.Problem{Type: "https://example.com/probs/out-of-credit",
			Title: "You do not have enough credit.", Status: 403, Detail: "Your balance is 30, but that costs 50.",
			Extensions: map[string]any{"balance": 30, "status": "ignored"}}), 403,
			map[string]any{"type": "https://example.com/probs/out-of-credit", "title": "You do not have enough credit.",
				"status": 403.0, "detail": "Your balance is 30, but that costs 50.", "balance": 30.0}},
		{"a problem with a status net/http cannot write", &hexagonal.Problem{Status: 42}, 500,
			map[string]any{"status": 500.0}},
		{"a problem with an informational status", &hexagonal.Problem{Status: 103}, 500,
			map[string]any{"status": 500.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			hexagonal.WriteProblem(w, tt.err)
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d; want %d", w.Code, tt.wantStatus)
			}
			if got := hexagonal.StatusOf(tt.err); got != tt.wantStatus {
				t.Errorf("StatusOf() = %d; want %d", got, tt.wantStatus)
			}
			if ct := w.Header().Get("Content-Type"); ct != hexagonal.ProblemContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if tt.wantBody == nil {
				return
			}
			if len(body) != len(tt.wantBody) {
				t.Errorf("body = %v; want %v", body, tt.wantBody)
			}
			for k, v := range tt.wantBody {
				if body[k] != v {
					t.Errorf("body[%q] = %v; want %v (body %v)", k, body[k], v, body)
				}
			}
		})
	}
}

func TestDomainKind(t *testing.T) {
	if _, ok := hexagonal.DomainKind(errors.New("x")); ok {
		t.Error("DomainKind(plain error) reports a kind")
	}
	if _, ok := hexagonal.DomainKind(nil); ok {
		t.Error("DomainKind(nil) reports a kind")
	}
	err := hexagonal.Errorf(hexagonal.KindNotFound, "load: %w", http.ErrNoCookie)
	if kind, ok := hexagonal.DomainKind(fmt.Errorf("a: %w", err)); !ok || kind != hexagonal.KindNotFound {
		t.Errorf("DomainKind() = %q, %v", kind, ok)
	}
	if !errors.Is(err, http.ErrNoCookie) {
		t.Error("Errorf does not wrap with %w")
	}
	if got := (&hexagonal.Problem{Status: 404, Detail: "gone"}).Error(); got != "Not Found: gone" {
		t.Errorf("Problem.Error() = %q", got)
	}
}

// TestNilProblemInChainAnswers500: a nil *Problem in an error's chain
// (the typed nil an adapter's func() *Problem returns for no problem)
// is no problem: WriteProblem answers the error as any other, with a
// 500, rather than dereferencing it.
func TestNilProblemInChainAnswers500(t *testing.T) {
	var p *hexagonal.Problem
	var err error = p
	defer func() {
		if v := recover(); v != nil {
			t.Errorf("WriteProblem(nil *Problem) panicked: %v", v)
		}
	}()
	w := httptest.NewRecorder()
	hexagonal.WriteProblem(w, err)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status = %d; want 500", w.Code)
	}
}
