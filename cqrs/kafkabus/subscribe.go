package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// closeTimeout bounds the commit and the group leave of Close.
const closeTimeout = 10 * time.Second

// pollMax is how many records a subscription takes from its client per
// poll.
const pollMax = 1000

// A partition's goroutine keeps its concurrency slot from one record to
// the next, rather than taking it for each, which saves a hand-off between
// goroutines (and the wake-up of a thread) per record where handlers wait
// for slots (Concurrency below the partitions held). It lets the slot go
// when its queue is empty, after maxStreak records, or once it has held
// the slot for maxHold: a partition of slow handlers then waits its turn
// after each record, as when slots were taken per record.
const (
	maxStreak = 256
	maxHold   = time.Millisecond
)

// Subscribe starts delivering the messages published to topic to handler,
// as a member of the Kafka consumer group group. The subscription is a
// franz-go client of its own in that group, subscribed to the topic's
// Kafka topic, with the cooperative-sticky balancer: members of the group,
// in this process or others, share the topic's partitions, and a member
// joining or leaving moves only the partitions that must move. A new
// group starts with the oldest record of each partition; a group that has
// committed offsets resumes after them.
//
// Each partition is handled in order, by a goroutine of its own, one
// record at a time: Concurrency ([cqrs.WithConcurrency]) bounds how many
// handlers run at once across the partitions. For each delivery the
// handler gets a [cqrs.Message] with Delivery counting this
// subscription's deliveries of the record, from 1, in a
// "process <Kafka topic>" span that is a child of the message's creation
// context and links to it. Returning nil marks the record's offset for
// commit; an error (or a panic, turned into a [PanicError]) has the record
// delivered again after the backoff of its delivery count
// ([cqrs.WithRedeliveryBackoff]), and once its MaxDeliver-th delivery
// ([cqrs.WithMaxDeliver]) fails, the message goes to the dead-letter
// function ([cqrs.WithDeadLetter], see [Bus.DeadLetterTo]) and its offset
// is marked (not while a DeadLetterTo function fails to park it). The records behind a failed one on its partition wait for it
// (the partition's order is kept), but other partitions go on, also while
// it waits out its backoff: a failing handler holds up nothing beyond its
// own partition.
//
// Marked offsets are committed every commit interval ([WithCommitInterval]),
// when a rebalance takes partitions away from the subscription (after
// their running handlers returned) and when it closes. A record handled
// is marked within a tenth of the commit interval, and at once before
// those last two commits. So a rebalance or a Close replays nothing that
// was handled; a crash replays what was handled since the last commit
// (and in the tenth of an interval before it). A record whose handler had failed and
// was waiting for its next delivery when its partition moved is delivered
// to the partition's next owner with Delivery 1 again: the count lives in
// the member, and MaxDeliver bounds the deliveries per member.
//
// ctx bounds the set-up ([WithAutoSetup]); its values, not its
// cancellation, are passed on to handlers. Subscribe returns an error for
// a bad topic, group or option, or when the client cannot be made; it
// does not wait for the group to assign partitions.
func (b *Bus) Subscribe(ctx context.Context, topic, group string, handler cqrs.Handler, opts ...cqrs.SubscribeOption) (cqrs.Subscription, error) {
	var errs []error
	ktopic := b.cfg.prefix + topic
	if err := b.checkKafkaTopic(topic, ktopic); err != nil {
		errs = append(errs, err)
	}
	if group == "" {
		errs = append(errs, errors.New("kafkabus: empty group"))
	}
	if handler == nil {
		errs = append(errs, errors.New("kafkabus: nil handler"))
	}
	cfg, err := buskit.NewSubscribeConfig(opts...)
	if err != nil {
		errs = append(errs, fmt.Errorf("kafkabus: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := b.ensure(ctx, topic, ktopic); err != nil {
		return nil, err
	}
	s := &subscription{
		bus:     b,
		topic:   topic,
		ktopic:  ktopic,
		group:   group,
		cfg:     cfg,
		handler: handler,
		baseCtx: trace.ContextWithSpan(context.WithoutCancel(ctx), trace.SpanFromContext(ctx)),
		sem:     make(chan struct{}, cfg.Concurrency),
		drained: make(chan struct{}, 1),
		maxHeld: int64(b.cfg.maxBuffered),
		parts:   map[int32]*partition{},
		commit:  commitAttrs(ktopic, group),
	}
	s.baseSC = trace.SpanContextFromContext(s.baseCtx)
	s.commitOpts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(s.commit...))}
	s.cl, err = kgo.NewClient(b.clientOpts(
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(ktopic),
		// A new group starts at the oldest record. Where a partition
		// resumes after franz-go detects lost data it cannot locate (an
		// unclean leader election; kfake after a leader moves, see
		// TestLeaderMoveReplaysBoundedly) is left to ConsumeResetOffset:
		// franz-go's default, RewindOffset(time.Minute), replays the minute
		// before the last record consumed rather than the whole log (a
		// kgo.ConsumeResetOffset in WithClientOptions sets another).
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(b.cfg.commitInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: consumer of %s for group %s: %w", ktopic, group, err)
	}
	s.mark = s.cl.MarkCommitRecords
	s.lagReg, err = b.inst.meter.RegisterCallback(s.observeLag, b.inst.lag)
	if err != nil {
		otel.Handle(err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	s.stopPoll = cancel
	s.pollDone = make(chan struct{})
	go s.poll(pctx)
	// Marks reach the client within a tenth of the commit interval, so
	// that a commit takes nearly every record handled before it.
	s.markEvery, s.markDone = max(b.cfg.commitInterval/10, time.Millisecond), make(chan struct{})
	go s.markLoop(pctx)
	return s, nil
}

// subscription is a running subscription of a Bus: one client, one poll
// goroutine that hands each partition's records to the partition's
// goroutine, and that goroutine per assigned partition.
type subscription struct {
	bus     *Bus
	topic   string
	ktopic  string
	group   string
	cfg     buskit.SubscribeConfig
	handler cqrs.Handler
	baseCtx context.Context
	baseSC  trace.SpanContext
	sem     chan struct{} // a slot per handler that may run at once
	drained chan struct{} // signalled when held falls below maxHeld
	held    atomic.Int64  // the records queued on partitions not paused
	maxHeld int64         // WithMaxBuffered
	cl      *kgo.Client
	mark    func(...*kgo.Record) // cl.MarkCommitRecords (a test's own in internal tests)

	commit     []attribute.KeyValue
	commitOpts []metric.RecordOption
	lagReg     metric.Registration

	stopPoll  context.CancelFunc // stops the poll and mark loops
	pollDone  chan struct{}
	markEvery time.Duration
	markDone  chan struct{}

	mu        sync.Mutex
	parts     map[int32]*partition // the partitions assigned
	running   sync.WaitGroup       // the partitions' goroutines
	closing   bool
	closeOnce sync.Once
}

// partition is an assigned partition and its goroutine.
type partition struct {
	s   *subscription
	id  int32
	tel *partTelemetry

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool // while a record waits out its backoff
	gone   bool // dropped: records pushed are let go

	// The partition's goroutine's own.
	retrying bool      // paused, as the goroutine set it
	slot     bool      // it holds a slot of s.sem
	slotAt   time.Time // when it took the slot
	streak   int       // records handled since it took the slot

	wake chan struct{} // signalled when records are queued
	stop chan struct{} // closed to stop the goroutine
	done chan struct{} // closed when it returns

	handled atomic.Pointer[kgo.Record] // the last record handled, not marked yet

	hwm  atomic.Int64 // the partition's high watermark, as last fetched
	next atomic.Int64 // the offset after the last record handled (see observeLag); -1 if none yet
}

// poll polls the client and hands out the records until ctx ends.
func (s *subscription) poll(ctx context.Context) {
	defer close(s.pollDone)
	defer s.cl.AllowRebalance()
	for {
		if s.waitBuffer(ctx) {
			return
		}
		fetches := s.cl.PollRecords(ctx, pollMax)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		s.hand(fetches)
		// Rebalances wait while the records of a poll are handed out, so
		// that none goes to a partition revoked meanwhile.
		s.cl.AllowRebalance()
	}
}

// hand reports the errors of fetches and queues their records on their
// partitions.
func (s *subscription) hand(fetches kgo.Fetches) {
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			otel.Handle(fmt.Errorf("kafkabus: fetch %s/%d for group %s: %w", t, p, s.group, err))
		}
	})
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Topic != s.ktopic {
			return
		}
		s.mu.Lock()
		p := s.parts[fp.Partition]
		s.mu.Unlock()
		if p == nil {
			return // not ours (any more)
		}
		if fp.Err == nil {
			// A partition's error (a data-loss notice, say) comes without
			// its high watermark: the lag would read 0.
			p.hwm.Store(fp.HighWatermark)
		}
		if len(fp.Records) > 0 {
			p.push(fp.Records)
		}
	})
}

