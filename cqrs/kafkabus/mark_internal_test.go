package kafkabus

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRevokeWaitsForAMarkInFlight: the mark loop takes a partition's last
// record handled and is about to mark it when a revocation stops the
// partition. The revocation commits what is marked once drop returns, so
// by then the record must be marked (by the partition's goroutine as it
// stops, if the mark loop has not done it yet): otherwise the next owner
// replays a record handled here, which the Subscribe doc rules out.
func TestRevokeWaitsForAMarkInFlight(t *testing.T) {
	var (
		mu      sync.Mutex
		marked  []int64
		entered = make(chan struct{})
		release = make(chan struct{})
		calls   atomic.Int32
	)
	s := &subscription{
		sem:     make(chan struct{}, 1),
		drained: make(chan struct{}, 1),
		maxHeld: 10,
		parts:   map[int32]*partition{},
	}
	s.mark = func(rs ...*kgo.Record) {
		// The first call, the mark loop's, is held up as if its goroutine
		// were descheduled between taking the record and marking it.
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		mu.Lock()
		for _, r := range rs {
			marked = append(marked, r.Offset)
		}
		mu.Unlock()
	}
	p := &partition{s: s, id: 0, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	p.handled.Store(&kgo.Record{Offset: 41})
	s.parts[0] = p
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		p.run()
	}()

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		p.flushMark() // the mark loop's pass
	}()
	<-entered
	s.drop([]int32{0})
	mu.Lock()
	got := append([]int64(nil), marked...)
	mu.Unlock()
	close(release)
	<-loopDone
	if len(got) == 0 || got[len(got)-1] != 41 {
		t.Fatalf("marked before the revocation's commit: %v; want the record at offset 41", got)
	}
}
