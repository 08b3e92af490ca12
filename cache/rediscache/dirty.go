package rediscache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Repair of the keys whose writes failed.
//
// A cache that fails to write or delete a key in Redis still updates its
// own L1, so Redis may go on holding a value older than one the instance
// acknowledged. The store remembers such keys ("dirty" keys): Get misses
// them without asking Redis, Add refuses them, and a goroutine deletes them
// from Redis and announces them on the channel, so that every instance
// drops its L1 copy, once Redis answers again; only then does the store
// forget them. When more keys fail than it remembers, the store stops
// trusting Redis altogether ("suspect"): every Get misses until it has
// deleted every key under its prefix and announced a clear of every L1.

const (
	// repairBatch is how many keys one round of repair deletes and
	// announces, in one pipeline and one message.
	repairBatch = 100
	// scanCount is the COUNT hint of the SCANs of a prefix flush.
	scanCount = 1000
	// minRepairWait and maxRepairWait bound the wait between failed
	// rounds of repair, which doubles from the first to the second.
	minRepairWait = 50 * time.Millisecond
	maxRepairWait = 2 * time.Second
	// closeTimeout bounds Close's last attempt at repair when the store
	// has no timeout of its own.
	closeTimeout = 5 * time.Second
)

// dirtyKeys is the store's memory of keys whose writes failed, and the
// goroutine repairing them.
type dirtyKeys struct {
	store *Store
	max   int
	// active is set while keys is not empty or the store is suspect, so
	// that Get of a store with nothing to repair takes no lock.
	active atomic.Bool
	// marks counts the calls of mark, for a Get to notice a mark made
	// during its round trip even when the repair has already forgotten
	// the key. mark adds to it once has reports the keys.
	marks atomic.Uint64

	mu   sync.Mutex
	keys map[string]uint64 // key → gen when it was last marked
	gen  uint64            // counts marks
	// suspect: some key was marked while keys was full, and forgotten;
	// overflowAt is the gen of the latest such mark. A flush of the
	// prefix that starts after it ends the suspicion.
	suspect    bool
	overflowAt uint64

	running bool // the repair goroutine runs
	closed  bool
	ctx     context.Context // canceled by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newDirtyKeys(s *Store, max int) *dirtyKeys {
	ctx, cancel := context.WithCancel(context.Background())
	return &dirtyKeys{
		store:  s,
		max:    max,
		keys:   make(map[string]uint64),
		ctx:    ctx,
		cancel: cancel,
	}
}

// has reports whether Get must miss key: it is dirty, or the store is
// suspect.
func (d *dirtyKeys) has(key string) bool {
	if !d.active.Load() {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.suspect {
		return true
	}
	_, ok := d.keys[key]
	return ok
}

// mark remembers keys as dirty and has the repair goroutine repair them.
func (d *dirtyKeys) mark(keys ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		d.gen++
		if _, ok := d.keys[k]; ok || len(d.keys) < d.max {
			d.keys[k] = d.gen
			continue
		}
		// Full: forget them all, a flush of the prefix covers them.
		d.suspect, d.overflowAt = true, d.gen
		clear(d.keys)
	}
	d.update()
	// Counted last: a Get that loads the count after this sees the keys
	// in has (active is set, and has waits for d.mu), and one that loaded
	// it before sees the count move.
	d.marks.Add(1)
	if !d.running && !d.closed {
		d.running = true
		d.wg.Add(1)
		go d.run()
	}
}

// update publishes the state to active and the telemetry. d.mu is held.
func (d *dirtyKeys) update() {
	d.active.Store(d.suspect || len(d.keys) > 0)
	tel := d.store.tel
	tel.dirty.Store(int64(len(d.keys)))
	var b int64
	if d.suspect {
		b = 1
	}
	tel.bypass.Store(b)
}

