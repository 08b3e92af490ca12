package kafkabus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// BrokersVar names the variable that holds the seed brokers of a real
// Kafka cluster, comma-separated, such as 127.0.0.1:9092. Without it the
// tests run against kfake clusters in the process.
const BrokersVar = "PATTERNS_KAFKA_BROKERS"

// fastClient are the franz-go options of the tests' clients: short
// heartbeats and metadata ages, so that rebalances and new topics take
// tens of milliseconds rather than seconds.
var fastClient = []kgo.Opt{
	kgo.HeartbeatInterval(100 * time.Millisecond),
	kgo.MetadataMinAge(50 * time.Millisecond),
	kgo.MetadataMaxAge(time.Second),
	kgo.FetchMaxWait(200 * time.Millisecond),
	kgo.ProducerLinger(0),
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

// cluster is a kfake cluster, or the real one of PATTERNS_KAFKA_BROKERS.
type cluster struct {
	fake    *kfake.Cluster // nil for a real cluster
	brokers []string
}

// newCluster returns a cluster of n brokers for the test, closed when it
// ends: a kfake cluster, or the real cluster of PATTERNS_KAFKA_BROKERS when
// that is set (n is then the real cluster's).
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	if v := os.Getenv(BrokersVar); v != "" {
		return &cluster{brokers: strings.Split(v, ",")}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &cluster{fake: c, brokers: c.ListenAddrs()}
}

// prefix returns a topic prefix private to this test run.
func prefix(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "kafkabustest." + hex.EncodeToString(b[:]) + "."
}

// newBus returns a bus on c with auto set-up, a private prefix and the
// tests' fast client options, closed when the test ends.
func newBus(t testing.TB, c *cluster, opts ...kafkabus.Option) *kafkabus.Bus {
	t.Helper()
	all := append([]kafkabus.Option{kafkabus.WithTopicPrefix(prefix(t)), kafkabus.WithAutoSetup(),
		kafkabus.WithPartitions(4), kafkabus.WithCommitInterval(100 * time.Millisecond),
		kafkabus.WithClientOptions(fastClient...)}, opts...)
	b, err := kafkabus.New(c.brokers, all...)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

// ctxWithin returns a context that ends with the test or after d.
func ctxWithin(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// collector records the messages handled.
type collector struct {
	mu  sync.Mutex
	got []cqrs.Message
}

func (c *collector) handle(_ context.Context, m cqrs.Message) error {
	c.mu.Lock()
	c.got = append(c.got, m)
	c.mu.Unlock()
	return nil
}

func (c *collector) messages() []cqrs.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cqrs.Message(nil), c.got...)
}

// waitFor waits until cond holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func subscribe(t testing.TB, b *kafkabus.Bus, topic, group string, h cqrs.Handler, opts ...cqrs.SubscribeOption) cqrs.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxWithin(t, 10*time.Second), topic, group, h, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}
