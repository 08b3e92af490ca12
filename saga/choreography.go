package saga

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// The metadata keys a [Choreography] sets on every message it publishes.
const (
	// MetadataSagaID holds the saga's correlation ID; see [CorrelationID].
	MetadataSagaID = "saga-id"
	// MetadataPhase holds the saga's phase: "forward", or "compensate"
	// once a reaction returned a [Compensation].
	MetadataPhase = "saga-phase"
)

// choreoOutcome indexes the values of saga.outcome for a reaction.
type choreoOutcome int

const (
	choreoNext         choreoOutcome = iota // Handle returned Next
	choreoCompensation                      // Handle returned Compensation
	choreoDone                              // Handle returned an outcome publishing nothing
	choreoError                             // Handle, or publishing its outcome, failed
	choreoGaveUp                            // last delivery failed; GiveUp's outcome was published
	choreoDeadLetter                        // last delivery failed; nothing was published
	choreoOutcomes
)

var choreoOutcomeNames = [choreoOutcomes]string{"next", "compensation", "done", "error", "gave_up", "dead_letter"}

// CorrelationID returns the ID of the saga that m belongs to: its
// [MetadataSagaID] metadata, or else, for the event that starts a saga,
// its own ID.
func CorrelationID(m cqrs.Message) string {
	if id := m.Metadata[MetadataSagaID]; id != "" {
		return id
	}
	return m.ID
}

// phaseOf returns the saga phase m was published in.
func phaseOf(m cqrs.Message) Phase {
	if Phase(m.Metadata[MetadataPhase]) == Compensate {
		return Compensate
	}
	return Forward
}

// Outcome is what a [Reaction] publishes after its local transaction: the
// next event of the saga ([Next]), a compensating event ([Compensation]),
// or, for the zero Outcome, nothing: the saga, or its compensation, ends
// there. It belongs to a [Choreography]; how an orchestrated saga ended
// is its [Status] (see [Result]).
type Outcome struct {
	topic      string
	msgs       []cqrs.Message
	compensate bool
}

// Next returns the outcome of a local transaction that succeeded: msgs are
// published to topic in the saga's current phase, so a reaction to a
// compensating event that returns Next carries the compensation on. With
// no msgs it publishes nothing.
func Next(topic string, msgs ...cqrs.Message) Outcome {
	return Outcome{topic: topic, msgs: msgs}
}

// Compensation returns the outcome of a local transaction that failed for
// a business reason (payment declined, out of stock) and had no effect:
// msgs are published to topic as compensating events, which the saga's
// earlier participants react to by undoing their own transactions. Every
// message published from then on in the saga is in the compensate phase.
// With no msgs it publishes nothing.
func Compensation(topic string, msgs ...cqrs.Message) Outcome {
	return Outcome{topic: topic, msgs: msgs, compensate: true}
}

// Reaction is one participant's step in a choreographed saga: on each
// event published to topic On, it runs the local transaction Handle and
// publishes the Outcome it returns.
//
// Delivery is at least once, so Handle must be idempotent on the
// message's ID: it runs again when the bus redelivers the message, and
// when publishing its outcome failed after its transaction committed.
type Reaction struct {
	// Name names the step: the saga.step attribute, the default consumer
	// group, and part of the IDs of the messages it publishes. It must be
	// unique within a [Choreography]. Required.
	Name string
	// On is the topic of the events the reaction handles. Required.
	On string
	// Group is the consumer group of the reaction's subscription: every
	// instance of the participant's service subscribes with the same one
	// and they share the events. The default is Name.
	Group string
	// Handle runs the local transaction for event m and returns what to
	// publish. An error is transient: the bus delivers m again after its
	// backoff, up to its delivery limit (see Options), and Handle's
	// outcome is ignored. A panic counts as an error.
	//
	// The messages of the outcome are published with their Type, Data
	// and Metadata as given, plus the saga's [MetadataSagaID] and
	// [MetadataPhase]; a message with no ID gets one derived from m's ID,
	// the saga's name, Name, the topic and its position, so that handling
	// m again publishes the same IDs and the bus and the consumers can
	// drop the duplicates (a message m without an ID gets random IDs).
	// Publishing is not atomic with the local transaction: m is
	// acknowledged only once the outcome is published, so a crash in
	// between has Handle run again. Required.
	Handle func(ctx context.Context, m cqrs.Message) (Outcome, error)
	// GiveUp, if not nil, is called when Handle failed on m's last
	// delivery, with the last error, and returns what to publish instead,
	// typically a [Compensation], so that a participant that keeps
	// failing does not leave the saga hanging. Its outcome is published
	// once, as Handle's would be. The default publishes nothing.
	//
	// GiveUp is not called when Handle succeeded on the last delivery and
	// only the publishing of its outcome failed: the local transaction
	// committed, and compensating the earlier participants would leave it
	// in effect. The message then goes to the dead-letter function, with
	// an error matching [ErrOutcomeNotPublished], for its outcome to be
	// published again (by handling it again: Handle is idempotent). For
	// the same reason, Handle, run again on a message whose transaction
	// committed on an earlier delivery, should return that transaction's
	// outcome rather than an error: GiveUp cannot tell.
	GiveUp func(ctx context.Context, m cqrs.Message, err error) Outcome
	// Options configure the subscription: [cqrs.WithMaxDeliver],
	// [cqrs.WithRedeliveryBackoff], [cqrs.WithConcurrency], with the bus's
	// defaults. The function of [cqrs.WithDeadLetter] receives the messages
	// for which nothing was published after their last delivery failed:
	// GiveUp is nil or returned nothing, publishing its outcome failed (the
	// error then joins both), or Handle succeeded and publishing its
	// outcome failed (the error matches [ErrOutcomeNotPublished]).
	Options []cqrs.SubscribeOption
}

