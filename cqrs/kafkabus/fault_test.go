package kafkabus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/kafkabus"
)

// ledger counts the deliveries of each message ID to a group.
type ledger struct {
	mu   sync.Mutex
	seen map[string]int
}

func newLedger() *ledger { return &ledger{seen: map[string]int{}} }

func (l *ledger) add(id string) {
	l.mu.Lock()
	l.seen[id]++
	l.mu.Unlock()
}

// has reports whether id was seen.
func (l *ledger) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id] > 0
}

// count returns how many distinct IDs were seen and how many deliveries
// were duplicates.
func (l *ledger) count() (distinct, duplicates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.seen {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

// missing returns the IDs of want not seen.
func (l *ledger) missing(want []cqrs.Message) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range want {
		if l.seen[m.ID] == 0 {
			out = append(out, m.ID)
		}
	}
	return out
}

// keyed returns n messages spread over keys stream keys.
func keyed(prefix string, n, keys int) []cqrs.Message {
	msgs := make([]cqrs.Message, n)
	for i := range msgs {
		msgs[i] = cqrs.Message{ID: fmt.Sprintf("%s-%d", prefix, i), Type: "test.Event",
			Data: fmt.Appendf(nil, `{"n":%d}`, i), Key: fmt.Sprintf("stream-%d", i%keys),
			Metadata: map[string]string{}}
	}
	return msgs
}

// TestBrokerKilledMidRun removes the broker that leads a partition of the
// topic (and refuses its connections) while messages are published and
// consumed: every publish succeeds (the producer moves to the new
// leaders), every message is handled, and each stream's messages are
// first handled in order. Duplicates are reported, not failed: in about
// one run in three, the consumer validates its position with the new
// leader (OffsetForLeaderEpoch for epoch 0) before the producer wrote a
// batch in the new epoch; kfake derives epochs from the batches written,
// so it answers "undefined epoch" (EndOffset -1: kfake's
// 23_offset_for_leader_epoch.go, findBatchMeta finding no batch of a later
// epoch), where Kafka's new leader has recorded its epoch's start offset on
// election and answers with the log end. franz-go then cannot locate the
// loss and resets the partition by ConsumeResetOffset, reporting an
// ErrDataLoss ("consumed to offset 30 epoch 0 but was reset to offset
// ..."), which the bus hands to otel.Handle. With franz-go's default
// reset, RewindOffset(time.Minute), the replay is the minute before the
// last record consumed: every record of this test, which is a minute long
// (the bus used to set AtStart, replaying the whole log on a real cluster
// too). TestLeaderMoveReplaysBoundedly makes the reset happen every time
// and checks it stays within the minute.
func TestBrokerKilledMidRun(t *testing.T) {
	c := newCluster(t, 3)
	if c.fake == nil {
		t.Skip("kills a kfake broker; a real cluster's are not ours to kill")
	}
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	got := newLedger()
	var mu sync.Mutex
	last := map[string]int{} // the index of the last message handled, by stream
	var disorder []string
	subscribe(t, b, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		first := !got.has(m.ID)
		got.add(m.ID)
		if !first {
			return nil // a replay repeats a stream's order, from further back
		}
		var i int
		_, _ = fmt.Sscanf(m.Metadata["i"], "%d", &i)
		mu.Lock()
		defer mu.Unlock()
		k := m.Key
		if prev, ok := last[k]; ok && i < prev {
			disorder = append(disorder, fmt.Sprintf("%s first handled after message %d", m.ID, prev))
		}
		last[k] = max(last[k], i)
		return nil
	}, cqrs.WithConcurrency(4))

	msgs := keyed("k", 300, 12)
	for i := range msgs {
		msgs[i].Metadata["i"] = fmt.Sprint(i)
	}
	victim := c.fake.LeaderFor(b.KafkaTopic("orders"), 0)
	for i := 0; i < len(msgs); i += 30 {
		if i == 150 {
			require.NoError(t, c.fake.RemoveNode(victim), "RemoveNode(%d)", victim)
		}
		require.NoError(t, b.Publish(ctx, "orders", msgs[i:i+30]...), "Publish(messages %d to %d)", i, i+30)
	}
	waitFor(t, 15*time.Second, "every message handled", func() bool { return len(got.missing(msgs)) == 0 })
	distinct, dups := got.count()
	t.Logf("broker %d removed: %d messages handled, %d duplicate deliveries", victim, distinct, dups)
	mu.Lock()
	defer mu.Unlock()
	if len(disorder) > 0 {
		t.Errorf("messages of a stream handled out of order: %v", disorder)
	}
}

