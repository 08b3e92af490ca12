package saga_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/otelpatterns/patterns/retry"
	"github.com/otelpatterns/patterns/saga"
)

// The property tests draw a saga (a sequence or a DAG of 2 to 7 steps,
// with or without a pivot and Retriable steps after it), the outcome of
// every call of every action and compensation, and, in the second test, a
// point where the orchestrator crashes. They run in a synctest bubble, so
// that timeouts and backoff cost no real time and an instant action never
// times out, and check the saga's log and a journal of every call against
// what the engine must have done.

// propData is the data of the property tests' sagas: the steps whose
// update was applied, in order.
type propData struct{ Done []string }

// outcome is what one call of an action or compensation does.
type outcome uint8

const (
	succeed     outcome = iota
	transient           // a plain error: the attempt is made again
	permanent           // a retry.Permanent error: the step fails at once
	timeout             // the call outlives the step's Timeout
	interrupted         // cut short by the crash; never planned
)

func (o outcome) String() string {
	return [...]string{"succeed", "transient", "permanent", "timeout", "interrupted"}[o]
}

// drawOutcome favours success, so that long sagas get to their last steps.
var drawOutcome = rapid.Map(rapid.IntRange(0, 9), func(v int) outcome {
	switch {
	case v <= 4:
		return succeed
	case v <= 6:
		return transient
	case v == 7:
		return permanent
	}
	return timeout
})

// permanentCompensationErrors makes compensations fail with retry.Permanent
// errors too. Off: the model retries every compensation failure, while a
// permanent one needs attention at once, which
// TestPermanentCompensationErrorNeedsAttention covers.
const permanentCompensationErrors = false

const (
	planLen     = 8 // planned calls of each action: enough for two runs
	alwaysFails = 3 // compFails that never lets a compensation succeed
	stepTimeout = 5 * time.Millisecond
)

var (
	errTransient    = errors.New("transient failure")
	errPermanent    = errors.New("permanent failure")
	errCompensation = errors.New("compensation failure")
)

// stepPlan is one drawn step.
type stepPlan struct {
	name        string
	deps        []int
	after       []string // nil in a sequence
	pivot       bool
	retriable   bool
	idempotent  bool // as drawn; Retriable steps leave it false
	compensate  bool // has a Compensate function
	maxAttempts int
	timeout     time.Duration
	actions     []outcome // the outcome of each call of the action
	compFails   int       // calls of the compensation that fail before one succeeds; alwaysFails for all
	compPerm    bool      // compensation failures are retry.Permanent
}

func (s *stepPlan) idem() bool { return s.idempotent || s.retriable }

type fwdResult uint8

const (
	resDone fwdResult = iota
	resFailed
	resUnknown
	resStopped // cut short: another step failed the saga first
)

// forward is what the step's attempts in one run of the engine come to,
// by the rules of Step: its result, how many attempts it makes, and
// whether one timed out (so it may have taken effect).
func (s *stepPlan) forward() (res fwdResult, attempts int, maybe bool) {
	for a := 1; a <= s.maxAttempts; a++ {
		switch s.actions[a-1] {
		case succeed:
			return resDone, a, maybe
		case permanent:
			return resFailed, a, maybe
		case timeout:
			maybe = true
			if !s.idem() {
				return resUnknown, a, true
			}
		}
	}
	return resFailed, s.maxAttempts, maybe
}

// compCalls is how many calls the compensation makes under a policy of
// max attempts, and whether the last succeeds.
func (s *stepPlan) compCalls(max int) (int, bool) {
	if s.compFails >= alwaysFails || s.compFails >= max {
		return max, false
	}
	return s.compFails + 1, true
}

// sagaPlan is one drawn saga.
type sagaPlan struct {
	steps        []stepPlan
	pivot        int // -1 for none
	compAttempts int
	before       [][]bool // before[a][b]: a comes before b, directly or not
}

func drawPlan(rt *rapid.T) *sagaPlan {
	n := rapid.IntRange(2, 7).Draw(rt, "steps")
	p := &sagaPlan{steps: make([]stepPlan, n), pivot: -1}
	for i := range p.steps {
		p.steps[i].name = fmt.Sprintf("s%d", i)
	}
	randomDeps := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := lo; j < i; j++ {
				if rapid.Bool().Draw(rt, fmt.Sprintf("s%d after s%d", i, j)) {
					p.steps[i].deps = append(p.steps[i].deps, j)
				}
			}
		}
	}
	sequence := false
	switch rapid.SampledFrom([]string{"sequence", "dag", "pivot dag"}).Draw(rt, "shape") {
	case "sequence": // with the pivot anywhere, or none
		sequence = true
		for i := 1; i < n; i++ {
			p.steps[i].deps = []int{i - 1}
		}
		p.pivot = rapid.IntRange(-1, n-1).Draw(rt, "pivot")
	case "dag":
		randomDeps(0, n)
	case "pivot dag": // any DAG before the pivot, which follows all of it; a DAG after it
		k := rapid.IntRange(0, n-1).Draw(rt, "pivot")
		p.pivot = k
		randomDeps(0, k)
		for i := range k {
			last := true
			for j := i + 1; j < k; j++ {
				last = last && !slices.Contains(p.steps[j].deps, i)
			}
			if last {
				p.steps[k].deps = append(p.steps[k].deps, i)
			}
		}
		for i := k + 1; i < n; i++ {
			first := rapid.IntRange(k, i-1).Draw(rt, fmt.Sprintf("s%d after", i))
			p.steps[i].deps = []int{first}
			for j := range i {
				if j != first && rapid.Bool().Draw(rt, fmt.Sprintf("s%d after s%d", i, j)) {
					p.steps[i].deps = append(p.steps[i].deps, j)
				}
			}
		}
	}
	p.before = make([][]bool, n)
	for i := range p.before {
		p.before[i] = make([]bool, n)
	}
	for i := range p.steps {
		s := &p.steps[i]
		for _, d := range s.deps { // deps are always earlier steps
			for a := range n {
				p.before[a][i] = p.before[a][i] || p.before[a][d] || a == d
			}
		}
		if !sequence {
			s.after = []string{}
			for _, d := range s.deps {
				s.after = append(s.after, p.steps[d].name)
			}
		}
		s.pivot = i == p.pivot
		s.retriable = p.pivot >= 0 && i > p.pivot
		s.maxAttempts = rapid.IntRange(1, 3).Draw(rt, s.name+" max attempts")
		if !s.retriable {
			s.idempotent = rapid.Bool().Draw(rt, s.name+" idempotent")
		}
		s.compensate = !s.retriable && (!s.pivot || rapid.Bool().Draw(rt, s.name+" compensates"))
		s.actions = rapid.SliceOfN(drawOutcome, planLen, planLen).Draw(rt, s.name+" actions")
		if slices.Contains(s.actions, timeout) {
			s.timeout = stepTimeout
		}
		if s.compensate {
			s.compFails = rapid.IntRange(0, alwaysFails).Draw(rt, s.name+" compensation failures")
			if permanentCompensationErrors {
				s.compPerm = rapid.Bool().Draw(rt, s.name+" compensation failures permanent")
			}
		}
	}
	p.compAttempts = rapid.IntRange(1, 3).Draw(rt, "compensation attempts")
	return p
}