// ChoreographyOption configures a [Choreography].
type ChoreographyOption interface {
	applyChoreography(*choreographyConfig)
}

type choreographyConfig struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// Choreography runs the reactions of a choreographed saga on an event bus:
// there is no orchestrator, each participant subscribes to the events
// that concern it, runs its local transaction and publishes the next
// event, or a compensating event that earlier participants undo their
// transactions on. Reactions to compensating events are Reactions like
// the others, on the compensating topics.
//
// Every message a reaction publishes carries the saga's correlation ID
// ([CorrelationID]) and phase in its metadata, taken from the event it
// reacts to; the event that starts a saga needs neither, its ID becomes
// the saga's ID. The bus carries the trace context, so one saga is one
// trace across services.
//
// Unlike the [Orchestrator], a choreography keeps no log: where a saga
// stands is only in the events in flight and in the participants' own
// state. Choose it for short sagas among teams that own their services;
// choose the Orchestrator when the saga needs a single place that knows
// its state, timeouts or recovery.
//
// A Choreography is safe for concurrent use. The zero value is not
// usable; build one with [NewChoreography].
type Choreography struct {
	name    string
	bus     cqrs.EventBus
	tracer  trace.Tracer
	steps   metric.Int64Counter
	nameKV  attribute.KeyValue
	mu      sync.Mutex
	names   map[string]bool
	subs    []cqrs.Subscription
	closed  bool
	closing sync.WaitGroup // React calls subscribing while Close runs
}

// NewChoreography returns a choreography of the saga called name (the
// saga.name attribute) on bus, with no reactions. It fails, naming every
// bad argument, when name is empty, longer than [MaxNameLen] bytes or not
// text any backend can store (a NUL byte, invalid UTF-8), bus is nil, or
// an option is nil ("opts[i] is nil").
func NewChoreography(name string, bus cqrs.EventBus, opts ...ChoreographyOption) (*Choreography, error) {
	var errs []error
	switch {
	case name == "":
		errs = append(errs, errors.New("name must not be empty"))
	case len(name) > MaxNameLen:
		errs = append(errs, fmt.Errorf("name: %d bytes; at most %d", len(name), MaxNameLen))
	case ValidText(name) != name:
		errs = append(errs, errors.New("name: has a NUL byte or is not UTF-8"))
	}
	if nilcheck.IsNil(bus) {
		errs = append(errs, errors.New("bus must not be nil"))
	}
	var cfg choreographyConfig
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyChoreography(&cfg)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("saga: new choreography %q: %w", name, err)
	}
	steps, err := telemetry.Meter(cfg.mp, ScopeName).Int64Counter("saga.steps",
		// Unit and description as the Orchestrator's: one instrument.
		metric.WithUnit("{attempt}"), metric.WithDescription("Attempts of saga steps and compensations, by outcome."))
	if err != nil {
		otel.Handle(err)
	}
	return &Choreography{
		name:   name,
		bus:    bus,
		tracer: telemetry.Tracer(cfg.tp, ScopeName),
		steps:  steps,
		nameKV: AttrName.String(name),
		names:  map[string]bool{},
	}, nil
}

