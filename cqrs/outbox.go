package cqrs

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/nilcheck"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ErrInvalidMessage is matched by the error of publishing a message that
// the bus can never carry: an invalid topic, a message without the ID the
// bus needs, one larger than the bus takes. Publishing it again cannot
// succeed; a [Relay] hands such an event to its dead-letter function
// ([WithRelayDeadLetter]).
var ErrInvalidMessage error = &sentinel{"cqrs: invalid message", "cqrs.invalid_message"}

// AttrRelay names the relay of the cqrs.relay.dead_letters counter.
const AttrRelay = attribute.Key("cqrs.relay")

// MetricRelayDeadLetters counts the events a [Relay] moved past without
// publishing them, after its dead-letter function took them.
const MetricRelayDeadLetters = "cqrs.relay.dead_letters"

// Relay publishes the events of an event store to an [EventBus], in the
// store's global order, from a stored checkpoint: the transactional
// outbox pattern with the event store as the outbox. An event is published
// only once it is committed, and every committed event is published, at
// least once: a relay that stops between publishing and saving its
// checkpoint publishes the last events again when it resumes, with the
// same message IDs (the event IDs), which JetStream de-duplicates and
// handlers must tolerate. The one exception is an event that the bus can
// never carry, which a dead-letter function may take instead (see
// [WithRelayDeadLetter]).
//
// Each message carries the trace context recorded with its event, the
// context of its append, as its creation context, and is published in
// it: the bus's publish span continues the trace of the request that
// appended the event and links to the append, and so do the spans that
// process the message.
type Relay struct {
	name        string
	store       eventsource.Store
	bus         EventBus
	checkpoints CheckpointStore
	topic       func(eventsource.Event) string
	deadLetter  func(context.Context, eventsource.Event, error) error
	dead        metric.Int64Counter // cqrs.relay.dead_letters
	deadAttrs   []attribute.KeyValue
}

// RelayOption configures a [Relay]: [WithRelayDeadLetter], and every
// [BusOption], of which the relay uses [WithMeterProvider] (for
// cqrs.relay.dead_letters); it has no spans of its own and ignores
// [WithTracerProvider] and [WithOptInAttributes].
type RelayOption interface{ applyRelay(*relayConfig) }

type relayConfig struct {
	bus        busConfig
	deadLetter func(context.Context, eventsource.Event, error) error
	nilDead    bool // WithRelayDeadLetter(nil) was given
}

type relayOptionFunc func(*relayConfig)

func (f relayOptionFunc) applyRelay(c *relayConfig) { f(c) }

// WithRelayDeadLetter sets what a relay does with an event that the bus
// can never carry, whose Publish fails with an error matching
// [ErrInvalidMessage] (an event whose topic function returns an invalid
// topic, or too large for the bus, say). f gets the event and the error,
// and may store the event elsewhere, alert, or decide. If it returns nil,
// the relay moves past the event (it saves its checkpoint) and counts it
// in cqrs.relay.dead_letters; if it returns an error, Run returns that
// error and, run again, tries the event again. A failure that may pass (a
// bus that is down) never reaches f.
//
// By default there is none: Run returns the publish error, and stops at
// that event each time it is run, so that no event is skipped unseen. f
// must not be nil ([NewRelay] says so).
func WithRelayDeadLetter(f func(ctx context.Context, e eventsource.Event, err error) error) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.deadLetter, c.nilDead = f, f == nil })
}

