package natsbus

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// A bus that publishes to ever new topics keeps the telemetry of at most
// MaxTopicTelemetry of them (regression: its cache never evicted), and
// names the spans of the others right all the same.
func TestTopicTelemetryIsBounded(t *testing.T) {
	inst := newInstruments(defaultConfig(), nil)
	srv := inst.endpoint(time.Now())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range MaxTopicTelemetry {
				topic := fmt.Sprintf("w%d.t%d", w, i)
				if tt := inst.forTopic(topic, "p."+topic, srv); tt.spanName != "publish p."+topic {
					t.Errorf("span name %q; want %q", tt.spanName, "publish p."+topic)
				}
			}
		})
	}
	wg.Wait()
	var n int
	inst.topics.Range(func(any, any) bool { n++; return true })
	if n != MaxTopicTelemetry || inst.nTopics.Load() != MaxTopicTelemetry {
		t.Errorf("%d topics cached, %d counted; want %d", n, inst.nTopics.Load(), MaxTopicTelemetry)
	}

	// The connection moving to another server rebuilds the sets of a
	// cached topic in place.
	var cached string
	inst.topics.Range(func(k, _ any) bool { cached = k.(string); return false })
	other := newServer("other", "nats://nats-2.example.com:4223")
	tt := inst.forTopic(cached, "p."+cached, other)
	if tt.server != other || inst.forTopic(cached, "p."+cached, other) != tt {
		t.Errorf("the telemetry of %q was not rebuilt for the new server and kept", cached)
	}
	if got := inst.nTopics.Load(); got != MaxTopicTelemetry {
		t.Errorf("%d topics counted after a server change; want %d", got, MaxTopicTelemetry)
	}
}

func TestNewServer(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []attribute.KeyValue
	}{
		{"nats://127.0.0.1:4222", []attribute.KeyValue{semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(4222)}},
		{"tls://user:secret@nats.example.com:4443", []attribute.KeyValue{semconv.ServerAddress("nats.example.com"), semconv.ServerPort(4443)}},
		{"nats://[::1]:4222", []attribute.KeyValue{semconv.ServerAddress("::1"), semconv.ServerPort(4222)}},
		{"nats://nats", []attribute.KeyValue{semconv.ServerAddress("nats")}},
		{"", nil},
		{"::", nil},
	} {
		got := newServer("id", tc.url).attrs
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("newServer(%q).attrs = %v; want %v", tc.url, got, tc.want)
		}
	}
}
