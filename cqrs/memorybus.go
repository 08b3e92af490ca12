package cqrs

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs/internal/kit"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// MemorySystem is the value of the messaging.system attribute of the spans
// and metrics of a [MemoryBus].
const MemorySystem = "memory"

// AttrDelivery is the attribute of a process span that counts the
// deliveries of its message to the consumer group, from 1
// ([Message.Delivery]).
const AttrDelivery = attribute.Key("cqrs.delivery")

// ErrBusClosed is matched by the error of publishing to, or subscribing to,
// a [MemoryBus] that was closed.
var ErrBusClosed error = &sentinel{"cqrs: event bus is closed", "cqrs.bus_closed"}

// MemoryBus is an in-process [EventBus]: messages live in memory, are
// delivered to the subscriptions of the same MemoryBus only, and are lost
// when the process ends. It suits tests, single-process applications and
// prototypes; use [github.com/otelpatterns/patterns/cqrs/natsbus] for
// durability across processes.
//
// A consumer group comes into being with its first subscription and starts
// from the messages published after that: messages published to a topic
// before a group subscribed to it are not delivered to that group. Once it
// exists, a group keeps receiving messages even while it has no
// subscription, and delivers them when one subscribes again; so do
// messages that were being handled when the group's last subscription
// closed and were not acknowledged. Each message goes to one subscription
// of each group; the subscriptions of a group share its messages, each
// taking the oldest message ready for delivery when it has a free handler.
// A message whose handler failed waits out the subscription's backoff
// while later messages are delivered, so a failure can reorder messages.
//
// Handlers run on goroutines of the bus with a context that carries the
// values of the context given to Subscribe, but not its cancellation, and
// the message's creation context: the process span is a child of it, and
// links to it. The creation context is the one the published message
// carried in its Metadata, or else the publish span's; it travels in the
// Metadata through the global propagator, and also in process, so that
// traces connect even when no propagator was set. A panic in a handler is
// turned into an error (with its stack), which counts as a failed
// delivery.
//
// The zero value is a bus ready to use with the global providers, as
// NewMemoryBus() returns. A MemoryBus is safe for concurrent use.
type MemoryBus struct {
	mu     sync.Mutex
	topics map[string]*memTopic
	subs   map[*memSubscription]struct{}
	closed bool
	tel    *memTelemetry
}

var _ EventBus = (*MemoryBus)(nil)

// memTopic is a topic with its consumer groups and its telemetry
// attributes, built when the topic is first used.
type memTopic struct {
	name   string
	groups map[string]*memGroup
	tel    *topicTelemetry
}

// memGroup is a consumer group: the messages it has yet to acknowledge, in
// publication order, and the subscriptions that share them.
type memGroup struct {
	topic   *memTopic
	name    string
	pending *list.List // of *memEntry
	wake    chan struct{}
	tel     *groupTelemetry
}

// memEntry is a message pending in a group.
type memEntry struct {
	msg       Message
	creation  trace.SpanContext // the message's creation context
	delivery  int               // deliveries so far
	inFlight  bool              // a handler has it
	notBefore time.Time         // no redelivery before then
}

// NewMemoryBus returns an empty in-memory event bus. It takes every
// [BusOption]: [WithTracerProvider] and [WithMeterProvider] set where its
// publish and process spans and its messaging metrics go (the global
// providers at the time of the call by default), and [WithOptInAttributes]
// adds messaging.message.body.size to its spans. Returning no error, it
// ignores nil options.
func NewMemoryBus(opts ...BusOption) *MemoryBus {
	c, _ := newBusConfig(opts) // nil options: NewMemoryBus has no error to report them
	return &MemoryBus{
		topics: map[string]*memTopic{},
		subs:   map[*memSubscription]struct{}{},
		tel:    newMemTelemetry(c),
	}
}

// init readies a zero MemoryBus. b.mu is held.
func (b *MemoryBus) init() {
	if b.topics == nil {
		b.topics = map[string]*memTopic{}
		b.subs = map[*memSubscription]struct{}{}
		b.tel = newMemTelemetry(busConfig{})
	}
}

// topic returns the topic called name, creating it. b.mu is held.
func (b *MemoryBus) topic(name string) *memTopic {
	b.init()
	if t, ok := b.topics[name]; ok {
		return t
	}
	t := &memTopic{name: name, groups: map[string]*memGroup{}, tel: newTopicTelemetry(name)}
	b.topics[name] = t
	return t
}

