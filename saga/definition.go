package saga

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/otelpatterns/patterns/retry"
)

// MaxNameLen is the longest saga or step name, in bytes.
const MaxNameLen = 200

// Step is one step of a saga whose data is of type D.
//
// A saga's steps fall into the three kinds of the saga literature:
// compensatable steps, which come first and have a Compensate function; at
// most one Pivot, the point of no return; and Retriable steps after the
// pivot, which are retried until they succeed and are never undone. A saga
// without a pivot has compensatable steps only.
type Step[D any] struct {
	// Name identifies the step within its saga: 1 to MaxNameLen bytes of
	// UTF-8, unique, with no '/' (it goes into idempotency keys).
	Name string

	// Action does the step's work. It receives a copy of the saga data as
	// it was when the attempt started, and returns a function that records
	// the step's result in the data, or nil if it has none: the
	// orchestrator applies it to the current data, so that steps running in
	// parallel do not overwrite each other's results.
	//
	// An error fails the attempt. A [retry.Permanent] error, or the last
	// error the step's retry policy allows, fails the step, and the saga
	// compensates; any other error is transient, and the attempt is made
	// again. An action that panics fails its attempt with the panic; one
	// whose data the codec cannot decode fails for good.
	//
	// The action may run more than once for one saga: again after a
	// transient error, and again after a crash that left its outcome
	// unknown if it is Idempotent. Pass the key from [IdempotencyKey] to
	// the services it calls so that they apply it once.
	Action func(ctx context.Context, data D) (update func(*D), err error)

	// Compensate undoes the action. It runs, on a context that the
	// caller's cancellation does not reach, when a later step fails, for
	// each step that completed or whose outcome is unknown (a timed-out or
	// interrupted non-idempotent attempt), so it must be idempotent and
	// must cope with an action that never took effect. A failing
	// compensation is retried with capped backoff (see
	// [WithCompensationRetry]); when that runs out, the saga stops in
	// status NeedsAttention. Required, except for the pivot and Retriable
	// steps.
	Compensate func(ctx context.Context, data D) error

	// After names the steps that must complete before this one starts.
	// Steps with no order between them run in parallel; compensations run
	// in the reverse order. With no After at all, each step comes after the
	// one listed before it (a simple sequence). To run a step first, in
	// parallel with others, set After to an empty, non-nil slice.
	After []string

	// Pivot marks the step after whose success the saga no longer
	// compensates: every step must come before or after the pivot, and the
	// steps after it must be Retriable.
	Pivot bool

	// Retriable marks a step after the pivot: it has no compensation, and
	// it is retried until it succeeds. If its retry policy runs out, the
	// saga stops in status NeedsAttention rather than give up half done.
	// A retriable step must be idempotent; Idempotent is implied.
	Retriable bool

	// Idempotent marks an action that may safely run again after an
	// attempt whose outcome is unknown (it timed out, or the process died
	// while it ran): such an attempt is retried. The outcome of a
	// non-idempotent action that is unknown is treated as done, and the
	// saga compensates it.
	Idempotent bool

	// Retry is the step's retry policy for transient errors. The default
	// for compensatable steps and the pivot makes 3 attempts, backing off
	// exponentially from 100ms to 10s; for Retriable steps it makes 20
	// attempts, backing off exponentially from 100ms to 30s, before the
	// saga needs attention. Each wait is drawn at random up to the
	// backoff's (full jitter), so a step that keeps failing is given up
	// after half the sum of the backoff's waits on average, and their sum
	// at most, plus the attempts' own time: after 150ms on average, 300ms
	// at most, by default, and for Retriable steps after 2m56s on average,
	// 5m51s at most. The default policies are the orchestrator's, and their
	// spans and metrics (a "retry" span around the attempts after the
	// first; retry.name saga.step) go to its providers. A policy set here
	// keeps its own providers, the global ones unless it was built with
	// retry.WithTracerProvider and retry.WithMeterProvider.
	Retry *retry.Retrier

	// Timeout bounds each attempt of the action, and of the compensation.
	// An action attempt that runs out of time has an unknown outcome (see
	// Idempotent); a compensation attempt that does is tried again. Zero
	// means no limit of the step's own.
	Timeout time.Duration
}

