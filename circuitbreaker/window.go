package circuitbreaker

import (
	"sync"
	"sync/atomic"
)

// counts is what a window holds.
type counts struct {
	calls, failures, slow int
}

// The slots of a count window hold one call's outcome each.
const (
	slotEmpty   = 0
	slotSuccess = 1
	slotFailure = 2
	slotSlow    = 4
)

// A count window packs its three totals into one word so that a call is
// recorded with one atomic add and read back consistently. Each field is
// biased: concurrent records may apply their deltas out of order, so a field
// can dip below its true value for a moment, and the bias keeps such a dip
// from borrowing from the field above it.
const (
	fieldBits = 21
	fieldMask = 1<<fieldBits - 1
	fieldBias = 1 << 19
	callsUnit = 1
	failUnit  = 1 << fieldBits
	slowUnit  = 1 << (2 * fieldBits)
	allBias   = fieldBias*callsUnit + fieldBias*failUnit + fieldBias*slowUnit
)

// countWindow holds the outcomes of the last len(slots) calls. It is
// lock-free: a call takes the next slot with one atomic add, swaps its
// outcome in and adjusts the totals by the difference with what it replaced.
type countWindow struct {
	clean  uint64 // the totals of a full window of fast successes
	next   atomic.Uint64
	_      [56]byte // keep the hot counters on separate cache lines
	totals atomic.Uint64
	_      [56]byte
	size   uint64
	slots  []atomic.Uint32
}

func newCountWindow(size int) *countWindow {
	w := &countWindow{size: uint64(size), slots: make([]atomic.Uint32, size)}
	w.totals.Store(allBias)
	w.clean = allBias + uint64(size)*callsUnit
	return w
}

func contribution(slot uint32) uint64 {
	if slot == slotEmpty {
		return 0
	}
	d := uint64(callsUnit)
	if slot&slotFailure != 0 {
		d += failUnit
	}
	if slot&slotSlow != 0 {
		d += slowUnit
	}
	return d
}

// record stores one outcome and reports the totals afterwards, and whether
// they may now break a threshold (they can only do so when a failure or slow
// call was added or the window grew).
func (w *countWindow) record(slot uint32) (counts, bool) {
	// A window full of successes stays so whichever slot a success
	// replaces, so a success need not take a slot at all: the steady state
	// of a healthy dependency writes nothing shared.
	if slot == slotSuccess && w.totals.Load() == w.clean {
		return counts{}, false
	}
	i := w.next.Add(1) - 1
	old := w.slots[i%w.size].Swap(slot)
	if old == slot {
		return counts{}, false
	}
	t := w.totals.Add(contribution(slot) - contribution(old))
	return w.unpack(t), old == slotEmpty || slot&(slotFailure|slotSlow) != 0
}

func (w *countWindow) counts() counts { return w.unpack(w.totals.Load()) }

func (w *countWindow) unpack(t uint64) counts {
	field := func(shift int) int {
		v := int(t>>shift&fieldMask) - fieldBias
		return min(max(v, 0), int(w.size))
	}
	return counts{calls: field(0), failures: field(fieldBits), slow: field(2 * fieldBits)}
}

// timeWindow holds the outcomes of the calls that finished in the last
// len(buckets)*width nanoseconds. Buckets rotate under a mutex: a time window
// reads the clock on every call anyway, and the lock keeps rotation exact.
type timeWindow struct {
	mu      sync.Mutex
	width   int64 // of one bucket, in nanoseconds
	head    int64 // the newest bucket's epoch (time / width)
	buckets []counts
	total   counts
}

func newTimeWindow(width int64, n int) *timeWindow {
	return &timeWindow{width: width, buckets: make([]counts, n)}
}

// advance drops the buckets that fell out of the window by now. The caller
// holds w.mu.
func (w *timeWindow) advance(now int64) {
	e := now / w.width
	if e <= w.head {
		return
	}
	n := int64(len(w.buckets))
	if e-w.head >= n {
		clear(w.buckets)
		w.total = counts{}
	} else {
		for x := w.head + 1; x <= e; x++ {
			b := &w.buckets[x%n]
			w.total.calls -= b.calls
			w.total.failures -= b.failures
			w.total.slow -= b.slow
			*b = counts{}
		}
	}
	w.head = e
}

func (w *timeWindow) record(now int64, failed, slow bool) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	// A call that read the clock just before another one that already
	// rotated the buckets lands in the newest bucket: the window is
	// approximate by one bucket anyway.
	b := &w.buckets[w.head%int64(len(w.buckets))]
	b.calls++
	w.total.calls++
	if failed {
		b.failures++
		w.total.failures++
	}
	if slow {
		b.slow++
		w.total.slow++
	}
	return w.total
}

func (w *timeWindow) counts(now int64) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(now)
	return w.total
}