func (p *sagaPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan (compensation attempts %d):\n", p.compAttempts)
	for _, s := range p.steps {
		fmt.Fprintf(&b, "  %s deps=%v pivot=%v retriable=%v idempotent=%v attempts=%d actions=%v",
			s.name, s.deps, s.pivot, s.retriable, s.idempotent, s.maxAttempts, s.actions[:s.maxAttempts])
		if s.compensate {
			fmt.Fprintf(&b, " compFails=%d compPermanent=%v", s.compFails, s.compPerm)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func phaseIndex(ph saga.Phase) int {
	if ph == saga.Compensate {
		return 1
	}
	return 0
}

// event is a call of an action or compensation starting or ending.
type event struct {
	seq   int
	run   int // 1, or 2 after the crash
	step  int
	phase saga.Phase
	call  int // from 1, per step and phase, across runs
	end   bool
	out   outcome // for an end
	at    time.Time
}

// crashPoint is where the first orchestrator crashes: during, or at a hook
// point of, the call-th call of a step's action or compensation.
type crashPoint struct {
	step  int
	phase saga.Phase
	call  int
	point saga.HookPoint // "" for during the call
}

// callRecorder provides the steps' functions, which follow the plan, and
// journals their calls.
type callRecorder struct {
	p       *sagaPlan
	crash   *crashPoint
	crashed chan struct{} // closed at the crash
	resume  chan struct{} // closed when a crashed hook may return
	fired   atomic.Bool
	// fixed makes every call from then on succeed, as after an operator
	// fixed what made the saga need attention.
	fixed atomic.Bool

	mu     sync.Mutex
	run    int
	events []event
	calls  [2][]int
	hooks  map[crashPoint]int
	errs   []string
}

func newCallRecorder(p *sagaPlan, crash *crashPoint) *callRecorder {
	r := &callRecorder{p: p, crash: crash, run: 1, crashed: make(chan struct{}), resume: make(chan struct{}),
		hooks: map[crashPoint]int{}}
	r.calls[0], r.calls[1] = make([]int, len(p.steps)), make([]int, len(p.steps))
	return r
}

// begin journals the start of a call and says whether it is the crash.
func (r *callRecorder) begin(i int, ph saga.Phase) (call int, crash bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[phaseIndex(ph)][i]++
	call = r.calls[phaseIndex(ph)][i]
	r.events = append(r.events, event{seq: len(r.events), run: r.run, step: i, phase: ph, call: call, at: time.Now()})
	c := r.crash
	crash = r.run == 1 && c != nil && c.point == "" && c.step == i && c.phase == ph && c.call == call
	return call, crash
}

func (r *callRecorder) end(i int, ph saga.Phase, call int, out outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{seq: len(r.events), run: r.run, step: i, phase: ph, call: call, end: true, out: out, at: time.Now()})
}

func (r *callRecorder) errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// crashNow closes crashed and, at a hook point, waits for resume: the
// test closes the orchestrator meanwhile, so that nothing more reaches the
// log.
func (r *callRecorder) crashNow(wait bool) {
	r.fired.Store(true)
	close(r.crashed)
	if wait {
		<-r.resume
	}
}

func (r *callRecorder) hook(point saga.HookPoint, step string, ph saga.Phase) {
	i := slices.IndexFunc(r.p.steps, func(s stepPlan) bool { return s.name == step })
	r.mu.Lock()
	k := crashPoint{step: i, phase: ph, point: point}
	r.hooks[k]++
	k.call = r.hooks[k]
	crash := r.run == 1 && r.crash != nil && *r.crash == k
	r.mu.Unlock()
	if crash {
		r.crashNow(true)
	}
}

func (r *callRecorder) action(i int) func(context.Context, propData) (func(*propData), error) {
	s := &r.p.steps[i]
	return func(ctx context.Context, _ propData) (func(*propData), error) {
		call, crash := r.begin(i, saga.Forward)
		out := succeed
		switch {
		case crash:
			r.crashNow(false)
			out = timeout
		case r.fixed.Load():
		case call > len(s.actions):
			r.errorf("%s: call %d of the action, beyond the plan", s.name, call)
			out = permanent
		default:
			out = s.actions[call-1]
		}
		switch out {
		case succeed:
			r.end(i, saga.Forward, call, succeed)
			return func(d *propData) { d.Done = append(d.Done, s.name) }, nil
		case transient:
			r.end(i, saga.Forward, call, transient)
			return nil, errTransient
		case permanent:
			r.end(i, saga.Forward, call, permanent)
			return nil, retry.Permanent(errPermanent)
		}
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.end(i, saga.Forward, call, timeout)
		} else {
			r.end(i, saga.Forward, call, interrupted)
		}
		return nil, ctx.Err()
	}
}

func (r *callRecorder) compensation(i int) func(context.Context, propData) error {
	s := &r.p.steps[i]
	return func(ctx context.Context, _ propData) error {
		call, crash := r.begin(i, saga.Compensate)
		if crash {
			r.crashNow(false)
			<-ctx.Done()
			r.end(i, saga.Compensate, call, interrupted)
			return ctx.Err()
		}
		if !r.fixed.Load() && (s.compFails >= alwaysFails || call <= s.compFails) {
			r.end(i, saga.Compensate, call, transient)
			if s.compPerm {
				return retry.Permanent(errCompensation)
			}
			return errCompensation
		}
		r.end(i, saga.Compensate, call, succeed)
		return nil
	}
}

func (r *callRecorder) journal() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *callRecorder) setRun(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run = n
}