// group returns the group called name of t, creating it. b.mu is held.
func (t *memTopic) group(name string) *memGroup {
	if g, ok := t.groups[name]; ok {
		return g
	}
	g := &memGroup{
		topic:   t,
		name:    name,
		pending: list.New(),
		wake:    make(chan struct{}),
		tel:     newGroupTelemetry(t.name, name),
	}
	t.groups[name] = g
	return g
}

// signal wakes the subscriptions of g waiting for a message. b.mu is held.
func (g *memGroup) signal() {
	close(g.wake)
	g.wake = make(chan struct{})
}

// Publish stores msgs on topic, for every consumer group of the topic,
// and returns; it does not wait for them to be handled. Each message's
// Topic is set to topic; ID, Type, Data and Metadata are kept as given,
// copied so that the caller may reuse them. A message whose Metadata
// carries a trace context (through the global propagator) keeps it as its
// creation context, and the publish span links to it: an event the
// [Relay] publishes carries the context of its append. Any other message
// gets the W3C trace context of the publish span (a child of the span in
// ctx) added to its Metadata. Publish fails, publishing nothing, when ctx
// is done, topic is empty ([ErrInvalidMessage]), or the bus was closed
// ([ErrBusClosed]).
func (b *MemoryBus) Publish(ctx context.Context, topic string, msgs ...Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cqrs: publish to %q: %w", topic, err)
	}
	if topic == "" {
		return fmt.Errorf("%w: publish: topic must not be empty", ErrInvalidMessage)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("cqrs: publish to %q: %w", topic, ErrBusClosed)
	}
	t := b.topic(topic)
	b.mu.Unlock()

	start := time.Now()
	tel, tt := b.tel, t.tel
	// The creation contexts the messages carry: the span links to them,
	// and is a producer span only if some message takes its context.
	var buf [4]trace.SpanContext // on the stack for small batches
	creations := buf[:0]
	if len(msgs) > len(buf) {
		creations = make([]trace.SpanContext, 0, len(msgs))
	}
	spanOpts, own := tt.spanOpts, len(msgs) == 0
	var links []trace.Link
	for _, m := range msgs {
		sc := kit.Creation(m.Metadata)
		creations = append(creations, sc)
		switch {
		case !sc.IsValid():
			own = true
		case !slices.ContainsFunc(links, func(l trace.Link) bool { return l.SpanContext.Equal(sc) }):
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if len(links) > 0 {
		spanOpts = append(spanOpts[:len(spanOpts):len(spanOpts)], trace.WithLinks(links...))
		if !own {
			spanOpts = append(spanOpts, trace.WithSpanKind(trace.SpanKindClient))
		}
	}
	ctx, span := tel.tracer.Start(ctx, tt.spanName, spanOpts...)
	defer span.End()
	if span.IsRecording() {
		if len(msgs) == 1 {
			if msgs[0].ID != "" {
				span.SetAttributes(semconv.MessagingMessageID(msgs[0].ID))
			}
			if tel.optIn {
				span.SetAttributes(semconv.MessagingMessageBodySize(len(msgs[0].Data)))
			}
		} else if len(msgs) > 1 {
			span.SetAttributes(semconv.MessagingBatchMessageCount(len(msgs)))
		}
	}
	publishSC := span.SpanContext().WithRemote(true) // as consumers see it
	stored := make([]Message, len(msgs))
	for i, m := range msgs {
		m.Topic = topic
		m.Data = slices.Clone(m.Data)
		if creations[i].IsValid() {
			m.Metadata = maps.Clone(m.Metadata)
		} else {
			m.Metadata = maps.Clone(kit.Inject(ctx, m.Metadata))
			creations[i] = publishSC
		}
		m.Delivery = 0
		stored[i] = m
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		err := fmt.Errorf("cqrs: publish to %q: %w", topic, ErrBusClosed)
		telemetry.RecordError(span, err)
		addFailure(ctx, tel.Sent, int64(len(msgs)), tt.sentBase, err)
		recordFailure(ctx, tel.OpDuration, seconds(start), tt.durBase, err)
		return err
	}
	for _, g := range t.groups {
		for i := range stored {
			g.pending.PushBack(&memEntry{msg: stored[i], creation: creations[i]})
		}
		g.signal()
	}
	b.mu.Unlock()
	tel.Sent.Add(ctx, int64(len(msgs)), tt.sentOpts...)
	tel.OpDuration.Record(ctx, seconds(start), tt.durOpts...)
	return nil
}

// Subscribe starts delivering the messages published to topic from now on
// to handler, as a member of the consumer group called group, per the
// [EventBus] contract and the [MemoryBus] notes; opts are the
// [SubscribeOption] values (nil ones are ignored). ctx is only checked:
// cancelling it later does not end the subscription, [Subscription.Close]
// does. Subscribe fails when ctx is done, topic or group is empty, handler
// is nil, an option is bad, or the bus was closed ([ErrBusClosed]), with
// an error that names every fault.
//
// Close on the returned subscription must not be called from one of its
// own handlers, as it waits for them to return.
func (b *MemoryBus) Subscribe(ctx context.Context, topic, group string, handler Handler, opts ...SubscribeOption) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cqrs: subscribe to %q: %w", topic, err)
	}
	var errs []error
	if topic == "" {
		errs = append(errs, errors.New("topic must not be empty"))
	}
	if group == "" {
		errs = append(errs, errors.New("group must not be empty"))
	}
	if handler == nil {
		errs = append(errs, errors.New("handler must not be nil"))
	}
	cfg, err := kit.NewSubscribeConfig[Message](opts)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cqrs: subscribe to %q as %q: %w", topic, group, err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("cqrs: subscribe to %q as %q: %w", topic, group, ErrBusClosed)
	}
	s := &memSubscription{
		bus:     b,
		group:   b.topic(topic).group(group),
		handler: handler,
		cfg:     cfg,
		base:    context.WithoutCancel(ctx),
		done:    make(chan struct{}),
	}
	b.subs[s] = struct{}{}
	s.wg.Add(cfg.Concurrency)
	for range cfg.Concurrency {
		go s.work()
	}
	return s, nil
}

