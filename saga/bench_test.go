package saga_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelpatterns/patterns/internal/testenv"
	"github.com/otelpatterns/patterns/saga"
)

// benchOrder is the data of the benchmark's saga, as small as a real
// one's: ids and a few fields.
type benchOrder struct {
	ID        string
	Customer  string
	Cents     int64
	PaymentID string
}

func noopAction(context.Context, benchOrder) (func(*benchOrder), error) { return nil, nil }
func noopCompensate(context.Context, benchOrder) error                  { return nil }

// payAction records a payment id in the data, as a step with a result
// does: the orchestrator applies the update to the data and encodes it.
func payAction(context.Context, benchOrder) (func(*benchOrder), error) {
	return func(o *benchOrder) { o.PaymentID = "pay-1" }, nil
}

// benchSteps is how many steps the benchmark's saga has.
const benchSteps = 3

func benchDefinition(b *testing.B) *saga.Definition[benchOrder] {
	return benchDefinitionWith(b, noopAction)
}

// benchDefinitionWith is benchDefinition with pay as the first step's
// action.
func benchDefinitionWith(b *testing.B, pay func(context.Context, benchOrder) (func(*benchOrder), error)) *saga.Definition[benchOrder] {
	b.Helper()
	def, err := saga.Define("bench", 1,
		saga.Step[benchOrder]{Name: "pay", Action: pay, Compensate: noopCompensate},
		saga.Step[benchOrder]{Name: "reserve", Action: noopAction, Compensate: noopCompensate},
		saga.Step[benchOrder]{Name: "ship", Action: noopAction, Compensate: noopCompensate},
	)
	if err != nil {
		b.Fatal(err)
	}
	return def
}

// reportPerStep reports the time per step of the saga.
func reportPerStep(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchSteps, "ns/step")
}

// reportCPU reports the CPU time per saga that the process used since
// start (a testenv.ProcessCPU reading), all goroutines and the GC included: a
// figure that other processes on a loaded machine change less than the
// time.
func reportCPU(b *testing.B, start time.Duration, ok bool) {
	if end, ok2 := testenv.ProcessCPU(); ok && ok2 {
		b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkSaga measures what the orchestrator adds to each step: a saga
// of three no-op steps on a MemoryLog, started and waited for, against
// calling the three step functions in sequence. An orchestrated step
// writes two transitions (started, succeeded) and runs on a goroutine of
// its own; the saga adds its creation and its final status.
//
//   - direct: the three actions called one after the other, with their
//     updates applied, as a caller without an orchestrator would;
//   - memory: Start and Wait, one saga at a time, with the default
//     (global, no-op) telemetry;
//   - memory/update: the same, the first step's action updating the data
//     (a payment id), which the orchestrator then encodes and logs;
//   - memory/parallel: the same from GOMAXPROCS goroutines on one
//     orchestrator and log;
//   - memory/sdk: as memory, with OpenTelemetry SDK providers that record
//     every span and metric (no exporter).
func BenchmarkSaga(b *testing.B) {
	ctx := context.Background()

	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		steps := []func(context.Context, benchOrder) (func(*benchOrder), error){noopAction, noopAction, noopAction}
		for b.Loop() {
			d := benchOrder{ID: "order-1", Customer: "Ada", Cents: 6400}
			for _, step := range steps {
				update, err := step(ctx, d)
				if err != nil {
					b.Fatal(err)
				}
				if update != nil {
					update(&d)
				}
			}
		}
		reportPerStep(b)
	})

	run := func(b *testing.B, opts ...saga.Option) {
		b.ReportAllocs()
		def := benchDefinition(b)
		o := newRotating(b, opts...)
		defer o.close()
		start, ok := testenv.ProcessCPU()
		for b.Loop() {
			o.startAndWait(b, def)
		}
		reportCPU(b, start, ok)
		reportPerStep(b)
	}
	b.Run("memory", func(b *testing.B) { run(b) })

	b.Run("memory/update", func(b *testing.B) {
		b.ReportAllocs()
		def := benchDefinitionWith(b, payAction)
		o := newRotating(b)
		defer o.close()
		start, ok := testenv.ProcessCPU()
		for b.Loop() {
			o.startAndWait(b, def)
		}
		reportCPU(b, start, ok)
		reportPerStep(b)
	})

	b.Run("memory/parallel", func(b *testing.B) {
		b.ReportAllocs()
		def := benchDefinition(b)
		o := newRotating(b)
		defer o.close()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o.startAndWait(b, def)
			}
		})
		reportPerStep(b)
	})

	b.Run("memory/sdk", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer func() {
			_ = tp.Shutdown(ctx)
			_ = mp.Shutdown(ctx)
		}()
		run(b, saga.WithTracerProvider(tp), saga.WithMeterProvider(mp))
	})
}

// rotateEvery is how many sagas a rotating orchestrator runs on one
// MemoryLog before it moves to a new one.
const rotateEvery = 1024

// rotating is an orchestrator on a MemoryLog that it replaces, with a new
// orchestrator on a new log, every rotateEvery sagas: a MemoryLog keeps
// every saga, and a log that grows with b.N makes the time per saga grow
// with it (from about 45µs at 2,000 sagas to 90µs at 60,000 on the
// README's machine), which would measure the heap rather than the
// orchestrator. The rotation costs a Close and a NewOrchestrator per
// rotateEvery sagas.
type rotating struct {
	b    *testing.B
	opts []saga.Option
	mu   sync.RWMutex // held for reading while a saga runs, for writing to rotate
	o    *saga.Orchestrator
	n    atomic.Int64
}

func newRotating(b *testing.B, opts ...saga.Option) *rotating {
	r := &rotating{b: b, opts: opts}
	r.o = r.newOrchestrator()
	return r
}

func (r *rotating) newOrchestrator() *saga.Orchestrator {
	o, err := saga.NewOrchestrator(&saga.MemoryLog{}, r.opts...)
	if err != nil {
		r.b.Fatal(err)
	}
	return o
}

// startAndWait starts a saga of def and waits for it to complete.
func (r *rotating) startAndWait(b *testing.B, def *saga.Definition[benchOrder]) {
	ctx := context.Background()
	r.mu.RLock()
	id, err := r.o.Start(ctx, def, benchOrder{ID: "order-1", Customer: "Ada", Cents: 6400})
	if err == nil {
		var st saga.Status
		if st, err = r.o.Wait(ctx, id); err == nil && st != saga.Completed {
			err = fmt.Errorf("status %s; want completed", st)
		}
	}
	r.mu.RUnlock()
	if err != nil {
		b.Error(err)
		return
	}
	if r.n.Add(1)%rotateEvery == 0 {
		r.mu.Lock()
		old := r.o
		r.o = r.newOrchestrator()
		r.mu.Unlock()
		if err := old.Close(ctx); err != nil {
			b.Error(err)
		}
	}
}

func (r *rotating) close() {
	if err := r.o.Close(context.Background()); err != nil {
		r.b.Error(err)
	}
}
