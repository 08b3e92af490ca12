package natsbus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// drainTimeout bounds how long Close waits for the client library to hand
// back the messages it buffered.
const drainTimeout = 5 * time.Second

// pullExpiry is how long the server keeps each pull request of a
// subscription open. A closed subscription's last request stays on the
// server until it expires, and the server (2.9 at least) may deliver to
// it a message handed back before then, where nobody takes it until
// AckWait. So Close waits handBackDelay, by when the request has expired,
// before it hands back the messages it kept. (Naking them at once with
// that delay instead was tried: nats-server 2.9 then now and then loses
// one to the next member and delivers another twice.)
//
// The delay alone is a guess about the server's timing: it drops an
// expired request on a timer of its own, which a loaded server runs late,
// and a message handed back meanwhile is lost until AckWait. So Close then
// also asks for the consumer's info, which has the server drop at once
// every waiting request whose reply subject nobody listens to (ours, the
// drain having unsubscribed it) before it answers; see sweepRequests.
const (
	pullExpiry    = time.Second
	handBackDelay = pullExpiry + 200*time.Millisecond
	sweepTimeout  = time.Second
)

// Subscribe starts delivering the messages published to topic to handler,
// as a member of the consumer group group. The group is a durable pull
// consumer of the stream, named from the group and the topic (see
// [ConsumerName]) and created or updated here, filtered on the topic's
// subject, with explicit acknowledgement and the bus's AckWait. Its
// subscriptions, in this process or others, share its messages: each
// message goes to one of them. A new group starts with the oldest message
// in the stream; a group that exists resumes where it stopped, and so
// does a group whose consumer was renamed (see [ConsumerName]).
//
// For each delivery the handler gets a [cqrs.Message] with Delivery set to
// the server's delivery count, in a "process <subject>" span that is a
// child of the message's creation context and links to it. A message that
// was published without an ID (by another client) gets one derived from
// its stream sequence, the same on every delivery (see the package
// documentation, "Message format"). Returning nil acknowledges the
// message. An error (or a panic, turned into an error) has it delivered
// again after the backoff of the delivery count
// ([cqrs.WithRedeliveryBackoff]); once a delivery numbered MaxDeliver
// ([cqrs.WithMaxDeliver]) or later fails, the message goes to the
// dead-letter function ([cqrs.WithDeadLetter]) and is terminated, never to be delivered again (a plain
// terminate, which every server version honours). The limit is enforced by the
// subscription rather than by the server, so a message whose last delivery
// is lost to a crash is delivered again, not silently dropped; deliveries
// that never reached a handler (a crash, a Close while it was buffered)
// count towards it.
//
// With Concurrency 1 (the default) a subscription handles one message at
// a time, in stream order apart from redeliveries; with n, up to n at
// once. While a handler runs, the subscription tells the server every half
// AckWait that it is still working on the message. The subscription
// fetches messages ahead of its handlers ([WithPrefetch], default
// [DefaultPrefetch]); a fetched message's AckWait runs while it waits its
// turn, so prefetch times a handler's duration, divided by Concurrency,
// must stay well under AckWait, or waiting messages are delivered again.
//
// [cqrs.Subscription.Close] hands the messages fetched but not handled
// back to the group about a second after the drain, the time the server
// takes to forget the subscription's last pull request (a message handed
// back sooner could be sent to that request and be lost to the group until
// AckWait); Close takes that second. A handler that fails while Close
// waits for it has its message handed back at the same time.
//
// ctx bounds setting up the consumer; its values, not its cancellation,
// are passed on to handlers. Subscribe returns an error for a bad topic,
// group or option, or when the consumer cannot be created (for example
// because [Bus.Setup] was not called).
func (b *Bus) Subscribe(ctx context.Context, topic, group string, handler cqrs.Handler, opts ...cqrs.SubscribeOption) (cqrs.Subscription, error) {
	var errs []error
	if err := checkTopic(topic); err != nil {
		errs = append(errs, err)
	}
	if group == "" {
		errs = append(errs, errors.New("natsbus: empty group"))
	}
	if handler == nil {
		errs = append(errs, errors.New("natsbus: nil handler"))
	}
	cfg, err := buskit.NewSubscribeConfig(opts...)
	if err != nil {
		errs = append(errs, fmt.Errorf("natsbus: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	subject := b.cfg.prefix + topic
	name := ConsumerName(group, topic)
	want := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "natsbus group " + group + " of topic " + topic,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.ackWait,
		MaxDeliver:    -1, // enforced by the subscription, see above
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
	}
	cons, err := b.consumer(ctx, group, topic, want)
	if err != nil {
		return nil, fmt.Errorf("natsbus: create consumer %s on stream %s: %w", name, b.cfg.stream, err)
	}

	s := &subscription{
		bus:      b,
		topic:    topic,
		subject:  subject,
		group:    group,
		consumer: name,
		cfg:      cfg,
		handler:  handler,
		cons:     cons,
		// The span of ctx is put in front of its values, so that the
		// lookups of every process span find it at once: a lookup that
		// reaches context.WithoutCancel's context allocates.
		baseCtx: trace.ContextWithSpan(context.WithoutCancel(ctx), trace.SpanFromContext(ctx)),
	}
	s.baseSC = trace.SpanContextFromContext(s.baseCtx)
	s.tel.Store(newSubTelemetry(subject, group, name, b.inst.endpoint(time.Now())))
	s.start()
	s.cc, err = cons.Consume(s.receive,
		jetstream.PullMaxMessages(b.cfg.prefetchFor(cfg.Concurrency)),
		jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The client reconnects and resumes by itself; report what
			// happened (a missed heartbeat, a deleted consumer) to the
			// global OpenTelemetry error handler.
			otel.Handle(fmt.Errorf("natsbus: consume %s on stream %s: %w", name, b.cfg.stream, err))
		}),
	)
	if err != nil {
		close(s.closed) // stop the workers and the keepalive loop
		s.wg.Wait()
		close(s.stopKA)
		<-s.kaDone
		return nil, fmt.Errorf("natsbus: consume %s on stream %s: %w", name, b.cfg.stream, err)
	}
	return s, nil
}

