package natsbus_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/natsbus"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// rawPublish sends one message with the header block header (as it is,
// however malformed) and payload to subject, over a NATS protocol
// connection of its own, and waits for the server to have processed it.
func rawPublish(t *testing.T, subject, header, payload string) {
	t.Helper()
	u, err := url.Parse(testenv.NATSURL(t))
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(info, "INFO "), "server greeted with %q", info)
	_, err = fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":1}\r\n"+
		"HPUB %s %d %d\r\n%s%s\r\nPING\r\n", subject, len(header), len(header)+len(payload), header, payload)
	require.NoError(t, err)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "-ERR") {
			t.Fatalf("server: %s", line)
		}
		if line == "PONG\r\n" {
			return
		}
	}
}

// Messages that reach the stream without an ID, published by a plain NATS
// client or with headers the client cannot decode, are handled with an ID
// of their own, the same on every delivery, and counted: regression for
// such messages handled with an empty ID, which handlers that
// de-duplicate on ID merged.
func TestMessagesWithoutIDGetOne(t *testing.T) {
	t.Parallel()
	tp := telemetrytest.New(t)
	bus, js, stream := newBus(t, natsbus.WithTracerProvider(tp.TracerProvider), natsbus.WithMeterProvider(tp.MeterProvider))
	ctx := ctxWithin(t, 10*time.Second)
	subj := subject(stream, "t")
	// A plain JetStream publish, without Nats-Msg-Id.
	_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte("plain"), Header: nats.Header{"tenant": {"acme"}}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, subj, []byte("bare"))
	require.NoError(t, err)
	// Headers the client cannot decode (a line with no colon).
	rawPublish(t, subj, "NATS/1.0\r\nno colon here\r\n\r\n", "garbled")
	require.NoError(t, bus.Publish(ctx, "t", cqrs.Message{ID: "with-id", Data: []byte("ok")}))

	var mu sync.Mutex
	ids := map[string][]string{} // data -> IDs of its deliveries
	done := make(chan struct{})
	subscribe(t, bus, "t", "g", func(_ context.Context, m cqrs.Message) error {
		mu.Lock()
		defer mu.Unlock()
		ids[string(m.Data)] = append(ids[string(m.Data)], m.ID)
		if len(ids) == 4 && len(ids["bare"]) == 2 {
			close(done)
		}
		if string(m.Data) == "bare" && m.Delivery == 1 {
			return errors.New("once more") // the redelivery keeps the ID
		}
		return nil
	}, cqrs.WithRedeliveryBackoff(fastBackoff))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		mu.Lock()
		t.Fatalf("deliveries after 5s: %v", ids)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]string{}
	for data, got := range ids {
		for _, id := range got {
			assert.NotEmpty(t, id, "message %q", data)
			if prev, ok := seen[id]; ok && prev != data {
				t.Errorf("messages %q and %q have the same ID %q", prev, data, id)
			}
			seen[id] = data
		}
	}
	assert.Equal(t, []string{"with-id"}, ids["ok"])
	assert.Equal(t, ids["bare"][0], ids["bare"][1], "the redelivery's ID")
	assert.Equal(t, fmt.Sprintf("nats:%s:1", stream), ids["plain"][0])
	// Four deliveries without an ID: plain, bare twice, garbled.
	waitFor(t, time.Second, "the count", func() bool { return sum(t, tp, natsbus.MetricUnidentified) == 4 })
}

// A message stored by an earlier version of the bus (its ID in
// Nats-Msg-Id only, metadata as plain headers) is read as before.
func TestMessagesOfEarlierVersionsAreRead(t *testing.T) {
	t.Parallel()
	bus, js, stream := newBus(t)
	ctx := ctxWithin(t, 10*time.Second)
	_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject(stream, "t"), Data: []byte("{}"), Header: nats.Header{
		nats.MsgIdHdr: {"legacy-1"}, "Cqrs-Type": {"order.placed.v1"}, "tenant": {"acme"}, "Cqrs-Custom": {"kept"},
	}})
	require.NoError(t, err)
	c := newCollector()
	subscribe(t, bus, "t", "g", c.handle)
	waitFor(t, 5*time.Second, "the message", func() bool { return c.len() == 1 })
	m := c.snapshot()[0]
	assert.Equal(t, "legacy-1", m.ID)
	assert.Equal(t, "order.placed.v1", m.Type)
	assert.Equal(t, map[string]string{"tenant": "acme", "Cqrs-Custom": "kept"}, m.Metadata)
}