// push queues records.
func (p *partition) push(records []*kgo.Record) {
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, records...)
	if !p.paused {
		p.s.held.Add(int64(len(records)))
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pop returns the next record queued, or nil if there is none.
func (p *partition) pop() *kgo.Record {
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.mu.Unlock()
		return nil
	}
	r := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	counted := !p.paused
	p.mu.Unlock()
	if counted {
		p.s.release(1)
	}
	return r
}

// take returns the next record, waiting for one, or nil once stop closes.
// Before it waits, it lets its slot go.
func (p *partition) take() *kgo.Record {
	for {
		select {
		case <-p.stop:
			return nil
		default:
		}
		if r := p.pop(); r != nil {
			return r
		}
		p.yield()
		select {
		case <-p.wake:
		case <-p.stop:
			return nil
		}
	}
}

// acquire takes a slot of the subscription's concurrency for the
// partition's goroutine unless it holds one, and reports true, or false as
// soon as the partition is stopped.
func (p *partition) acquire() bool {
	if p.slot {
		return true
	}
	select {
	case p.s.sem <- struct{}{}:
		p.slot, p.slotAt = true, time.Now()
		return true
	case <-p.stop:
		return false
	}
}

// yield lets the partition's slot go, if it holds one.
func (p *partition) yield() {
	if p.slot {
		<-p.s.sem
		p.slot = false
	}
	p.streak = 0
}