// TestMemberLeavesDuringRebalance has a second member join a group while
// the first is handling a backlog, and the first leave while that
// rebalance is under way; a third joins after. No message is lost, and as
// each member commits what it handled when it gives partitions up, no
// handled message is delivered again: duplicates are counted, reported
// and must be none.
func TestMemberLeavesDuringRebalance(t *testing.T) {
	c := newCluster(t, 3)
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	got := newLedger()
	handler := func(_ context.Context, m cqrs.Message) error {
		time.Sleep(time.Millisecond) // a backlog builds up
		got.add(m.ID)
		return nil
	}
	msgs := keyed("r", 400, 40)
	require.NoError(t, b.Publish(ctx, "orders", msgs...))

	first, err := b.Subscribe(ctx, "orders", "projector", handler)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the first member handling", func() bool { d, _ := got.count(); return d >= 50 })
	subscribe(t, b, "orders", "projector", handler) // a rebalance starts
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, first.Close()) // and the first member leaves during it
	subscribe(t, b, "orders", "projector", handler)

	waitFor(t, 15*time.Second, "every message handled", func() bool { return len(got.missing(msgs)) == 0 })
	time.Sleep(200 * time.Millisecond) // any late duplicate
	distinct, dups := got.count()
	t.Logf("%d messages handled, %d duplicate deliveries", distinct, dups)
	if dups != 0 {
		t.Errorf("%d messages delivered again after a rebalance; want 0: offsets are committed on revoke and on Close", dups)
	}
}

// TestFailingPartitionDoesNotBlockOthers: a message whose handler keeps
// failing, with a long backoff, holds up its own partition only.
func TestFailingPartitionDoesNotBlockOthers(t *testing.T) {
	c := newCluster(t, 1)
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	const partitions = 4 // newBus's
	part := func(key string) int {
		return kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte(key)}, partitions)
	}
	bad := cqrs.Message{ID: "bad", Key: "stream-bad"}
	var others []cqrs.Message
	for _, m := range keyed("ok", 40, 40) {
		if part(m.Key) != part("stream-bad") {
			others = append(others, m)
		}
	}
	require.NotEmpty(t, others)
	got := newLedger()
	failures := make(chan struct{}, 10)
	subscribe(t, b, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		if m.ID == bad.ID {
			failures <- struct{}{}
			return errors.New("cannot")
		}
		got.add(m.ID)
		return nil
	}, cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Hour }))
	require.NoError(t, b.Publish(ctx, "orders", bad))
	select {
	case <-failures:
	case <-ctx.Done():
		t.Fatal("the failing message was not delivered")
	}
	require.NoError(t, b.Publish(ctx, "orders", others...))
	waitFor(t, 10*time.Second, "the other partitions' messages handled while one waits an hour", func() bool {
		return len(got.missing(others)) == 0
	})
}

// TestDeadLetterTo parks a message that keeps failing on another topic,
// with the error and its topic, and goes on with the next.
func TestDeadLetterTo(t *testing.T) {
	c := newCluster(t, 3)
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders", "orders-parked"))
	parked := make(chan cqrs.Message, 1)
	subscribe(t, b, "orders-parked", "ops", func(_ context.Context, m cqrs.Message) error {
		parked <- m
		return nil
	})
	handled := make(chan string, 2)
	var deliveries int
	subscribe(t, b, "orders", "billing", func(_ context.Context, m cqrs.Message) error {
		if m.ID == "poison" {
			deliveries++
			return fmt.Errorf("delivery %d: bad order", m.Delivery)
		}
		handled <- m.ID
		return nil
	}, cqrs.WithMaxDeliver(3), cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Millisecond }),
		cqrs.WithDeadLetter(b.DeadLetterTo("orders-parked")))
	require.NoError(t, b.Publish(ctx, "orders",
		cqrs.Message{ID: "poison", Type: "order.placed", Data: []byte("{"), Metadata: map[string]string{"tenant": "t1"}},
		cqrs.Message{ID: "fine"}))
	select {
	case m := <-parked:
		require.Equal(t, "poison", m.ID)
		require.Equal(t, "order.placed", m.Type)
		require.Equal(t, "{", string(m.Data))
		require.Equal(t, "t1", m.Metadata["tenant"])
		require.Equal(t, "delivery 3: bad order", m.Metadata[kafkabus.MetadataDeadLetterError])
		require.Equal(t, "orders", m.Metadata[kafkabus.MetadataDeadLetterTopic])
	case <-ctx.Done():
		t.Fatal("nothing parked")
	}
	select {
	case id := <-handled:
		require.Equal(t, "fine", id)
	case <-ctx.Done():
		t.Fatal("the message after the poison one was not handled")
	}
	require.Equal(t, 3, deliveries)
}