func define(rt *rapid.T, p *sagaPlan, r *callRecorder) *saga.Definition[propData] {
	steps := make([]saga.Step[propData], len(p.steps))
	for i, s := range p.steps {
		steps[i] = saga.Step[propData]{
			Name: s.name, After: s.after, Pivot: s.pivot, Retriable: s.retriable, Idempotent: s.idempotent,
			Timeout: s.timeout, Action: r.action(i),
			Retry: retry.New(retry.WithMaxAttempts(s.maxAttempts), retry.WithBackoff(retry.Constant(time.Millisecond))),
		}
		if s.compensate {
			steps[i].Compensate = r.compensation(i)
		}
	}
	def, err := saga.Define("prop", 1, steps...)
	if err != nil {
		rt.Fatalf("Define() = %v; want a valid definition\n%v", err, p)
	}
	return def
}

func propOptions(p *sagaPlan, owner string, def saga.Definer) []saga.Option {
	return []saga.Option{
		saga.WithOwner(owner), saga.WithDefinitions(def),
		saga.WithCompensationRetry(retry.New(retry.WithMaxAttempts(p.compAttempts), retry.WithBackoff(retry.Constant(time.Millisecond)))),
	}
}

// closeWithin closes o, cutting its attempts short after a (fake) minute.
func closeWithin(o *saga.Orchestrator) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = o.Close(ctx)
}

// attemptLog is one attempt as the log has it.
type attemptLog struct {
	started int64     // Seq of its Started transition
	kind    saga.Kind // its outcome; "" if none was written
	ended   int64
}

// checker holds a finished saga's plan, journal and log, and checks them.
type checker struct {
	rt       *rapid.T
	p        *sagaPlan
	rec      *callRecorder
	events   []event
	ts       []saga.Transition
	final    saga.Status
	crashSeq int64 // transitions written before the crash; 0 without one

	attempts [2][][]attemptLog // by phase, step and attempt
	statuses []saga.Transition
	data     []byte
}

func (c *checker) fatalf(format string, args ...any) {
	c.rt.Helper()
	var b strings.Builder
	b.WriteString(c.p.String())
	fmt.Fprintf(&b, "log (crash after %d):\n", c.crashSeq)
	for _, t := range c.ts {
		fmt.Fprintf(&b, "  %d %s %s %s %s %d %s\n", t.Seq, t.Status, t.Step, t.Phase, t.Kind, t.Attempt, t.Error)
	}
	b.WriteString("journal:\n")
	for _, e := range c.events {
		if e.end {
			fmt.Fprintf(&b, "  %d run %d %s %s call %d: %v\n", e.seq, e.run, c.p.steps[e.step].name, e.phase, e.call, e.out)
		} else {
			fmt.Fprintf(&b, "  %d run %d %s %s call %d starts\n", e.seq, e.run, c.p.steps[e.step].name, e.phase, e.call)
		}
	}
	c.rt.Fatalf(format+"\n%s", append(args, b.String())...)
}

// readLog checks the log's structure and indexes it.
func (c *checker) readLog() {
	n := len(c.p.steps)
	c.attempts[0], c.attempts[1] = make([][]attemptLog, n), make([][]attemptLog, n)
	notRun := [2][]int{make([]int, n), make([]int, n)}
	if len(c.ts) == 0 {
		c.fatalf("the log has no transitions")
	}
	for k, t := range c.ts {
		if t.Seq != int64(k+1) {
			c.fatalf("transition %d has Seq %d; want %d", k, t.Seq, k+1)
		}
		if k > 0 && c.ts[k-1].Status.Final() {
			c.fatalf("transition %d follows the final status %s", t.Seq, c.ts[k-1].Status)
		}
		if t.Data != nil {
			if t.Step == "" || t.Phase != saga.Forward || t.Kind != saga.Succeeded {
				c.fatalf("transition %d carries data but is no forward success", t.Seq)
			}
			c.data = t.Data
		}
		if t.Step == "" {
			if t.Status == "" {
				c.fatalf("transition %d names neither a step nor a status", t.Seq)
			}
			c.statuses = append(c.statuses, t)
			continue
		}
		if t.Status != "" {
			c.fatalf("transition %d of step %s changes the status too", t.Seq, t.Step)
		}
		i := slices.IndexFunc(c.p.steps, func(s stepPlan) bool { return s.name == t.Step })
		if i < 0 || (t.Phase != saga.Forward && t.Phase != saga.Compensate) {
			c.fatalf("transition %d: unknown step %q or phase %q", t.Seq, t.Step, t.Phase)
		}
		as := &c.attempts[phaseIndex(t.Phase)][i]
		skipped := &notRun[phaseIndex(t.Phase)][i]
		if t.Kind == saga.Failed && strings.HasPrefix(t.Error, "not run: ") {
			// A Started written with the success of the step before, for
			// an attempt that never began: not a call.
			if len(*as) == 0 || (*as)[len(*as)-1].kind != "" || t.Attempt != len(*as)+*skipped {
				c.fatalf("transition %d: %s not run, but attempt %d is not the open one", t.Seq, t.Step, t.Attempt)
			}
			*as = (*as)[:len(*as)-1]
			*skipped++
			continue
		}
		if t.Kind == saga.Started {
			if t.Attempt != len(*as)+*skipped+1 {
				c.fatalf("transition %d: %s %s attempt %d started after %d attempts", t.Seq, t.Step, t.Phase, t.Attempt, len(*as))
			}
			if l := len(*as); l > 0 && (*as)[l-1].kind == saga.Succeeded {
				c.fatalf("transition %d: %s %s started again after it succeeded", t.Seq, t.Step, t.Phase)
			}
			*as = append(*as, attemptLog{started: t.Seq})
			continue
		}
		if len(*as) == 0 || t.Attempt != len(*as)+*skipped || (*as)[len(*as)-1].kind != "" {
			c.fatalf("transition %d: outcome %s of %s %s attempt %d, which is not the open attempt", t.Seq, t.Kind, t.Step, t.Phase, t.Attempt)
		}
		(*as)[len(*as)-1].kind, (*as)[len(*as)-1].ended = t.Kind, t.Seq
	}
	for ph := range 2 {
		for i, as := range c.attempts[ph] {
			for a, at := range as {
				if at.kind == "" && at.started > c.crashSeq {
					c.fatalf("%s phase %d attempt %d has no outcome, and no crash cut it short", c.p.steps[i].name, ph, a+1)
				}
			}
		}
	}
}