// consumer returns the group's consumer, created or updated to want.
//
// A consumer is updated only when its settings changed: an update while
// messages wait for a delayed redelivery (handed back by a member that
// closed) can lose or repeat them on nats-server 2.9. Its start position
// is its own (the server cannot change it), so an update keeps it. A group
// whose consumer does not exist yet takes over where the consumer of its
// legacy name stopped (see [ConsumerName]).
func (b *Bus) consumer(ctx context.Context, group, topic string, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		cons, err := b.js.Consumer(ctx, b.cfg.stream, want.Durable)
		switch {
		case err == nil:
			have := cons.CachedInfo().Config
			if sameConsumer(have, want) {
				return cons, nil
			}
			want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
			return b.js.CreateOrUpdateConsumer(ctx, b.cfg.stream, want)
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			cons, err = b.js.CreateOrUpdateConsumer(ctx, b.cfg.stream, b.takeOver(ctx, group, topic, want))
			if err == nil || attempt > 0 {
				return cons, err
			}
			// Another member may have created it meanwhile, from another
			// start position, which cannot be updated: look again.
		default:
			return b.js.CreateOrUpdateConsumer(ctx, b.cfg.stream, want)
		}
	}
}

// takeOver returns want starting after the last message that the consumer
// of the group's legacy name (see [ConsumerName]) has acknowledged in
// order, if that consumer exists and is the group's (its description and
// filter are those of want); else want itself, which starts with the
// oldest message.
func (b *Bus) takeOver(ctx context.Context, group, topic string, want jetstream.ConsumerConfig) jetstream.ConsumerConfig {
	legacy := legacyConsumerName(group, topic)
	if legacy == want.Durable {
		return want
	}
	old, err := b.js.Consumer(ctx, b.cfg.stream, legacy)
	if err != nil {
		return want
	}
	info := old.CachedInfo()
	if info.Config.Description != want.Description || info.Config.FilterSubject != want.FilterSubject {
		return want // another group's, or another topic's since a collision
	}
	if floor := info.AckFloor.Stream; floor > 0 {
		want.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		want.OptStartSeq = floor + 1
	}
	return want
}

// sameConsumer reports whether the consumer settings natsbus sets are
// those of have, but for the start position, which is the consumer's own.
func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return have.Durable == want.Durable && have.Description == want.Description &&
		have.FilterSubject == want.FilterSubject && have.AckPolicy == want.AckPolicy &&
		have.AckWait == want.AckWait && have.MaxDeliver == want.MaxDeliver &&
		have.MaxAckPending == want.MaxAckPending
}

