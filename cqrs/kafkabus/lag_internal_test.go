package kafkabus

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A fetch error of a partition (franz-go's data-loss notice, which carries
// no high watermark) leaves the partition's high watermark, and so its
// lag, as the last fetch set it. Before, the error's zero high watermark
// was stored and the lag gauge read 0 for a partition behind.
func TestFetchErrorKeepsTheHighWatermark(t *testing.T) {
	s := &subscription{ktopic: "cqrs.orders", group: "g", parts: map[int32]*partition{}, drained: make(chan struct{}, 1)}
	p := &partition{s: s, id: 0, wake: make(chan struct{}, 1)}
	p.hwm.Store(-1)
	s.parts[0] = p
	fetch := func(fp kgo.FetchPartition) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "cqrs.orders", Partitions: []kgo.FetchPartition{fp}}}}}
	}
	s.hand(fetch(kgo.FetchPartition{Partition: 0, HighWatermark: 20,
		Records: []*kgo.Record{{Topic: "cqrs.orders", Offset: 0}}}))
	if got := p.hwm.Load(); got != 20 {
		t.Fatalf("high watermark after a fetch = %d; want 20", got)
	}
	s.hand(fetch(kgo.FetchPartition{Partition: 0, Err: &kgo.ErrDataLoss{Topic: "cqrs.orders", ConsumedTo: 1}}))
	if got := p.hwm.Load(); got != 20 {
		t.Errorf("high watermark after a data-loss notice = %d; want 20 still", got)
	}
	if len(p.queue) != 1 {
		t.Errorf("queued %d records; want 1", len(p.queue))
	}
}