// Definition is a named, versioned saga over data of type D: its steps and
// the order among them. Create it with [Define]; it is immutable and safe
// for concurrent use.
//
// The name and version identify the definition in the log: an orchestrator
// resumes a saga only with the definition it started with. Keep the old
// version registered while sagas started with it may be unfinished.
type Definition[D any] struct {
	spec *spec
}

// Definer is a [*Definition] of any data type. [Orchestrator.Start] and
// [WithDefinitions] take it so that one orchestrator runs sagas of many
// data types.
type Definer interface {
	// Name and Version return those of the definition.
	Name() string
	Version() int
	definition() *spec
}

// Name returns the definition's name.
func (d *Definition[D]) Name() string { return d.spec.name }

// Version returns the definition's version.
func (d *Definition[D]) Version() int { return d.spec.version }

func (d *Definition[D]) definition() *spec { return d.spec }

// Define returns the definition of the saga called name, at version, made
// of steps. It returns an error matching [ErrInvalidDefinition] that names
// every step at fault: a bad or duplicate name, a missing action, an After
// naming an unknown step, a cycle, more than one pivot, a step neither
// before nor after the pivot, a step after the pivot that is not
// Retriable, a Retriable step not after a pivot, or a step that needs a
// compensation and has none; and a data type D that is an interface (such
// as any), which the codec cannot decode into.
func Define[D any](name string, version int, steps ...Step[D]) (*Definition[D], error) {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if err := checkName(name); err != nil {
		bad("saga name %q: %v", name, err)
	}
	if version < 1 {
		bad("version %d: must be 1 or more", version)
	}
	if len(steps) == 0 {
		bad("no steps")
	}
	if t := reflect.TypeFor[D](); t.Kind() == reflect.Interface {
		// The codec decodes the data into a D: an interface holds no
		// concrete type to decode into, and Start could never match it.
		bad("data type %v: an interface; the data must be of a concrete type", t)
	}
	s := &spec{name: name, version: version, index: make(map[string]int, len(steps)), dataType: reflect.TypeFor[D]()}
	for i, st := range steps {
		if err := checkName(st.Name); err != nil {
			bad("step %q: name: %v", st.Name, err)
		} else if _, dup := s.index[st.Name]; dup {
			bad("step %q: defined twice", st.Name)
		} else {
			s.index[st.Name] = i
		}
		if st.Action == nil {
			bad("step %q: no action", st.Name)
		}
	}
	s.steps = make([]stepSpec, len(steps))
	for i, st := range steps {
		ss := &s.steps[i]
		ss.name = st.Name
		ss.pivot, ss.retriable, ss.idempotent = st.Pivot, st.Retriable, st.Idempotent || st.Retriable
		ss.timeout = st.Timeout
		if st.Timeout < 0 {
			bad("step %q: negative timeout %v", st.Name, st.Timeout)
		}
		ss.retry = st.Retry // nil: the orchestrator's default
		if st.After == nil && i > 0 {
			ss.deps = []int{i - 1}
		}
		for _, a := range st.After {
			j, ok := s.index[a]
			switch {
			case !ok:
				bad("step %q: After names unknown step %q", st.Name, a)
			case j == i:
				bad("step %q: comes after itself", st.Name)
			default:
				ss.deps = append(ss.deps, j)
			}
		}
		ss.action = typedAction(st.Action)
		if st.Compensate != nil {
			ss.compensate = typedCompensate(st.Compensate)
		}
	}
	if len(errs) == 0 {
		for _, e := range s.link() {
			bad("%s", e)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidDefinition, name, strings.Join(errs, "; "))
	}
	return &Definition[D]{spec: s}, nil
}