// ConsumerName returns the name of the durable consumer of group for
// topic. Distinct groups and topics get distinct names.
//
// The name is the group and the topic joined by "-" when that reads back
// unambiguously: when the group holds no '-', neither holds a character
// that consumer names cannot hold ('.', '*', '>', '/', '\\', white space
// and control characters), the result is at most 64 bytes, and it does
// not end as a hashed name does. Otherwise it is hashed: the joined name,
// with each such character replaced by '_' and cut to 47 bytes, then '-'
// and 16 hexadecimal digits of a 64-bit hash of group and topic. So joined
// names split at their first '-', no joined name ends with '-' and 16
// hexadecimal digits, and two hashed names are the same only if their
// hashes are (a chance of 1 in 2^64 for two given pairs).
//
// Earlier versions gave a group holding '-' the joined name too, so that
// ("billing-eu", "orders") and ("billing", "eu-orders") shared the
// consumer billing-eu-orders. Such a group now has a hashed name; its
// first [Bus.Subscribe] creates that consumer starting after the last
// message the old one had acknowledged in order, if the old one was last
// the group's, and else with the oldest message. The old consumer is left
// alone: delete it once no member of the old version runs (members of
// both versions meanwhile each get every message, as a group split in
// two). See the package documentation.
func ConsumerName(group, topic string) string {
	raw := group + "-" + topic
	if len(raw) <= 64 && !strings.Contains(group, "-") && strings.IndexFunc(raw, badConsumerRune) < 0 && !endsHashed(raw) {
		return raw
	}
	return hashedConsumerName(group, topic)
}

// legacyConsumerName is the name ConsumerName gave before it kept joined
// names for groups without '-' only: the joined name whenever it held no
// character to replace and was short enough.
func legacyConsumerName(group, topic string) string {
	raw := group + "-" + topic
	if len(raw) <= 64 && strings.IndexFunc(raw, badConsumerRune) < 0 {
		return raw
	}
	return hashedConsumerName(group, topic)
}

// badConsumerRune reports whether r cannot be part of a consumer name.
func badConsumerRune(r rune) bool {
	return r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || r <= ' ' || r == 0x7f
}

