package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// Timing of the suite. patience bounds every wait for something that should
// happen; quiet is how long a subtest waits to conclude that something that
// must not happen (a delivery after Close or after the last attempt) did
// not.
const (
	patience = 5 * time.Second
	quiet    = 200 * time.Millisecond
)

// backoff is the redelivery backoff of every subscription of the suite.
func backoff(int) time.Duration { return 10 * time.Millisecond }

// Run runs the conformance suite against the buses that newBus returns.
// newBus is called once per subtest, with that subtest's t, and should
// register the bus's cleanup with t.Cleanup.
func Run(t *testing.T, newBus func(t *testing.T) cqrs.EventBus) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b cqrs.EventBus)
	}{
		{"PublishThenConsumeInOrder", testInOrder},
		{"TwoGroupsEachReceiveEverything", testTwoGroups},
		{"OneGroupSharesTheLoad", testShareLoad},
		{"RedeliveryThenSuccess", testRedeliveryThenSuccess},
		{"RedeliveryThenDeadLetter", testDeadLetter},
		{"CloseStopsDeliveryAndGroupResumes", testCloseResume},
		{"TraceContextPropagates", testTrace},
		{"PublishCanceledContext", testPublishCanceled},
		{"SubscribeBadOptions", testBadOptions},
		{"AnyMetadataTravels", testAnyMetadata},
		{"KeysTravelAndKeepOrder", testKeys},
		{"ParkOnAnotherTopicWithTheSameID", testPark},
		{"PublishInvalidMessage", testInvalidMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBus(t)
			if b == nil {
				t.Fatal("newBus returned nil")
			}
			tt.run(t, b)
		})
	}
}

// name returns a topic or group name private to the running subtest, made
// of letters, digits, '-' and '_' only.
func name(t *testing.T, what string) string {
	var sb strings.Builder
	for _, r := range t.Name() {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return sb.String() + "_" + what + "_" + hex.EncodeToString(rnd[:])
}

// ctx returns a context that ends with the test or after patience.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), patience)
	t.Cleanup(cancel)
	return c
}

// messages returns n messages with IDs private to the test.
func messages(t *testing.T, n int) []cqrs.Message {
	prefix := name(t, "msg")
	msgs := make([]cqrs.Message, n)
	for i := range msgs {
		msgs[i] = cqrs.Message{
			ID:       fmt.Sprintf("%s-%d", prefix, i),
			Type:     "bustest.Event",
			Data:     fmt.Appendf(nil, `{"n":%d}`, i),
			Metadata: map[string]string{"bustest-index": fmt.Sprint(i)},
		}
	}
	return msgs
}

func mustPublish(t *testing.T, b cqrs.EventBus, topic string, msgs ...cqrs.Message) {
	t.Helper()
	if err := b.Publish(ctx(t), topic, msgs...); err != nil {
		t.Fatalf("Publish(%q, %d messages) = %v; want nil", topic, len(msgs), err)
	}
}

func mustSubscribe(t *testing.T, b cqrs.EventBus, topic, group string, h cqrs.Handler, opts ...cqrs.SubscribeOption) cqrs.Subscription {
	t.Helper()
	opts = append([]cqrs.SubscribeOption{cqrs.WithRedeliveryBackoff(backoff)}, opts...)
	s, err := b.Subscribe(ctx(t), topic, group, h, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q) = %v; want nil", topic, group, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Subscription.Close() = %v; want nil", err)
		}
	})
	return s
}

// recorder collects the messages a handler receives.
type recorder struct {
	mu     sync.Mutex
	got    []cqrs.Message
	change chan struct{} // closed and replaced on every message
}

func newRecorder() *recorder { return &recorder{change: make(chan struct{})} }

func (r *recorder) add(m cqrs.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, m)
	close(r.change)
	r.change = make(chan struct{})
}

// handle records m and acknowledges it.
func (r *recorder) handle(_ context.Context, m cqrs.Message) error {
	r.add(m)
	return nil
}

func (r *recorder) messages() []cqrs.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cqrs.Message(nil), r.got...)
}

// waitFor waits until cond holds of the received messages, failing the test
// after patience.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]cqrs.Message) bool) []cqrs.Message {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, change := append([]cqrs.Message(nil), r.got...), r.change
		r.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-change:
		case <-deadline.C:
			t.Fatalf("after %v: %s; received %d messages: %s", patience, what, len(got), ids(got))
		}
	}
}

