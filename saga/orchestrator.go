package saga

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/telemetry"
	"github.com/otelpatterns/patterns/retry"
)

// claimBatch is how many sagas one Claim of Recover asks for.
const claimBatch = 100

// Orchestrator runs sagas inside the process, recording each transition in
// a [Log] before going on, so that a saga interrupted by a crash resumes
// where it stopped, in this process or another, after [Orchestrator.Recover].
//
// Every saga an orchestrator runs is leased to it in the log; it renews
// the leases while it runs them and releases them when it closes. Several
// orchestrators may share a log: a saga runs in one of them at a time.
//
// An Orchestrator is safe for concurrent use.
type Orchestrator struct {
	log   Log
	cfg   config
	tel   *instruments
	codec Codec
	// The default retry policies, built on the orchestrator's providers:
	// of steps that set none, of Retriable steps that set none, and of
	// the log's writes. cfg.compensation is the compensations' policy.
	stepRetry, retriableRetry, logRetry *retry.Retrier

	// epoch is the origin of since, the monotonic clock of the leases.
	epoch time.Time

	// ctx ends at Close; sagas and background loops run under it.
	ctx    context.Context
	cancel context.CancelFunc
	// stepCtx ends only when Close gives up waiting: attempts in flight
	// at Close run under it, so that a graceful Close does not cut them
	// short.
	stepCtx    context.Context
	stepCancel context.CancelFunc

	mu     sync.Mutex
	defs   map[defKey]*definition
	runs   map[string]*run
	closed bool
	// resolving holds the sagas that a call of Retry or Resolve is
	// resolving: the log's Reopen lets the same owner through twice, and
	// the call that loses must not release the lease of the other's run.
	resolving map[string]bool
	runsWG    sync.WaitGroup // running sagas, and runners waiting for one
	loops     sync.WaitGroup // the renew and recover loops
	// next hands a run to a runner that is waiting for one (see runner).
	next chan *run
	// stopRenew ends the renew loop, after the runs: a graceful Close
	// keeps renewing the leases of the attempts it waits for.
	stopRenew chan struct{}

	// hook, set only by tests (export_test.go) before use, is called at
	// the points named in hooks.go.
	hook func(point hookPoint, step string, phase Phase)
}

type defKey struct {
	name    string
	version int
}

// definition is a registered spec with its attribute sets and the retry
// policy of each step: its own, or the orchestrator's default.
type definition struct {
	*spec
	sets    *sets
	retries []*retry.Retrier
}