func (c *checker) succeeded(ph, i int) (int64, bool) {
	for _, at := range c.attempts[ph][i] {
		if at.kind == saga.Succeeded {
			return at.ended, true
		}
	}
	return 0, false
}

// effect reports whether step i may have taken effect, by the log: an
// attempt succeeded, timed out or has no outcome.
func (c *checker) effect(i int) bool {
	for _, at := range c.attempts[0][i] {
		if at.kind != saga.Failed {
			return true
		}
	}
	return false
}

// checkCommon checks what holds of every run, with or without a crash.
func (c *checker) checkCommon(waited saga.Status, waitErr error) {
	p := c.p
	last := c.ts[len(c.ts)-1]
	switch {
	case !c.final.Final():
		c.fatalf("the saga ended in status %s", c.final)
	case waited != c.final || last.Status != c.final:
		c.fatalf("Wait() = %s, the last transition says %q, the log's record %s", waited, last.Status, c.final)
	case (waitErr == nil) != (c.final == saga.Completed):
		c.fatalf("Wait() = %s, %v", waited, waitErr)
	case len(c.rec.errs) > 0:
		c.fatalf("the steps found: %v", c.rec.errs)
	}
	var compensating int64
	switch len(c.statuses) {
	case 1:
	case 2:
		if c.statuses[0].Status != saga.Compensating {
			c.fatalf("status %s before the final one; want compensating", c.statuses[0].Status)
		}
		compensating = c.statuses[0].Seq
	default:
		c.fatalf("%d changes of status; want the final one, after compensating or not", len(c.statuses))
	}

	// The journal and the log tell the same story.
	var perRun [3][2][]int
	for r := 1; r <= 2; r++ {
		perRun[r][0], perRun[r][1] = make([]int, len(p.steps)), make([]int, len(p.steps))
	}
	// A crash can cut an attempt short before its call (its Started was
	// written with the step before): the calls of the second run then
	// map to attempts one further on.
	var shift [2][]int
	for ph := range 2 {
		shift[ph] = make([]int, len(p.steps))
		for i, as := range c.attempts[ph] {
			calls1 := 0
			for _, e := range c.events {
				if e.run == 1 && !e.end && phaseIndex(e.phase) == ph && e.step == i {
					calls1++
				}
			}
			started1 := 0
			for _, at := range as {
				if c.crashSeq > 0 && at.started <= c.crashSeq {
					started1++
				}
			}
			shift[ph][i] = max(started1-calls1, 0)
		}
	}
	for _, e := range c.events {
		ph := phaseIndex(e.phase)
		as := c.attempts[ph][e.step]
		name := p.steps[e.step].name
		idx := e.call - 1
		if e.run == 2 {
			idx += shift[ph][e.step]
		}
		if !e.end {
			perRun[e.run][ph][e.step]++
			if idx >= len(as) {
				c.fatalf("%s %s call %d has no Started transition", name, e.phase, e.call)
			}
			continue
		}
		kind := as[idx].kind
		s := &p.steps[e.step]
		planned := succeed
		switch {
		case e.phase == saga.Forward:
			planned = s.actions[e.call-1]
		case s.compFails >= alwaysFails || e.call <= s.compFails:
			planned = transient
		}
		want := map[outcome]saga.Kind{succeed: saga.Succeeded, transient: saga.Failed, permanent: saga.Failed, timeout: saga.TimedOut, interrupted: ""}[e.out]
		switch {
		case e.out != planned && !(c.crashSeq > 0 && e.out == interrupted):
			c.fatalf("%s %s call %d: %v; planned %v", name, e.phase, e.call, e.out, planned)
		case kind != want && !(kind == "" && as[idx].started <= c.crashSeq):
			c.fatalf("%s %s call %d: %v, logged as %q", name, e.phase, e.call, e.out, kind)
		}
	}
	for ph := range 2 {
		for i, as := range c.attempts[ph] {
			// A crash may come between a Started transition and its call
			// (the Started of a step is written with the success of the
			// step before it), leaving an attempt with neither.
			cut := 0
			for _, at := range as {
				if at.kind == "" && at.started <= c.crashSeq {
					cut++
				}
			}
			if n := perRun[1][ph][i] + perRun[2][ph][i]; n > len(as) || n < len(as)-cut {
				c.fatalf("%s phase %d: %d calls, %d Started transitions (%d cut short by the crash)", p.steps[i].name, ph, n, len(as), cut)
			}
			for r := 1; r <= 2; r++ {
				limit := p.steps[i].maxAttempts
				if ph == 1 {
					limit = p.compAttempts
				}
				if perRun[r][ph][i] > limit {
					c.fatalf("%s phase %d: %d calls in run %d; the policy allows %d", p.steps[i].name, ph, perRun[r][ph][i], r, limit)
				}
			}
			for _, at := range as {
				if ph == 1 && (compensating == 0 || at.started < compensating) {
					c.fatalf("%s compensated at %d, before the saga was compensating (%d)", p.steps[i].name, at.started, compensating)
				}
				if ph == 0 && compensating > 0 && at.started > compensating {
					c.fatalf("%s started at %d, after the saga was compensating (%d)", p.steps[i].name, at.started, compensating)
				}
			}
		}
	}

	// Exactly the steps that may have taken effect are compensated, once,
	// in reverse order.
	allDone, missed := true, false
	var want, got []string
	for i, s := range p.steps {
		if _, ok := c.succeeded(0, i); !ok {
			allDone = false
		}
		e := !s.retriable && c.effect(i)
		if e {
			want = append(want, s.name)
		}
		n := 0
		for _, at := range c.attempts[1][i] {
			if at.kind == saga.Succeeded {
				n++
			}
		}
		switch {
		case n > 1:
			c.fatalf("%s compensated %d times", s.name, n)
		case n == 1:
			got = append(got, s.name)
		case e:
			missed = true
		}
		if len(c.attempts[1][i]) > 0 && !e {
			c.fatalf("%s compensated, but it took no effect (or is retriable)", s.name)
		}
		for a := range p.steps {
			if !p.before[a][i] || len(c.attempts[1][a]) == 0 || !e {
				continue
			}
			done, ok := c.succeeded(1, i)
			if !ok || done > c.attempts[1][a][0].started {
				c.fatalf("%s, which comes before %s, compensated at %d; %s compensated at %d (%v)",
					p.steps[a].name, s.name, c.attempts[1][a][0].started, s.name, done, ok)
			}
		}
	}
	switch c.final {
	case saga.Completed:
		if !allDone || compensating > 0 {
			c.fatalf("completed, but not every step succeeded, or it compensated")
		}
	case saga.Compensated:
		if allDone || !slices.Equal(got, want) {
			c.fatalf("compensated %v; want %v (every step done: %v)", got, want, allDone)
		}
	case saga.NeedsAttention:
		retriableFailed := false
		for i, s := range p.steps {
			if _, ok := c.succeeded(0, i); s.retriable && !ok {
				retriableFailed = true
			}
		}
		if !missed && !(retriableFailed && compensating == 0) {
			c.fatalf("needs attention, but every compensation needed succeeded (%v) and no retriable step failed", got)
		}
	}

	// The data has every successful step's update, once, in log order.
	var d propData
	if c.data != nil {
		if err := (saga.JSON{}).Unmarshal(c.data, &d); err != nil {
			c.fatalf("decoding the data %s: %v", c.data, err)
		}
	}
	var done []string
	for _, t := range c.ts {
		if t.Kind == saga.Succeeded && t.Phase == saga.Forward {
			done = append(done, t.Step)
		}
	}
	if !slices.Equal(d.Done, done) {
		c.fatalf("the data lists %v; the steps that succeeded are %v", d.Done, done)
	}
}