// waitCount waits until at least n messages were received.
func (r *recorder) waitCount(t *testing.T, n int) []cqrs.Message {
	t.Helper()
	return r.waitFor(t, fmt.Sprintf("want %d messages", n), func(got []cqrs.Message) bool { return len(got) >= n })
}

func ids(msgs []cqrs.Message) string {
	s := make([]string, len(msgs))
	for i, m := range msgs {
		s[i] = fmt.Sprintf("%s#%d", m.ID, m.Delivery)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// checkSame fails the test unless got is want as delivered on topic for the
// first time.
func checkSame(t *testing.T, topic string, got, want cqrs.Message) {
	t.Helper()
	if got.ID != want.ID || got.Topic != topic || got.Type != want.Type || got.Key != want.Key || string(got.Data) != string(want.Data) {
		t.Errorf("received {ID:%q Topic:%q Type:%q Key:%q Data:%q}; want {ID:%q Topic:%q Type:%q Key:%q Data:%q}",
			got.ID, got.Topic, got.Type, got.Key, got.Data, want.ID, topic, want.Type, want.Key, want.Data)
	}
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			t.Errorf("received %s with Metadata[%q] = %q; want %q", got.ID, k, got.Metadata[k], v)
		}
	}
	if got.Delivery != 1 {
		t.Errorf("received %s with Delivery = %d; want 1", got.ID, got.Delivery)
	}
}

func testInOrder(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)
	msgs := messages(t, 10)
	mustPublish(t, b, topic, msgs[:5]...) // a batch,
	for _, m := range msgs[5:] {          // then one at a time
		mustPublish(t, b, topic, m)
	}
	got := r.waitCount(t, len(msgs))
	if len(got) != len(msgs) {
		t.Fatalf("received %d messages; want %d: %s", len(got), len(msgs), ids(got))
	}
	for i := range msgs {
		checkSame(t, topic, got[i], msgs[i])
	}
	time.Sleep(quiet)
	if got := r.messages(); len(got) != len(msgs) {
		t.Errorf("received %d messages after waiting; want %d: %s", len(got), len(msgs), ids(got))
	}
}

func testTwoGroups(t *testing.T, b cqrs.EventBus) {
	topic := name(t, "topic")
	r1, r2 := newRecorder(), newRecorder()
	mustSubscribe(t, b, topic, name(t, "group1"), r1.handle)
	mustSubscribe(t, b, topic, name(t, "group2"), r2.handle)
	msgs := messages(t, 5)
	mustPublish(t, b, topic, msgs...)
	for i, r := range []*recorder{r1, r2} {
		r.waitCount(t, len(msgs))
		time.Sleep(quiet / 2)
		got := r.messages()
		if len(got) != len(msgs) {
			t.Fatalf("group %d received %d messages; want %d: %s", i+1, len(got), len(msgs), ids(got))
		}
		for j := range msgs {
			checkSame(t, topic, got[j], msgs[j])
		}
	}
}

func testShareLoad(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	all := newRecorder()
	var mu sync.Mutex
	per := [2]int{}
	for i := range 2 {
		mustSubscribe(t, b, topic, group, func(ctx context.Context, m cqrs.Message) error {
			mu.Lock()
			per[i]++
			mu.Unlock()
			time.Sleep(time.Millisecond) // give the other member a chance
			return all.handle(ctx, m)
		})
	}
	msgs := messages(t, 20)
	mustPublish(t, b, topic, msgs...)
	all.waitCount(t, len(msgs))
	time.Sleep(quiet)
	got := all.messages()
	seen := map[string]int{}
	for _, m := range got {
		seen[m.ID]++
	}
	for _, m := range msgs {
		if seen[m.ID] != 1 {
			t.Errorf("message %s received %d times by the group; want 1", m.ID, seen[m.ID])
		}
	}
	if len(got) != len(msgs) {
		t.Errorf("the group received %d messages; want %d: %s", len(got), len(msgs), ids(got))
	}
	mu.Lock()
	t.Logf("subscriptions received %d and %d messages", per[0], per[1])
	mu.Unlock()
}

// deadLetters records the calls of a DeadLetter function.
type deadLetters struct {
	mu   sync.Mutex
	msgs []cqrs.Message
	errs []error
	done chan struct{} // closed on the first call
}

func (d *deadLetters) add(_ context.Context, m cqrs.Message, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgs = append(d.msgs, m)
	d.errs = append(d.errs, err)
	if len(d.msgs) == 1 {
		close(d.done)
	}
}