// NewOrchestrator returns an orchestrator that records sagas in log. It
// starts a goroutine that renews leases and one that recovers sagas (see
// [WithRecoverInterval]); each saga runs on a goroutine that then waits a
// second for the next saga to run: call [Orchestrator.Close] to stop them
// all. It returns an error naming each bad argument and option: a nil
// log, a nil definition or two definitions with one name and version
// ([WithDefinitions]), an empty or unstorable [WithOwner], a lease under a
// second ([WithLease]), a nil [WithCodec], [WithCompensationRetry] or
// [WithNeedsAttention], a negative [WithRecoverInterval], a nil option
// ("opts[i] is nil").
func NewOrchestrator(log Log, opts ...Option) (*Orchestrator, error) {
	cfg := config{lease: DefaultLease, codec: JSON{}}
	var errs []error
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	if nilcheck.IsNil(log) {
		errs = append(errs, errors.New("nil log"))
	}
	if cfg.ownerSet {
		switch {
		case cfg.owner == "":
			errs = append(errs, errors.New(`WithOwner(""): empty`))
		case ValidText(cfg.owner) != cfg.owner:
			errs = append(errs, fmt.Errorf("WithOwner(%q): has a NUL byte or is not UTF-8", cfg.owner))
		}
	}
	if cfg.lease < time.Second {
		errs = append(errs, fmt.Errorf("WithLease(%v): under a second", cfg.lease))
	}
	if nilcheck.IsNil(cfg.codec) {
		errs = append(errs, errors.New("WithCodec(nil): nil codec"))
		cfg.codec = JSON{}
	}
	if cfg.compensationSet && cfg.compensation == nil {
		errs = append(errs, errors.New("WithCompensationRetry(nil): nil retrier"))
	}
	if cfg.needsAttentionSet && cfg.needsAttention == nil {
		errs = append(errs, errors.New("WithNeedsAttention(nil): nil function"))
	}
	// The default policies report to the orchestrator's providers, as its
	// own spans and metrics do.
	newRetry := func(name string, opts ...retry.Option) *retry.Retrier {
		return retry.New(append(opts, retry.WithName(name),
			retry.WithTracerProvider(cfg.tp), retry.WithMeterProvider(cfg.mp))...)
	}
	if cfg.compensation == nil {
		cfg.compensation = newRetry("saga.compensation", defaultCompensationPolicy.options()...)
	}
	switch {
	case !cfg.recoverSet:
		cfg.recoverEvery = max(cfg.lease/3, time.Second)
	case cfg.recoverEvery < 0:
		errs = append(errs, fmt.Errorf("WithRecoverInterval(%v): negative", cfg.recoverEvery))
	}
	if cfg.owner == "" {
		cfg.owner = defaultOwner()
	}
	o := &Orchestrator{log: log, cfg: cfg, codec: cfg.codec, tel: newInstruments(cfg.tp, cfg.mp), epoch: time.Now(),
		defs: map[defKey]*definition{}, runs: map[string]*run{}, resolving: map[string]bool{},
		stepRetry:      newRetry("saga.step", defaultStepPolicy.options()...),
		retriableRetry: newRetry("saga.step", defaultRetriablePolicy.options()...),
		// Log writes are retried while the lease holds (run.writeWith
		// says when to give up), unless the lease is lost, so that an
		// outage of the database shorter than two thirds of the lease
		// (the lease renewed a third of it before) does not stop the
		// saga.
		logRetry: newRetry("saga.log", retry.WithMaxAttempts(math.MaxInt32),
			retry.WithBackoff(retry.Exponential(100*time.Millisecond, 2, max(100*time.Millisecond, min(5*time.Second, cfg.lease/3)))),
			retry.WithRetryIf(func(err error) bool {
				return !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrNotFound)
			})),
	}
	for i, d := range cfg.defs {
		if err := o.register(d); err != nil {
			errs = append(errs, fmt.Errorf("WithDefinitions: definition %d: %w", i+1, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("saga: NewOrchestrator: %w", err)
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.stepCtx, o.stepCancel = context.WithCancel(context.Background())
	o.stopRenew = make(chan struct{})
	o.next = make(chan *run)
	o.loops.Go(o.renewLoop)
	if cfg.recoverEvery > 0 {
		o.loops.Go(o.recoverLoop)
	}
	return o, nil
}

// since returns the time since the orchestrator's creation, on the
// monotonic clock: the clock of leaseFrom.
func (o *Orchestrator) since() int64 { return int64(time.Since(o.epoch)) }

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner returns the identity under which the orchestrator leases sagas.
func (o *Orchestrator) Owner() string { return o.cfg.owner }

// register adds d to the known definitions; registering the same
// definition again does nothing.
func (o *Orchestrator) register(d Definer) error {
	if nilcheck.IsNil(d) {
		return errors.New("nil")
	}
	s := d.definition()
	if s == nil {
		return errors.New("definition not made by Define")
	}
	k := defKey{s.name, s.version}
	if old, ok := o.defs[k]; ok {
		if old.spec != s {
			return fmt.Errorf("another definition of saga %q version %d is registered", s.name, s.version)
		}
		return nil
	}
	retries := make([]*retry.Retrier, len(s.steps))
	for i, st := range s.steps {
		switch {
		case st.retry != nil:
			retries[i] = st.retry
		case st.retriable:
			retries[i] = o.retriableRetry
		default:
			retries[i] = o.stepRetry
		}
	}
	o.defs[k] = &definition{spec: s, sets: newSets(s), retries: retries}
	return nil
}

// Start records a new saga of def with data and runs it in the background;
// it returns the saga's id once the saga is in the log, so that a crash
// from then on does not lose it. Use [Orchestrator.Wait] for its outcome.
// [Start], the function, is the same with data whose type the compiler
// checks against def's.
//
// data must be of def's data type (not a pointer to it). ctx bounds the
// write to the log; its values (the trace) but not its cancellation pass
// on to the saga, which runs until it ends or the orchestrator closes. The saga's span, "saga
// <name>", is a child of ctx's span, and the log's writes of the saga,
// its creation included, are children of the saga's span.
//
// Start returns an error for data of the wrong type or that cannot be
// encoded, a definition registered differently under the same name and
// version, a nil option, a bad or taken [WithID] ([ErrExists]), a log
// failure, or a
// closed orchestrator ([ErrClosed]). Once the saga is in the log, Start
// returns its id and no error: if the orchestrator closes before the run
// begins, the saga is left to the next recovery, here or elsewhere, as
// after a crash. A log failure can be ambiguous (the write committed, its
// reply was lost): the saga may then be in the log, and a recovery runs
// it. Start it again with the same WithID to find out: ErrExists says it
// is there.
func (o *Orchestrator) Start(ctx context.Context, def Definer, data any, opts ...StartOption) (string, error) {
	if nilcheck.IsNil(def) {
		return "", errors.New("saga: Start: nil definition")
	}
	s := def.definition()
	if s == nil {
		return "", errors.New("saga: Start: definition not made by Define")
	}
	var sc startConfig
	for i, opt := range opts {
		if opt == nil {
			return "", fmt.Errorf("saga: Start %q: opts[%d] is nil", s.name, i)
		}
		opt.applyStart(&sc)
	}
	if !sc.idSet {
		sc.id = uuid.NewString()
	} else if err := checkName(sc.id); err != nil {
		return "", fmt.Errorf("saga: Start %q: WithID(%q): %v", s.name, sc.id, err)
	}
	if reflect.TypeOf(data) != s.dataType {
		return "", fmt.Errorf("saga: Start %q: data is %T, the definition's data is %v", s.name, data, s.dataType)
	}
	encoded, err := o.codec.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("saga: Start %q: encoding the data: %w", s.name, err)
	}

	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return "", fmt.Errorf("saga: Start %q: %w", s.name, ErrClosed)
	}
	if err := o.register(def); err != nil {
		o.mu.Unlock()
		return "", fmt.Errorf("saga: Start %q: %w", s.name, err)
	}
	d := o.defs[defKey{s.name, s.version}]
	o.mu.Unlock()

	// The saga's span, unless it could only be a non-recording one
	// passing ctx's span context on: the run then goes on under ctx's.
	runCtx, span, createCtx := context.WithoutCancel(ctx), noopSpan, ctx
	if !o.tel.spans.Skip(ctx) {
		runCtx, span = o.tel.tracer.Start(runCtx, "saga "+s.name,
			trace.WithAttributes(AttrName.String(s.name), AttrID.String(sc.id), AttrVersion.Int(s.version)))
		createCtx = trace.ContextWithSpan(ctx, span)
	}
	carrier := propagation.MapCarrier{}
	propagator().Inject(runCtx, carrier)
	rec := Record{ID: sc.id, Name: s.name, Version: s.version, Status: Running, Data: encoded, Trace: traceText(carrier)}
	// The saga's first write: under its span, bounded by ctx.
	leaseFrom := o.since()
	if err := o.log.Create(createCtx, rec, o.cfg.owner, o.cfg.lease); err != nil {
		telemetry.RecordError(span, err)
		span.End()
		return "", fmt.Errorf("saga: Start %q: %w", s.name, err)
	}
	rec.CreatedAt = time.Now()
	r := newRun(o, d, rec, nil, runCtx, span)
	r.leaseFrom.Store(leaseFrom)
	if !o.launch(r) {
		// Closed since the check above: the saga is in the log, so it is
		// started, as after a crash. Its lease is released for the next
		// recovery, here or in another orchestrator, to resume it; a
		// caller told of a failure would start it again under a new id.
		o.interrupted(r, "closed")
		o.release(r.ctx, r.rec.ID)
		span.End()
	}
	return sc.id, nil
}

// traceText returns the trace context to keep in a record, as text any
// log can store (a propagator may inject anything).
func traceText(carrier propagation.MapCarrier) map[string]string {
	for k, v := range carrier {
		if ValidText(k) != k || ValidText(v) != v {
			clean := make(map[string]string, len(carrier))
			for k, v := range carrier {
				clean[ValidText(k)] = ValidText(v)
			}
			return clean
		}
	}
	return carrier
}

// interrupted says on r's span that the run stopped before its saga
// ended, and why: closed, lease_lost or log_failed.
func (o *Orchestrator) interrupted(r *run, why string) {
	r.span.SetAttributes(AttrOutcome.String("interrupted"))
	r.span.AddEvent("saga.interrupted", trace.WithAttributes(AttrReason.String(why)))
}

// launch runs r in the background unless the orchestrator is closed: on
// a runner waiting for a run, or else on a new one.
func (o *Orchestrator) launch(r *run) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.runs[r.rec.ID] = r
	select {
	case o.next <- r:
	default:
		o.runsWG.Add(1)
		go o.runner(r) // not a closure, which would keep r while the runner lives
	}
	return true
}

