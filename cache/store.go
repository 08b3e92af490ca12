package cache

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Store is the shared second level (L2) of a [Cache]: a key-value store
// that several instances of a service reach, such as Redis (see
// [github.com/otelpatterns/patterns/cache/rediscache]). It holds encoded
// values.
//
// Implementations must be safe for concurrent use. Get returns an error
// matching [ErrNotFound] for a missing or expired key. A ttl of 0 means no
// expiry. Every method must return promptly when ctx is done. Errors other
// than ErrNotFound mean the store could not answer; the cache then carries
// on without it (see [Cache]).
//
// Package [github.com/otelpatterns/patterns/cache/storetest] holds the
// conformance tests every Store should pass.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
}

// Adder is implemented by a [Store] that can store a value only where its
// key holds none, in one step. A [Cache] whose store is an Adder fills L2
// after a load with Add, so that a fill racing a [Cache.Set] or
// [Cache.Delete] on another instance never overwrites the newer value
// there; with a plain Store, such a fill can leave the older value in L2
// until its TTL.
//
// Add reports whether it stored value. A key holding an expired value
// counts as holding none.
type Adder interface {
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (added bool, err error)
}

// Invalidator is implemented by a [Store] that can tell every cache
// instance sharing it that keys changed, so that each drops its in-process
// (L1) copies. A [Cache] whose store is an Invalidator subscribes when it is
// created and publishes on every Set and Delete.
//
// Publish announces keys on behalf of source, an identifier of the
// publishing cache instance. Subscribe calls handle for every announcement,
// its own included (the cache skips those carrying its own source), one
// call at a time, until stop is called; stop waits for a running call of
// handle to return and releases the subscription. handle must not
// publish. reconnected, if not nil, is called after the subscription was
// lost and restored: announcements may have been missed meanwhile.
// Subscribe returns an error if handle is nil, or if it cannot subscribe
// at all; a subscription that is lost later is restored by the
// implementation.
type Invalidator interface {
	Publish(ctx context.Context, source string, keys ...string) error
	Subscribe(ctx context.Context, handle func(source, key string), reconnected func()) (stop func(), err error)
}

// MemoryStore is an in-process [Store], for tests and for a single
// instance that wants an L2 without a server (for example, a larger,
// slower tier behind a small L1). It is also an [Invalidator], whose
// announcements reach the caches subscribed to the same MemoryStore, so
// that tests can run several cache instances against one store.
//
// The zero value is ready to use. A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	items   map[string]memoryItem
	subs    map[int]*memorySub
	nextSub int
}

// memorySub serialises the calls of one subscriber's handler.
type memorySub struct {
	mu      sync.Mutex
	handle  func(source, key string)
	stopped bool
}

type memoryItem struct {
	value   []byte
	expires time.Time // zero: never
}

// Get returns a copy of the value stored under key, or [ErrNotFound].
func (m *MemoryStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[key]
	if !ok || (!it.expires.IsZero() && !time.Now().Before(it.expires)) {
		return nil, ErrNotFound
	}
	return append([]byte(nil), it.value...), nil
}

// Set stores a copy of value under key for ttl (0: no expiry).
func (m *MemoryStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var exp time.Time
	if ttl > 0 {
		exp = time.Now().Add(ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil {
		m.items = make(map[string]memoryItem)
	}
	m.items[key] = memoryItem{append([]byte(nil), value...), exp}
	return nil
}

// Add stores a copy of value under key for ttl, as Set does, unless key
// holds an unexpired value.
func (m *MemoryStore) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.items[key]; ok && (it.expires.IsZero() || time.Now().Before(it.expires)) {
		return false, nil
	}
	var exp time.Time
	if ttl > 0 {
		exp = time.Now().Add(ttl)
	}
	if m.items == nil {
		m.items = make(map[string]memoryItem)
	}
	m.items[key] = memoryItem{append([]byte(nil), value...), exp}
	return true, nil
}

// Delete removes key; deleting a missing key is not an error.
func (m *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

// Publish calls every subscriber's handler for each key before it
// returns, one call at a time per subscriber.
func (m *MemoryStore) Publish(ctx context.Context, source string, keys ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	subs := make([]*memorySub, 0, len(m.subs))
	for _, s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		if !s.stopped {
			for _, k := range keys {
				s.handle(source, k)
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// Subscribe registers handle until stop is called. A MemoryStore never
// loses a subscription, so reconnected is never called. A nil handle is
// an error.
func (m *MemoryStore) Subscribe(_ context.Context, handle func(source, key string), _ func()) (func(), error) {
	if handle == nil {
		return nil, errors.New("cache: MemoryStore.Subscribe: handle must not be nil")
	}
	s := &memorySub{handle: handle}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs == nil {
		m.subs = make(map[int]*memorySub)
	}
	id := m.nextSub
	m.nextSub++
	m.subs[id] = s
	return func() {
		m.mu.Lock()
		delete(m.subs, id)
		m.mu.Unlock()
		s.mu.Lock() // waits for a running call
		s.stopped = true
		s.mu.Unlock()
	}, nil
}

var (
	_ Store       = (*MemoryStore)(nil)
	_ Adder       = (*MemoryStore)(nil)
	_ Invalidator = (*MemoryStore)(nil)
)
