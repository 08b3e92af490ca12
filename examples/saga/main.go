// Command saga shows an order saga run by the [saga.Orchestrator]: an
// order is placed, paid for, reserved in the warehouse and shipped, four
// steps that each commit on their own in a different service; when one
// fails for good, the steps that completed are undone, in reverse order,
// by their compensations.
//
// The saga's data is a typed struct, [Order]; its definition
// (defineOrderSaga) has four steps:
//
//   - order: the order service records the order as pending; undone by
//     cancelling it;
//   - payment: the payment service charges the customer; undone by a refund;
//   - inventory: the warehouse reserves the items; undone by releasing
//     them. Running out of stock is a permanent failure;
//   - shipping: the courier books a label. It is the saga's pivot: once it
//     succeeds, nothing is undone.
//
// The services (shop.go) are fakes that apply each request once per
// idempotency key, as real payment and shipping APIs do; the steps pass
// them [saga.IdempotencyKey], which is the same for every attempt of one
// step of one saga. The program places three orders, one at a time, so that
// the run is repeatable:
//
//   - A-1001 completes, though the payment service's reply to the first
//     charge is lost: the step is retried with the same key, and the
//     service does not charge twice;
//   - A-1002 finds the lamp out of stock: the inventory step fails for
//     good, so the payment is refunded and the order cancelled;
//   - A-1003 is cut short: while the courier is not answering, its
//     orchestrator is closed with a context that has expired, which
//     cancels the attempt in flight and leaves the saga unfinished in the
//     log. A second orchestrator (a restarted process, say) resumes it
//     with [saga.Orchestrator.Recover]: the shipping step runs again, the
//     courier recognises the key, and the saga completes.
//
// After each order the program prints its spans as trees, with their
// saga.step, saga.phase, saga.attempt and saga.outcome attributes: the
// saga's span ("saga place-order") under the program's checkout span, an
// attempt's span ("step payment", "compensate payment") for each attempt,
// the retrier's span around the attempts after the first, and, for the
// resumed saga, a new "saga place-order" span with saga.resumed=true,
// linked to the span of the run that started it.
//
// Run it from the repository root:
//
//	go run ./examples/saga
//
// By default the sagas are kept in memory ([saga.MemoryLog]). To keep them
// in PostgreSQL instead, set PATTERNS_POSTGRES_URL: the program then uses
// saga/pglog in a schema of its own (saga_example_ and a random suffix)
// that it drops at the end. The output is the same on both, but for the
// first lines and the durations; on PostgreSQL the log's own spans (one
// per database call) are left out of the trees.
//
//	PATTERNS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/saga
//
// All the spans and the metrics (saga.executions, saga.steps,
// saga.duration, …) are written to stderr as JSON, once, at the end, with
// -telemetry=json, and sent to an OpenTelemetry collector over OTLP/HTTP
// when the standard variables say so (see the README's "Try it"):
//
//	go run ./examples/saga -telemetry=json 2>telemetry.json
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 go run ./examples/saga
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// scopeName is the instrumentation scope of the program's own spans.
const scopeName = "github.com/otelpatterns/patterns/examples/saga"

// waitLimit bounds how long the program waits for one saga.
const waitLimit = 20 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Stdout, exampleotel.JSONOut())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "saga example:", err)
		os.Exit(1)
	}
}

// run plays the scenario, writing what happens to out and the telemetry
// (as JSON, all of it) to telemetryOut, if not nil. It returns once the
// orchestrators are closed, the log too (its schema dropped, on
// PostgreSQL) and the telemetry flushed, leaving no goroutine behind.
func run(ctx context.Context, out, telemetryOut io.Writer) (err error) {
	otelp, err := newProviders(ctx, telemetryOut)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := otelp.shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutting down telemetry: %w", serr))
		}
	}()

	be, err := openBackend(ctx, otelp)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if cerr := be.close(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the log: %w", cerr))
		}
	}()

	// The steps print from the orchestrators' goroutines.
	out = &syncWriter{w: out}
	s := newShop(out)
	def, err := defineOrderSaga(s, otelp)
	if err != nil {
		return err
	}
	ex := &example{out: out, shop: s, def: def, log: be.log, otelp: otelp, tracer: otelp.tp.Tracer(scopeName)}
	fmt.Fprintf(out, "saga: an order saga on %s\n", be.name)
	if err := ex.scenario(ctx); err != nil {
		return err
	}
	if otelp.traces.logSpan > 0 {
		fmt.Fprintf(out, "\n(the trees leave out the %d spans of the log's database calls)\n", otelp.traces.logSpan)
	}
	return nil
}

