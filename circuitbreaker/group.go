package circuitbreaker

import (
	"container/list"
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
// with a closed breaker. Its counts of calls and transitions live on, so
// that its metrics do not go backwards: the key's next breaker counts on
// from them (see the package's Telemetry section).
//
// A Group is safe for concurrent use. The zero Group is empty and ready to
// use: its breakers have the default options, and it holds at most
// [DefaultMaxBreakers] of them.
type Group struct {
	opts []Option
	max  int

	m sync.Map // string -> *entry

	mu   sync.Mutex // guards ring, hand and gone, for creation and eviction
	ring []*entry
	hand int
	gone history
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
	e := &entry{key: key, b: newBreaker(key, g.opts, g.gone.take(key))}
	e.used.Store(true) // a new key gets a sweep's grace, as in the clock algorithm
	if len(g.ring) < g.limit() {
		g.ring = append(g.ring, e)
	} else {
		i := g.victim()
		old := g.ring[i]
		g.m.Delete(old.key)
		g.letGo(old)
		g.ring[i] = e
	}
	g.m.Store(key, e)
	return e.b
}

// limit is how many breakers g holds at most.
func (g *Group) limit() int {
	if g.max == 0 { // the zero Group
		return DefaultMaxBreakers
	}
	return g.max
}

// letGo stops reporting e's breaker and keeps its counts for the key's
// next breaker. The caller holds g.mu and has taken e out of g.m. Calls
// still running on the breaker count on it alone, unreported.
func (g *Group) letGo(e *entry) {
	e.b.tel.release()
	// As many keys as the group holds breakers, but no more than the
	// default: a gateway's group, unbounded, must not keep every host it
	// ever had.
	g.gone.put(e.key, e.b.tel.tally(), min(g.limit(), DefaultMaxBreakers))
}

// history is the counts of calls and transitions of the breakers a group
// let go, by key, for the most recent keys: a key that comes back counts
// on from them, so that its counters, reported under the same attributes,
// do not go backwards. A key is in history only while it has no breaker.
type history struct {
	byKey map[string]*list.Element // of *goneKey, in order
	order list.List                // oldest first
}

type goneKey struct {
	key    string
	counts *tally
}

// put keeps key's counts, forgetting the oldest keys beyond n.
func (h *history) put(key string, c *tally, n int) {
	if h.byKey == nil {
		h.byKey = make(map[string]*list.Element)
	}
	h.byKey[key] = h.order.PushBack(&goneKey{key, c})
	for h.order.Len() > n {
		delete(h.byKey, h.order.Remove(h.order.Front()).(*goneKey).key)
	}
}

// take returns and forgets key's counts, nil if there are none.
func (h *history) take(key string) *tally {
	el, ok := h.byKey[key]
	if !ok {
		return nil
	}
	delete(h.byKey, key)
	return h.order.Remove(el).(*goneKey).counts
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
// of key starts a closed breaker, whose counts of calls and transitions
// go on from the removed one's, as after an eviction.
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
	g.letGo(e)
}

// Len returns how many breakers the group holds.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ring)
}