// checkModel checks a run without a crash against the plan.
func (c *checker) checkModel() {
	p := c.p
	n := len(p.steps)
	type span struct{ first, last, calls int }
	var spans [2][]span
	for ph := range 2 {
		spans[ph] = make([]span, n)
	}
	for _, e := range c.events {
		s := &spans[phaseIndex(e.phase)][e.step]
		if !e.end {
			if s.calls == 0 {
				s.first = e.seq
			}
			s.calls++
		}
		s.last = e.seq
	}
	res := make([]fwdResult, n)
	maybe := make([]bool, n)
	attempts := make([]int, n)
	failures := 0
	for i, s := range p.steps {
		res[i], attempts[i], maybe[i] = s.forward()
		if spans[0][i].calls == attempts[i] && res[i] != resDone {
			failures++
		}
	}
	failed, attention := false, false
	for i, s := range p.steps {
		sp := spans[0][i]
		if sp.calls == 0 {
			continue
		}
		if sp.calls < attempts[i] && failures > 0 {
			// Once a step fails the saga, the steps in flight make no
			// more attempts.
			res[i], maybe[i] = resStopped, slices.Contains(s.actions[:sp.calls], timeout)
		} else if sp.calls != attempts[i] {
			c.fatalf("%s: %d calls of the action; its plan makes %d", s.name, sp.calls, attempts[i])
		}
		for _, d := range s.deps {
			if res[d] != resDone || spans[0][d].calls == 0 || spans[0][d].last > sp.first {
				c.fatalf("%s started before %s, which comes before it, succeeded", s.name, p.steps[d].name)
			}
		}
		failed = failed || res[i] != resDone && res[i] != resStopped
		attention = attention || s.retriable && res[i] != resDone && res[i] != resStopped
	}
	need := make([]bool, n)
	missing := false
	for i, s := range p.steps {
		need[i] = spans[0][i].calls > 0 && !s.retriable && (res[i] == resDone || maybe[i])
		missing = missing || need[i] && !s.compensate
	}
	want := saga.Compensated
	switch {
	case !failed:
		want = saga.Completed
		for i, s := range p.steps {
			if spans[0][i].calls == 0 {
				c.fatalf("%s never ran, and nothing failed", s.name)
			}
		}
	case attention, missing:
		want = saga.NeedsAttention
	}
	compensating := failed && !attention
	// A compensation that fails for good, or a step that needs one and has
	// none, holds back the compensations of the steps before it, and only
	// those: the other branches are compensated.
	fails := make([]bool, n)
	for i, s := range p.steps {
		if need[i] {
			_, ok := s.compCalls(p.compAttempts)
			fails[i] = !s.compensate || !ok
		}
	}
	held := func(i int) bool {
		for j := range n {
			if p.before[i][j] && fails[j] {
				return true
			}
		}
		return false
	}
	for i, s := range p.steps {
		sp := spans[1][i]
		if !compensating || !need[i] || !s.compensate || held(i) {
			if sp.calls > 0 {
				c.fatalf("%s: %d calls of the compensation; want none", s.name, sp.calls)
			}
			continue
		}
		calls, ok := s.compCalls(p.compAttempts)
		if !ok {
			want = saga.NeedsAttention
		}
		if sp.calls != calls {
			c.fatalf("%s: %d calls of the compensation; want %d", s.name, sp.calls, calls)
		}
		undone := ok && sp.calls > 0
		for a := range p.steps {
			if p.before[a][i] && spans[1][a].calls > 0 && (!undone || sp.last > spans[1][a].first) {
				c.fatalf("%s compensated (journal %d) before %s, which comes after it, was (ok %v, journal %d)",
					p.steps[a].name, spans[1][a].first, s.name, ok, sp.last)
			}
		}
	}
	if c.final != want {
		c.fatalf("final status %s; the model says %s", c.final, want)
	}
}