// runnerIdle is how long a runner waits for another run once its own
// ended, before it exits.
const runnerIdle = time.Second

// runner executes r, then each run that launch hands it, until none
// comes for runnerIdle or the orchestrator closes. A run costs a
// goroutine's stack growing as deep as the log's driver calls go (some
// copies of the stack, 3% of the client's CPU per saga with pglog): a
// runner's has grown already.
func (o *Orchestrator) runner(r *run) {
	defer o.runsWG.Done()
	idle := time.NewTimer(runnerIdle) // reset after each run
	defer idle.Stop()
	for {
		r.execute()
		o.mu.Lock()
		if o.runs[r.rec.ID] == r {
			delete(o.runs, r.rec.ID)
		}
		o.mu.Unlock()
		r = nil // not kept from the collector while the runner waits
		idle.Reset(runnerIdle)
		select {
		case r = <-o.next:
		case <-idle.C:
			return
		case <-o.ctx.Done():
			return
		}
	}
}

// release gives the lease of saga id back, on a context with ctx's values
// (its trace) but a deadline of its own: it runs when the orchestrator is
// closing.
func (o *Orchestrator) release(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := o.log.Release(ctx, id, o.cfg.owner); err != nil {
		otel.Handle(fmt.Errorf("saga: releasing saga %q: %w", id, err))
	}
}

