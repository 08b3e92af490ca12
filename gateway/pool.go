package gateway

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// monotonic returns a clock that reads the monotonic time since it was
// made, in nanoseconds: the gateway's clock, that ejections are kept in.
func monotonic() func() int64 {
	epoch := time.Now()
	return func() int64 { return int64(time.Since(epoch)) }
}

// targetState is what the gateway knows about a target beyond its
// configuration: health, ejection, load and counts. [Gateway.Update] hands
// it on to the new table when the target stays in an upstream of the same
// name, so a swap neither forgets a target is down nor resets its series.
type targetState struct {
	healthy      atomic.Bool
	ejectedUntil atomic.Int64 // clock reading at which the ejection ends; 0 when not ejected
	consecutive  atomic.Int32 // failures in a row, for ejection
	inflight     atomic.Int64 // requests sent and not finished, for LeastRequest

	mu     sync.Mutex // guards the fields below
	passes int        // health checks passed in a row
	fails  int        // health checks failed in a row
	level  int        // how many doublings the next ejection gets
	ended  int64      // clock reading at which the last ejection ended

	selections telemetry.Counter
	ejections  telemetry.Counter
	opts       []metric.ObserveOption // gateway.upstream, server.address, server.port
}

func newTargetState(upstream, host string, port int) *targetState {
	s := &targetState{}
	s.healthy.Store(true)
	set := attribute.NewSet(AttrUpstream.String(upstream), semconv.ServerAddress(host), semconv.ServerPort(port))
	s.opts = []metric.ObserveOption{metric.WithAttributeSet(set)}
	return s
}

// target is a target of one table's upstream.
type target struct {
	scheme, host  string // of the URL requests are sent to
	path, rawPath string // the URL's path, put in front of the request's
	weight        int64
	state         *targetState
	breaker       *circuitbreaker.Breaker // nil without [Upstream].Breaker
	healthURL     string
	stateKey      string // the URL, which the state is kept under
}

// inService reports whether target t is healthy and not ejected. now is
// read from the clock only when needed, and kept for the caller.
func (u *upstream) inService(t *target, now *int64) bool {
	s := t.state
	if !s.healthy.Load() {
		return false
	}
	until := s.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if *now == 0 {
		*now = u.clock()
	}
	if *now < until {
		return false
	}
	if s.ejectedUntil.CompareAndSwap(until, 0) {
		s.mu.Lock()
		s.ended = until
		s.mu.Unlock()
	}
	return true
}

// available reports whether the balancer may choose target t: in
// service and its breaker not open.
func (u *upstream) available(t *target, now *int64) bool {
	return u.inService(t, now) && (t.breaker == nil || t.breaker.State() != circuitbreaker.StateOpen)
}

// upstream is an upstream of one table.
type upstream struct {
	spec      *upstreamSpec
	name      string
	targets   []*target
	transport http.RoundTripper // one attempt, with its client span
	check     http.RoundTripper // health checks, without spans
	group     *circuitbreaker.Group
	retrier   *retry.Retrier
	budget    *retry.Budget       // the default budget, when the gateway made it
	failure   func(code int) bool // breaker failure statuses
	grpcFail  func(code int) bool // breaker failure grpc-status codes
	stats     *upstreamStats
	clock     func() int64 // the gateway's: monotonic nanoseconds
	counted   bool         // selections are counted: the meter provider is not a no-op one

	rr     atomic.Uint64
	wrrMu  sync.Mutex
	wrrCur []int64
}

// upstreamStats is what an upstream keeps across tables: its counts, and
// the outlier ejection of its targets, whose states the tables share.
// A request that started on an old table records its outcome under the
// live table's policy: the old one's may have been turned off, or count
// targets the live one no longer has.
type upstreamStats struct {
	unavailable telemetry.Counter
	opts        []metric.ObserveOption

	live    atomic.Pointer[upstream] // the upstream of this name in the live table
	ejectMu sync.Mutex               // one ejection at a time, whichever table's request failed
}