// flushMark marks for commit the last record handled since the last
// flush, if any. The record is let go only once it is marked: the mark
// loop and the partition's goroutine as it stops may both flush, and the
// commit of a revocation, which follows the goroutine's flush, must find
// the record marked even while the mark loop's flush of it is under way.
// (Marking a record twice, or after a later one, changes nothing.)
func (p *partition) flushMark() {
	if r := p.handled.Load(); r != nil {
		p.s.mark(r)
		p.handled.CompareAndSwap(r, nil)
	}
}

// markLoop marks the records the partitions handled every s.markEvery,
// until ctx ends. Marking each record as its handler returned cost, in
// the client's map operations under its lock, about as much CPU as the
// rest of the bus's work on a record; here a record handled costs an
// atomic store.
func (s *subscription) markLoop(ctx context.Context) {
	defer close(s.markDone)
	t := time.NewTicker(s.markEvery)
	defer t.Stop()
	var parts []*partition
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, p := range s.parts {
			parts = append(parts, p)
		}
		s.mu.Unlock()
		for _, p := range parts {
			p.flushMark()
		}
		clear(parts)
		parts = parts[:0]
	}
}

// setRetrying records whether the partition's record is waiting out a
// backoff after a failed delivery. While it does, the partition is paused:
// no more of its records are fetched, and those it holds do not count
// against the subscription's buffer, so the other partitions go on.
func (p *partition) setRetrying(retrying bool) {
	if p.retrying == retrying {
		return
	}
	p.retrying = retrying
	p.mu.Lock()
	p.paused = retrying
	queued := len(p.queue)
	p.mu.Unlock()
	if retrying {
		p.s.cl.PauseFetchPartitions(map[string][]int32{p.s.ktopic: {p.id}})
		p.s.release(queued)
	} else {
		p.s.held.Add(int64(queued))
		p.s.cl.ResumeFetchPartitions(map[string][]int32{p.s.ktopic: {p.id}})
	}
}

// release takes n records off the count of those held, waking a poll loop
// waiting for it to fall below the buffer when it does.
func (s *subscription) release(n int) {
	if n == 0 {
		return
	}
	if h := s.held.Add(-int64(n)); h < s.maxHeld && h+int64(n) >= s.maxHeld {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
}

// waitBuffer waits until the records that the partitions not paused hold
// number fewer than the subscription's buffer (WithMaxBuffered), or ctx
// ends; it reports whether ctx ended.
func (s *subscription) waitBuffer(ctx context.Context) bool {
	for s.held.Load() >= s.maxHeld {
		select {
		case <-s.drained:
		case <-ctx.Done():
			return true
		}
	}
	return false
}

// run handles the partition's records in order until stop closes.
func (p *partition) run() {
	defer close(p.done)
	defer p.flushMark() // before done closes: the commit of a revocation or Close follows
	defer p.yield()
	for {
		r := p.take()
		if r == nil {
			return
		}
		if p.next.Load() < 0 {
			p.next.Store(r.Offset) // the lag counts the record in hand
		}
		if !p.s.handle(p, r) {
			return // stopped before the record was settled
		}
		p.setRetrying(false)
		p.handled.Store(r)
		p.next.Store(r.Offset + 1)
		if p.streak++; p.streak >= maxStreak || time.Since(p.slotAt) >= maxHold {
			p.yield()
		}
	}
}

// assigned starts a goroutine for each partition assigned.
func (s *subscription) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	for _, id := range assigned[s.ktopic] {
		if s.parts[id] != nil {
			continue
		}
		p := &partition{s: s, id: id, tel: newPartTelemetry(s.ktopic, s.group, id),
			wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		p.hwm.Store(-1)
		p.next.Store(-1)
		s.parts[id] = p
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			p.run()
		}()
	}
}