// Recover resumes the unfinished sagas in the log whose lease has expired
// or was released (their orchestrator crashed or closed) and whose
// definitions are registered, taking their leases, and returns how many
// it resumed. Call it at start-up, after registering every definition with
// [WithDefinitions], to resume them at once; the orchestrator calls it in
// the background too, every third of the lease by default (see
// [WithRecoverInterval]).
//
// A resumed saga's run has a new span, "saga <name>" with saga.resumed
// set, linked to the span of the run that started it; it is a child of
// ctx's span, as are the log's calls that look for sagas to resume.
// Attempts that a crash interrupted have an unknown outcome: those of
// Idempotent steps are made again, others are compensated.
//
// A saga whose definition's version is not registered is left alone (its
// lease released as Recover returns) and reported, with every other
// failure, in the returned error (matching [ErrUnknownDefinition]); the
// sagas Recover could resume run anyway. A saga this orchestrator runs
// already (its lease expired while the log was unreachable) goes on
// running once, not twice. If the orchestrator closes while Recover
// claims sagas, Recover releases those it has not resumed, claims no
// more, and returns an error matching [ErrClosed].
func (o *Orchestrator) Recover(ctx context.Context) (int, error) {
	return o.recover(ctx, ctx)
}

// recover is Recover, calling the log on ctx and starting the spans of
// resumed runs as children of parent's span: the two differ for the
// background recovery of WithRecoverInterval, whose claims are untraced
// (ctx is parent marked untraced), but not the resumed runs' calls.
func (o *Orchestrator) recover(ctx, parent context.Context) (int, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return 0, fmt.Errorf("saga: Recover: %w", ErrClosed)
	}
	names := make([]string, 0, len(o.defs))
	seen := map[string]bool{}
	for k := range o.defs {
		if !seen[k.name] {
			seen[k.name] = true
			names = append(names, k.name)
		}
	}
	o.mu.Unlock()
	if len(names) == 0 {
		return 0, nil
	}
	var errs []error
	var unknown []Record // kept leased until the end, so that claims move past them
	resumed := 0
	closed := false
	for !closed {
		start, leaseFrom := time.Now(), o.since()
		recs, err := o.log.Claim(ctx, o.cfg.owner, names, o.cfg.lease, claimBatch)
		o.tel.leaseOps.Record(ctx, time.Since(start).Seconds(), o.tel.leaseOpSets[opClaim].with(err))
		if err != nil {
			errs = append(errs, fmt.Errorf("saga: Recover: claiming sagas: %w", err))
			break
		}
		for _, rec := range recs {
			o.tel.leasesClaimed.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(AttrName.String(rec.Name))))
			if closed {
				// Closed meanwhile: the rest of the batch goes back at once,
				// for the next recovery, here or elsewhere, and no more is
				// claimed (it would be the sagas just released, again and
				// again).
				o.release(ctx, rec.ID)
				continue
			}
			o.mu.Lock()
			known := o.defs[defKey{rec.Name, rec.Version}] != nil
			o.mu.Unlock()
			if !known {
				unknown = append(unknown, rec)
				errs = append(errs, fmt.Errorf("saga: Recover: saga %q: %w: %q version %d", rec.ID, ErrUnknownDefinition, rec.Name, rec.Version))
				continue
			}
			switch err := o.resume(ctx, parent, rec, leaseFrom); {
			case err == nil:
				resumed++
			case errors.Is(err, errResumeClosed):
				closed = true
				errs = append(errs, fmt.Errorf("saga: Recover: %w", ErrClosed))
			case !errors.Is(err, errAlreadyRunning):
				errs = append(errs, err)
			}
		}
		if len(recs) < claimBatch {
			break
		}
	}
	for _, rec := range unknown {
		o.release(ctx, rec.ID)
	}
	return resumed, errors.Join(errs...)
}

// errAlreadyRunning is resume's answer for a saga this orchestrator runs.
var errAlreadyRunning = errors.New("saga: running here already")

// errResumeClosed is resume's answer when the orchestrator closed before
// the run could start (the saga's lease is released).
var errResumeClosed = fmt.Errorf("saga: Recover: %w", ErrClosed)