// React subscribes r to its topic on the choreography's bus, as a member
// of r's consumer group, and returns once the subscription runs. ctx is
// passed to the bus's Subscribe (for a durable bus, the reaction's events
// published while no member of the group was subscribed are delivered
// then). React fails, subscribing nothing, when a field of r is missing or
// an option is bad (the error matches [ErrInvalidDefinition] and names
// every fault), when r's Name is taken, when the choreography was closed
// ([ErrClosed]), or when the bus's Subscribe fails.
func (c *Choreography) React(ctx context.Context, r Reaction) error {
	cfg, err := c.check(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("saga: choreography %q: react %q: %w", c.name, r.Name, ErrClosed)
	}
	if c.names[r.Name] {
		c.mu.Unlock()
		return fmt.Errorf("saga: choreography %q: react %q: %w: a reaction has that name", c.name, r.Name, ErrInvalidDefinition)
	}
	c.names[r.Name] = true
	c.closing.Add(1)
	c.mu.Unlock()
	defer c.closing.Done()

	rc := c.newReaction(r, cfg)
	group := r.Group
	if group == "" {
		group = r.Name
	}
	opts := append(append([]cqrs.SubscribeOption(nil), r.Options...), cqrs.WithDeadLetter(rc.giveUp))
	sub, err := c.bus.Subscribe(ctx, r.On, group, rc.handle, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.names, r.Name)
		return fmt.Errorf("saga: choreography %q: react %q: %w", c.name, r.Name, err)
	}
	c.subs = append(c.subs, sub)
	return nil
}

// check validates r, returning the subscription settings of its options.
func (c *Choreography) check(r Reaction) (buskit.SubscribeConfig, error) {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("reaction.Name must not be empty"))
	}
	if r.On == "" {
		errs = append(errs, errors.New("reaction.On must not be empty"))
	}
	if r.Handle == nil {
		errs = append(errs, errors.New("reaction.Handle must not be nil"))
	}
	cfg, err := buskit.NewSubscribeConfig(r.Options...)
	if err != nil {
		errs = append(errs, fmt.Errorf("reaction.Options: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("saga: choreography %q: react %q: %w: %w", c.name, r.Name, ErrInvalidDefinition, err)
	}
	return cfg, nil
}

// Close closes the subscriptions of every reaction, waiting for their
// running handlers to return, and makes later calls of React fail with
// [ErrClosed]. It returns the errors of the subscriptions' Close, joined.
// It does not close the bus. Calling it again does nothing and returns
// nil. It must not be called from a reaction, as it waits for them.
func (c *Choreography) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.closing.Wait() // React calls in Subscribe add their subscription
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// reaction is a Reaction subscribed, with its telemetry built once.
type reaction struct {
	c        *Choreography
	r        Reaction
	userDead func(ctx context.Context, m cqrs.Message, err error)
	spanName string
	spanOpts []trace.SpanStartOption
	sets     [2][choreoOutcomes]attrSet // by phase (forward, compensate) and outcome
}

func (c *Choreography) newReaction(r Reaction, cfg buskit.SubscribeConfig) *reaction {
	step := AttrStep.String(r.Name)
	rc := &reaction{
		c:        c,
		r:        r,
		userDead: cfg.DeadLetter,
		spanName: "saga.react " + r.Name,
		spanOpts: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(c.nameKV, step),
		},
	}
	for p, phase := range [2]Phase{Forward, Compensate} {
		for o, outcome := range choreoOutcomeNames {
			rc.sets[p][o] = newAttrSet(c.nameKV, step, AttrPhase.String(string(phase)), AttrOutcome.String(outcome))
		}
	}
	return rc
}

// count adds one to saga.steps for the phase and outcome, with
// error.type if err is not nil.
func (rc *reaction) count(ctx context.Context, phase Phase, outcome choreoOutcome, err error) {
	if rc.c.steps == nil {
		return
	}
	p := 0
	if phase == Compensate {
		p = 1
	}
	rc.c.steps.Add(ctx, 1, rc.sets[p][outcome].with(err))
}

// start starts the reaction's span for message m.
func (rc *reaction) start(ctx context.Context, m cqrs.Message, phase Phase) (context.Context, trace.Span) {
	ctx, span := rc.c.tracer.Start(ctx, rc.spanName, rc.spanOpts...)
	if span.IsRecording() {
		span.SetAttributes(AttrID.String(CorrelationID(m)), AttrPhase.String(string(phase)))
	}
	return ctx, span
}

// end records outcome on span and in saga.steps, and ends the span.
func (rc *reaction) end(ctx context.Context, span trace.Span, phase Phase, outcome choreoOutcome, err error) {
	if span.IsRecording() {
		span.SetAttributes(AttrOutcome.String(choreoOutcomeNames[outcome]))
	}
	telemetry.RecordError(span, err)
	rc.count(ctx, phase, outcome, err)
	span.End()
}

// ErrOutcomeNotPublished is matched by the error of a reaction's delivery
// whose Handle succeeded (its local transaction committed) but whose
// outcome could not be published: the error its dead-letter function
// receives when that was the last delivery, instead of GiveUp being
// called (see [Reaction.GiveUp]).
var ErrOutcomeNotPublished = errors.New("saga: the outcome of a committed reaction is not published")