// checkCrash checks what the recovery made of the attempts the crash left
// with an unknown outcome.
func (c *checker) checkCrash() {
	st := saga.Running
	for _, t := range c.ts[:c.crashSeq] {
		if t.Status != "" {
			st = t.Status
		}
	}
	if st.Final() {
		c.fatalf("the saga was %s before the crash", st)
	}
	// Replay treats a non-idempotent step whose attempt timed out or was
	// cut short as done, and compensates.
	var unknownNonIdem bool
	for i, s := range c.p.steps {
		for _, at := range c.attempts[0][i] {
			if !s.idem() && at.started <= c.crashSeq && (at.kind == "" || at.kind == saga.TimedOut && at.ended <= c.crashSeq) {
				unknownNonIdem = true
				if c.final == saga.Completed || len(c.attempts[0][i]) > 0 && c.attempts[0][i][len(c.attempts[0][i])-1].started > c.crashSeq {
					c.fatalf("%s, not idempotent, was cut short, yet ran again or the saga completed", s.name)
				}
			}
		}
	}
	if st == saga.Running && unknownNonIdem && c.ts[c.crashSeq].Status != saga.Compensating {
		c.fatalf("a non-idempotent step was cut short; the recovery should compensate first")
	}
	// After the recovery, a step that fails turns the saga to compensating,
	// and interrupted steps not yet made again are compensated instead.
	turned := false
	for _, t := range c.ts[c.crashSeq:] {
		turned = turned || t.Status == saga.Compensating || t.Status == saga.NeedsAttention
	}
	for ph := range 2 {
		for i, as := range c.attempts[ph] {
			if len(as) == 0 || as[len(as)-1].kind != "" || (ph == 0 && (!c.p.steps[i].idem() || unknownNonIdem || st != saga.Running || turned)) {
				continue
			}
			c.fatalf("%s phase %d was cut short and not made again after the recovery", c.p.steps[i].name, ph)
		}
	}
}

// TestOrchestratorFollowsModel runs random sagas with random outcomes of
// every call and checks the final status, the calls of every action and
// compensation, the order of the compensations and the log against a
// model of the engine's rules.
func TestOrchestratorFollowsModel(t *testing.T) {
	seen := map[saga.Status]int{}
	defer func() { t.Logf("final statuses: %v", seen) }()
	synctest.Test(t, func(t *testing.T) {
		// rapid asks a *testing.T for its deadline, which a bubble forbids.
		rapid.Check(struct{ testing.TB }{t}, func(rt *rapid.T) {
			leaks := goleak.IgnoreCurrent()
			p := drawPlan(rt)
			rec := newCallRecorder(p, nil)
			def := define(rt, p, rec)
			log := &saga.MemoryLog{}
			o, err := saga.NewOrchestrator(log, propOptions(p, "only", def)...)
			if err != nil {
				rt.Fatalf("NewOrchestrator() = %v", err)
			}
			defer closeWithin(o)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			id, err := o.Start(ctx, def, propData{})
			if err != nil {
				rt.Fatalf("Start() = %v", err)
			}
			waited, waitErr := o.Wait(ctx, id)
			if err := o.Close(ctx); err != nil {
				rt.Fatalf("Close() = %v", err)
			}
			r, ts, err := log.Load(ctx, id)
			if err != nil {
				rt.Fatalf("Load() = %v", err)
			}
			c := &checker{rt: rt, p: p, rec: rec, events: rec.journal(), ts: ts, final: r.Status}
			c.readLog()
			c.checkCommon(waited, waitErr)
			c.checkModel()
			if err := goleak.Find(leaks); err != nil {
				rt.Fatalf("goroutines left behind: %v", err)
			}
			seen[c.final]++
		})
	})
}