// resume loads the saga claimed and runs it, under a span that is a child
// of parent's; the load and, on failure, the release of the lease (so that
// the saga is not stuck with this orchestrator) are the span's children.
// parent ends when ctx does (they differ by the untraced mark alone).
func (o *Orchestrator) resume(ctx, parent context.Context, claimed Record, leaseFrom int64) error {
	o.mu.Lock()
	d := o.defs[defKey{claimed.Name, claimed.Version}]
	_, running := o.runs[claimed.ID]
	o.mu.Unlock()
	if running {
		// Its lease expired while this orchestrator could not renew it
		// (the log was down), and the claim renewed it: the run goes on.
		return errAlreadyRunning
	}
	if d == nil {
		o.release(ctx, claimed.ID)
		return fmt.Errorf("saga: Recover: saga %q: %w: %q version %d", claimed.ID, ErrUnknownDefinition, claimed.Name, claimed.Version)
	}
	origin := propagator().Extract(context.Background(), propagation.MapCarrier(claimed.Trace))
	runCtx, span := o.tel.tracer.Start(context.WithoutCancel(parent), "saga "+claimed.Name,
		trace.WithLinks(trace.LinkFromContext(origin)),
		trace.WithAttributes(AttrName.String(claimed.Name), AttrID.String(claimed.ID), AttrVersion.Int(claimed.Version), AttrResumed.Bool(true)))
	fail := func(err error) error {
		o.release(runCtx, claimed.ID)
		telemetry.RecordError(span, err)
		span.End()
		return err
	}
	// The load is the run's first call of the log, traced under its span:
	// on parent, which ends with ctx but, unlike the context of the
	// background recovery's claims, is not marked untraced.
	rec, ts, err := o.log.Load(trace.ContextWithSpan(parent, span), claimed.ID)
	if err != nil {
		return fail(fmt.Errorf("saga: Recover: loading saga %q: %w", claimed.ID, err))
	}
	r := newRun(o, d, rec, ts, runCtx, span)
	r.leaseFrom.Store(leaseFrom)
	if !o.launch(r) {
		return fail(errResumeClosed)
	}
	return nil
}

// Wait waits for saga id to end and returns its final status with, for a
// saga that did not complete, the error that made it compensate or stop,
// a [*StepError]. [Wait], the function, returns the saga's final data
// too, decoded; prefer it when the definition is at hand.
//
// For a saga this orchestrator runs, Wait returns when the run ends (a
// run that stops a saga in status NeedsAttention ends once its
// WithNeedsAttention function returns: Wait then reads the log, where an
// operator may have retried or resolved the saga meanwhile). If the run
// stops before the saga ends (the orchestrator closed or lost the lease),
// or the saga runs elsewhere, Wait polls the log every 100ms until it
// ends or ctx is done. It returns ctx's error, with the status so far (""
// if it never learnt it), when ctx ends first, also in the middle of a
// load from the log, and an error matching [ErrNotFound] for an unknown
// id. A saga that an operator resolved ([Resolved]) comes with the error
// that made it need attention.
func (o *Orchestrator) Wait(ctx context.Context, id string) (Status, error) {
	e, err := o.wait(ctx, id, nil)
	if err != nil {
		return e.status, err
	}
	if e.failure != nil {
		return e.status, e.failure
	}
	return e.status, nil
}

// ended is how a saga ended, as wait finds it.
type ended struct {
	status  Status
	failure *StepError // nil for a saga that completed
	data    []byte     // the final data, encoded
}

// wait is Wait. It calls check, if not nil, with the saga's name as soon
// as it knows it, and returns check's error. On an error, the ended it
// returns holds the status so far alone.
func (o *Orchestrator) wait(ctx context.Context, id string, check func(name string) error) (ended, error) {
	var last Status
	o.mu.Lock()
	r := o.runs[id]
	o.mu.Unlock()
	if r != nil {
		if check != nil {
			if err := check(r.rec.Name); err != nil {
				return ended{}, err
			}
			check = nil
		}
		select {
		case <-r.done:
			r.mu.Lock()
			final, failure, data, seq := r.final, r.failure, r.data, r.seq
			r.mu.Unlock()
			switch {
			case final == NeedsAttention:
				// An operator, here or elsewhere, may have retried or
				// resolved the saga while its run told WithNeedsAttention's
				// function: the log says. The saga may even need
				// attention again, for another reason: the run's error
				// is the saga's only while the log has nothing after the
				// run's last transition.
				rec, ts, err := o.log.Load(ctx, id)
				switch {
				case err != nil:
					return ended{final, failureOf(failure), data}, nil
				case rec.Status == NeedsAttention && len(ts) > 0 && ts[len(ts)-1].Seq == seq:
					return ended{final, failureOf(failure), data}, nil
				case rec.Status.Final():
					return endedFrom(rec, ts), nil
				}
			case final.Final():
				return ended{final, failureOf(failure), data}, nil
			}
		case <-ctx.Done():
			return ended{status: r.status()}, ctx.Err()
		}
		last = r.status()
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		rec, ts, err := o.log.Load(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ended{status: last}, ctx.Err()
			}
			return ended{status: last}, err
		}
		if check != nil {
			if err := check(rec.Name); err != nil {
				return ended{}, err
			}
			check = nil
		}
		last = rec.Status
		if rec.Status.Final() {
			return endedFrom(rec, ts), nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ended{status: rec.Status}, ctx.Err()
		}
	}
}

