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
// A weak pointer to l tells when a collection has found it unreachable.
// The cleanup then queued runs on the runtime's cleanup goroutine, and
// its run orders the Gets' last reads of L1 before Close's writes for the
// race detector too, so collected waits for it as well, but only up to
// cleanupPatience: the cleanup goroutine may be busy with another
// cleanup, or be the goroutine running Close (a cache closed by a cleanup
// of its owner's), which would wait for itself. The cleanup sets a flag
// rather than close the channel, which a cache made in a testing/synctest
// bubble would not allow from outside it.
func collected[V any](l *lookups[V]) <-chan struct{} {
	gone := new(atomic.Bool)
	runtime.AddCleanup(l, func(gone *atomic.Bool) { gone.Store(true) }, gone)
	weakly := weak.Make(l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Until a collection finds l unreachable: while the weak pointer
		// still reads l, a Get is inside its lookup, and no cleanup is
		// coming from that collection.
		for pause := 50 * time.Microsecond; ; pause = min(2*pause, 10*time.Millisecond) {
			runtime.GC()
			if weakly.Value() == nil {
				break
			}
			time.Sleep(pause)
		}
		// Then the cleanup is queued, and usually quick to run: yield
		// to it a few times before sleeping (which, in a synctest bubble,
		// moves fake time), bounded in time too (under load a yield can
		// take a scheduler's time slice).
		deadline := time.Now().Add(cleanupPatience)
		for i := 0; !gone.Load(); i++ {
			if time.Now().After(deadline) {
				return
			}
			if i < 100 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	return done
}

// cleanupPatience is how long Close waits for the cleanup that reports a
// collected lookups before it trusts the weak pointer (see collected).
const cleanupPatience = 20 * time.Millisecond