// revoked stops the goroutines of the partitions revoked, once their
// running handlers returned, and commits the offsets marked, so that the
// partitions' next owners start after every record handled here.
func (s *subscription) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if s.drop(revoked[s.ktopic]) > 0 {
		s.commitMarked(ctx)
	}
}

// lost stops the goroutines of the partitions lost; their offsets cannot
// be committed any more.
func (s *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.drop(lost[s.ktopic])
}

// drop stops the goroutines of partitions ids and waits for them. It
// returns how many it stopped (partitions dropped already are skipped).
func (s *subscription) drop(ids []int32) int {
	s.mu.Lock()
	var stopped []*partition
	for _, id := range ids {
		if p := s.parts[id]; p != nil {
			delete(s.parts, id)
			close(p.stop)
			stopped = append(stopped, p)
		}
	}
	s.mu.Unlock()
	var paused []int32
	queued := 0
	for _, p := range stopped {
		<-p.done
		p.mu.Lock()
		p.gone = true
		if p.paused {
			paused = append(paused, p.id)
		} else {
			queued += len(p.queue)
		}
		p.queue = nil
		p.mu.Unlock()
	}
	if len(paused) > 0 {
		// A partition assigned again later is fetched again.
		s.cl.ResumeFetchPartitions(map[string][]int32{s.ktopic: paused})
	}
	s.release(queued)
	return len(stopped)
}

// commitMarked commits the marked offsets, recording the commit in
// messaging.client.operation.duration.
func (s *subscription) commitMarked(ctx context.Context) {
	start := time.Now()
	err := s.cl.CommitMarkedOffsets(ctx)
	if err != nil {
		recordFailure(ctx, s.bus.inst.OpDuration, seconds(start), s.commit, err)
		otel.Handle(fmt.Errorf("kafkabus: commit offsets of %s for group %s: %w", s.ktopic, s.group, err))
		return
	}
	s.bus.inst.OpDuration.Record(ctx, seconds(start), s.commitOpts...)
}

// handle delivers r until its handler succeeds or it is dead-lettered, and
// reports true then; false if the partition was stopped before (the record
// is left for the partition's next owner).
func (s *subscription) handle(p *partition, r *kgo.Record) bool {
	m, identified := decodeRecord(s.topic, r)
	for delivery := 1; ; delivery++ {
		if !p.acquire() {
			return false
		}
		m.Delivery = delivery
		err, parkErr := s.process(p, r, m, identified)
		if err == nil {
			return true
		}
		p.yield() // before the backoff
		if delivery >= s.cfg.MaxDeliver {
			// Dead-lettered by process; a message that [Bus.DeadLetterTo]
			// could not park keeps its record, which is not marked: the
			// function is called again after the backoff, until it parks
			// it or the partition goes.
			for parkErr != nil {
				if !p.sleep(s.cfg.Backoff(delivery)) {
					return false
				}
				parkErr = s.deadLetter(s.baseCtx, m, err)
			}
			return true
		}
		if !p.sleep(s.cfg.Backoff(delivery)) {
			return false // drop resumes the partition
		}
	}
}

// sleep pauses the partition for wait, a backoff, and reports true, or
// false as soon as the partition is stopped.
func (p *partition) sleep(wait time.Duration) bool {
	p.setRetrying(true)
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}