func checkName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("empty")
	case len(n) > MaxNameLen:
		return fmt.Errorf("%d bytes; at most %d", len(n), MaxNameLen)
	case !utf8.ValidString(n):
		return fmt.Errorf("not valid UTF-8")
	case strings.ContainsAny(n, "/\x00"):
		return fmt.Errorf("contains '/' or NUL")
	}
	return nil
}

// spec is a definition with the data type erased, as the orchestrator runs
// it.
type spec struct {
	name     string
	version  int
	dataType reflect.Type
	steps    []stepSpec
	index    map[string]int
	order    []int // a topological order of the steps
	pivot    int   // -1 for none
}

type stepSpec struct {
	name       string
	deps       []int // steps that come right before
	dependents []int // steps that come right after
	pivot      bool
	retriable  bool
	idempotent bool
	retry      *retry.Retrier // nil for the orchestrator's default
	timeout    time.Duration
	// action decodes a snapshot of the data (or takes it from the run's
	// cache), runs the step's action and returns how to apply its update
	// to the current data.
	action     func(ctx context.Context, c Codec, snapshot []byte, cache *decoded) (apply func(cur []byte) ([]byte, error), err error)
	compensate func(ctx context.Context, c Codec, data []byte, cache *decoded) error
}

// decoded is a run's cache of its data decoded: the value that the
// encoded data from decodes to. It serves data of a plain type only (see
// plainType), of which a copy is as much the attempt's own as a value
// decoded anew: the attempts of a saga's steps then decode the data once
// per change of it, not once each, and apply an update to a copy of the
// cached value rather than to one decoded again. Attempts of parallel
// steps use it at once.
type decoded struct{ p atomic.Pointer[decodedData] }

type decodedData struct {
	from []byte // never written to: the run's data is replaced, not changed
	v    any
}

// get returns the value that b decodes to, if it is in the cache.
func (c *decoded) get(b []byte) (any, bool) {
	if d := c.p.Load(); d != nil && bytes.Equal(d.from, b) && (d.from == nil) == (b == nil) {
		return d.v, true
	}
	return nil, false
}

// put caches v as the value that b decodes to.
func (c *decoded) put(b []byte, v any) { c.p.Store(&decodedData{b, v}) }

// timeType is time.Time, which plainType takes for plain: its pointer is
// to a Location, which nothing changes.
var timeType = reflect.TypeFor[time.Time]()