// endedFrom returns how the saga of rec and ts, which has ended, ended.
func endedFrom(rec Record, ts []Transition) ended {
	return ended{rec.Status, failureFrom(rec.Status, ts), dataFrom(rec, ts)}
}

// dataFrom returns the saga's last data, encoded: that of its last
// transition with data, or else that of its record.
func dataFrom(rec Record, ts []Transition) []byte {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Data != nil {
			return ts[i].Data
		}
	}
	return rec.Data
}

// Retry takes saga id, which stopped in status [NeedsAttention], up again
// where it stopped, as a person who fixed the cause (a refund service
// back up, a missing record restored) asks: a saga that was compensating
// tries the compensations that are not done again, with a fresh retry
// policy, and a saga stopped by a Retriable step after the pivot tries
// that step again. The change is written to the log (a transition of
// Kind [Retried]) before the saga runs in this orchestrator, in the
// background, as a recovered saga does; use [Orchestrator.Wait] for its
// outcome. If the orchestrator closes meanwhile, the next recovery runs
// it. The saga's definition must be registered (see [WithDefinitions]).
//
// Retry returns an error matching [ErrNotFound] for an unknown saga,
// [ErrNotNeedsAttention] for a saga in another status, or whose resolution
// another call of Retry or Resolve has begun, [ErrUnknownDefinition] for
// a definition not registered, [ErrClosed] after Close, a log failure,
// or [errors.ErrUnsupported] for a log that is not a [Reopener].
//
// The call has a span, "saga.retry <name>", a child of ctx's span, whose
// children are the log's calls (but the first load, which finds the saga)
// and the span of the run it starts.
func (o *Orchestrator) Retry(ctx context.Context, id string) error {
	rec, d, span, err := o.reopen(ctx, "Retry", "saga.retry", id, true)
	if err != nil {
		return err
	}
	defer o.resolved(id, span)
	sctx := trace.ContextWithSpan(ctx, span)
	leaseFrom := o.since()
	rec, ts, err := o.reopened(sctx, span, id, "Retry")
	if err != nil {
		return err
	}
	t := Transition{Seq: int64(len(ts)) + 1, Status: statusBefore(ts), Kind: Retried}
	if len(ts) > 0 {
		t.Seq = ts[len(ts)-1].Seq + 1
	}
	if err := o.log.Append(sctx, id, o.cfg.owner, t); err != nil {
		return o.failReopen(sctx, span, id, fmt.Errorf("saga: Retry saga %q: %w", id, lostToOther(err)))
	}
	origin := propagator().Extract(context.Background(), propagation.MapCarrier(rec.Trace))
	runCtx, runSpan := o.tel.tracer.Start(context.WithoutCancel(sctx), "saga "+rec.Name,
		trace.WithLinks(trace.LinkFromContext(origin)),
		trace.WithAttributes(AttrName.String(rec.Name), AttrID.String(id), AttrVersion.Int(rec.Version), AttrResumed.Bool(true)))
	r := newRun(o, d, rec, append(ts, t), runCtx, runSpan)
	r.leaseFrom.Store(leaseFrom)
	if !o.launch(r) {
		// As in Start: the retry is in the log; the next recovery runs it.
		o.interrupted(r, "closed")
		o.release(runCtx, id)
		runSpan.End()
	}
	return nil
}

