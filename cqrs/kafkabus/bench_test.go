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
)

// The benchmarks compare, in one run, kafkabus with franz-go used bare
// doing the same work, on a kfake cluster of three brokers in the process
// (or the cluster of PATTERNS_KAFKA_BROKERS), topics of four partitions,
// messages keyed over 16 streams, no-op telemetry. Each round runs both
// sides, in an order that alternates from round to round, on fresh
// topics; each benchmark reports the medians over KAFKABUS_BENCH_ROUNDS
// rounds (default 7) of both rates and of their ratio round by round
// (kafkabus/bare: 1 is as fast as bare), and the allocations per message
// of each side, the process's whole (kfake's included, the same work on
// both sides), which the machine's load does not move. kfake shares the process and its
// CPU with the clients, so the ratios, not the rates, are the figures to
// read; on a shared, loaded machine, run them once per invocation:
//
//	go test -run '^$' -bench . -benchtime 1x ./cqrs/kafkabus

// BenchmarkPublish: KAFKABUS_BENCH_MSGS messages (default 5,000) in
// batches of 100, each batch one Publish (kafkabus) or one ProduceSync of
// the same records, with the headers Publish writes (bare), returning
// once acknowledged with acks=all.
func BenchmarkPublish(b *testing.B) {
	runBench(b, 5000, func(b *testing.B, env *benchEnv, side string, n int) time.Duration {
		topic := env.topic(b, side)
		msgs := benchMessages(n)
		start := time.Now()
		for i := 0; i < n; i += 100 {
			batch := msgs[i:min(i+100, n)]
			if side == "bare" {
				recs := make([]*kgo.Record, len(batch))
				for j, m := range batch {
					recs[j] = bareRecord(env.bus.KafkaTopic(topic), m)
				}
				if err := env.producer.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					b.Fatal(err)
				}
			} else if err := env.bus.Publish(context.Background(), topic, batch...); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	})
}

// BenchmarkConsume: KAFKABUS_BENCH_MSGS records (default 20,000), produced
// beforehand, consumed by a new consumer group from the creation of its
// member to the commit of the last offset: a kafkabus subscription
// (Concurrency 1, a handler that counts, Close), against a bare franz-go
// group consumer (cooperative-sticky, PollRecords, a MarkCommitRecords
// per record after the same count, CommitMarkedOffsets, Close).
func BenchmarkConsume(b *testing.B) {
	runBench(b, 20000, func(b *testing.B, env *benchEnv, side string, n int) time.Duration {
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
		start := time.Now()
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
			return time.Since(start)
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
		return time.Since(start)
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
func runBench(b *testing.B, defaultN int, run func(b *testing.B, env *benchEnv, side string, n int) time.Duration) {
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
	var bare, bus1, ratios, bareAllocs, busAllocs []float64
	var ms runtime.MemStats
	for b.Loop() {
		for r := range rounds {
			sides := []string{"bare", "kafkabus"}
			if r%2 == 1 {
				slices.Reverse(sides)
			}
			rate, allocs := map[string]float64{}, map[string]float64{}
			for _, side := range sides {
				runtime.ReadMemStats(&ms)
				m0 := ms.Mallocs
				rate[side] = float64(n) / run(b, env, side, n).Seconds()
				runtime.ReadMemStats(&ms)
				allocs[side] = float64(ms.Mallocs-m0) / float64(n)
			}
			bare, bus1 = append(bare, rate["bare"]), append(bus1, rate["kafkabus"])
			bareAllocs, busAllocs = append(bareAllocs, allocs["bare"]), append(busAllocs, allocs["kafkabus"])
			ratios = append(ratios, rate["kafkabus"]/rate["bare"])
		}
	}
	b.ReportMetric(median(bare), "bare-msgs/s")
	b.ReportMetric(median(bus1), "kafkabus-msgs/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(bareAllocs), "bare-allocs/msg")
	b.ReportMetric(median(busAllocs), "kafkabus-allocs/msg")
	b.Logf("%d messages a round, %d rounds; kafkabus/bare by round: %.2f", n, len(ratios), ratios)
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