// notPublished is the error of a delivery whose Handle succeeded and whose
// outcome's publishing failed with err. Its error.type is err's.
type notPublished struct{ err error }

func (e *notPublished) Error() string   { return e.err.Error() }
func (e *notPublished) Unwrap() []error { return []error{e.err, ErrOutcomeNotPublished} }

// handle is the reaction's handler on the bus.
func (rc *reaction) handle(ctx context.Context, m cqrs.Message) error {
	phase := phaseOf(m)
	ctx, span := rc.start(ctx, m, phase)
	out, err := rc.call(ctx, m)
	if err == nil {
		if perr := rc.publish(ctx, m, out); perr != nil {
			err = &notPublished{perr}
		}
	}
	if err != nil {
		rc.end(ctx, span, phase, choreoError, err)
		return err
	}
	outcome := choreoDone
	switch {
	case len(out.msgs) == 0:
	case out.compensate:
		outcome = choreoCompensation
	default:
		outcome = choreoNext
	}
	rc.end(ctx, span, phase, outcome, nil)
	return nil
}

// call runs Handle, turning a panic into an error carrying the stack.
func (rc *reaction) call(ctx context.Context, m cqrs.Message) (out Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("saga: reaction %q panicked: %v\n%s", rc.r.Name, v, debug.Stack())
		}
	}()
	return rc.r.Handle(ctx, m)
}

// giveUp publishes GiveUp's outcome for m, whose last delivery failed with
// err, or else hands m to the subscription's own DeadLetter function: at
// once if Handle committed and only its outcome is not published.
func (rc *reaction) giveUp(ctx context.Context, m cqrs.Message, err error) {
	phase := phaseOf(m)
	var out Outcome
	// A committed transaction whose outcome is not published is not given
	// up on: GiveUp's compensation would leave it in effect.
	if rc.r.GiveUp != nil && !errors.Is(err, ErrOutcomeNotPublished) {
		ctx, span := rc.start(ctx, m, phase)
		var perr error
		out, perr = rc.callGiveUp(ctx, m, err)
		if perr == nil {
			perr = rc.publish(ctx, m, out)
		}
		if perr == nil && len(out.msgs) > 0 {
			rc.end(ctx, span, phase, choreoGaveUp, nil)
			return
		}
		if perr != nil {
			err = errors.Join(err, perr)
		}
		// The message is dead-lettered: a failure, whose error is that of
		// its last delivery (and of GiveUp's outcome, if it failed).
		rc.end(ctx, span, phase, choreoDeadLetter, err)
	} else {
		rc.count(ctx, phase, choreoDeadLetter, err)
	}
	rc.userDead(ctx, m, err)
}

// callGiveUp runs GiveUp, turning a panic into an error.
func (rc *reaction) callGiveUp(ctx context.Context, m cqrs.Message, cause error) (out Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("saga: give-up function of reaction %q panicked: %v\n%s", rc.r.Name, v, debug.Stack())
		}
	}()
	return rc.r.GiveUp(ctx, m, cause), nil
}

// publish publishes out, the outcome of reacting to m.
func (rc *reaction) publish(ctx context.Context, m cqrs.Message, out Outcome) error {
	if len(out.msgs) == 0 {
		return nil
	}
	phase := phaseOf(m)
	if out.compensate {
		phase = Compensate
	}
	sagaID := CorrelationID(m)
	msgs := make([]cqrs.Message, len(out.msgs))
	for i, o := range out.msgs {
		if o.ID == "" {
			o.ID = messageID(m.ID, rc.c.name, rc.r.Name, out.topic, i)
		}
		md := make(map[string]string, len(o.Metadata)+2)
		maps.Copy(md, o.Metadata)
		md[MetadataSagaID] = sagaID
		md[MetadataPhase] = string(phase)
		o.Metadata = md
		msgs[i] = o
	}
	if err := rc.c.bus.Publish(ctx, out.topic, msgs...); err != nil {
		return fmt.Errorf("saga: reaction %q: publish to %q: %w", rc.r.Name, out.topic, err)
	}
	return nil
}

// messageID derives the ID of message i that reaction step of saga name
// publishes to topic on handling the message called trigger: the same
// arguments give the same ID. Without a trigger ID there is nothing to
// derive from, and the ID is random.
func messageID(trigger, name, step, topic string, i int) string {
	var sum [32]byte
	if trigger == "" {
		_, _ = rand.Read(sum[:16])
	} else {
		h := sha256.New()
		for _, s := range [...]string{trigger, name, step, topic} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(i))
		h.Write(n[:])
		h.Sum(sum[:0])
	}
	return hex.EncodeToString(sum[:16])
}
