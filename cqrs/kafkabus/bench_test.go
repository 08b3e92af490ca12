package kafkabus_test

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

	"github.com/twmb/franz-go/pkg/kgo"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// The benchmarks compare, in one run, kafkabus with franz-go used bare
// doing the same work, on a kfake cluster of three brokers in the process
// (or the cluster of PATTERNS_KAFKA_BROKERS), topics of four partitions,
// messages keyed over 16 streams, no-op telemetry. Both sides' clients
// have the same options (the tests' fastClient: linger 0, the same fetch
// wait and sizes; acks=all and franz-go's idempotent producer), and their
// records the same key, value and headers (cqrs-id, cqrs-type, cqrs-key;
// no trace context: with no-op telemetry there is no span context to
// carry, so Publish adds none). Each round runs both sides, in an order
// that alternates from round to round, on fresh topics; each benchmark
// reports the medians over KAFKABUS_BENCH_ROUNDS rounds (default 7) of
// both rates and of their ratio round by round (kafkabus/bare: 1 is as
// fast as bare), and of what each side cost per message between the
// start and the end of its timing: allocations and CPU time, the
// process's whole (kfake's included, the same work on both sides), which
// the machine's load moves far less than the rates (cpu-ratio is
// kafkabus/bare: below 1 is cheaper than bare). kfake shares the process
// and its CPU with the clients, so the ratios, not the rates, are the
// figures to read; on a shared, loaded machine, run them once per
// invocation:
//
//	go test -run '^$' -bench . -benchtime 1x ./cqrs/kafkabus
//
// KAFKABUS_BENCH_ONLY=kafkabus (or bare) runs one side only, for
// profiling.