// TestRecoveryAfterCrash crashes the orchestrator at a random point of a
// random attempt (a hook point, or during the call) by closing it without
// waiting, so that nothing more reaches the log, then recovers the saga in
// a second orchestrator over the same log, and checks the same invariants,
// with interrupted attempts of unknown outcome: made again if idempotent,
// compensated otherwise.
func TestRecoveryAfterCrash(t *testing.T) {
	seen := map[string]int{}
	defer func() { t.Logf("crashes and final statuses: %v", seen) }()
	synctest.Test(t, func(t *testing.T) {
		rapid.Check(struct{ testing.TB }{t}, func(rt *rapid.T) {
			leaks := goleak.IgnoreCurrent()
			p := drawPlan(rt)
			crash := &crashPoint{
				step:  rapid.IntRange(0, len(p.steps)-1).Draw(rt, "crash step"),
				phase: rapid.SampledFrom([]saga.Phase{saga.Forward, saga.Compensate}).Draw(rt, "crash phase"),
				call:  rapid.IntRange(1, 2).Draw(rt, "crash call"),
				point: rapid.SampledFrom(append([]saga.HookPoint{""}, saga.HookPoints...)).Draw(rt, "crash point"),
			}
			rec := newCallRecorder(p, crash)
			defer func() {
				if rec.fired.Load() {
					select {
					case <-rec.resume:
					default:
						close(rec.resume)
					}
				}
			}()
			def := define(rt, p, rec)
			log := &saga.MemoryLog{}
			o1, err := saga.NewOrchestrator(log, propOptions(p, "first", def)...)
			if err != nil {
				rt.Fatalf("NewOrchestrator() = %v", err)
			}
			saga.SetHook(o1, rec.hook)
			defer closeWithin(o1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			id, err := o1.Start(ctx, def, propData{})
			if err != nil {
				rt.Fatalf("Start() = %v", err)
			}
			type result struct {
				st  saga.Status
				err error
			}
			waitCtx, stopWaiting := context.WithCancel(ctx)
			defer stopWaiting()
			results := make(chan result, 1)
			go func() {
				st, err := o1.Wait(waitCtx, id)
				results <- result{st, err}
			}()
			var res result
			var crashSeq int64
			select {
			case res = <-results:
				if err := o1.Close(ctx); err != nil {
					rt.Fatalf("Close() = %v", err)
				}
			case <-rec.crashed:
				expired, expire := context.WithCancel(ctx)
				expire()
				closed := make(chan error, 1)
				go func() { closed <- o1.Close(expired) }()
				synctest.Wait() // Close has cancelled everything; only the crashed hook waits
				close(rec.resume)
				if err := <-closed; !errors.Is(err, context.Canceled) {
					rt.Fatalf("Close(an expired context) = %v; want context.Canceled", err)
				}
				stopWaiting()
				<-results
				before, ts, err := log.Load(ctx, id)
				if err != nil {
					rt.Fatalf("Load() = %v", err)
				}
				crashSeq = int64(len(ts))
				rec.setRun(2)
				o2, err := saga.NewOrchestrator(log, propOptions(p, "second", def)...)
				if err != nil {
					rt.Fatalf("NewOrchestrator() = %v", err)
				}
				defer closeWithin(o2)
				// A crash after the last outcome, written with the final
				// status, leaves nothing to recover.
				want := 1
				if before.Status.Final() {
					want, crashSeq = 0, 0 // checked as a run without a crash
				}
				if n, err := o2.Recover(ctx); n != want || err != nil {
					rt.Fatalf("Recover() = %d, %v; want %d, nil", n, err, want)
				}
				res.st, res.err = o2.Wait(ctx, id)
				if err := o2.Close(ctx); err != nil {
					rt.Fatalf("Close() = %v", err)
				}
			}
			r, ts, err := log.Load(ctx, id)
			if err != nil {
				rt.Fatalf("Load() = %v", err)
			}
			c := &checker{rt: rt, p: p, rec: rec, events: rec.journal(), ts: ts, final: r.Status, crashSeq: crashSeq}
			c.readLog()
			c.checkCommon(res.st, res.err)
			if crashSeq == 0 {
				c.checkModel()
				seen["no crash, "+string(c.final)]++
			} else {
				c.checkCrash()
				seen[fmt.Sprintf("crash %s %s, %s", crash.phase, cmp.Or(string(crash.point), "during"), c.final)]++
			}
			if err := goleak.Find(leaks); err != nil {
				rt.Fatalf("goroutines left behind: %v", err)
			}
		})
	})
}

// A compensation that returns a retry.Permanent error says it can never
// succeed: the saga needs attention at once, without more attempts.
func TestPermanentCompensationErrorNeedsAttention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		def, err := saga.Define("order", 1,
			saga.Step[order]{Name: "pay",
				Action: func(context.Context, order) (func(*order), error) { return nil, nil },
				Compensate: func(context.Context, order) error {
					if calls.Add(1) == 1 {
						return retry.Permanent(errors.New("bank says no, for now"))
					}
					return nil
				}},
			saga.Step[order]{Name: "ship",
				Action: func(context.Context, order) (func(*order), error) {
					return nil, retry.Permanent(errors.New("no courier"))
				},
				Compensate: func(context.Context, order) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		o, err := saga.NewOrchestrator(&saga.MemoryLog{},
			saga.WithCompensationRetry(retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(retry.Constant(time.Millisecond)))))
		if err != nil {
			t.Fatal(err)
		}
		defer closeWithin(o)
		id, err := o.Start(t.Context(), def, order{})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := o.Wait(t.Context(), id); st != saga.NeedsAttention {
			t.Errorf("Wait() = %s, %v; want %s", st, err, saga.NeedsAttention)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the compensation ran %d times; want 1", n)
		}
	})
}