// defineOrderSaga returns the definition of the order saga, whose steps
// call the services of s.
func defineOrderSaga(s *shop, otelp *providers) (*saga.Definition[Order], error) {
	// Quick retries, so that the run takes little time; the default
	// policy waits 100ms, then 200ms.
	retries := retry.New(retry.WithName("order.step"), retry.WithMaxAttempts(3),
		retry.WithBackoff(retry.Constant(20*time.Millisecond)),
		retry.WithTracerProvider(otelp.tp), retry.WithMeterProvider(otelp.mp))
	return saga.Define("place-order", 1,
		saga.Step[Order]{Name: "order", Action: s.placeOrder, Compensate: s.cancelOrder, Retry: retries},
		// The payment service applies a charge once per key, so an
		// attempt whose outcome is unknown may safely be made again.
		saga.Step[Order]{Name: "payment", Action: s.charge, Compensate: s.refund, Idempotent: true, Retry: retries},
		saga.Step[Order]{Name: "inventory", Action: s.reserve, Compensate: s.release, Retry: retries},
		saga.Step[Order]{Name: "shipping", Action: s.ship, Pivot: true, Idempotent: true, Retry: retries},
	)
}

// example runs the orders of the scenario and prints what they do.
type example struct {
	out    io.Writer
	shop   *shop
	def    *saga.Definition[Order]
	log    saga.Log
	otelp  *providers
	tracer trace.Tracer
}

// newOrchestrator returns an orchestrator on the run's log and providers.
func (ex *example) newOrchestrator(opts ...saga.Option) (*saga.Orchestrator, error) {
	comp := retry.New(retry.WithName("order.compensation"), retry.WithMaxAttempts(5),
		retry.WithBackoff(retry.Constant(20*time.Millisecond)),
		retry.WithTracerProvider(ex.otelp.tp), retry.WithMeterProvider(ex.otelp.mp))
	return saga.NewOrchestrator(ex.log, append([]saga.Option{
		saga.WithCompensationRetry(comp),
		saga.WithTracerProvider(ex.otelp.tp),
		saga.WithMeterProvider(ex.otelp.mp),
	}, opts...)...)
}