func testRedeliveryThenSuccess(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	dl := &deadLetters{done: make(chan struct{})}
	r := newRecorder()
	mustSubscribe(t, b, topic, group, func(ctx context.Context, m cqrs.Message) error {
		r.add(m)
		if m.Delivery < 3 {
			return fmt.Errorf("bustest: failing delivery %d", m.Delivery)
		}
		return nil
	}, cqrs.WithMaxDeliver(5), cqrs.WithDeadLetter(dl.add))
	msg := messages(t, 1)[0]
	mustPublish(t, b, topic, msg)
	r.waitCount(t, 3)
	time.Sleep(quiet)
	got := r.messages()
	if len(got) != 3 {
		t.Fatalf("received %d deliveries; want 3 (two failures, then success): %s", len(got), ids(got))
	}
	for i, m := range got {
		if m.ID != msg.ID || m.Delivery != i+1 {
			t.Errorf("delivery %d is %s#%d; want %s#%d", i+1, m.ID, m.Delivery, msg.ID, i+1)
		}
	}
	select {
	case <-dl.done:
		t.Errorf("DeadLetter called for a message that succeeded on its third delivery")
	default:
	}
}

func testDeadLetter(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	const maxDeliver = 3
	dl := &deadLetters{done: make(chan struct{})}
	r := newRecorder()
	errFail := errors.New("bustest: handler fails")
	mustSubscribe(t, b, topic, group, func(ctx context.Context, m cqrs.Message) error {
		r.add(m)
		return fmt.Errorf("delivery %d: %w", m.Delivery, errFail)
	}, cqrs.WithMaxDeliver(maxDeliver), cqrs.WithDeadLetter(dl.add))
	msgs := messages(t, 2) // the second message is still delivered
	mustPublish(t, b, topic, msgs[0])
	select {
	case <-dl.done:
	case <-time.After(patience):
		t.Fatalf("DeadLetter not called after %v; deliveries: %s", patience, ids(r.messages()))
	}
	time.Sleep(quiet)
	got := r.messages()
	if len(got) != maxDeliver {
		t.Fatalf("received %d deliveries; want %d: %s", len(got), maxDeliver, ids(got))
	}
	for i, m := range got {
		if m.ID != msgs[0].ID || m.Delivery != i+1 {
			t.Errorf("delivery %d is %s#%d; want %s#%d", i+1, m.ID, m.Delivery, msgs[0].ID, i+1)
		}
	}
	dl.mu.Lock()
	if len(dl.msgs) != 1 {
		t.Errorf("DeadLetter called %d times; want 1", len(dl.msgs))
	} else {
		if dl.msgs[0].ID != msgs[0].ID || dl.msgs[0].Delivery != maxDeliver {
			t.Errorf("DeadLetter got %s#%d; want %s#%d", dl.msgs[0].ID, dl.msgs[0].Delivery, msgs[0].ID, maxDeliver)
		}
		want := fmt.Sprintf("delivery %d: %v", maxDeliver, errFail)
		if err := dl.errs[0]; !errors.Is(err, errFail) || err.Error() != want {
			t.Errorf("DeadLetter got error %v; want %q, matching errors.Is", err, want)
		}
	}
	dl.mu.Unlock()

	// The dead-lettered message was acknowledged: the next one is delivered
	// and the first is not.
	mustPublish(t, b, topic, msgs[1])
	r.waitFor(t, "want the message published after the dead letter", func(got []cqrs.Message) bool {
		return len(got) > 0 && got[len(got)-1].ID == msgs[1].ID
	})
	for _, m := range r.messages()[maxDeliver:] {
		if m.ID == msgs[0].ID {
			t.Errorf("dead-lettered message %s delivered again (Delivery %d)", m.ID, m.Delivery)
		}
	}
}