// NewRelay returns a relay called name (its checkpoint's name) that reads
// store from the checkpoint kept in checkpoints and publishes each event to
// bus, on the topic that topic returns for it. Its options are
// [WithRelayDeadLetter] and [WithMeterProvider] (see [BusOption]). It
// returns an error naming every bad argument: an empty name, a nil store,
// bus, checkpoint store or topic function (an interface holding a nil
// pointer counts as nil), a nil option ("opts[i] is nil"),
// WithRelayDeadLetter(nil).
func NewRelay(name string, store eventsource.Store, bus EventBus, checkpoints CheckpointStore, topic func(eventsource.Event) string, opts ...RelayOption) (*Relay, error) {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("empty name"))
	}
	if nilcheck.IsNil(store) {
		errs = append(errs, errors.New("nil store"))
	}
	if nilcheck.IsNil(bus) {
		errs = append(errs, errors.New("nil bus"))
	}
	if nilcheck.IsNil(checkpoints) {
		errs = append(errs, errors.New("nil checkpoint store"))
	}
	if topic == nil {
		errs = append(errs, errors.New("nil topic function"))
	}
	var c relayConfig
	for i, o := range opts {
		if o == nil {
			errs = append(errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.applyRelay(&c)
	}
	if c.nilDead {
		errs = append(errs, errors.New("WithRelayDeadLetter(nil): function must not be nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cqrs: NewRelay: %w", err)
	}
	r := &Relay{name: name, store: store, bus: bus, checkpoints: checkpoints, topic: topic,
		deadLetter: c.deadLetter, deadAttrs: []attribute.KeyValue{AttrRelay.String(name)}}
	var err error
	r.dead, err = telemetry.Meter(c.bus.mp, ScopeName).Int64Counter(MetricRelayDeadLetters, metric.WithUnit("{event}"),
		metric.WithDescription("Events a relay moved past without publishing them, after its dead-letter function took them."))
	if err != nil {
		otel.Handle(err)
	}
	return r, nil
}

// Run publishes events until ctx is done, then returns nil, even if it was
// publishing then; it returns an error if the store, the bus or the
// checkpoint store fails (run it again to resume). It saves the checkpoint
// after every published event.
func (r *Relay) Run(ctx context.Context) error {
	if r == nil || r.store == nil {
		return errors.New("cqrs: Relay.Run: the relay was not made by NewRelay")
	}
	err := r.run(ctx)
	if err != nil && ctx.Err() != nil {
		// The failure is the cancellation's (a publish or a checkpoint
		// abandoned midway): the next Run resumes from the checkpoint.
		return nil
	}
	return err
}

func (r *Relay) run(ctx context.Context) error {
	pos, err := r.checkpoints.LoadCheckpoint(ctx, r.name)
	if err != nil {
		return fmt.Errorf("cqrs: relay %q: loading the checkpoint: %w", r.name, err)
	}
	for e, err := range r.store.Subscribe(ctx, pos) {
		if err != nil {
			return fmt.Errorf("cqrs: relay %q: reading events after %d: %w", r.name, pos, err)
		}
		msg := Message{ID: e.ID.String(), Topic: r.topic(e), Type: e.Type, Key: e.StreamID, Data: e.Data, Metadata: e.Metadata}
		// Publish in the context of the append, so the trace continues.
		pctx := eventsource.TraceContext(ctx, e)
		if err := r.bus.Publish(pctx, msg.Topic, msg); err != nil {
			if err = r.invalid(ctx, e, err); err != nil {
				return fmt.Errorf("cqrs: relay %q: publishing event %d: %w", r.name, e.Position, err)
			}
		}
		if err := r.checkpoints.SaveCheckpoint(ctx, r.name, e.Position); err != nil {
			return fmt.Errorf("cqrs: relay %q: saving the checkpoint %d: %w", r.name, e.Position, err)
		}
		pos = e.Position
	}
	return nil
}

// invalid hands e, whose publication failed with err, to the dead-letter
// function if err matches ErrInvalidMessage, and returns nil if the
// function took it; else the error to stop at.
func (r *Relay) invalid(ctx context.Context, e eventsource.Event, err error) error {
	if r.deadLetter == nil || !errors.Is(err, ErrInvalidMessage) {
		return err
	}
	if dlErr := r.deadLetter(ctx, e, err); dlErr != nil {
		return fmt.Errorf("%w (the dead-letter function refused it: %w)", err, dlErr)
	}
	if r.dead.Enabled(ctx) {
		r.dead.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(append(r.deadAttrs[:1:1], telemetry.ErrorType(err))...)))
	}
	return nil
}