// bitset marks targets by index; a nil bitset marks none.
type bitset []uint64

func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }

func words(n int) int { return (n + 63) / 64 }

// pick returns the index of the target the balancer chooses among the
// available ones not in skip, or -1 if there is none.
func (u *upstream) pick(skip bitset) int {
	switch u.spec.Balance {
	case WeightedRoundRobin:
		return u.pickWeighted(skip)
	case LeastRequest:
		return u.pickLeast(skip)
	}
	return u.pickRoundRobin(skip)
}

func (u *upstream) pickRoundRobin(skip bitset) int {
	n := len(u.targets)
	start := 0
	if n > 1 {
		// The one target's turn needs no count, which every core's
		// requests would write.
		start = int((u.rr.Add(1) - 1) % uint64(n))
	}
	var now int64
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if !skip.has(i) && u.available(u.targets[i], &now) {
			return i
		}
	}
	return -1
}

// availableSet marks the available targets not in skip, in buf when it
// is big enough, and counts them.
func (u *upstream) availableSet(skip bitset, buf []uint64) (bitset, int) {
	n := len(u.targets)
	var avail bitset
	if w := words(n); w <= len(buf) {
		avail = buf[:w]
		clear(avail)
	} else {
		avail = make(bitset, w)
	}
	var now int64
	c := 0
	for i, t := range u.targets {
		if !skip.has(i) && u.available(t, &now) {
			avail.set(i)
			c++
		}
	}
	return avail, c
}

// pickWeighted is nginx's smooth weighted round-robin: each available
// target's current weight grows by its weight, the largest is chosen and
// loses the total. Availability is read before the lock, so that no
// breaker callback runs under it.
func (u *upstream) pickWeighted(skip bitset) int {
	var buf [4]uint64
	avail, c := u.availableSet(skip, buf[:])
	if c == 0 {
		return -1
	}
	u.wrrMu.Lock()
	defer u.wrrMu.Unlock()
	var total int64
	best := -1
	for i, t := range u.targets {
		if !avail.has(i) {
			continue
		}
		u.wrrCur[i] += t.weight
		total += t.weight
		if best < 0 || u.wrrCur[i] > u.wrrCur[best] {
			best = i
		}
	}
	u.wrrCur[best] -= total
	return best
}

// pickLeast picks two distinct available targets at random and returns
// the one with fewer requests in flight per unit of weight.
func (u *upstream) pickLeast(skip bitset) int {
	var buf [4]uint64
	avail, c := u.availableSet(skip, buf[:])
	switch c {
	case 0:
		return -1
	case 1:
		return avail.nth(0)
	}
	ra := rand.IntN(c)
	rb := rand.IntN(c - 1)
	if rb >= ra {
		rb++
	}
	a, b := u.targets[avail.nth(ra)], u.targets[avail.nth(rb)]
	// a's load per weight below b's, without division.
	if a.state.inflight.Load()*b.weight <= b.state.inflight.Load()*a.weight {
		return avail.nth(ra)
	}
	return avail.nth(rb)
}

// nth returns the index of the n-th (from 0) marked target.
func (b bitset) nth(n int) int {
	for w, x := range b {
		for x != 0 {
			i := bits.TrailingZeros64(x)
			if n == 0 {
				return w*64 + i
			}
			n--
			x &= x - 1
		}
	}
	return -1
}

// choose picks a target for an attempt and has its breaker admit the
// attempt. Targets in tried are avoided while others are available.
// When none can take the attempt it returns an [*unavailableError] that
// says when one may. A closed breaker, which admits every call, is left
// to admit the attempt itself through sendVia (no done function), unless
// later says that the attempt's outcome may come after its response's
// headers (a gRPC call's, in the trailers) or that it must be admitted
// now (a retry holding an earlier answer, drained once it is admitted).
func (u *upstream) choose(ctx context.Context, tried bitset, later bool) (int, *target, func(error), error) {
	return u.chooseAfter(ctx, tried, later, -1, nil)
}