// run repairs until nothing is left to repair or the store is closed,
// waiting longer and longer between failed rounds.
func (d *dirtyKeys) run() {
	defer d.wg.Done()
	wait := minRepairWait
	for {
		err := d.repair(d.ctx)
		d.mu.Lock()
		if !(d.suspect || len(d.keys) > 0) || d.closed {
			d.running = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		if err == nil {
			wait = minRepairWait
			continue // more batches
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, maxRepairWait)
	}
}

// repair runs one round: a flush of the prefix if the store is suspect,
// else the deletion and announcement of a batch of dirty keys.
func (d *dirtyKeys) repair(ctx context.Context) error {
	s := d.store
	d.mu.Lock()
	if d.suspect {
		start := d.gen
		d.mu.Unlock()
		if err := s.flush(ctx); err != nil {
			return err
		}
		if err := s.publishClear(ctx); err != nil {
			return err
		}
		s.tel.flushes.Inc()
		d.mu.Lock()
		defer d.mu.Unlock()
		for k, g := range d.keys {
			if g <= start { // the flush deleted it after it was marked
				delete(d.keys, k)
				s.tel.repairs.Inc()
			}
		}
		if d.overflowAt <= start {
			d.suspect = false
		}
		d.update()
		return nil
	}
	batch := make(map[string]uint64, min(len(d.keys), repairBatch))
	for k, g := range d.keys {
		if len(batch) == repairBatch {
			break
		}
		batch[k] = g
	}
	d.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	keys := make([]string, 0, len(batch))
	for k := range batch {
		keys = append(keys, k)
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return err
	}
	if err := s.publish(ctx, s.repairSource, keys); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, g := range batch {
		// A key marked again meanwhile may have been written after the
		// deletion: it needs another round.
		if d.keys[k] == g {
			delete(d.keys, k)
			s.tel.repairs.Inc()
		}
	}
	d.update()
	return nil
}

// close stops the repair goroutine, makes a last attempt at repair, and
// reports what is left.
func (d *dirtyKeys) close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()

	limit := d.store.timeout
	if limit <= 0 {
		limit = closeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		d.mu.Lock()
		left := d.suspect || len(d.keys) > 0
		d.mu.Unlock()
		if !left {
			return nil
		}
		if err = d.repair(ctx); err != nil {
			break
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		err = ctx.Err()
	}
	if d.suspect {
		return fmt.Errorf("rediscache: Close: the keys under %q were not flushed after more writes failed than the store remembers; other instances may serve older values from Redis until they expire: %w", d.store.prefix, err)
	}
	if n := len(d.keys); n > 0 {
		return fmt.Errorf("rediscache: Close: %d keys whose writes failed were not repaired; other instances may serve older values from Redis until they expire: %w", n, err)
	}
	return nil
}

// deleteKeys deletes keys from Redis in one pipeline, a DEL each (a
// cluster may hold them in different slots).
func (s *Store) deleteKeys(ctx context.Context, keys []string) error {
	err := s.do(ctx, opDel, func(ctx context.Context) error {
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, s.prefix+k)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("rediscache: DEL of %d keys whose writes failed: %w", len(keys), err)
	}
	return nil
}

// flush deletes every key under the store's prefix, on every node of a
// cluster or shard of a ring.
func (s *Store) flush(ctx context.Context) error {
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return s.flushNode(ctx, n) })
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return s.flushNode(ctx, n) })
	default:
		err = s.flushNode(ctx, s.client)
	}
	if err != nil {
		return fmt.Errorf("rediscache: flushing the keys under %q: %w", s.prefix, err)
	}
	return nil
}

// flushNode deletes the keys under the prefix on one server, with SCAN
// and a pipeline of UNLINKs for each batch it returns.
func (s *Store) flushNode(ctx context.Context, c redis.Cmdable) error {
	match := escapeGlob(s.prefix) + "*"
	var cursor uint64
	for {
		var keys []string
		err := s.do(ctx, opScan, func(ctx context.Context) error {
			var err error
			keys, cursor, err = c.Scan(ctx, cursor, match, scanCount).Result()
			return err
		})
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			err := s.do(ctx, opUnlink, func(ctx context.Context) error {
				_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				})
				return err
			})
			if err != nil {
				return err
			}
		}
		if cursor == 0 {
			return nil
		}
	}
}

// escapeGlob escapes the characters of s that a Redis glob pattern
// treats specially.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
