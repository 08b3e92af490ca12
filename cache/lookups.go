package cache

import (
	"runtime"
	"sync/atomic"
	"time"
	"weak"

	"github.com/dgraph-io/ristretto/v2"
)

// lookups is L1 as Get's hit path reaches it. The hit path registers with
// nothing that Close could wait for, since every way to register costs
// the hit as much again: two atomic writes (enter and leave), or a
// deferred recover of the panic that ristretto's Get may raise when it
// races ristretto's Close (it can send on a channel Close has closed).
// Instead, Get loads the cache's lookups and keeps it reachable until
// its lookup returns (runtime.KeepAlive), and Close takes it away (Gets
// that start later return ErrClosed) and waits for the garbage collector
// to find it unreachable before it closes ristretto: by then no Get is
// still inside ristretto. Only Close pays, with a collection or a few.
type lookups[V any] struct {
	c *ristretto.Cache[string, entry[V]]
}

// collected returns a channel closed once l has been garbage-collected,
// collecting garbage until it is: at once unless a Get was inside its
// lookup, whose end a later collection sees. l is passed, not kept: the
// caller must hold no reference to it either.
//
// A cleanup tells, on the runtime's cleanup goroutine, soon after the
// collection that found l unreachable: its run orders the Gets' last
// reads of L1 before Close's writes for the race detector too. It sets a
// flag rather than close the channel, which a cache made in a
// testing/synctest bubble would not allow from outside it. A weak pointer
// tells as well, as soon as the collection is over, but only after
// cleanupPatience: the cleanup goroutine may be busy with another
// cleanup, or be the goroutine running Close (a cache closed by a cleanup
// of its owner's), which would wait for itself.
func collected[V any](l *lookups[V]) <-chan struct{} {
	gone := new(atomic.Bool)
	runtime.AddCleanup(l, func(gone *atomic.Bool) { gone.Store(true) }, gone)
	weakly := weak.Make(l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var unreachable time.Time // when the weak pointer was first seen cleared
		for pause := 50 * time.Microsecond; ; pause = min(2*pause, 10*time.Millisecond) {
			runtime.GC()
			// The cleanup goroutine is usually quick to run: a sleep
			// would make Close take time even then (and in a synctest
			// bubble, fake time, where a spin does not).
			for range 1000 {
				if gone.Load() {
					return
				}
				runtime.Gosched()
			}
			if weakly.Value() == nil {
				if unreachable.IsZero() {
					unreachable = time.Now()
				} else if time.Since(unreachable) >= cleanupPatience {
					return
				}
			}
			time.Sleep(pause)
		}
	}()
	return done
}

// cleanupPatience is how long Close waits for the cleanup that reports a
// collected lookups before it trusts the weak pointer (see collected).
const cleanupPatience = 20 * time.Millisecond
