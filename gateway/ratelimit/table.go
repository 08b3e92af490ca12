package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// evictionSample is how many keys a full shard looks at to choose the one
// to evict.
const evictionSample = 8

// table holds the in-process buckets, a golang.org/x/time/rate limiter
// per key, in shards of at most perShard keys each. It never grows past
// its bound: a new key in a full shard evicts, of a few keys sampled at
// random (a map's range starts at a random place), the one whose bucket
// has the most tokens. Evicting a full bucket loses nothing, since a new
// bucket starts full; evicting a partly refilled one gives that client a
// few tokens back, the least a bounded table can give.
type table struct {
	epoch    time.Time        // the origin of now's readings
	clock    func() time.Time // now, or a test's
	seed     maphash.Seed
	shards   []shard
	perShard int
	limit    rate.Limit
	burst    int
}

type shard struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
	_  [40]byte // keeps neighbouring shards' locks off one cache line
}

func newTable(maxKeys int, limit rate.Limit, burst int) *table {
	n := min(max(maxKeys/256, 1), 32)
	t := &table{
		epoch:    time.Now(),
		seed:     maphash.MakeSeed(),
		shards:   make([]shard, n),
		perShard: maxKeys / n,
		limit:    limit,
		burst:    burst,
	}
	t.clock = t.now
	for i := range t.shards {
		t.shards[i].m = make(map[string]*rate.Limiter)
	}
	return t
}

// now returns the time for the buckets: a reading of the monotonic
// clock, as a time.Time. The buckets only measure time between their
// readings, for which the monotonic clock is the right one, and it is
// read in a quarter of the time that time.Now takes to read both clocks
// (about 25 against 100 ns on a cloud VM).
func (t *table) now() time.Time { return t.epoch.Add(time.Since(t.epoch)) }

// allow spends a token of key's bucket if it has one. Looking up a key
// the table holds allocates nothing.
//
// The clock is read, and the token spent, under the shard's lock: a
// bucket given an earlier time than its last (a request that read the
// clock, then waited for the lock behind one that read it later) moves
// its last refill back, and the next request is credited the time
// between the two readings again, admitting more than the limit.
func (t *table) allow(key []byte) Decision {
	s := &t.shards[maphash.Bytes(t.seed, key)%uint64(len(t.shards))]
	s.mu.Lock()
	now := t.clock()
	lim, ok := s.m[string(key)]
	if !ok {
		if len(s.m) >= t.perShard {
			s.evict(now, float64(t.burst))
		}
		lim = rate.NewLimiter(t.limit, t.burst)
		s.m[string(key)] = lim
	}
	allowed := lim.AllowN(now, 1)
	tokens := lim.TokensAt(now)
	s.mu.Unlock()

	d := Decision{Allowed: allowed, Limit: t.burst}
	if !allowed {
		d.RetryAfter = t.until(1 - tokens)
		d.Reset = d.RetryAfter
		return d
	}
	whole := math.Floor(tokens)
	d.Remaining = max(int(whole), 0)
	if d.Remaining < t.burst {
		d.Reset = t.until(whole + 1 - tokens)
	}
	return d
}

// until returns how long the bucket takes to gain n tokens.
func (t *table) until(n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(n / float64(t.limit) * float64(time.Second))
}

func (s *shard) evict(now time.Time, full float64) {
	var victim string
	best := math.Inf(-1)
	n := 0
	for k, lim := range s.m {
		if tok := lim.TokensAt(now); tok > best {
			best, victim = tok, k
		}
		if n++; n == evictionSample || best >= full {
			break
		}
	}
	delete(s.m, victim)
}

// len returns how many keys the table holds.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
