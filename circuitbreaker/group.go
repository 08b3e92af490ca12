package circuitbreaker

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Group holds breakers keyed by a string (a host, a route, a tenant), each
// created on first use from the same options and named by its key.
//
// A Group holds at most a bounded number of breakers ([WithMaxBreakers]).
// When it is full, a new key evicts a breaker that has not been used lately,
// preferring closed ones, so a stream of distinct keys cannot grow memory
// without limit. An evicted breaker forgets its state: its key starts again
// with a closed breaker.
//
// A Group is safe for concurrent use. The zero Group is empty and ready to
// use: its breakers have the default options, and it holds at most
// [DefaultMaxBreakers] of them.
type Group struct {
	opts []Option
	max  int

	m sync.Map // string -> *entry

	mu   sync.Mutex // guards ring and hand, for creation and eviction
	ring []*entry
	hand int
}

type entry struct {
	key  string
	b    *Breaker
	used atomic.Bool
}

type groupConfig struct {
	breaker []Option
	max     int
	errs    []error // bad group options
}

type groupOptionFunc func(*groupConfig)

func (f groupOptionFunc) applyGroup(g *groupConfig)         { f(g) }
func (f groupOptionFunc) applyTransport(t *transportConfig) { t.group = append(t.group, f) }

// WithMaxBreakers bounds how many breakers a [Group] holds. n must be
// positive. The default is [DefaultMaxBreakers] (1024).
func WithMaxBreakers(n int) GroupOption {
	return groupOptionFunc(func(g *groupConfig) {
		if n <= 0 {
			g.errs = append(g.errs, fmt.Errorf("WithMaxBreakers(%d): must be positive", n))
		}
		g.max = n
	})
}

// newGroupConfig applies opts and reports every bad one, the breaker
// options among them, at once.
func newGroupConfig(opts []GroupOption) (groupConfig, error) {
	cfg := groupConfig{max: DefaultMaxBreakers}
	for i, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyGroup(&cfg)
	}
	_, err := newConfig(cfg.breaker)
	return cfg, errors.Join(append(cfg.errs, err)...)
}

// NewGroup returns an empty group. Every [Option] among opts configures each
// breaker the group creates. NewGroup panics on invalid options (a nil one
// among them), naming every one, as [New] does; it checks the breaker
// options at once rather than on first use.
func NewGroup(opts ...GroupOption) *Group {
	cfg, err := newGroupConfig(opts)
	if err != nil {
		panic(fmt.Sprintf("circuitbreaker: NewGroup: %v", err))
	}
	return &Group{opts: cfg.breaker, max: cfg.max}
}

// Get returns the breaker for key, creating it if the group has none.
// Looking up an existing breaker takes no lock.
func (g *Group) Get(key string) *Breaker {
	if v, ok := g.m.Load(key); ok {
		e := v.(*entry)
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e.b
	}
	return g.create(key)
}

func (g *Group) create(key string) *Breaker {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.m.Load(key); ok {
		return v.(*entry).b
	}
	e := &entry{key: key, b: New(key, g.opts...)}
	e.used.Store(true) // a new key gets a sweep's grace, as in the clock algorithm
	limit := g.max
	if limit == 0 { // the zero Group
		limit = DefaultMaxBreakers
	}
	if len(g.ring) < limit {
		g.ring = append(g.ring, e)
	} else {
		i := g.victim()
		old := g.ring[i]
		g.m.Delete(old.key)
		old.b.tel.release()
		g.ring[i] = e
	}
	g.m.Store(key, e)
	return e.b
}

// victim picks the breaker to evict by the clock (second chance)
// algorithm: sweep the ring, sparing and clearing recently used entries and
// sparing breakers that are not closed, whose state is worth keeping. After
// two sweeps without a candidate, the entry under the hand goes.
func (g *Group) victim() int {
	n := len(g.ring)
	for range 2 * n {
		i := g.hand
		g.hand = (g.hand + 1) % n
		e := g.ring[i]
		if e.used.Load() {
			e.used.Store(false)
			continue
		}
		if e.b.cur.Load().state == StateClosed {
			return i
		}
	}
	i := g.hand
	g.hand = (g.hand + 1) % n
	return i
}

// Remove drops the breaker for key, if the group holds one, with its
// telemetry series: for a key gone for good (a host taken out of
// service), whose breaker would otherwise stay, and report its last
// state, until evicted. Calls running on it finish on it; a later Get
// of key starts a closed breaker.
func (g *Group) Remove(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.m.LoadAndDelete(key)
	if !ok {
		return
	}
	e := v.(*entry)
	if i := slices.Index(g.ring, e); i >= 0 {
		g.ring = slices.Delete(g.ring, i, i+1)
		if g.hand > i {
			g.hand--
		}
		if g.hand >= len(g.ring) {
			g.hand = 0
		}
	}
	e.b.tel.release()
}

// Len returns how many breakers the group holds.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ring)
}