func testCloseResume(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	const acked = 3
	msgs := messages(t, 8)
	r1 := newRecorder()
	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s1 := mustSubscribe(t, b, topic, group, func(ctx context.Context, m cqrs.Message) error {
		r1.add(m)
		if len(r1.messages()) <= acked {
			return nil
		}
		once.Do(func() { close(blocked) })
		<-release
		return errors.New("bustest: not acknowledged")
	})
	mustPublish(t, b, topic, msgs...)
	select {
	case <-blocked:
	case <-time.After(patience):
		close(release)
		t.Fatalf("after %v: received %s; want %d messages", patience, ids(r1.messages()), acked+1)
	}
	closed := make(chan error, 1)
	go func() { closed <- s1.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Subscription.Close() = %v before its running handler returned; want it to wait", err)
	case <-time.After(quiet / 2):
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Subscription.Close() = %v; want nil", err)
		}
	case <-time.After(patience):
		t.Fatalf("Subscription.Close() did not return within %v of its handler returning", patience)
	}
	n := len(r1.messages())
	time.Sleep(quiet)
	if got := r1.messages(); len(got) != n {
		t.Fatalf("closed subscription received %s after Close returned", ids(got[n:]))
	}

	// A new member of the group gets every message not acknowledged.
	ackedIDs := map[string]bool{}
	for _, m := range r1.messages()[:acked] {
		ackedIDs[m.ID] = true
	}
	r2 := newRecorder()
	mustSubscribe(t, b, topic, group, r2.handle)
	r2.waitFor(t, fmt.Sprintf("want the %d messages not acknowledged", len(msgs)-acked), func(got []cqrs.Message) bool {
		seen := map[string]bool{}
		for _, m := range got {
			seen[m.ID] = true
		}
		for _, m := range msgs {
			if !ackedIDs[m.ID] && !seen[m.ID] {
				return false
			}
		}
		return true
	})
}

func testTrace(t *testing.T, b cqrs.EventBus) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	topic, group := name(t, "topic"), name(t, "group")
	type delivery struct {
		m      cqrs.Message
		parent trace.SpanContext
	}
	got := make(chan delivery, 1)
	mustSubscribe(t, b, topic, group, func(ctx context.Context, m cqrs.Message) error {
		select {
		case got <- delivery{m, trace.SpanContextFromContext(ctx)}:
		default:
		}
		return nil
	})

	p := telemetrytest.New(t)
	pctx, span := p.TracerProvider.Tracer("bustest").Start(ctx(t), "publisher")
	msg := messages(t, 1)[0]
	if err := b.Publish(pctx, topic, msg); err != nil {
		t.Fatalf("Publish(%q) under a span = %v; want nil", topic, err)
	}
	span.End()
	sc := span.SpanContext()

	var d delivery
	select {
	case d = <-got:
	case <-time.After(patience):
		t.Fatalf("no message received within %v", patience)
	}
	tp := d.m.Metadata["traceparent"]
	// The bus may publish under a span of its own, a child of the
	// publisher's: the trace is the same, the span ID may differ.
	want := fmt.Sprintf("00-%s-", sc.TraceID())
	if !strings.HasPrefix(tp, want) || !strings.HasSuffix(tp, "-"+sc.TraceFlags().String()) {
		t.Errorf("Metadata[traceparent] = %q; want the trace of the publisher, %q…-%s (publisher's span %s)",
			tp, want, sc.TraceFlags(), sc.SpanID())
	}
	if d.parent.TraceID() != sc.TraceID() {
		t.Errorf("handler's context is in trace %s; want the publisher's trace %s", d.parent.TraceID(), sc.TraceID())
	}
}

func testPublishCanceled(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Publish(c, topic, messages(t, 1)...); err == nil {
		t.Errorf("Publish(canceled context) = nil; want an error")
	}
	// A message published after is received, and is the only one.
	msg := messages(t, 1)[0]
	mustPublish(t, b, topic, msg)
	r.waitCount(t, 1)
	time.Sleep(quiet)
	if got := r.messages(); len(got) != 1 || got[0].ID != msg.ID {
		t.Errorf("received %s; want only %s", ids(got), msg.ID)
	}
}

func testBadOptions(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	nop := func(context.Context, cqrs.Message) error { return nil }
	for i, opt := range []cqrs.SubscribeOption{
		cqrs.WithMaxDeliver(0),
		cqrs.WithConcurrency(0),
		cqrs.WithRedeliveryBackoff(nil),
		cqrs.WithDeadLetter(nil),
	} {
		s, err := b.Subscribe(ctx(t), topic, group, nop, opt)
		if err == nil {
			_ = s.Close()
			t.Errorf("Subscribe with bad option %d (MaxDeliver 0, Concurrency 0, nil Backoff, nil DeadLetter) = nil error; want an error", i)
		}
	}
}