// Close closes every subscription of the bus, waiting for their running
// handlers to return, and makes later calls of Publish and Subscribe fail
// with [ErrBusClosed]. Messages not yet handled are dropped. Close always
// returns nil; calling it again does nothing. It must not be called from a
// handler.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	b.closed = true
	subs := make([]*memSubscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	return nil
}

// memSubscription is a subscription of a MemoryBus: Concurrency workers
// taking messages from the group.
type memSubscription struct {
	bus     *MemoryBus
	group   *memGroup
	handler Handler
	cfg     subscribeConfig
	base    context.Context
	done    chan struct{}
	closed  bool // under bus.mu
	wg      sync.WaitGroup
}

// Close stops delivery to the subscription and waits for its running
// handlers to return; the messages they fail on are delivered again to the
// group. It always returns nil.
func (s *memSubscription) Close() error {
	b := s.bus
	b.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		delete(b.subs, s)
	}
	b.mu.Unlock()
	s.wg.Wait()
	return nil
}

// work delivers messages until the subscription closes.
func (s *memSubscription) work() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		e, wait, wake, ok := s.next()
		if !ok {
			return
		}
		if e != nil {
			s.deliver(e)
			continue
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-s.done:
			timer.Stop()
			return
		case <-wake:
		case <-tick:
		}
		timer.Stop()
	}
}

// next takes the oldest message ready for delivery, or else returns how
// long until a message waiting out its backoff is ready (0 if none is)
// and the channel that signals a change; ok is false once the subscription
// is closed.
func (s *memSubscription) next() (e *memEntry, wait time.Duration, wake <-chan struct{}, ok bool) {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return nil, 0, nil, false
	}
	var now time.Time
	var earliest time.Time
	for el := s.group.pending.Front(); el != nil; el = el.Next() {
		c := el.Value.(*memEntry)
		if c.inFlight {
			continue
		}
		if !c.notBefore.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			if c.notBefore.After(now) {
				if earliest.IsZero() || c.notBefore.Before(earliest) {
					earliest = c.notBefore
				}
				continue
			}
		}
		c.inFlight = true
		c.delivery++
		return c, 0, nil, true
	}
	if !earliest.IsZero() {
		wait = max(earliest.Sub(now), time.Millisecond)
	}
	return nil, wait, s.group.wake, true
}

