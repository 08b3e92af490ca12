package natsbus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/faultproxy"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// resilientBus returns a bus on a connection of its own to url that
// reconnects at once and for ever, as a service's would.
func resilientBus(t *testing.T, url string, opts ...natsbus.Option) (*natsbus.Bus, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(t.Name()), nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.NoCallbacksAfterClientClose())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	bus, err := natsbus.New(js, append([]natsbus.Option{natsbus.WithStream("FAULT"), natsbus.WithSubjectPrefix("fault.")}, opts...)...)
	require.NoError(t, err)
	return bus, js
}

// deliveries records, per message ID, the Delivery of each handling.
type deliveries struct {
	mu sync.Mutex
	m  map[string][]int
}

func (d *deliveries) handle(_ context.Context, m cqrs.Message) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[m.ID] = append(d.m[m.ID], m.Delivery)
	return nil
}

func (d *deliveries) snapshot() map[string][]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]int, len(d.m))
	for k, v := range d.m {
		out[k] = append([]int(nil), v...)
	}
	return out
}

// TestNATSRestartedUnderLoad kills (SIGKILL) and then stops (SIGTERM) a
// private nats-server while a publisher publishes and a group consumes,
// each on a connection of its own that reconnects. The publisher retries
// each message, with its ID, until Publish returns nil, as the relay
// does. What the bus promises, and the test checks once every message is
// in:
//
//   - nothing acknowledged is lost: every message whose Publish returned
//     nil is handled by the group;
//   - nothing is stored twice: the stream holds exactly one message per
//     ID, though publishes that failed or timed out across the restarts
//     were retried (de-duplication by ID within the duplicate window,
//     which the server keeps through its restarts);
//   - nothing is made up: every ID handled was published.
//
// A message may be handled more than once (at least once: an ack lost in
// a restart has it delivered again); the test logs how many were.
func TestNATSRestartedUnderLoad(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATSServer(t)
	pub, js := resilientBus(t, srv.URL(), natsbus.WithAckWait(time.Second))
	setupCtx := ctxWithin(t, 10*time.Second)
	require.NoError(t, pub.Setup(setupCtx))
	sub, _ := resilientBus(t, srv.URL(), natsbus.WithAckWait(time.Second))
	d := &deliveries{m: map[string][]int{}}
	subscribe(t, sub, "orders", "billing", d.handle, cqrs.WithMaxDeliver(1000))

	p := startPublisher(pub)
	p.waitProgress(t, 200, "a first batch")
	srv.Kill()
	time.Sleep(200 * time.Millisecond)
	srv.Start()
	p.waitProgress(t, 200, "publishing after the SIGKILL")
	srv.Stop()
	time.Sleep(200 * time.Millisecond)
	srv.Start()
	p.waitProgress(t, 200, "publishing after the SIGTERM")
	p.check(t, js, d)
}

// publisher publishes messages m-00000, m-00001, … to the topic orders,
// one at a time, each retried with its ID until Publish returns nil, as
// the relay does.
type publisher struct {
	published atomic.Int64 // messages stored
	retries   atomic.Int64 // publishes that failed and were retried
	stop      chan struct{}
	done      chan error
}

func startPublisher(bus *natsbus.Bus) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				p.done <- nil
				return
			default:
			}
			m := cqrs.Message{ID: fmt.Sprintf("m-%05d", i), Type: "order.placed.v1", Data: []byte(`{}`)}
			for attempt := 0; ; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				err := bus.Publish(ctx, "orders", m)
				cancel()
				if err == nil {
					break
				}
				p.retries.Add(1)
				if attempt == 200 {
					p.done <- fmt.Errorf("publishing %s: %d attempts, the last: %w", m.ID, attempt+1, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			p.published.Store(int64(i + 1))
		}
	}()
	return p
}

// waitProgress waits until n more messages are published.
func (p *publisher) waitProgress(t *testing.T, n int64, what string) {
	t.Helper()
	from := p.published.Load()
	waitFor(t, 10*time.Second, what, func() bool { return p.published.Load() >= from+n })
}