// oddMetadata is metadata that no header format carries as it is: keys
// with spaces, ':', line breaks, reserved-looking names or nothing at all,
// and values with line breaks, padding, control and non-ASCII characters.
var oddMetadata = map[string]string{
	"":                 "empty key",
	"with space":       "v",
	"a:b":              "colon",
	"line\nbreak":      "key with a line break",
	"Nats-Msg-Id":      "not the message ID",
	"Cqrs-Type":        "not the type",
	"multi":            "line one\r\nline two\n",
	"padded":           "  leading and trailing  ",
	"tab":              "\tx\t",
	"empty":            "",
	"percent":          "100%25 %zz",
	"unicode-ключ":     "Zoë ✓",
	"bytes":            "\x00\x01\x7f\xff\xfe",
	"traceparent-like": "00-not-a-trace",
}

// Every key and value of a message's metadata, and its ID and type,
// reach the handler exactly as published, whatever characters they hold:
// a bus that encodes messages in a format with limits (headers) escapes
// what the format cannot hold.
func testAnyMetadata(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)
	m := messages(t, 1)[0]
	m.ID = " " + m.ID + " with spaces, a line\nbreak and 100% "
	m.Type = " padded\ttype\r\n"
	m.Metadata = oddMetadata
	mustPublish(t, b, topic, m)
	got := r.waitCount(t, 1)[0]
	checkSame(t, topic, got, m)
	for k := range got.Metadata {
		if _, ok := m.Metadata[k]; !ok && !traceKey(k) {
			t.Errorf("received Metadata[%q] = %q, which was not published", k, got.Metadata[k])
		}
	}
}

// Every message is delivered with the Key it was published with (any
// string; "" stays ""), and the messages with the same key in the order
// they were published, however a bus spreads keys (over partitions, say).
func testKeys(t *testing.T, b cqrs.EventBus) {
	topic, group := name(t, "topic"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, topic, group, r.handle)
	keys := []string{"order-1", " order 2, with spaces and 100% ", "ordre-ü\n", ""}
	msgs := messages(t, 12)
	for i := range msgs {
		msgs[i].Key = keys[i%len(keys)]
	}
	mustPublish(t, b, topic, msgs[:6]...) // a batch,
	for _, m := range msgs[6:] {          // then one at a time
		mustPublish(t, b, topic, m)
	}
	got := r.waitCount(t, len(msgs))
	if len(got) != len(msgs) {
		t.Fatalf("received %d messages; want %d: %s", len(got), len(msgs), ids(got))
	}
	want := make(map[string][]cqrs.Message)
	for _, m := range msgs {
		want[m.Key] = append(want[m.Key], m)
	}
	for _, g := range got {
		if len(want[g.Key]) == 0 {
			t.Errorf("received %s with Key %q, one more than published with it (or another key)", g.ID, g.Key)
			continue
		}
		checkSame(t, topic, g, want[g.Key][0])
		want[g.Key] = want[g.Key][1:]
	}
}

// traceKey reports whether k is a key the W3C propagators may add.
func traceKey(k string) bool { return k == "traceparent" || k == "tracestate" || k == "baggage" }

// A dead-letter function that parks a message on another topic, as it is
// and with its ID, has it delivered there: a bus that drops messages
// published again with an ID it has seen does so per topic.
func testPark(t *testing.T, b cqrs.EventBus) {
	topic, parked, group := name(t, "topic"), name(t, "parked"), name(t, "group")
	r := newRecorder()
	mustSubscribe(t, b, parked, group, r.handle)
	parkErrs := make(chan error, 1)
	mustSubscribe(t, b, topic, group, func(context.Context, cqrs.Message) error {
		return errors.New("bustest: cannot handle it")
	}, cqrs.WithMaxDeliver(1), cqrs.WithDeadLetter(func(ctx context.Context, m cqrs.Message, _ error) {
		parkErrs <- b.Publish(ctx, parked, m)
	}))
	m := messages(t, 1)[0]
	mustPublish(t, b, topic, m)
	select {
	case err := <-parkErrs:
		if err != nil {
			t.Fatalf("Publish(%q) from DeadLetter = %v; want nil", parked, err)
		}
	case <-time.After(patience):
		t.Fatalf("DeadLetter not called after %v", patience)
	}
	checkSame(t, parked, r.waitCount(t, 1)[0], m)
}

// Publishing to an empty topic fails with an error matching
// cqrs.ErrInvalidMessage, which tells a relay that trying again cannot
// succeed.
func testInvalidMessage(t *testing.T, b cqrs.EventBus) {
	err := b.Publish(ctx(t), "", messages(t, 1)...)
	if !errors.Is(err, cqrs.ErrInvalidMessage) {
		t.Errorf("Publish(\"\") = %v; want an error matching cqrs.ErrInvalidMessage", err)
	}
}