// endsHashed reports whether name ends as a hashed consumer name does:
// '-' and 16 lowercase hexadecimal digits.
func endsHashed(name string) bool {
	if len(name) < 17 || name[len(name)-17] != '-' {
		return false
	}
	for _, c := range []byte(name[len(name)-16:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hashedConsumerName returns the hashed name of group and topic (see
// [ConsumerName]).
func hashedConsumerName(group, topic string) string {
	clean := strings.Map(func(r rune) rune {
		if badConsumerRune(r) {
			return '_'
		}
		return r
	}, group+"-"+topic)
	h := fnv.New64a()
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	if len(clean) > 47 {
		clean = clean[:47]
		for len(clean) > 0 && clean[len(clean)-1]&0xc0 == 0x80 { // keep UTF-8 whole
			clean = clean[:len(clean)-1]
		}
		if len(clean) > 0 && clean[len(clean)-1] >= 0xc0 {
			clean = clean[:len(clean)-1]
		}
	}
	return fmt.Sprintf("%s-%016x", clean, h.Sum64())
}

// subscription is a running subscription of a Bus.
//
// With Concurrency 1 the Consume callback handles each message itself, on
// the client's delivery goroutine; with more, it hands each to one of
// Concurrency workers, blocking until one is free. Either way a blocked
// callback keeps the client from fetching more than the prefetch. One
// keepalive goroutine per subscription extends the AckWait of every
// message being handled.
type subscription struct {
	bus      *Bus
	topic    string
	subject  string
	group    string
	consumer string
	cfg      buskit.SubscribeConfig
	handler  cqrs.Handler
	baseCtx  context.Context
	baseSC   trace.SpanContext // of baseCtx, to tell a message's from it
	tel      atomic.Pointer[subTelemetry]
	cons     jetstream.Consumer // the group's, for sweepRequests
	cc       jetstream.ConsumeContext

	slots  []slot             // one per handler that can run at once
	work   chan jetstream.Msg // to the workers; nil with Concurrency 1
	closed chan struct{}      // closed when Close starts
	stopKA chan struct{}      // closed to stop the keepalive loop
	kaDone chan struct{}      // closed when the keepalive loop returns

	mu        sync.Mutex // guards closing, handBack and wg.Add against Close
	closing   bool
	handBack  []handBack     // delivered after Close started, or failed meanwhile
	wg        sync.WaitGroup // running handlers and workers
	closeOnce sync.Once
}

// slot holds the message a handler is working on, for the keepalive loop.
type slot struct {
	mu  sync.Mutex
	msg jetstream.Msg
}

func (sl *slot) set(msg jetstream.Msg) {
	sl.mu.Lock()
	sl.msg = msg
	sl.mu.Unlock()
}

// start starts the workers and the keepalive loop.
func (s *subscription) start() {
	n := s.cfg.Concurrency
	s.slots = make([]slot, n)
	s.closed = make(chan struct{})
	s.stopKA = make(chan struct{})
	s.kaDone = make(chan struct{})
	if n > 1 {
		s.work = make(chan jetstream.Msg)
		s.wg.Add(n)
		for i := range n {
			go s.worker(&s.slots[i])
		}
	}
	go s.keepAlive()
}

// receive is the Consume callback. It runs on one goroutine per
// subscription and returns once the message is handled (Concurrency 1) or
// taken by a worker, so the client fetches no more than it can handle.
// Once Close has started it keeps each message for Close to hand back.
func (s *subscription) receive(msg jetstream.Msg) {
	if s.work != nil {
		select {
		case <-s.closed:
			s.keep(msg)
			return
		default:
		}
		select {
		case s.work <- msg:
		case <-s.closed:
			s.keep(msg)
		}
		return
	}
	s.mu.Lock()
	if s.closing {
		s.handBack = append(s.handBack, handBack{msg: msg})
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.process(msg, &s.slots[0])
}

// handBack is a message that Close hands back to the group, after delay
// at the earliest.
type handBack struct {
	msg   jetstream.Msg
	delay time.Duration
}

// keep keeps msg, delivered while the subscription closes, for Close to
// hand back.
func (s *subscription) keep(msg jetstream.Msg) { s.keepFor(msg, 0) }

// keepFor keeps msg for Close to hand back after delay at the earliest.
func (s *subscription) keepFor(msg jetstream.Msg, delay time.Duration) {
	s.mu.Lock()
	s.handBack = append(s.handBack, handBack{msg, delay})
	s.mu.Unlock()
}

// worker handles the messages of s.work until Close starts.
func (s *subscription) worker(sl *slot) {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		default:
		}
		select {
		case msg := <-s.work:
			if s.isClosing() {
				s.keep(msg)
				continue
			}
			s.process(msg, sl)
		case <-s.closed:
			return
		}
	}
}

// keepAlive tells the server every half AckWait that each message being
// handled is still being worked on, until Close stops it.
func (s *subscription) keepAlive() {
	defer close(s.kaDone)
	t := time.NewTicker(s.bus.cfg.ackWait / 2)
	defer t.Stop()
	for {
		select {
		case <-s.stopKA:
			return
		case <-t.C:
			for i := range s.slots {
				sl := &s.slots[i]
				sl.mu.Lock()
				if sl.msg != nil {
					_ = sl.msg.InProgress()
				}
				sl.mu.Unlock()
			}
		}
	}
}

// process handles one delivery in slot sl and settles it.
func (s *subscription) process(msg jetstream.Msg, sl *slot) {
	inst := s.bus.inst
	m := cqrs.Message{
		Topic: s.topic,
		Data:  msg.Data(),
	}
	identified := decodeHeaders(msg.Headers(), &m)
	m.Delivery = 1
	if r, ok := deliveryOf(msg); ok {
		m.Delivery = int(min(r.delivered, uint64(1<<31-1)))
		if !identified {
			m.ID = derivedID(r.stream, r.streamSeq)
		}
	}

	pctx := s.baseCtx
	if len(m.Metadata) > 0 {
		// Only metadata can carry a creation context: without any, the
		// propagator (and its lock, for the global one) is not asked.
		pctx = buskit.ExtractTrace(s.baseCtx, m)
	}
	// With telemetry that records nothing, the clock is not read, the
	// connection's server not looked at and no span started (a no-op span
	// costs an allocation): the delivery costs what a bare one does, but
	// for its decoding.
	traced, timed := !inst.spans.Skip(pctx), inst.Process.Enabled(s.baseCtx)
	var start time.Time
	st := s.tel.Load()
	if traced || timed || inst.Consumed.Enabled(s.baseCtx) || inst.OpDuration.Enabled(s.baseCtx) {
		start = time.Now()
		st = s.telemetry(start)
	}
	ctx, span := pctx, noSpan
	if traced {
		ctx, span = inst.tracer.Start(pctx, st.spanName, st.spanOpts...)
	}
	if span.IsRecording() {
		// The link to the creation context is what the semantic conventions
		// ask of a process span (its parent, the creation context as well,
		// is ours to choose). It is added here rather than at the start so
		// that a tracer that does not record pays nothing for it: not even
		// the lookup of the context's span.
		creation := trace.SpanContextFromContext(pctx) // the message's, unless it is baseCtx's
		if creation.IsValid() && (creation.SpanID() != s.baseSC.SpanID() || creation.TraceID() != s.baseSC.TraceID()) {
			span.AddLink(trace.Link{SpanContext: creation})
		}
		span.SetAttributes(semconv.MessagingMessageID(m.ID), cqrs.AttrDelivery.Int(m.Delivery))
		if inst.optIn {
			span.SetAttributes(semconv.MessagingMessageBodySize(len(m.Data)))
		}
	}
	if m.Delivery > 1 {
		inst.Redelivered.Add(ctx, 1, st.groupOpts...)
	}
	if !identified {
		inst.unidentified.Add(ctx, 1, st.groupOpts...)
	}
	inst.Consumed.Add(ctx, 1, st.consumedOpts...)

	sl.set(msg)
	err := s.call(ctx, m)
	sl.set(nil) // no InProgress after the message is settled

	switch {
	case err == nil:
		s.settle(ctx, span, st, msg, settleAck, 0)
	case m.Delivery >= s.cfg.MaxDeliver:
		telemetry.RecordError(span, err)
		inst.DeadLetters.Add(ctx, 1, st.groupOpts...)
		s.deadLetter(ctx, m, err)
		s.settle(ctx, span, st, msg, settleTerm, 0)
	default:
		telemetry.RecordError(span, err)
		delay := s.cfg.Backoff(m.Delivery)
		if s.isClosing() {
			// Close hands it back once the subscription's pull requests are
			// gone (see pullExpiry): a Nak now could send it to one of them.
			s.keepFor(msg, delay)
			if span.IsRecording() {
				span.AddEvent(opNak)
			}
			break
		}
		s.settle(ctx, span, st, msg, settleNak, delay)
	}
	if timed {
		if err == nil {
			inst.Process.Record(ctx, seconds(start), st.processOpts...)
		} else {
			recordFailure(ctx, inst.Process, seconds(start), st.processBase, err)
		}
	}
	span.End()
}

// noSpan is the span of a delivery that starts none: a no-op span with no
// span context, whose End, status and events do nothing.
var noSpan = trace.SpanFromContext(context.Background())

// deliveryOf returns the stream, delivery count and stream sequence of
// msg, from its reply subject, or from Metadata where parseAckReply does
// not read it.
func deliveryOf(msg jetstream.Msg) (ackReply, bool) {
	if r, ok := parseAckReply(msg.Reply()); ok {
		return r, true
	}
	meta, err := msg.Metadata()
	if err != nil {
		return ackReply{}, false
	}
	return ackReply{stream: meta.Stream, delivered: meta.NumDelivered, streamSeq: meta.Sequence.Stream}, true
}

// telemetry returns the subscription's telemetry options for the server
// its connection is connected to as of now.
func (s *subscription) telemetry(now time.Time) *subTelemetry {
	st := s.tel.Load()
	if srv := s.bus.inst.endpoint(now); st.server != srv {
		st = newSubTelemetry(s.subject, s.group, s.consumer, srv)
		s.tel.Store(st)
	}
	return st
}

// settle acknowledges msg (ack), hands it back for redelivery after delay
// (nak) or terminates it (term), and records that as an event of span and
// in messaging.client.operation.duration. A failed ack makes the span
// failed; a failed nak or term does not (the handler failed already),
// though the event and the metric carry its error.type.
func (s *subscription) settle(ctx context.Context, span trace.Span, st *subTelemetry, msg jetstream.Msg, how settlement, delay time.Duration) {
	// The clock is read only for a histogram that records: with no-op
	// telemetry an acknowledgement costs what a bare one does.
	timed := s.bus.inst.OpDuration.Enabled(ctx)
	var start time.Time
	if timed {
		start = time.Now()
	}
	var err error
	switch how {
	case settleAck:
		err = msg.Ack()
	case settleNak:
		err = msg.NakWithDelay(delay)
	case settleTerm:
		// A plain Term: nats-server 2.9 does not parse "+TERM <reason>"
		// (TermWithReason, known from 2.10 on) and leaves the message to
		// be delivered again every AckWait, dead-lettered again each time.
		err = msg.Term()
	}
	var d float64
	if timed {
		d = seconds(start)
	}
	if err == nil {
		if timed {
			s.bus.inst.OpDuration.Record(ctx, d, st.settleOpts[how]...)
		}
		if span.IsRecording() {
			span.AddEvent(settleNames[how])
		}
		return
	}
	err = fmt.Errorf("natsbus: %s: %w", settleNames[how], err)
	recordFailure(ctx, s.bus.inst.OpDuration, d, st.settleBase[how], err)
	if how == settleAck {
		telemetry.RecordError(span, err)
	}
	if span.IsRecording() {
		span.AddEvent(settleNames[how], trace.WithAttributes(telemetry.ErrorType(err)))
	}
}

// isClosing reports whether Close has started.
func (s *subscription) isClosing() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// call runs the handler, turning a panic into an error.
func (s *subscription) call(ctx context.Context, m cqrs.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return s.handler(ctx, m)
}

// deadLetter runs the DeadLetter function, ignoring a panic in it: the
// message is terminated either way.
func (s *subscription) deadLetter(ctx context.Context, m cqrs.Message, err error) {
	defer func() { _ = recover() }()
	s.cfg.DeadLetter(ctx, m, err)
}

// Close stops fetching messages, hands the ones fetched but not yet
// handled back to the group, and waits for running handlers to return and
// their messages to be settled. It is safe to call more than once; calls
// after the first return nil at once.
//
// The client library drains its subscription: it tells the server to stop
// sending, waits for the server to have heard it and passes every message
// that was already on its way to the callback, which keeps it. Once the
// drain is over, Close waits handBackDelay (see pullExpiry), has the
// server drop the subscription's pull requests (see sweepRequests) and
// hands each kept message back with a Nak (delayed by its backoff, for a
// message whose handler failed meanwhile), so that another member of the
// group gets it about a second later rather than after AckWait. Close
// therefore takes about a second when it has messages to hand back.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		close(s.closed)
		s.mu.Unlock()
		s.cc.Drain()
		select {
		case <-s.cc.Closed():
		case <-time.After(drainTimeout):
			s.cc.Stop()
		}
		s.wg.Wait()
		close(s.stopKA)
		<-s.kaDone
		s.mu.Lock()
		back := s.handBack
		s.handBack = nil
		s.mu.Unlock()
		if len(back) > 0 {
			time.Sleep(handBackDelay)
			s.sweepRequests()
		}
		st := s.telemetry(time.Now())
		for _, hb := range back {
			start := time.Now()
			if err := hb.msg.NakWithDelay(hb.delay); err != nil {
				recordFailure(s.baseCtx, s.bus.inst.OpDuration, seconds(start), st.settleBase[settleNak],
					fmt.Errorf("natsbus: %s: %w", opNak, err))
				continue
			}
			s.bus.inst.OpDuration.Record(s.baseCtx, seconds(start), st.settleOpts[settleNak]...)
		}
	})
	return nil
}

// sweepRequests has the server forget the subscription's pull requests
// before Close hands messages back. nats-server 2.9 takes a message handed
// back off its redelivery queue before it looks for a request to send it
// to; when the only requests waiting have nobody listening, it drops the
// message (pending until AckWait) and sends the last new one again. A
// consumer info request has it first drop the requests without a listener,
// and it answers after the drain's unsubscribe, which it read before. An
// error is ignored: the handBackDelay has most likely done the same.
func (s *subscription) sweepRequests() {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	_, _ = s.cons.Info(ctx)
}

// PanicError is the error a handler's panic is turned into, recorded on
// the process span and passed to DeadLetter.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("natsbus: handler panicked: %v", e.Value) }

// ErrorType returns "natsbus.panic", the error.type of a handler panic.
func (e *PanicError) ErrorType() string { return "natsbus.panic" }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