// chooseAfter is choose for an attempt that the breaker of target
// refused (an index, -1 for none) has just turned away with refusal: that
// breaker is not asked again, which would count a second rejection of
// the one attempt in its telemetry, and its refusal counts towards the
// Retry-After of an unavailable upstream.
func (u *upstream) chooseAfter(ctx context.Context, tried bitset, later bool, refused int, refusal error) (int, *target, func(error), error) {
	n := len(u.targets)
	var rejBuf, skipBuf [4]uint64
	rejected := bitset(rejBuf[:min(words(n), len(rejBuf))])
	if words(n) > len(rejBuf) {
		rejected = make(bitset, words(n))
	}
	skip := bitset(skipBuf[:min(words(n), len(skipBuf))])
	if words(n) > len(skipBuf) {
		skip = make(bitset, words(n))
	}
	var (
		wait time.Duration
		now  time.Time // read at the first rejection: an admitted attempt needs no clock
	)
	if refused >= 0 {
		rejected.set(refused)
		wait = rejectedWait(refusal, &now)
	}
	for {
		for w := range skip {
			skip[w] = rejected[w]
			if w < len(tried) {
				skip[w] |= tried[w]
			}
		}
		i := u.pick(skip)
		if i < 0 && tried != nil {
			i = u.pick(rejected)
		}
		if i < 0 {
			break
		}
		t := u.targets[i]
		if t.breaker == nil || !later && t.breaker.State() == circuitbreaker.StateClosed {
			return i, t, nil, nil
		}
		done, err := t.breaker.Allow(ctx)
		if err == nil {
			return i, t, done, nil
		}
		rejected.set(i)
		wait = minWait(wait, rejectedWait(err, &now))
	}
	// Before turning the request away, ask the breakers that hold
	// in-service targets out: one whose open time is over admits a probe,
	// and the others say how long they stay open.
	var mono int64
	for i, t := range u.targets {
		if t.breaker == nil || rejected.has(i) || !u.inService(t, &mono) {
			continue
		}
		done, err := t.breaker.Allow(ctx)
		if err == nil {
			return i, t, done, nil
		}
		wait = minWait(wait, rejectedWait(err, &now))
	}
	return -1, nil, nil, &unavailableError{upstream: u.name, retryAfter: minWait(wait, u.outOfServiceWait())}
}

// rejectedWait is how long a breaker's rejection says to wait; *now is
// the clock's reading, taken at the first call.
func rejectedWait(err error, now *time.Time) time.Duration {
	var re *circuitbreaker.RejectedError
	if errors.As(err, &re) {
		if now.IsZero() {
			*now = time.Now()
		}
		return re.RetryAfter(*now)
	}
	return time.Second
}