// A step that failed for good while a parallel step was still running
// fails the saga: a crash before the saga is marked compensating must not
// give the step a second chance (and a fresh retry policy) on recovery.
func TestStepThatFailedForGoodStaysFailedAfterACrash(t *testing.T) {

	synctest.Test(t, func(t *testing.T) {
		var declines, slowCalls atomic.Int32
		reserving := make(chan struct{})
		def, err := saga.Define("order", 1,
			saga.Step[order]{Name: "pay", After: []string{},
				Action: func(context.Context, order) (func(*order), error) {
					if declines.Add(1) == 1 {
						<-reserving // fail while reserve is in flight
						return nil, retry.Permanent(errors.New("card declined"))
					}
					return nil, nil
				},
				Compensate: func(context.Context, order) error { return nil }},
			saga.Step[order]{Name: "reserve", After: []string{}, Idempotent: true,
				Action: func(ctx context.Context, _ order) (func(*order), error) {
					if slowCalls.Add(1) == 1 {
						close(reserving)
						<-ctx.Done() // still running at the crash
						return nil, ctx.Err()
					}
					return nil, nil
				},
				Compensate: func(context.Context, order) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		log := &saga.MemoryLog{}
		o1, err := saga.NewOrchestrator(log, saga.WithOwner("first"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := o1.Start(t.Context(), def, order{})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // pay has failed for good; reserve is running
		expired, expire := context.WithCancel(t.Context())
		expire()
		_ = o1.Close(expired) // the crash

		o2, err := saga.NewOrchestrator(log, saga.WithOwner("second"), saga.WithDefinitions(def))
		if err != nil {
			t.Fatal(err)
		}
		defer closeWithin(o2)
		if n, err := o2.Recover(t.Context()); n != 1 || err != nil {
			t.Fatalf("Recover() = %d, %v; want 1, nil", n, err)
		}
		if st, err := o2.Wait(t.Context(), id); st != saga.Compensated {
			t.Errorf("Wait() = %s, %v; want %s", st, err, saga.Compensated)
		}
		if n := declines.Load(); n != 1 {
			t.Errorf("pay ran %d times; want 1", n)
		}
	})
}

// TestRetryAfterAttentionFollowsModel runs random sagas until one needs
// attention, fixes every step and compensation (each call from then on
// succeeds), calls Retry, and checks what the retried run did: a saga
// stopped by a Retriable step completes; a compensating one is
// compensated (unless a step that may have taken effect has no
// compensation: it needs attention again), every compensation it needs
// succeeding once in all, in reverse order, and no action running again;
// the log is one story, the Retried transition right after the status
// needs_attention.
func TestRetryAfterAttentionFollowsModel(t *testing.T) {
	seen := map[string]int{}
	defer func() { t.Logf("retries: %v", seen) }()
	synctest.Test(t, func(t *testing.T) {
		rapid.Check(struct{ testing.TB }{t}, func(rt *rapid.T) {
			leaks := goleak.IgnoreCurrent()
			p := drawPlan(rt)
			rec := newCallRecorder(p, nil)
			def := define(rt, p, rec)
			log := &saga.MemoryLog{}
			o, err := saga.NewOrchestrator(log, propOptions(p, "only", def)...)
			if err != nil {
				rt.Fatalf("NewOrchestrator() = %v", err)
			}
			defer closeWithin(o)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			id, err := o.Start(ctx, def, propData{})
			if err != nil {
				rt.Fatalf("Start() = %v", err)
			}
			if st, _ := o.Wait(ctx, id); st != saga.NeedsAttention {
				seen["no attention"]++
				return
			}
			_, before, err := log.Load(ctx, id)
			if err != nil {
				rt.Fatalf("Load() = %v", err)
			}
			rec.setRun(2)
			rec.fixed.Store(true)
			if err := o.Retry(ctx, id); err != nil {
				rt.Fatalf("Retry() = %v", err)
			}
			waited, waitErr := o.Wait(ctx, id)
			if err := o.Close(ctx); err != nil {
				rt.Fatalf("Close() = %v", err)
			}
			r, ts, err := log.Load(ctx, id)
			if err != nil {
				rt.Fatalf("Load() = %v", err)
			}
			c := &checker{rt: rt, p: p, rec: rec, events: rec.journal(), ts: ts, final: r.Status}
			c.checkRetry(before, waited, waitErr)
			if err := goleak.Find(leaks); err != nil {
				rt.Fatalf("goroutines left behind: %v", err)
			}
			compensating := slices.ContainsFunc(before, func(t saga.Transition) bool { return t.Status == saga.Compensating })
			seen[fmt.Sprintf("compensating %v, %s", compensating, c.final)]++
		})
	})
}

// checkRetry checks a saga retried after it needed attention, whose log
// had the transitions before when it did.
func (c *checker) checkRetry(before []saga.Transition, waited saga.Status, waitErr error) {
	p := c.p
	n := len(p.steps)
	for k, t := range c.ts {
		if t.Seq != int64(k+1) {
			c.fatalf("transition %d has Seq %d; want %d", k, t.Seq, k+1)
		}
	}
	if len(c.ts) <= len(before) {
		c.fatalf("the retry wrote nothing")
	}
	if r := c.ts[len(before)]; r.Kind != saga.Retried || r.Step != "" || c.ts[len(before)-1].Status != saga.NeedsAttention {
		c.fatalf("transition %d is not a Retried one right after needs_attention", r.Seq)
	}
	for _, t := range c.ts[len(before)+1 : len(c.ts)-1] {
		if t.Status.Final() || t.Kind == saga.Retried {
			c.fatalf("transition %d (%s %s) before the end of the retried run", t.Seq, t.Status, t.Kind)
		}
	}
	last := c.ts[len(c.ts)-1]
	if waited != c.final || last.Status != c.final || !c.final.Final() {
		c.fatalf("Wait() = %s, the last transition says %q, the log's record %s", waited, last.Status, c.final)
	}
	if (waitErr == nil) != (c.final == saga.Completed) {
		c.fatalf("Wait() = %s, %v", waited, waitErr)
	}
	if len(c.rec.errs) > 0 {
		c.fatalf("the steps found: %v", c.rec.errs)
	}

	// By the log: which steps may have taken effect, which compensations
	// succeeded (and when), and when each compensation first started.
	effect := make([]bool, n)
	done := make([]bool, n)
	compDone := make([]int64, n)
	compFirst := make([]int64, n)
	compensating := false
	lastKind := make([]map[int]saga.Kind, n)
	for i := range lastKind {
		lastKind[i] = map[int]saga.Kind{}
	}
	for _, t := range c.ts {
		if t.Status == saga.Compensating && t.Kind != saga.Retried {
			compensating = true
		}
		i := slices.IndexFunc(p.steps, func(s stepPlan) bool { return s.name == t.Step })
		if i < 0 {
			continue
		}
		if t.Phase == saga.Forward {
			if compensating && t.Kind == saga.Started && t.Seq > int64(len(before)) {
				c.fatalf("%s started at %d, after the saga was compensating", t.Step, t.Seq)
			}
			lastKind[i][t.Attempt] = t.Kind
			continue
		}
		if compFirst[i] == 0 && t.Kind == saga.Started {
			compFirst[i] = t.Seq
		}
		if t.Kind == saga.Succeeded {
			if compDone[i] != 0 {
				c.fatalf("%s compensated twice", t.Step)
			}
			compDone[i] = t.Seq
		}
	}
	for i := range p.steps {
		for _, k := range lastKind[i] {
			effect[i] = effect[i] || k != saga.Failed
			done[i] = done[i] || k == saga.Succeeded
		}
	}
	// The journal: after the fix, every call succeeds.
	for _, e := range c.events {
		if e.run == 2 && e.end && e.out != succeed {
			c.fatalf("%s %s call %d after the fix: %v", p.steps[e.step].name, e.phase, e.call, e.out)
		}
	}

	want := saga.Completed
	if compensating {
		want = saga.Compensated
		for i, s := range p.steps {
			if !s.retriable && effect[i] && !s.compensate {
				want = saga.NeedsAttention
			}
		}
	}
	if c.final != want {
		c.fatalf("final status %s after the retry; want %s", c.final, want)
	}
	switch want {
	case saga.Completed:
		for i, s := range p.steps {
			if !done[i] {
				c.fatalf("completed, but %s did not succeed", s.name)
			}
			if compFirst[i] != 0 {
				c.fatalf("completed, but %s was compensated", s.name)
			}
		}
	case saga.Compensated:
		for i, s := range p.steps {
			need := !s.retriable && effect[i]
			switch {
			case need && compDone[i] == 0:
				c.fatalf("compensated, but %s, which may have taken effect, was not", s.name)
			case !need && compFirst[i] != 0:
				c.fatalf("%s compensated, but it took no effect (or is retriable)", s.name)
			}
			for a := range p.steps {
				if p.before[a][i] && need && compFirst[a] != 0 && compFirst[a] < compDone[i] {
					c.fatalf("%s, which comes before %s, compensated at %d; %s compensated at %d",
						p.steps[a].name, s.name, compFirst[a], s.name, compDone[i])
				}
			}
		}
	}
}