// plainType reports whether a copy of a value of type t shares no memory
// that either could change with it: t holds no pointer, slice, map,
// channel, function or interface, except time.Time's Location. Strings
// share memory but are immutable.
func plainType(t reflect.Type) bool {
	if t == timeType {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return plainType(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !plainType(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// decode returns the value that b decodes to as a D: a copy of the
// cached one, if D is plain and b is the data cached, or else decoded
// (and then cached, if D is plain).
func decode[D any](c Codec, b []byte, cache *decoded, plain bool) (D, error) {
	if plain {
		if v, ok := cache.get(b); ok {
			return v.(D), nil
		}
	}
	var d D
	if err := c.Unmarshal(b, &d); err != nil {
		return d, err
	}
	if plain {
		cache.put(b, d)
	}
	return d, nil
}

func typedAction[D any](f func(context.Context, D) (func(*D), error)) func(context.Context, Codec, []byte, *decoded) (func([]byte) ([]byte, error), error) {
	plain := plainType(reflect.TypeFor[D]())
	return func(ctx context.Context, c Codec, snapshot []byte, cache *decoded) (func([]byte) ([]byte, error), error) {
		d, err := decode[D](c, snapshot, cache, plain)
		if err != nil {
			// The same bytes will not decode on the next attempt.
			return nil, retry.Permanent(fmt.Errorf("saga: decoding the data: %w", err))
		}
		update, err := f(ctx, d)
		if err != nil || update == nil {
			return nil, err
		}
		return func(cur []byte) ([]byte, error) {
			// The update goes to a value of its own: the cache keeps the
			// value that cur decodes to.
			d, err := decode[D](c, cur, cache, plain)
			if err != nil {
				return nil, fmt.Errorf("saga: decoding the data: %w", err)
			}
			update(&d)
			b, err := c.Marshal(&d)
			if err != nil {
				return nil, fmt.Errorf("saga: encoding the data: %w", err)
			}
			return b, nil
		}, nil
	}
}

func typedCompensate[D any](f func(context.Context, D) error) func(context.Context, Codec, []byte, *decoded) error {
	plain := plainType(reflect.TypeFor[D]())
	return func(ctx context.Context, c Codec, data []byte, cache *decoded) error {
		d, err := decode[D](c, data, cache, plain)
		if err != nil {
			return retry.Permanent(fmt.Errorf("saga: decoding the data: %w", err))
		}
		return f(ctx, d)
	}
}

// link fills in dependents, order and pivot, and returns what is wrong
// with the graph.
func (s *spec) link() []string {
	var errs []string
	s.pivot = -1
	for i := range s.steps {
		for _, d := range s.steps[i].deps {
			s.steps[d].dependents = append(s.steps[d].dependents, i)
		}
		if s.steps[i].pivot {
			if s.pivot >= 0 {
				errs = append(errs, fmt.Sprintf("step %q: a second pivot (the first is %q)", s.steps[i].name, s.steps[s.pivot].name))
				continue
			}
			s.pivot = i
		}
	}
	// Kahn's algorithm; steps left over lie on or after a cycle.
	indeg := make([]int, len(s.steps))
	for i := range s.steps {
		indeg[i] = len(s.steps[i].deps)
	}
	var queue []int
	for i, n := range indeg {
		if n == 0 {
			queue = append(queue, i)
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		s.order = append(s.order, i)
		for _, j := range s.steps[i].dependents {
			if indeg[j]--; indeg[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	if len(s.order) < len(s.steps) {
		for i, n := range indeg {
			if n > 0 {
				errs = append(errs, fmt.Sprintf("step %q: on or after a cycle of After", s.steps[i].name))
			}
		}
		return errs
	}
	if len(errs) > 0 {
		return errs
	}
	var before, after []bool
	if s.pivot >= 0 {
		before, after = s.reach(s.pivot, func(st *stepSpec) []int { return st.deps }), s.reach(s.pivot, func(st *stepSpec) []int { return st.dependents })
	}
	for i := range s.steps {
		st := &s.steps[i]
		switch {
		case st.pivot:
			if st.retriable {
				errs = append(errs, fmt.Sprintf("step %q: the pivot cannot be Retriable", st.name))
			}
		case s.pivot >= 0 && !before[i] && !after[i]:
			errs = append(errs, fmt.Sprintf("step %q: neither before nor after the pivot %q", st.name, s.steps[s.pivot].name))
		case s.pivot >= 0 && after[i] && !st.retriable:
			errs = append(errs, fmt.Sprintf("step %q: after the pivot %q, so it must be Retriable", st.name, s.steps[s.pivot].name))
		case st.retriable && (s.pivot < 0 || !after[i]):
			errs = append(errs, fmt.Sprintf("step %q: Retriable, but not after a pivot", st.name))
		case !st.retriable && st.compensate == nil:
			errs = append(errs, fmt.Sprintf("step %q: no compensation (only the pivot and Retriable steps may have none)", st.name))
		}
		if st.retriable && st.compensate != nil {
			errs = append(errs, fmt.Sprintf("step %q: Retriable steps are never compensated; remove Compensate", st.name))
		}
	}
	return errs
}

// reach marks the steps reachable from step i through next, i excluded.
func (s *spec) reach(i int, next func(*stepSpec) []int) []bool {
	seen := make([]bool, len(s.steps))
	stack := append([]int(nil), next(&s.steps[i])...)
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen[j] {
			seen[j] = true
			stack = append(stack, next(&s.steps[j])...)
		}
	}
	return seen
}