// minWait is the shorter of two waits, 0 standing for none known.
func minWait(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// outOfServiceWait estimates when a target that is out of service comes
// back: the soonest, over the targets, of when each is both healthy again
// (the health checks needed to pass) and no longer ejected.
func (u *upstream) outOfServiceWait() time.Duration {
	now := u.clock()
	var wait time.Duration
	for _, t := range u.targets {
		var back time.Duration
		if !t.state.healthy.Load() && u.spec.HealthCheck != nil {
			back = time.Duration(u.spec.health.HealthyThreshold) * u.spec.health.Interval
		}
		if until := t.state.ejectedUntil.Load(); until > now {
			back = max(back, time.Duration(until-now))
		}
		if back > 0 {
			wait = minWait(wait, back)
		}
	}
	return wait
}

// record notes an attempt's outcome for outlier ejection, under the
// policy of the live table (see [upstreamStats]).
func (u *upstream) record(t *target, failed bool) {
	s := t.state
	if !failed {
		if s.consecutive.Load() != 0 {
			s.consecutive.Store(0)
		}
		return
	}
	live := u.stats.live.Load()
	if live.spec.Outlier == nil {
		return
	}
	if int(s.consecutive.Add(1)) >= live.spec.outlier.ConsecutiveFailures {
		u.stats.eject(s)
	}
}

// eject takes the target of state s out of service for a time that
// doubles with each ejection, under the live table's policy, unless it
// has none, that would eject more than MaxEjectedPercent of its targets
// or s is not one of them. The live table is read under the lock that an
// Update's attach takes to swap it: an ejection under the old policy
// cannot land after the new table put its targets back.
func (st *upstreamStats) eject(s *targetState) {
	st.ejectMu.Lock()
	defer st.ejectMu.Unlock()
	u := st.live.Load()
	if u.spec.Outlier == nil {
		return
	}
	now := u.clock()
	if s.ejectedUntil.Load() > now {
		return
	}
	// Targets the health checks took out count as ejected: otherwise one
	// unhealthy target and one ejection would empty an upstream of two
	// that the cap allows one ejection.
	out, found := 0, false
	for _, o := range u.targets {
		if o.state == s {
			found = true
		} else if o.state.ejectedUntil.Load() > now || !o.state.healthy.Load() {
			out++
		}
	}
	if !found {
		return // a target the live table dropped, which nothing sends to
	}
	oc := &u.spec.outlier
	if out+1 > max(1, len(u.targets)*oc.MaxEjectedPercent/100) {
		return
	}
	s.mu.Lock()
	if s.ended > 0 {
		s.level -= int((now - s.ended) / int64(oc.BaseEjection))
	}
	s.level = max(s.level, 0) + 1
	d := ejection(oc.BaseEjection, oc.MaxEjection, s.level)
	s.ended = 0
	s.mu.Unlock()
	until := now + int64(d)
	if int64(d) > math.MaxInt64-now {
		until = math.MaxInt64 // a MaxEjection meant as for ever
	}
	s.ejectedUntil.Store(until)
	s.consecutive.Store(0)
	s.ejections.Inc()
}

// ejection is how long the level-th ejection in a row lasts: base,
// doubled for each level after the first, up to maxD. The doubling is
// checked before it is done, so that it cannot overflow (into a negative
// time, or a short one).
func ejection(base, maxD time.Duration, level int) time.Duration {
	if shift := level - 1; shift < 63 && base <= maxD>>shift {
		return base << shift
	}
	return maxD
}

// admitUnchecked puts back in service the targets of an upstream without
// health checks that a previous table's checks had taken out, and those
// of an upstream without outlier ejection that a previous table had
// ejected: their state is handed on by Update, and no policy is left to
// put them back (or none that should keep them out).
func (u *upstream) admitUnchecked() {
	u.stats.ejectMu.Lock()
	defer u.stats.ejectMu.Unlock()
	for _, t := range u.targets {
		s := t.state
		if u.spec.HealthCheck == nil {
			s.mu.Lock()
			s.passes, s.fails = 0, 0
			s.healthy.Store(true)
			s.mu.Unlock()
		}
		if u.spec.Outlier == nil {
			s.consecutive.Store(0)
			if until := s.ejectedUntil.Swap(0); until != 0 {
				// Its time back in service takes doublings off the next
				// ejection, should a later table eject again.
				s.mu.Lock()
				s.ended = min(until, u.clock())
				s.mu.Unlock()
			}
		}
	}
}

// recordCheck notes a health check's outcome.
func (u *upstream) recordCheck(t *target, ok bool) {
	hc := &u.spec.health
	s := t.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.fails = 0
		s.passes++
		if !s.healthy.Load() && s.passes >= hc.HealthyThreshold {
			s.healthy.Store(true)
		}
		return
	}
	s.passes = 0
	s.fails++
	if s.healthy.Load() && s.fails >= hc.UnhealthyThreshold {
		s.healthy.Store(false)
	}
}

// hostPort splits a URL host into the server.address and server.port
// attributes' values.
func hostPort(scheme, host string) (string, int) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // "[fd00::1]", without a port
		p = "80"
		if scheme == "https" {
			p = "443"
		}
	}
	port, _ := strconv.Atoi(p)
	return h, port
}