// check stops the publisher and checks what the bus promises (see
// TestNATSRestartedUnderLoad) of the messages it published, the stream
// FAULT and the deliveries d.
func (p *publisher) check(t *testing.T, js jetstream.JetStream, d *deliveries) {
	t.Helper()
	close(p.stop)
	require.NoError(t, <-p.done)
	n := int(p.published.Load())
	waitFor(t, 15*time.Second, "every message handled", func() bool { return len(d.snapshot()) >= n })
	time.Sleep(200 * time.Millisecond)
	got := d.snapshot()
	again := 0
	for i := range n {
		id := fmt.Sprintf("m-%05d", i)
		if len(got[id]) == 0 {
			t.Errorf("message %s: published, never handled", id)
		}
		if len(got[id]) > 1 {
			again++
		}
	}
	assert.Len(t, got, n, "IDs handled; %d published", n)
	s, err := js.Stream(ctxWithin(t, 5*time.Second), "FAULT")
	require.NoError(t, err)
	assert.EqualValues(t, n, s.CachedInfo().State.Msgs, "messages stored for %d published", n)
	t.Logf("%d messages published (%d publishes retried), each handled; %d handled more than once", n, p.retries.Load(), again)
}

// TestNATSConnectionFaultsUnderLoad puts a fault-injecting proxy between
// each client and a private nats-server while a publisher publishes and a
// group consumes: the server's answers to the publisher dropped (each
// publish stored but its acknowledgement lost, so the publisher retries
// it), connections reset, and every connection cut and refused for a
// while. It checks what TestNATSRestartedUnderLoad does; here the retries
// are of messages the stream did store.
func TestNATSConnectionFaultsUnderLoad(t *testing.T) {
	t.Parallel()
	srv := testenv.StartNATSServer(t)
	pubProxy := faultproxy.New(t, strings.TrimPrefix(srv.URL(), "nats://"))
	subProxy := faultproxy.New(t, strings.TrimPrefix(srv.URL(), "nats://"))
	tel := telemetrytest.New(t)
	pub, js := resilientBus(t, pubProxy.URL(srv.URL()), natsbus.WithAckWait(time.Second),
		natsbus.WithTracerProvider(tel.TracerProvider))
	require.NoError(t, pub.Setup(ctxWithin(t, 10*time.Second)))
	sub, _ := resilientBus(t, subProxy.URL(srv.URL()), natsbus.WithAckWait(time.Second))
	d := &deliveries{m: map[string][]int{}}
	subscribe(t, sub, "orders", "billing", d.handle, cqrs.WithMaxDeliver(1000))

	p := startPublisher(pub)
	p.waitProgress(t, 200, "a first batch")
	// Acknowledgements lost: stored messages published again.
	lost := pubProxy.Blackhole(faultproxy.Downstream)
	time.Sleep(700 * time.Millisecond)
	lost.Remove()
	pubProxy.Cut() // the stalled connection, whatever it holds, goes
	pubProxy.Restore()
	p.waitProgress(t, 200, "publishing after lost acknowledgements")
	// Resets on both sides.
	r1, r2 := pubProxy.ResetPeer(faultproxy.Upstream, 0), subProxy.ResetPeer(faultproxy.Downstream, 0)
	time.Sleep(100 * time.Millisecond)
	r1.Remove()
	r2.Remove()
	p.waitProgress(t, 200, "publishing after resets")
	// Every connection cut, and refused for a while.
	pubProxy.Cut()
	subProxy.Cut()
	time.Sleep(300 * time.Millisecond)
	pubProxy.Restore()
	subProxy.Restore()
	p.waitProgress(t, 200, "publishing after the cut")
	p.check(t, js, d)
	duplicates := 0
	for _, s := range tel.Spans.Ended() {
		for _, e := range s.Events() {
			if e.Name == "duplicate" {
				duplicates++
			}
		}
	}
	assert.NotZero(t, duplicates, "no retried publish found its message stored: the lost acknowledgements did not bite")
	t.Logf("%d retried publishes found their message stored already", duplicates)
}
