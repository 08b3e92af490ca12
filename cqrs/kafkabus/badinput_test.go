package kafkabus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

func TestNewBadInput(t *testing.T) {
	tests := []struct {
		name    string
		brokers []string
		opts    []kafkabus.Option
		want    []string // every part of the error
	}{
		{"no brokers", nil, nil, []string{"brokers: no seed broker"}},
		{"empty broker", []string{"a:9092", ""}, nil, []string{"brokers[1] is empty"}},
		{"nil option", []string{"a:9092"}, []kafkabus.Option{nil}, []string{"opts[0] is nil"}},
		{"every bad option at once", []string{"a:9092"}, []kafkabus.Option{
			kafkabus.WithTopicPrefix("bad prefix/"),
			kafkabus.WithPartitions(0),
			kafkabus.WithReplicationFactor(0),
			kafkabus.WithTopicConfig("", "x"),
			kafkabus.WithCommitInterval(0),
			kafkabus.WithMaxBuffered(0),
			kafkabus.WithKey(nil),
		}, []string{`WithTopicPrefix("bad prefix/")`, "WithPartitions(0)", "WithReplicationFactor(0)",
			`WithTopicConfig("")`, "WithCommitInterval(0s)", "WithMaxBuffered(0)", "WithKey(nil)"}},
		{"long prefix", []string{"a:9092"}, []kafkabus.Option{kafkabus.WithTopicPrefix(strings.Repeat("p", 250))},
			[]string{"longer than 249 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := kafkabus.New(tt.brokers, tt.opts...)
			if err == nil {
				b.Close()
				t.Fatalf("New() = nil error; want one naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() = %v; want it to name %q", err, w)
				}
			}
			if b != nil {
				t.Errorf("New() returned a bus with an error")
			}
		})
	}
}

func TestBadTopicsAndMessages(t *testing.T) {
	c := newCluster(t, 1)
	b := newBus(t, c)
	ctx := ctxWithin(t, 10*time.Second)
	nop := func(context.Context, cqrs.Message) error { return nil }

	for _, topic := range []string{"", "with space", "slash/", "ünicode", strings.Repeat("t", 250)} {
		if err := b.Publish(ctx, topic, cqrs.Message{ID: "1"}); !errors.Is(err, cqrs.ErrInvalidMessage) {
			t.Errorf("Publish(%q) = %v; want an error matching cqrs.ErrInvalidMessage", topic, err)
		}
		if s, err := b.Subscribe(ctx, topic, "g", nop); err == nil {
			_ = s.Close()
			t.Errorf("Subscribe(%q) = nil error; want one", topic)
		}
		if err := b.Setup(ctx, topic); err == nil {
			t.Errorf("Setup(%q) = nil; want an error", topic)
		}
	}
	if err := b.Setup(ctx); err == nil {
		t.Errorf("Setup() with no topic = nil; want an error")
	}
	err := b.Publish(ctx, "orders", cqrs.Message{ID: "1"}, cqrs.Message{})
	if !errors.Is(err, cqrs.ErrInvalidMessage) || !strings.Contains(err.Error(), "message 1") {
		t.Errorf("Publish(a message without ID) = %v; want an error naming message 1, matching cqrs.ErrInvalidMessage", err)
	}
	_, err = b.Subscribe(ctx, "orders", "", nil)
	require.Error(t, err)
	for _, w := range []string{"empty group", "nil handler"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Subscribe(\"orders\", \"\", nil) = %v; want it to name %q", err, w)
		}
	}
	// Larger than the producer's batch limit (1 MB by default).
	big := cqrs.Message{ID: "big", Data: make([]byte, 2<<20)}
	if err := b.Publish(ctx, "orders", big); !errors.Is(err, cqrs.ErrInvalidMessage) {
		t.Errorf("Publish(a 2 MB message) = %v; want an error matching cqrs.ErrInvalidMessage", err)
	}
	require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: "after"}), "Publish after the bad ones")
}

// TestSetupIdempotent: Setup creates topics once and leaves them alone
// after; a bus without WithAutoSetup cannot publish to a topic that does
// not exist.
func TestSetupIdempotent(t *testing.T) {
	c := newCluster(t, 3)
	b, err := kafkabus.New(c.brokers, kafkabus.WithTopicPrefix(prefix(t)), kafkabus.WithPartitions(3),
		kafkabus.WithClientOptions(fastClient...))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	ctx := ctxWithin(t, 10*time.Second)
	if err := b.Publish(ctx, "missing", cqrs.Message{ID: "1"}); err == nil {
		t.Errorf("Publish to a topic not set up = nil; want an error")
	}
	require.NoError(t, b.Setup(ctx, "orders", "payments"))
	require.NoError(t, b.Setup(ctx, "orders", "payments"), "Setup again")
	require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: "1"}))
	// A topic named twice is set up once (Kafka refuses a CreateTopics
	// request naming a topic twice: INVALID_REQUEST, nothing created).
	require.NoError(t, b.Setup(ctx, "refunds", "refunds"), "Setup of a topic named twice")
	require.NoError(t, b.Publish(ctx, "refunds", cqrs.Message{ID: "1"}))
}
