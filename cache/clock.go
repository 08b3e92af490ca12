package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// clockTick is how often a cache's clock advances: an entry may be served
// up to about this long after its TTL has passed (longer only while the
// process is so short of CPU that the clock's goroutine does not run).
const clockTick = time.Millisecond

// clock is the coarse clock an L1 hit checks expiry and refresh-ahead
// against: the wall time in unix nanoseconds, stored by a goroutine of
// the cache's own every clockTick, so that a hit loads an atomic rather
// than calling time.Now (about 47 ns on a VM whose clock source is
// kvm-clock, as much as the rest of the hit). It is never ahead of the
// real time, so an entry never expires early; it lags by up to a tick.
// Writes (Set and fills) compute expiry from time.Now, not from the clock.
//
// The goroutine holds only the clock, not the cache: [Cache.Close] stops
// it, and so does the collection of a cache that was never closed.
type clock struct {
	now     atomic.Int64
	stopped atomic.Bool // ends the goroutine at its next tick
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
}

// startClock returns a clock advanced every tick until stopped, which
// calls onTick (if not nil) after each advance: the place for other
// coarse state that hits read, which must not keep the cache reachable
// either.
func startClock(tick time.Duration, onTick func()) *clock {
	c := &clock{stop: make(chan struct{}), done: make(chan struct{})}
	c.now.Store(time.Now().UnixNano())
	go c.run(tick, onTick)
	return c
}

func (c *clock) run(tick time.Duration, onTick func()) {
	defer close(c.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			if c.stopped.Load() {
				return
			}
			// The ticker's time, not a later time.Now: the tick may be
			// delivered late, and the clock must not run ahead.
			c.now.Store(now.UnixNano())
			if onTick != nil {
				onTick()
			}
		}
	}
}

// Now returns the time of the last tick, in unix nanoseconds.
func (c *clock) Now() int64 { return c.now.Load() }

// Stop ends the clock's goroutine and waits for it. It may be called more
// than once.
func (c *clock) Stop() {
	c.stopped.Store(true)
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// release makes the clock's goroutine end at its next tick, without
// waiting: it is the cleanup of a cache collected without Close, which
// runs on the runtime's cleanup goroutine, and so must touch none of the
// clock's channels (in a testing/synctest bubble, that goroutine is
// outside it).
func (c *clock) release() { c.stopped.Store(true) }