// Resolve marks saga id, which stopped in status [NeedsAttention], as
// resolved by hand (the charge refunded by a person, say), with the reason
// given: the saga's status becomes [Resolved], final, and the reason is
// the Error of the transition, in the log. Nothing of the saga runs.
//
// Resolve returns an error for an empty reason, and, as [Orchestrator.Retry]
// does, matching [ErrNotFound], [ErrNotNeedsAttention], [ErrClosed] or
// [errors.ErrUnsupported], or a log failure. The saga's definition need
// not be registered.
//
// The call has a span, "saga.resolve <name>", a child of ctx's span, with
// the reason as saga.reason; the log's calls are its children (but the
// first load, which finds the saga).
func (o *Orchestrator) Resolve(ctx context.Context, id, reason string) error {
	if reason == "" {
		return fmt.Errorf("saga: Resolve saga %q: empty reason", id)
	}
	_, _, span, err := o.reopen(ctx, "Resolve", "saga.resolve", id, false)
	if err != nil {
		return err
	}
	defer o.resolved(id, span)
	reason = logText(reason)
	span.SetAttributes(AttrReason.String(reason))
	sctx := trace.ContextWithSpan(ctx, span)
	_, ts, err := o.reopened(sctx, span, id, "Resolve")
	if err != nil {
		return err
	}
	t := Transition{Seq: 1, Status: Resolved, Error: reason}
	if len(ts) > 0 {
		t.Seq = ts[len(ts)-1].Seq + 1
	}
	if err := o.log.Append(sctx, id, o.cfg.owner, t); err != nil {
		return o.failReopen(sctx, span, id, fmt.Errorf("saga: Resolve saga %q: %w", id, lostToOther(err)))
	}
	// The run that stopped the saga, if it is still on its way out, would
	// answer Wait with NeedsAttention: Wait reads the log instead.
	o.mu.Lock()
	if r := o.runs[id]; r != nil && r.status().Final() {
		delete(o.runs, id)
	}
	o.mu.Unlock()
	return nil
}

// reopen checks that saga id needs attention (and, if run, that its
// definition is registered), starts the span of the operator's call op,
// and reopens the saga in the log, leasing it to the orchestrator. The
// first load is not under the span, whose name needs the saga's. Until
// the call ends with resolved, another call of Retry or Resolve of the
// saga in this orchestrator fails with ErrNotNeedsAttention.
func (o *Orchestrator) reopen(ctx context.Context, call, op, id string, run bool) (_ Record, _ *definition, _ trace.Span, err error) {
	reopener, ok := o.log.(Reopener)
	if !ok {
		return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w: the log, a %T, is not a saga.Reopener", call, id, errors.ErrUnsupported, o.log)
	}
	o.mu.Lock()
	closed, busy := o.closed, o.resolving[id]
	if !closed && !busy {
		o.resolving[id] = true
	}
	o.mu.Unlock()
	switch {
	case closed:
		return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w", call, id, ErrClosed)
	case busy:
		return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w: another call is resolving it", call, id, ErrNotNeedsAttention)
	}
	defer func() {
		if err != nil {
			o.resolved(id, nil)
		}
	}()
	rec, _, err := o.log.Load(ctx, id)
	if err != nil {
		return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w", call, id, err)
	}
	if rec.Status != NeedsAttention {
		return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w: it is %s", call, id, ErrNotNeedsAttention, rec.Status)
	}
	var d *definition
	if run {
		o.mu.Lock()
		d = o.defs[defKey{rec.Name, rec.Version}]
		o.mu.Unlock()
		if d == nil {
			return Record{}, nil, nil, fmt.Errorf("saga: %s saga %q: %w: %q version %d", call, id, ErrUnknownDefinition, rec.Name, rec.Version)
		}
	}
	_, span := o.tel.tracer.Start(ctx, op+" "+rec.Name,
		trace.WithAttributes(AttrName.String(rec.Name), AttrID.String(id), AttrVersion.Int(rec.Version)))
	if err := reopener.Reopen(trace.ContextWithSpan(ctx, span), id, o.cfg.owner, o.cfg.lease); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w: %w", ErrNotNeedsAttention, err)
		}
		err = fmt.Errorf("saga: %s saga %q: %w", call, id, err)
		telemetry.RecordError(span, err)
		span.End()
		return Record{}, nil, nil, err
	}
	return rec, d, span, nil
}

// resolved ends the call of Retry or Resolve of saga id, and its span.
func (o *Orchestrator) resolved(id string, span trace.Span) {
	o.mu.Lock()
	delete(o.resolving, id)
	o.mu.Unlock()
	if span != nil {
		span.End()
	}
}

// lostToOther returns err, the failure of an operator's write to a saga
// it reopened, matching ErrNotNeedsAttention too if the lease was lost:
// another orchestrator reopened the saga once the lease expired.
func lostToOther(err error) error {
	if errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("%w: %w", ErrNotNeedsAttention, err)
	}
	return err
}

// reopened loads saga id, reopened by this orchestrator, for the
// operator's call: its status is NeedsAttention still, as the lease
// guarantees.
func (o *Orchestrator) reopened(ctx context.Context, span trace.Span, id, call string) (Record, []Transition, error) {
	rec, ts, err := o.log.Load(ctx, id)
	switch {
	case err != nil:
		return rec, nil, o.failReopen(ctx, span, id, fmt.Errorf("saga: %s saga %q: %w", call, id, err))
	case rec.Status != NeedsAttention:
		return rec, nil, o.failReopen(ctx, span, id, fmt.Errorf("saga: %s saga %q: %w: it is %s", call, id, ErrNotNeedsAttention, rec.Status))
	}
	return rec, ts, nil
}