// process runs one delivery of m, carried by r, in a process span, and
// gives m to the dead-letter function if it was its last and failed. It
// returns the handler's error, and the error of a [Bus.DeadLetterTo]
// function that could not park m.
func (s *subscription) process(p *partition, r *kgo.Record, m cqrs.Message, identified bool) (err, parkErr error) {
	inst, pt := s.bus.inst, p.tel
	// The clock is read only for a histogram that records.
	var start time.Time
	timed := inst.Process.Enabled(s.baseCtx)
	if timed {
		start = time.Now()
	}
	pctx := s.baseCtx
	if len(m.Metadata) > 0 {
		pctx = buskit.ExtractTrace(s.baseCtx, m)
	}
	ctx, span := pctx, trace.Span(nil)
	if !inst.spans.Skip(pctx) {
		ctx, span = inst.tracer.Start(pctx, pt.spanName, pt.spanOpts...)
	}
	if span != nil && span.IsRecording() {
		creation := trace.SpanContextFromContext(pctx)
		if creation.IsValid() && (creation.SpanID() != s.baseSC.SpanID() || creation.TraceID() != s.baseSC.TraceID()) {
			span.AddLink(trace.Link{SpanContext: creation})
		}
		span.SetAttributes(semconv.MessagingMessageID(m.ID), cqrs.AttrDelivery.Int(m.Delivery),
			semconv.MessagingKafkaOffset(int(r.Offset)))
		if len(r.Key) > 0 {
			span.SetAttributes(semconv.MessagingKafkaMessageKey(string(r.Key)))
		}
		if inst.optIn {
			span.SetAttributes(semconv.MessagingMessageBodySize(len(m.Data)))
		}
	}
	if m.Delivery > 1 {
		inst.Redelivered.Add(ctx, 1, pt.groupOpts...)
	}
	if !identified {
		inst.unidentified.Add(ctx, 1, pt.groupOpts...)
	}
	inst.Consumed.Add(ctx, 1, pt.consumedOpts...)
	err = s.call(ctx, m)
	if err != nil {
		if span != nil {
			telemetry.RecordError(span, err)
		}
		if m.Delivery >= s.cfg.MaxDeliver {
			inst.DeadLetters.Add(ctx, 1, pt.groupOpts...)
			parkErr = s.deadLetter(ctx, m, err)
			if span != nil && span.IsRecording() {
				span.AddEvent("dead_letter")
			}
		}
		if timed {
			recordFailure(ctx, inst.Process, seconds(start), pt.processBase, err)
		}
	} else if timed {
		inst.Process.Record(ctx, seconds(start), pt.processOpts...)
	}
	if span != nil {
		span.End()
	}
	return err, parkErr
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

// deadLetter runs the DeadLetter function, ignoring a panic in it, and
// returns the error of a [Bus.DeadLetterTo] function that could not park
// m (other functions cannot tell: their record's offset is marked).
func (s *subscription) deadLetter(ctx context.Context, m cqrs.Message, err error) error {
	slot := new(parkSlot)
	defer func() { _ = recover() }()
	s.cfg.DeadLetter(context.WithValue(ctx, parkKey{}, slot), m, err)
	return slot.err
}

// parkKey is the context key of the parkSlot in which the function of
// [Bus.DeadLetterTo] tells the subscription that called it that it could
// not park a message.
type parkKey struct{}

type parkSlot struct{ err error }

// observeLag reports each assigned partition's lag: its high watermark
// minus the offset after the last record handled (or, while the first is
// handled, that record's offset). A partition whose first record has not
// reached its handler yet is not reported.
func (s *subscription) observeLag(_ context.Context, o metric.Observer) error {
	s.mu.Lock()
	parts := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		parts = append(parts, p)
	}
	s.mu.Unlock()
	for _, p := range parts {
		hwm := p.hwm.Load()
		if hwm < 0 {
			continue // nothing fetched yet
		}
		next := p.next.Load()
		if next < 0 {
			continue // no record taken yet
		}
		o.ObserveInt64(s.bus.inst.lag, max(hwm-next, 0), p.tel.lagOpts...)
	}
	return nil
}

// Close stops fetching, waits for the running handlers to return, commits
// the offsets of every record handled and leaves the group, whose other
// members then get the subscription's partitions (and the records it had
// fetched but not handled, which are not committed). A handler that fails
// while Close waits for it is not retried here: its record goes to the
// partition's next owner. Close is safe to call more than once; calls
// after the first return nil at once. It returns nil: a failed commit
// (the records are then delivered again to the group) is reported to the
// global OpenTelemetry error handler.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.stopPoll()
		<-s.pollDone
		<-s.markDone
		s.mu.Lock()
		s.closing = true
		ids := make([]int32, 0, len(s.parts))
		for id := range s.parts {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		s.drop(ids)
		// A revocation running meanwhile may have taken partitions from
		// the map before; their goroutines must have marked their last
		// records before the commit.
		s.running.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		s.commitMarked(ctx)
		s.cl.CloseAllowingRebalance()
		if s.lagReg != nil {
			_ = s.lagReg.Unregister()
		}
	})
	return nil
}

// PanicError is the error a handler's panic is turned into, recorded on
// the process span and passed to DeadLetter.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("kafkabus: handler panicked: %v", e.Value) }

// ErrorType returns "kafkabus.panic", the error.type of a handler panic.
func (e *PanicError) ErrorType() string { return "kafkabus.panic" }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

func itoa(n int32) string { return strconv.FormatInt(int64(n), 10) }
