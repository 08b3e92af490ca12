package natsbus_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// BenchmarkConsume compares, in one run, how many messages a second a
// natsbus subscription (Concurrency 1, DefaultPrefetch, a handler that
// does nothing, no-op telemetry) consumes and acknowledges with a bare
// nats.go JetStream consumer doing the same: a durable pull consumer with
// explicit acknowledgement, Consume with the same PullMaxMessages, and an
// Ack per message in the callback.
//
// Each round publishes NATSBUS_BENCH_MSGS messages (default 50,000, with
// the headers natsbus's Publish writes) to one fresh topic per consumer,
// then lets the bare consumer and the subscription, in an order that
// alternates from round to round, consume its topic: from the creation of
// the consumer (the subscription creates its own) to the moment the
// server's acknowledgement floor reaches the last message. It reports the
// medians over NATSBUS_BENCH_ROUNDS rounds (default 9) of both rates and
// of their ratio round by round (natsbus/bare; 1 is as fast as bare), and
// the same for the CPU time the test process spent per message meanwhile
// (client side only: the server is another process), which the machine's
// load moves less than the rates, and the allocations per message of
// each side (the Info requests that wait for the acknowledgement floor
// included, on both sides). Run it once per invocation:
//
//	PATTERNS_NATS_URL=nats://127.0.0.1:4222 go test -run '^$' -bench Consume -benchtime 1x ./cqrs/natsbus
//
// NATSBUS_BENCH_ONLY=natsbus (or bare) runs one side only, for profiling.
func BenchmarkConsume(b *testing.B) {
	n := envInt(b, "NATSBUS_BENCH_MSGS", 50000)
	rounds := envInt(b, "NATSBUS_BENCH_ROUNDS", 9)
	only := os.Getenv("NATSBUS_BENCH_ONLY")
	bus, js, stream := newBus(b,
		natsbus.WithTracerProvider(tracenoop.NewTracerProvider()),
		natsbus.WithMeterProvider(metricnoop.NewMeterProvider()))
	prefix := subject(stream, "")
	data := []byte(`{"order":"42","total":1200}`)
	var bare, bus1, ratios, bareCPU, busCPU, cpuRatios, bareAllocs, busAllocs []float64
	var ms runtime.MemStats
	topics := 0
	for b.Loop() {
		for r := range rounds {
			sides := []string{"bare", "natsbus"}
			if r%2 == 1 {
				slices.Reverse(sides)
			}
			rate, cpu, allocs := map[string]float64{}, map[string]float64{}, map[string]float64{}
			for _, side := range sides {
				if only != "" && only != side {
					continue
				}
				topics++
				topic := fmt.Sprintf("t%d-%s", topics, side)
				prepublish(b, js, stream, prefix+topic, n, data)
				var d time.Duration
				runtime.ReadMemStats(&ms)
				m0 := ms.Mallocs
				cpu0, cpuOK := testenv.ProcessCPU()
				if side == "bare" {
					d = consumeBare(b, js, stream, prefix+topic, n)
				} else {
					d = consumeBus(b, bus, js, stream, topic, n)
				}
				rate[side] = float64(n) / d.Seconds()
				if cpu1, ok := testenv.ProcessCPU(); ok && cpuOK {
					cpu[side] = float64((cpu1 - cpu0).Nanoseconds()) / 1e3 / float64(n)
				}
				runtime.ReadMemStats(&ms)
				allocs[side] = float64(ms.Mallocs-m0) / float64(n)
			}
			b.Logf("round %d: bare %.0f msgs/s %.2f µs CPU/msg %.1f allocs/msg, natsbus %.0f msgs/s %.2f µs CPU/msg %.1f allocs/msg",
				r, rate["bare"], cpu["bare"], allocs["bare"], rate["natsbus"], cpu["natsbus"], allocs["natsbus"])
			if v, ok := rate["bare"]; ok {
				bare, bareAllocs = append(bare, v), append(bareAllocs, allocs["bare"])
			}
			if v, ok := rate["natsbus"]; ok {
				bus1, busAllocs = append(bus1, v), append(busAllocs, allocs["natsbus"])
			}
			if len(rate) == 2 {
				ratios = append(ratios, rate["natsbus"]/rate["bare"])
			}
			if v, ok := cpu["bare"]; ok {
				bareCPU = append(bareCPU, v)
			}
			if v, ok := cpu["natsbus"]; ok {
				busCPU = append(busCPU, v)
			}
			if len(cpu) == 2 {
				cpuRatios = append(cpuRatios, cpu["natsbus"]/cpu["bare"])
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	if len(bare) > 0 {
		b.ReportMetric(median(bare), "bare-msgs/s")
	}
	if len(bus1) > 0 {
		b.ReportMetric(median(bus1), "natsbus-msgs/s")
	}
	if len(ratios) > 0 {
		b.ReportMetric(median(ratios), "ratio")
	}
	if len(bareCPU) > 0 {
		b.ReportMetric(median(bareCPU), "bare-cpu-µs/msg")
	}
	if len(busCPU) > 0 {
		b.ReportMetric(median(busCPU), "natsbus-cpu-µs/msg")
	}
	if len(cpuRatios) > 0 {
		b.ReportMetric(median(cpuRatios), "cpu-ratio")
	}
	if len(bareAllocs) > 0 {
		b.ReportMetric(median(bareAllocs), "bare-allocs/msg")
	}
	if len(busAllocs) > 0 {
		b.ReportMetric(median(busAllocs), "natsbus-allocs/msg")
	}
}

// prepublish stores n messages on subj with the headers natsbus's Publish
// writes (no trace context: the propagator is the no-op one).
func prepublish(b *testing.B, js jetstream.JetStream, stream, subj string, n int, data []byte) {
	b.Helper()
	for i := range n {
		id := strconv.Itoa(i)
		msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{
			nats.MsgIdHdr:                  {subj + " " + id},
			"Cqrs-Id":                      {id},
			jetstream.ExpectedStreamHeader: {stream},
			"Cqrs-Type":                    {"order.placed.v1"},
		}}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == n-1 {
			// In batches: the client fails a publish beyond 4,000 pending.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publishing timed out")
			}
		}
	}
}

// consumeBare consumes and acknowledges the n messages of subj with a bare
// consumer and returns how long it took.
func consumeBare(b *testing.B, js jetstream.JetStream, stream, subj string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	var handled atomic.Int64
	all := make(chan struct{})
	start := time.Now()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "bare-" + strconv.FormatInt(start.UnixNano(), 36), FilterSubject: subj,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: natsbus.DefaultAckWait, MaxAckPending: 1000,
	})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			b.Error(err)
		}
		if handled.Add(1) == int64(n) {
			close(all)
		}
	}, jetstream.PullMaxMessages(natsbus.DefaultPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	waitAcked(b, all, cons, n)
	return time.Since(start)
}

// consumeBus consumes the n messages of topic with a subscription of bus
// and returns how long it took, acknowledgements included.
func consumeBus(b *testing.B, bus *natsbus.Bus, js jetstream.JetStream, stream, topic string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	var handled atomic.Int64
	all := make(chan struct{})
	start := time.Now()
	sub, err := bus.Subscribe(ctx, topic, "bench", func(context.Context, cqrs.Message) error {
		if handled.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	cons, err := js.Consumer(ctx, stream, natsbus.ConsumerName("bench", topic))
	if err != nil {
		b.Fatal(err)
	}
	waitAcked(b, all, cons, n)
	return time.Since(start)
}

// waitAcked waits for all to close, then for the server to have every one
// of the n messages of cons acknowledged.
func waitAcked(b *testing.B, all <-chan struct{}, cons jetstream.Consumer, n int) {
	b.Helper()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("not all %d messages handled", n)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		info, err := cons.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.AckFloor.Consumer >= uint64(n) && info.NumAckPending == 0 {
			return
		}
	}
	b.Fatalf("not all %d messages acknowledged", n)
}

// envInt returns the positive integer in the environment variable name,
// or def when it is unset.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