// scenario places the three orders.
func (ex *example) scenario(ctx context.Context) (err error) {
	o1, err := ex.newOrchestrator()
	if err != nil {
		return err
	}
	defer func() {
		// A second Close returns nil at once.
		if cerr := o1.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	ex.shop.loseReplyOf = "A-1001"
	st, err := ex.checkout(ctx, o1, Order{ID: "A-1001", Customer: "Ada",
		Items: []Item{{"book", 2, 12_50}, {"lamp", 1, 39_00}}},
		"pays on the second attempt, after the reply to the first is lost")
	if err != nil || st != saga.Completed {
		return fmt.Errorf("A-1001: got %s, %v; want completed", st, err)
	}

	st, err = ex.checkout(ctx, o1, Order{ID: "A-1002", Customer: "Grace",
		Items: []Item{{"book", 1, 12_50}, {"lamp", 1, 39_00}}},
		"the lamp is out of stock, so the payment is refunded")
	if st != saga.Compensated {
		return fmt.Errorf("A-1002: got %s, %v; want compensated", st, err)
	}

	return ex.recoverOrder(ctx, o1, Order{ID: "A-1003", Customer: "Linus", Items: []Item{{"book", 1, 12_50}}})
}

// checkout runs the saga of order on o, in the span of the request that
// placed it, and waits for it to end.
func (ex *example) checkout(ctx context.Context, o *saga.Orchestrator, order Order, what string) (saga.Status, error) {
	fmt.Fprintf(ex.out, "\norder %s: %s\n", order.ID, what)
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	ctx, span := ex.tracer.Start(ctx, "checkout", trace.WithAttributes(attribute.String("order.id", order.ID)))
	id, err := o.Start(ctx, ex.def, order, saga.WithID(order.ID))
	if err != nil {
		span.End()
		return "", err
	}
	st, err := o.Wait(ctx, id)
	span.End()
	if err != nil {
		fmt.Fprintf(ex.out, "  → %s: %v\n", st, err)
	} else {
		fmt.Fprintf(ex.out, "  → %s\n", st)
	}
	if !st.Final() {
		return st, err
	}
	fmt.Fprintln(ex.out)
	ex.otelp.traces.print(ex.out)
	return st, err
}

// recoverOrder starts the saga of order on o1 and closes o1 while the
// shipping step waits for the courier; a second orchestrator recovers the
// saga and completes it.
func (ex *example) recoverOrder(ctx context.Context, o1 *saga.Orchestrator, order Order) error {
	fmt.Fprintf(ex.out, "\norder %s: its orchestrator stops mid-step; a second one recovers the saga\n", order.ID)
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	ex.shop.hangOn = order.ID

	cctx, span := ex.tracer.Start(ctx, "checkout", trace.WithAttributes(attribute.String("order.id", order.ID)))
	id, err := o1.Start(cctx, ex.def, order, saga.WithID(order.ID))
	if err != nil {
		span.End()
		return err
	}
	select {
	case <-ex.shop.hung:
	case <-ctx.Done():
		span.End()
		return fmt.Errorf("%s: the shipping step did not start: %w", order.ID, ctx.Err())
	}
	// A Close whose context has expired does not wait for the attempts in
	// flight: it cancels them, so their outcome is unknown.
	expired, cancelExpired := context.WithDeadline(ctx, time.Now())
	err = o1.Close(expired)
	cancelExpired()
	span.End()
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("closing orchestrator 1: got %v; want %v", err, context.DeadlineExceeded)
	}
	fmt.Fprintf(ex.out, "  orchestrator 1 closed: %v\n", err)
	rec, ts, err := ex.log.Load(ctx, id)
	if err != nil {
		return err
	}
	last := ts[len(ts)-1]
	fmt.Fprintf(ex.out, "  the log: %s is %s; its last transition, %d, is %s %s %s (attempt %d), with no outcome after it\n",
		id, rec.Status, last.Seq, last.Step, last.Phase, last.Kind, last.Attempt)

	o2, err := ex.newOrchestrator(saga.WithDefinitions(ex.def))
	if err != nil {
		return err
	}
	defer o2.Close(context.WithoutCancel(ctx))
	fmt.Fprintln(ex.out, "  orchestrator 2 starts and calls Recover")
	rctx, rspan := ex.tracer.Start(ctx, "start-up")
	n, err := o2.Recover(rctx)
	rspan.End()
	if err != nil {
		return fmt.Errorf("orchestrator 2: Recover: %w", err)
	}
	st, err := o2.Wait(ctx, id)
	if err != nil || st != saga.Completed {
		return fmt.Errorf("%s: got %s, %v; want completed", id, st, err)
	}
	fmt.Fprintf(ex.out, "  → %s (Recover resumed %d saga)\n", st, n)

	_, ts, err = ex.log.Load(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(ex.out, "\n  the log of %s:\n", id)
	for _, t := range ts {
		if t.Status != "" {
			fmt.Fprintf(ex.out, "  %4d  status %s\n", t.Seq, t.Status)
			continue
		}
		fmt.Fprintf(ex.out, "  %4d  %-9s %-7s %-9s attempt %d\n", t.Seq, t.Step, t.Phase, t.Kind, t.Attempt)
	}
	fmt.Fprintln(ex.out)
	ex.otelp.traces.print(ex.out)
	return o2.Close(ctx)
}

// syncWriter serialises the writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