// TestDeadLetterToFailingKeepsTheRecord: a message that DeadLetterTo cannot
// park (its topic does not exist yet) is not passed: the subscription
// tries again until it parks it. Before, the record was marked after the
// failed park, and the message was lost (only otel.Handle heard of it).
func TestDeadLetterToFailingKeepsTheRecord(t *testing.T) {
	c := newCluster(t, 3)
	b := newBus(t, c)
	ctx := ctxWithin(t, 30*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	// A bus on the same topics that does not create them.
	dl, err := kafkabus.New(c.brokers, kafkabus.WithTopicPrefix(b.KafkaTopic("")), kafkabus.WithClientOptions(fastClient...))
	require.NoError(t, err)
	t.Cleanup(dl.Close)
	park := dl.DeadLetterTo("orders-parked")
	var calls atomic.Int32
	subscribe(t, b, "orders", "billing", func(context.Context, cqrs.Message) error {
		return errors.New("bad order")
	}, cqrs.WithMaxDeliver(1), cqrs.WithRedeliveryBackoff(func(int) time.Duration { return 10 * time.Millisecond }),
		cqrs.WithDeadLetter(func(ctx context.Context, m cqrs.Message, err error) {
			calls.Add(1)
			park(ctx, m, err)
		}))
	require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: "poison", Key: "o-1"}))
	waitFor(t, 20*time.Second, "DeadLetterTo called again after it failed", func() bool { return calls.Load() >= 2 })
	require.NoError(t, b.Setup(ctx, "orders-parked"))
	parked := make(chan cqrs.Message, 1)
	subscribe(t, b, "orders-parked", "ops", func(_ context.Context, m cqrs.Message) error {
		select {
		case parked <- m:
		default:
		}
		return nil
	})
	select {
	case m := <-parked:
		require.Equal(t, "poison", m.ID)
		require.Equal(t, "o-1", m.Key)
	case <-ctx.Done():
		t.Fatal("the message DeadLetterTo failed to park was lost")
	}
}

// TestRetryingRecordMovesWithItsPartition: a record waiting out its backoff
// when its member leaves is not marked; the member that gets its
// partition delivers it, and the record behind it after it.
func TestRetryingRecordMovesWithItsPartition(t *testing.T) {
	c := newCluster(t, 3)
	b := newBus(t, c, kafkabus.WithPartitions(1))
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	require.NoError(t, b.Publish(ctx, "orders", cqrs.Message{ID: "x"}, cqrs.Message{ID: "y"}))
	failed := make(chan struct{}, 1)
	first, err := b.Subscribe(ctx, "orders", "billing", func(context.Context, cqrs.Message) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("not yet")
	}, cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Hour }))
	require.NoError(t, err)
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("the first member never delivered x")
	}
	require.NoError(t, first.Close())
	var col collector
	subscribe(t, b, "orders", "billing", col.handle)
	waitFor(t, 15*time.Second, "x and y delivered to the next member", func() bool { return len(col.messages()) >= 2 })
	got := col.messages()
	require.Equal(t, "x", got[0].ID)
	require.Equal(t, "y", got[1].ID)
}

