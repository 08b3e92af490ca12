package telemetry

import (
	"sync"
	"sync/atomic"
)

// OtherSeries is the key that [Series] gives the keys past its bound, as
// the semantic conventions name a value that is not listed.
const OtherSeries = "_OTHER"

// Series holds a value per key (the counts of a route, say), built the
// first time the key is seen. Keys come from outside (route patterns
// that a table update may change), so they are bounded: past max keys,
// the others share the value of [OtherSeries]. Get takes no lock once a
// key is known.
type Series[V any] struct {
	max   int64
	build func(key string) *V

	m  sync.Map // key -> *V
	mu sync.Mutex
	n  atomic.Int64
}

// NewSeries returns a Series of at most max keys besides [OtherSeries],
// whose values build makes.
func NewSeries[V any](max int, build func(key string) *V) *Series[V] {
	return &Series[V]{max: int64(max), build: build}
}

// Get returns the value of key, built now if key is new.
func (s *Series[V]) Get(key string) *V {
	if v, ok := s.m.Load(key); ok {
		return v.(*V)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m.Load(key); ok {
		return v.(*V)
	}
	if s.n.Load() >= s.max {
		key = OtherSeries
		if v, ok := s.m.Load(key); ok {
			return v.(*V)
		}
	}
	v := s.build(key)
	s.m.Store(key, v)
	s.n.Add(1)
	return v
}

// Range calls f for each value built so far, until f returns false.
func (s *Series[V]) Range(f func(v *V) bool) {
	s.m.Range(func(_, v any) bool { return f(v.(*V)) })
}