// failReopen releases saga id, reopened for an operator's call that
// failed with err, records err on the call's span and returns it.
func (o *Orchestrator) failReopen(ctx context.Context, span trace.Span, id string, err error) error {
	o.release(ctx, id)
	telemetry.RecordError(span, err)
	return err
}

// statusBefore returns the status a saga had before it needed attention,
// by its transitions: compensating, or else running.
func statusBefore(ts []Transition) Status {
	st := Running
	for _, t := range ts {
		if t.Status == Running || t.Status == Compensating {
			st = t.Status
		}
	}
	return st
}

// Close stops the orchestrator: it starts no more attempts, waits for the
// attempts in flight to end, and releases the leases of the sagas it was
// running, so that another orchestrator's Recover resumes them at once.
// If ctx ends first, Close cancels the attempts still running (their
// outcome is then unknown) and waits for them to return. It returns ctx's
// error in that case, and nil otherwise; calls after the first return nil.
func (o *Orchestrator) Close(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.cancel()
	done := make(chan struct{})
	go func() {
		o.runsWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		o.stepCancel()
		<-done
	}
	o.stepCancel()
	close(o.stopRenew)
	o.loops.Wait()
	return err
}

// renewLoop renews the leases of running sagas every third of the lease,
// and stops the runs whose lease was lost. Its calls of the log are
// untraced: saga.lease.operation.duration records them, and the spans of
// the runs whose lease was lost say so.
func (o *Orchestrator) renewLoop() {
	t := time.NewTicker(o.cfg.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-o.stopRenew:
			return
		case <-t.C:
		}
		// A saga that reached a final status has no lease left to renew
		// (its run may still be telling WithNeedsAttention's function).
		o.mu.Lock()
		runs := make(map[string]*run, len(o.runs))
		ids := make([]string, 0, len(o.runs))
		for id, r := range o.runs {
			if !r.status().Final() {
				runs[id] = r
				ids = append(ids, id)
			}
		}
		o.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(untraced(context.Background()), o.cfg.lease/3)
		start, leaseFrom := time.Now(), o.since()
		lost, err := o.log.Renew(ctx, o.cfg.owner, o.cfg.lease, ids)
		o.tel.leaseOps.Record(ctx, time.Since(start).Seconds(), o.tel.leaseOpSets[opRenew].with(err))
		cancel()
		if err != nil {
			otel.Handle(fmt.Errorf("saga: renewing leases: %w", err))
			continue
		}
		for _, id := range lost {
			r := runs[id]
			delete(runs, id)
			// A run that wrote its final status meanwhile ended its lease
			// itself.
			if r != nil && !r.finalizing.Load() && !r.status().Final() {
				r.abandon(fmt.Errorf("saga %q: %w", r.rec.ID, ErrLeaseLost))
			}
		}
		for _, r := range runs {
			r.leaseFrom.Store(leaseFrom)
		}
	}
}

// recoverLoop calls Recover every WithRecoverInterval. Its calls of the
// log are untraced, so that an idle orchestrator sends no trace at each
// tick; the runs it resumes have spans of their own (roots, linked to the
// runs that started their sagas).
func (o *Orchestrator) recoverLoop() {
	t := time.NewTicker(o.cfg.recoverEvery)
	defer t.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := o.recover(untraced(o.ctx), o.ctx); err != nil && o.ctx.Err() == nil {
			otel.Handle(err)
		}
	}
}

// StepInfo describes the attempt of a step that is running, for the
// step's action or compensation; see [StepFromContext].
type StepInfo struct {
	SagaID  string
	Saga    string // the definition's name
	Step    string
	Phase   Phase
	Attempt int // from 1, counted across crashes and resumptions
}

// IdempotencyKey returns "<saga id>/<step>/<phase>": the same for every
// attempt of one step's action (or compensation) in one saga, and for no
// other. Pass it to the services a step calls, so that they apply a
// repeated request once.
func (s StepInfo) IdempotencyKey() string { return s.SagaID + "/" + s.Step + "/" + string(s.Phase) }

type stepKey struct{}

// StepFromContext returns the step whose action or compensation ctx was
// passed to.
func StepFromContext(ctx context.Context) (StepInfo, bool) {
	s, ok := ctx.Value(stepKey{}).(*StepInfo)
	if !ok {
		return StepInfo{}, false
	}
	return *s, true
}

// IdempotencyKey returns the idempotency key of the step whose action or
// compensation ctx was passed to (see [StepInfo.IdempotencyKey]), or ""
// for another context.
func IdempotencyKey(ctx context.Context) string {
	s, ok := ctx.Value(stepKey{}).(*StepInfo)
	if !ok {
		return ""
	}
	return s.IdempotencyKey()
}