// BenchmarkPublish: KAFKABUS_BENCH_MSGS messages (default 5,000) in
// batches of 100, each batch one Publish (kafkabus) or one ProduceSync of
// the same records, with the headers Publish writes (bare), returning
// once acknowledged with acks=all.
func BenchmarkPublish(b *testing.B) {
	runBench(b, 5000, func(b *testing.B, env *benchEnv, side string, n int, m *meter) {
		topic := env.topic(b, side)
		msgs := benchMessages(n)
		m.start()
		ktopic := env.bus.KafkaTopic(topic)
		for i := 0; i < n; i += 100 {
			batch := msgs[i:min(i+100, n)]
			if side == "bare" {
				recs := make([]*kgo.Record, len(batch))
				for j, m := range batch {
					recs[j] = bareRecord(ktopic, m)
				}
				if err := env.producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
			} else if err := env.bus.Publish(context.Background(), topic, batch...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConsume: KAFKABUS_BENCH_MSGS records (default 20,000), produced
// beforehand, consumed by a new consumer group from the creation of its
// member to the commit of the last offset: a kafkabus subscription
// (Concurrency 1, a handler that counts, Close), against a bare franz-go
// group consumer (cooperative-sticky, PollRecords, a MarkCommitRecords
// per record after the same count, CommitMarkedOffsets, Close).
func BenchmarkConsume(b *testing.B) {
	runBench(b, 20000, func(b *testing.B, env *benchEnv, side string, n int, m *meter) {
		topic := env.topic(b, side)
		ktopic := env.bus.KafkaTopic(topic)
		msgs := benchMessages(n)
		recs := make([]*kgo.Record, n)
		for i, m := range msgs {
			recs[i] = bareRecord(ktopic, m)
		}
		if err := env.producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		var count atomic.Int64
		m.start()
		if side == "bare" {
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(env.brokers...), kgo.ConsumerGroup("g-" + topic),
				kgo.ConsumeTopics(ktopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.AutoCommitMarks()}, fastClient...)...)
			if err != nil {
				b.Fatal(err)
			}
			for count.Load() < int64(n) {
				fetches := cl.PollRecords(context.Background(), 1000)
				fetches.EachRecord(func(r *kgo.Record) {
					count.Add(1)
					cl.MarkCommitRecords(r)
				})
			}
			if err := cl.CommitMarkedOffsets(context.Background()); err != nil {
				b.Fatal(err)
			}
			cl.Close()
			return
		}
		done := make(chan struct{})
		s, err := env.bus.Subscribe(context.Background(), topic, "g-"+topic, func(context.Context, cqrs.Message) error {
			if count.Add(1) == int64(n) {
				close(done)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		<-done
		_ = s.Close()
	})
}

// benchEnv is the cluster, bus and bare producer of a benchmark.
type benchEnv struct {
	brokers  []string
	bus      *kafkabus.Bus
	producer *kgo.Client
	topics   int
}

// topic returns a fresh topic, set up.
func (e *benchEnv) topic(b *testing.B, side string) string {
	e.topics++
	t := fmt.Sprintf("t%d-%s", e.topics, side)
	if err := e.bus.Setup(context.Background(), t); err != nil {
		b.Fatal(err)
	}
	return t
}

// runBench runs rounds of side "bare" and "kafkabus", alternating which
// goes first, and reports the medians.
func runBench(b *testing.B, defaultN int, run func(b *testing.B, env *benchEnv, side string, n int, m *meter)) {
	n := envInt(b, "KAFKABUS_BENCH_MSGS", defaultN)
	rounds := envInt(b, "KAFKABUS_BENCH_ROUNDS", 7)
	c := newCluster(b, 3)
	bus := newBus(b, c, kafkabus.WithTracerProvider(tracenoop.NewTracerProvider()),
		kafkabus.WithMeterProvider(metricnoop.NewMeterProvider()))
	producer, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.RequiredAcks(kgo.AllISRAcks())}, fastClient...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(producer.Close)
	env := &benchEnv{brokers: c.brokers, bus: bus, producer: producer}
	only := os.Getenv("KAFKABUS_BENCH_ONLY")
	var bare, bus1, ratios, bareAllocs, busAllocs, bareCPU, busCPU, cpuRatios []float64
	var m meter
	for b.Loop() {
		for r := range rounds {
			sides := []string{"bare", "kafkabus"}
			if r%2 == 1 {
				slices.Reverse(sides)
			}
			rate, allocs, cpu := map[string]float64{}, map[string]float64{}, map[string]float64{}
			for _, side := range sides {
				if only != "" && only != side {
					continue
				}
				run(b, env, side, n, &m)
				wall, cpuTime, mallocs, cpuOK := m.stop()
				rate[side] = float64(n) / wall.Seconds()
				if cpuOK {
					cpu[side] = float64(cpuTime.Nanoseconds()) / 1e3 / float64(n)
				}
				allocs[side] = float64(mallocs) / float64(n)
			}
			b.Logf("round %d: bare %.0f msgs/s %.2f µs CPU/msg %.1f allocs/msg, kafkabus %.0f msgs/s %.2f µs CPU/msg %.1f allocs/msg",
				r, rate["bare"], cpu["bare"], allocs["bare"], rate["kafkabus"], cpu["kafkabus"], allocs["kafkabus"])
			if v, ok := rate["bare"]; ok {
				bare, bareAllocs = append(bare, v), append(bareAllocs, allocs["bare"])
			}
			if v, ok := rate["kafkabus"]; ok {
				bus1, busAllocs = append(bus1, v), append(busAllocs, allocs["kafkabus"])
			}
			if len(rate) == 2 {
				ratios = append(ratios, rate["kafkabus"]/rate["bare"])
			}
			if v, ok := cpu["bare"]; ok {
				bareCPU = append(bareCPU, v)
			}
			if v, ok := cpu["kafkabus"]; ok {
				busCPU = append(busCPU, v)
			}
			if len(cpu) == 2 {
				cpuRatios = append(cpuRatios, cpu["kafkabus"]/cpu["bare"])
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	report := func(v []float64, unit string) {
		if len(v) > 0 {
			b.ReportMetric(median(v), unit)
		}
	}
	report(bare, "bare-msgs/s")
	report(bus1, "kafkabus-msgs/s")
	report(ratios, "ratio")
	report(bareAllocs, "bare-allocs/msg")
	report(busAllocs, "kafkabus-allocs/msg")
	report(bareCPU, "bare-cpu-µs/msg")
	report(busCPU, "kafkabus-cpu-µs/msg")
	report(cpuRatios, "cpu-ratio")
	b.Logf("%d messages a round, %d rounds; kafkabus/bare by round: %.2f; CPU kafkabus/bare by round: %.2f", n, len(ratios), ratios, cpuRatios)
}

// meter measures a side's run, from its call of start to the run's end:
// the wall time, the process's CPU time and its allocations.
type meter struct {
	ms      runtime.MemStats
	t0      time.Time
	cpu0    time.Duration
	cpuOK   bool
	mallocs uint64
}

// start starts the measure.
func (m *meter) start() {
	runtime.ReadMemStats(&m.ms)
	m.mallocs = m.ms.Mallocs
	m.cpu0, m.cpuOK = testenv.ProcessCPU()
	m.t0 = time.Now()
}

// stop returns the measures since start; ok is false where the CPU time
// is not known.
func (m *meter) stop() (wall, cpu time.Duration, mallocs uint64, ok bool) {
	wall = time.Since(m.t0)
	cpu1, ok := testenv.ProcessCPU()
	runtime.ReadMemStats(&m.ms)
	return wall, cpu1 - m.cpu0, m.ms.Mallocs - m.mallocs, ok && m.cpuOK
}

// benchMessages returns n messages keyed over 16 streams.
func benchMessages(n int) []cqrs.Message {
	msgs := make([]cqrs.Message, n)
	data := []byte(`{"order":"42","total":1200}`)
	for i := range msgs {
		msgs[i] = cqrs.Message{ID: "m" + strconv.Itoa(i), Type: "order.placed.v1", Data: data,
			Key: "stream-" + strconv.Itoa(i%16)}
	}
	return msgs
}

// bareRecord returns the record Publish makes of m (without trace
// context: the telemetry is no-op).
func bareRecord(ktopic string, m cqrs.Message) *kgo.Record {
	return &kgo.Record{Topic: ktopic, Key: []byte(m.Key), Value: m.Data,
		Headers: []kgo.RecordHeader{{Key: "cqrs-id", Value: []byte(m.ID)}, {Key: "cqrs-type", Value: []byte(m.Type)},
			{Key: "cqrs-key", Value: []byte(m.Key)}}}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
