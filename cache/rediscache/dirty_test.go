package rediscache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/internal/testenv"
)

// hook runs a function before the pipelines and commands of a client.
type hook struct {
	mu       sync.Mutex
	pipeline func(cmds []redis.Cmder)
	command  func(cmd redis.Cmder)
}

func (h *hook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		f := h.command
		h.mu.Unlock()
		if f != nil {
			f(cmd)
		}
		return next(ctx, cmd)
	}
}

func (h *hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		f := h.pipeline
		h.mu.Unlock()
		if f != nil {
			f(cmds)
		}
		return next(ctx, cmds)
	}
}

// hookedStore returns a store on a client of the test Redis with h
// installed, in a namespace of its own.
func hookedStore(t *testing.T, h *hook, opts ...Option) *Store {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), ContextTimeoutEnabled: true})
	client.AddHook(h)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "rediscache-test:dirty:" + hex.EncodeToString(b[:]) + ":"
	s, err := New(client, append([]Option{WithPrefix(prefix)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, _ := client.Keys(ctx, escapeGlob(prefix)+"*").Result()
		if len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	})
	return s
}

func (d *dirtyKeys) state() (keys []string, suspect bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.keys {
		keys = append(keys, k)
	}
	return keys, d.suspect
}

func (d *dirtyKeys) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.running
}

// TestKeyMarkedDuringRepairStaysDirty: a key whose write fails again
// while its repair deletes it may have been written after the deletion,
// so the round must not forget it.
func TestKeyMarkedDuringRepairStaysDirty(t *testing.T) {
	h := &hook{}
	s := hookedStore(t, h)
	var mu sync.Mutex
	rounds := 0
	h.pipeline = func(cmds []redis.Cmder) {
		if cmds[0].Name() != "del" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if rounds++; rounds == 1 {
			s.dirty.mark("k") // a concurrent failed Set
		}
	}
	s.dirty.mark("k")
	require.Eventually(t, s.dirty.idle, 5*time.Second, 5*time.Millisecond)
	keys, _ := s.dirty.state()
	assert.Empty(t, keys, "dirty keys once repaired")
	mu.Lock()
	assert.Equal(t, 2, rounds, "rounds of repair")
	mu.Unlock()
	assert.Equal(t, int64(1), s.tel.repairs.Load(), "keys repaired: none by the first round")
}

// TestSuspectUntilAFlushAfterTheLastOverflow: keys marked during a flush
// stay dirty, and the store stays suspect if it overflowed again during
// the flush.
func TestSuspectUntilAFlushAfterTheLastOverflow(t *testing.T) {
	h := &hook{}
	s := hookedStore(t, h, WithMaxDirtyKeys(2))
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "untouched", []byte("x"), time.Minute))
	flushes := 0
	var mu sync.Mutex
	h.command = func(cmd redis.Cmder) {
		if cmd.Name() != "scan" || fmt.Sprint(cmd.Args()[1]) != "0" {
			return // not the first SCAN of a flush
		}
		mu.Lock()
		defer mu.Unlock()
		flushes++
		switch flushes {
		case 1: // overflow again during the first flush
			s.dirty.mark("d1", "d2", "d3")
		case 2: // one key during the second
			s.dirty.mark("late")
		}
	}
	s.dirty.mark("a", "b", "c") // overflows
	_, err := s.Get(ctx, "untouched")
	assert.ErrorIs(t, err, cache.ErrNotFound, "Get while suspect")
	require.Eventually(t, s.dirty.idle, 5*time.Second, 5*time.Millisecond)
	keys, suspect := s.dirty.state()
	assert.False(t, suspect)
	assert.Empty(t, keys)
	mu.Lock()
	assert.Equal(t, 2, flushes, "flushes started")
	mu.Unlock()
	assert.Equal(t, int64(2), s.tel.flushes.Load(), "flushes")
	// late was marked during the second flush, so the flush may have
	// passed its key before: it was repaired on its own.
	assert.Equal(t, int64(1), s.tel.repairs.Load(), "keys repaired on their own")
	_, err = s.Get(ctx, "untouched")
	assert.ErrorIs(t, err, cache.ErrNotFound, "the flush deleted the key under the prefix")
}

func TestEscapeGlob(t *testing.T) {
	for in, want := range map[string]string{
		"cache:":      "cache:",
		`a*b?c[d]e\f`: `a\*b\?c\[d\]e\\f`,
	} {
		assert.Equal(t, want, escapeGlob(in), "escapeGlob(%q)", in)
	}
}

// TestGetMissesAKeyMarkedDuringItsRoundTrip: a write that fails while a
// Get waits for Redis may have left an older value there than the writer
// acknowledged; the Get must not return it.
func TestGetMissesAKeyMarkedDuringItsRoundTrip(t *testing.T) {
	h := &hook{}
	s := hookedStore(t, h)
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v1"), time.Minute))
	h.mu.Lock()
	h.command = func(cmd redis.Cmder) {
		if cmd.Name() == "get" {
			s.dirty.mark("k") // a Set of v2 failed meanwhile
		}
	}
	h.mu.Unlock()
	_, err := s.Get(ctx, "k")
	assert.ErrorIs(t, err, cache.ErrNotFound)
}

// TestMarkReachesHasBeforeItIsCounted: Get loads the count of marks, then
// asks has, and after its round trip misses only if the count moved; so
// a mark that Get has counted must already be one that has reports, or
// a Get starting during the mark returns the stale value it reads. A
// goroutine watches for the count to move while mark runs on many keys,
// and asks has then.
func TestMarkReachesHasBeforeItIsCounted(t *testing.T) {
	release := make(chan struct{})
	h := &hook{pipeline: func([]redis.Cmder) { <-release }} // the repair deletes nothing
	s := hookedStore(t, h, WithMaxDirtyKeys(100_000))
	t.Cleanup(func() { close(release) }) // runs before the store's cleanup
	keys := make([]string, 50_000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	seen := make(chan bool)
	go func() {
		for s.dirty.marks.Load() == 0 {
		}
		seen <- s.dirty.has(keys[0])
	}()
	s.dirty.mark(keys...)
	assert.True(t, <-seen, "has(%q) = false once the mark was counted", keys[0])
}
