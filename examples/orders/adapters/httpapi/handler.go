// Package httpapi is the driving adapter: the order system's HTTP API,
// calling the use cases and answering their errors as problem details
// (RFC 9457) with the status of their kind.
//
//	POST /orders              {"customer": ..., "lines": [...]}  201
//	GET  /orders/{id}                                            200
//	POST /orders/{id}/pay     {"amount": cents}                  200
//	POST /orders/{id}/cancel  {"reason": ...}                    200
package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/orders/app"
	"github.com/otelpatterns/patterns/examples/orders/domain"
	"github.com/otelpatterns/patterns/hexagonal"
)

// maxBody bounds a request body.
const maxBody = 1 << 16

// answer is what a handler's operation returns: a status and a body.
type answer struct {
	status int
	body   any
}

// New returns the API's handler on the use cases, each route traced and
// counted as a driving adapter's call (OrdersAPI.PlaceOrder, ...) with
// opts: a server span that continues the caller's W3C trace context.
func New(orders *app.Orders, opts ...hexagonal.InstrumentOption) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, operation string, f func(context.Context, *http.Request) (answer, error)) {
		call := hexagonal.Instrument(hexagonal.DrivingAdapter, "OrdersAPI", operation,
			func(ctx context.Context, r *http.Request) (answer, error) {
				span := trace.SpanFromContext(ctx)
				span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(r.Pattern))
				a, err := f(ctx, r)
				status := a.status
				if err != nil {
					status = hexagonal.StatusOf(err)
				}
				span.SetAttributes(semconv.HTTPResponseStatusCode(status))
				return a, err
			}, opts...)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			a, err := call(ctx, r)
			if err != nil {
				hexagonal.WriteProblem(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			_ = json.NewEncoder(w).Encode(a.body)
		})
	}
	route("POST /orders", "PlaceOrder", func(ctx context.Context, r *http.Request) (answer, error) {
		var in app.PlaceOrder
		if err := decode(r, &in); err != nil {
			return answer{}, err
		}
		v, err := orders.Place(ctx, in)
		return answer{http.StatusCreated, v}, err
	})
	route("GET /orders/{id}", "GetOrder", func(ctx context.Context, r *http.Request) (answer, error) {
		id, err := domain.ParseOrderID(r.PathValue("id"))
		if err != nil {
			return answer{}, err
		}
		v, err := orders.Get(ctx, id)
		return answer{http.StatusOK, v}, err
	})
	route("POST /orders/{id}/pay", "PayOrder", func(ctx context.Context, r *http.Request) (answer, error) {
		id, err := domain.ParseOrderID(r.PathValue("id"))
		if err != nil {
			return answer{}, err
		}
		var in struct {
			Amount domain.Money `json:"amount"`
		}
		if err := decode(r, &in); err != nil {
			return answer{}, err
		}
		v, err := orders.Pay(ctx, app.PayOrder{ID: id, Amount: in.Amount})
		return answer{http.StatusOK, v}, err
	})
	route("POST /orders/{id}/cancel", "CancelOrder", func(ctx context.Context, r *http.Request) (answer, error) {
		id, err := domain.ParseOrderID(r.PathValue("id"))
		if err != nil {
			return answer{}, err
		}
		var in struct {
			Reason string `json:"reason"`
		}
		if err := decode(r, &in); err != nil {
			return answer{}, err
		}
		v, err := orders.Cancel(ctx, app.CancelOrder{ID: id, Reason: in.Reason})
		return answer{http.StatusOK, v}, err
	})
	return mux
}

// decode reads r's JSON body into v; a malformed one is the client's
// error (400).
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return hexagonal.Errorf(hexagonal.KindInvalid, "malformed request body: %v", err)
	}
	return nil
}