// TestCommitsFollowHandlers: with Concurrency 1 and partitions of more
// records than a partition's goroutine handles in one stretch with its
// slot, Close commits the offset after every record handled, and never one
// past a record whose handler has not succeeded: the partition of a
// message that keeps failing is committed up to it, the others to their
// end. The committed offsets are read from the group.
func TestCommitsFollowHandlers(t *testing.T) {
	c := newCluster(t, 1)
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	msgs := keyed("c", 600, 16)
	failing := msgs[457].ID
	require.NoError(t, b.Publish(ctx, "orders", msgs...))

	// Where each message is.
	ktopic := b.KafkaTopic("orders")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.ConsumeTopics(ktopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, fastClient...)...)
	require.NoError(t, err)
	defer cl.Close()
	records := map[string]*kgo.Record{}
	for len(records) < len(msgs) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "cqrs-id" {
					records[string(h.Value)] = r
				}
			}
		})
	}
	fail := records[failing]
	require.NotNil(t, fail, "the failing message's record")
	var handled []cqrs.Message // those before the failing one on its partition, and the other partitions'
	for _, m := range msgs {
		if r := records[m.ID]; r.Partition != fail.Partition || r.Offset < fail.Offset {
			handled = append(handled, m)
		}
	}

	got := newLedger()
	s, err := b.Subscribe(ctx, "orders", "projector", func(ctx context.Context, m cqrs.Message) error {
		if m.ID == failing {
			return errors.New("not yet")
		}
		got.add(m.ID)
		return nil
	}, cqrs.WithConcurrency(1), cqrs.WithRedeliveryBackoff(func(int) time.Duration { return time.Hour }))
	require.NoError(t, err)
	waitFor(t, 15*time.Second, "the messages not behind the failing one handled", func() bool { return len(got.missing(handled)) == 0 })
	require.NoError(t, s.Close())

	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, ktopic)
	require.NoError(t, err)
	committed, err := adm.FetchOffsets(ctx, "projector")
	require.NoError(t, err)
	ends.Each(func(end kadm.ListedOffset) {
		want := end.Offset
		if end.Partition == fail.Partition {
			want = fail.Offset
		}
		o, ok := committed.Lookup(ktopic, end.Partition)
		if !ok || o.At != want {
			t.Errorf("partition %d: committed %+v; want offset %d (end %d)", end.Partition, o.Offset, want, end.Offset)
		}
	})
}

// TestSlowPartitionTakesTurns: with Concurrency 1, a partition whose
// handlers are slow lets another partition's record through after about
// a millisecond holding the slot, rather than running its whole queue
// first. The records of partition 0 each take 3ms; the one record of
// partition 1 arrives while partition 0 has 99 more queued, and is handled
// before their last tenth (a fetch may take up to the tests' 200ms
// FetchMaxWait to bring it; without the turns it came after all 100).
func TestSlowPartitionTakesTurns(t *testing.T) {
	c := newCluster(t, 1)
	b := newBus(t, c)
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	ktopic := b.KafkaTopic("orders")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, fastClient...)...)
	require.NoError(t, err)
	defer cl.Close()
	slow := make([]*kgo.Record, 100)
	for i := range slow {
		slow[i] = &kgo.Record{Topic: ktopic, Partition: 0, Value: []byte("slow")}
	}
	require.NoError(t, cl.ProduceSync(ctx, slow...).FirstErr())

	var mu sync.Mutex
	var order []string
	started := make(chan struct{})
	var once sync.Once
	subscribe(t, b, "orders", "projector", func(_ context.Context, m cqrs.Message) error {
		if string(m.Data) == "slow" {
			once.Do(func() { close(started) })
			time.Sleep(3 * time.Millisecond)
		}
		mu.Lock()
		order = append(order, string(m.Data))
		mu.Unlock()
		return nil
	}, cqrs.WithConcurrency(1))
	<-started
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: ktopic, Partition: 1, Value: []byte("fast")}).FirstErr())
	waitFor(t, 15*time.Second, "every record handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 101
	})
	mu.Lock()
	defer mu.Unlock()
	if i := slices.Index(order, "fast"); i >= 90 {
		t.Errorf("partition 1's record handled after %d of partition 0's; want it to take its turn well before their end", i)
	}
}

// TestSlowHandlersCommitAsTheyGo: each record a partition's goroutine has
// handled is marked for commit within a tenth of the commit interval, not
// when the goroutine lets its concurrency slot go, so the commit interval
// bounds what a crash replays. The handler (2ms a record) stops at the
// 31st of 100 records; the group's committed offset reaches 30 meanwhile.
// (It failed with marks made only when the slot went, after 256 records
// or an empty queue.)
func TestSlowHandlersCommitAsTheyGo(t *testing.T) {
	c := newCluster(t, 1)
	b := newBus(t, c, kafkabus.WithPartitions(1))
	ctx := ctxWithin(t, 20*time.Second)
	require.NoError(t, b.Setup(ctx, "orders"))
	require.NoError(t, b.Publish(ctx, "orders", keyed("s", 100, 1)...))
	release := make(chan struct{})
	defer close(release)
	subscribe(t, b, "orders", "projector", func(_ context.Context, m cqrs.Message) error {
		if m.ID == "s-30" {
			<-release
		}
		time.Sleep(2 * time.Millisecond)
		return nil
	}, cqrs.WithConcurrency(4))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, fastClient...)...)
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(t, 10*time.Second, "offset 30 committed while the handler is held", func() bool {
		committed, err := adm.FetchOffsets(ctx, "projector")
		if err != nil {
			return false
		}
		o, ok := committed.Lookup(b.KafkaTopic("orders"), 0)
		return ok && o.At == 30
	})
}