// deliver hands e to the handler and settles it: acknowledged, scheduled
// for redelivery, or dead-lettered.
func (s *memSubscription) deliver(e *memEntry) {
	start := time.Now()
	tel, gt := s.bus.tel, s.group.tel
	m := e.msg
	m.Delivery = e.delivery
	m.Data = slices.Clone(m.Data)
	m.Metadata = maps.Clone(m.Metadata)

	ctx := kit.Extract(s.base, m.Metadata)
	if sc := trace.SpanContextFromContext(ctx); e.creation.IsValid() &&
		(sc.TraceID() != e.creation.TraceID() || sc.SpanID() != e.creation.SpanID()) {
		// The global propagator carried nothing (it is a no-op unless the
		// service set one): continue the trace in process all the same.
		ctx = trace.ContextWithRemoteSpanContext(ctx, e.creation)
	}
	ctx, span := tel.tracer.Start(ctx, gt.spanName, gt.spanOpts...)
	if span.IsRecording() {
		// The link is what the semantic conventions ask of a process span;
		// it is added here rather than at the start, so that a tracer that
		// does not record costs no allocation for it.
		if e.creation.IsValid() {
			span.AddLink(trace.Link{SpanContext: e.creation})
		}
		span.SetAttributes(AttrDelivery.Int(m.Delivery))
		if m.ID != "" {
			span.SetAttributes(semconv.MessagingMessageID(m.ID))
		}
		if tel.optIn {
			span.SetAttributes(semconv.MessagingMessageBodySize(len(m.Data)))
		}
	}
	if m.Delivery > 1 {
		tel.Redelivered.Add(ctx, 1, gt.groupOpts...)
	}
	tel.Consumed.Add(ctx, 1, gt.consumedOpts...)
	err := s.call(ctx, m)
	switch {
	case err == nil:
		s.settle(ctx, span, e, settleAck, time.Time{})
	case e.delivery >= s.cfg.MaxDeliver:
		telemetry.RecordError(span, err)
		tel.DeadLetters.Add(ctx, 1, gt.groupOpts...)
		s.deadLetter(ctx, m, err)
		s.settle(ctx, span, e, settleTerm, time.Time{})
	default:
		telemetry.RecordError(span, err)
		s.settle(ctx, span, e, settleNak, time.Now().Add(max(s.cfg.Backoff(m.Delivery), 0)))
	}
	if err == nil {
		tel.Process.Record(ctx, seconds(start), gt.processOpts...)
	} else {
		recordFailure(ctx, tel.Process, seconds(start), gt.processBase, err)
	}
	span.End()
}

// settle settles e as how says, and records it on span, as an event, and
// in messaging.client.operation.duration: ack and term remove e from its
// group, nak puts it back for redelivery at notBefore.
func (s *memSubscription) settle(ctx context.Context, span trace.Span, e *memEntry, how settlement, notBefore time.Time) {
	start := time.Now()
	s.settleEntry(e, how != settleNak, notBefore)
	s.bus.tel.OpDuration.Record(ctx, seconds(start), s.group.tel.settleOpts[how]...)
	if span.IsRecording() {
		span.AddEvent(settleNames[how])
	}
}

// settleEntry removes e from its group when ack is true, and otherwise
// puts it back for redelivery at notBefore.
func (s *memSubscription) settleEntry(e *memEntry, ack bool, notBefore time.Time) {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if ack {
		for el := s.group.pending.Front(); el != nil; el = el.Next() {
			if el.Value == e {
				s.group.pending.Remove(el)
				break
			}
		}
		return
	}
	e.inFlight = false
	e.notBefore = notBefore
	s.group.signal()
}

// call runs the handler, turning a panic into an error.
func (s *memSubscription) call(ctx context.Context, m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cqrs: handler of %q for group %q panicked: %v\n%s", m.Topic, s.group.name, r, debug.Stack())
		}
	}()
	return s.handler(ctx, m)
}

// deadLetter runs the DeadLetter function, ignoring a panic in it, as the
// message is acknowledged whatever it does.
func (s *memSubscription) deadLetter(ctx context.Context, m Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			otel.Handle(fmt.Errorf("cqrs: dead letter function of %q for group %q panicked: %v", m.Topic, s.group.name, r))
		}
	}()
	s.cfg.DeadLetter(ctx, m, err)
}
