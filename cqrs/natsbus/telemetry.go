package natsbus

import (
	"context"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/internal/msgtel"
	"github.com/otelpatterns/patterns/internal/telemetry"
)

// ScopeName is the instrumentation scope name of the package's tracer and
// meter: its import path.
const ScopeName = "github.com/otelpatterns/patterns/cqrs/natsbus"

// System is the value of messaging.system: the semantic conventions of
// v1.40 define no value for NATS, so the bus uses the system's name.
const System = "nats"

var messagingSystem = semconv.MessagingSystemKey.String(System)

// The messaging.operation.name values: publish and process, and the
// settlements of a delivery, named as JetStream names its acknowledgements.
const (
	opPublish = "publish"
	opProcess = "process"
	opAck     = "ack"  // handled
	opNak     = "nak"  // failed: delivered again after the backoff
	opTerm    = "term" // failed for the last time: dead-lettered
)

// settlement is how a delivery is settled.
type settlement int

const (
	settleAck settlement = iota
	settleNak
	settleTerm
	settlements
)

var settleNames = [settlements]string{opAck, opNak, opTerm}

// MetricUnidentified is the name of the counter of deliveries of messages
// that carried no message ID (see [Bus.Subscribe]).
const MetricUnidentified = "natsbus.unidentified_messages"

// MaxTopicTelemetry is how many topics a bus keeps the telemetry options
// (span name and attribute sets) of. Publishing to a topic beyond them
// builds its options on each publish, at the cost of a few allocations.
const MaxTopicTelemetry = 256

// serverRecheck is how often a bus looks at which server its connection is
// connected to, for server.address and server.port.
const serverRecheck = time.Second

// instruments are a bus's tracer and metric instruments, with the
// telemetry options of its topics, built once per topic and server.
type instruments struct {
	tracer trace.Tracer
	spans  telemetry.SpanGate // skips process spans that could not record
	optIn  bool
	msgtel.Instruments
	unidentified metric.Int64Counter // natsbus.unidentified_messages

	nc      *nats.Conn // nil for a JetStream context without one
	server  atomic.Pointer[server]
	checked atomic.Int64 // when the connection was last looked at, in Unix ns

	// topics holds at most MaxTopicTelemetry *topicTelemetry by topic, so
	// that a bus publishing to ever new topics does not grow without bound.
	topics  sync.Map
	nTopics atomic.Int64
}

func newInstruments(c config, nc *nats.Conn) *instruments {
	m := telemetry.Meter(c.meterProvider, ScopeName)
	t := &instruments{tracer: telemetry.Tracer(c.tracerProvider, ScopeName), optIn: c.optIn, nc: nc, Instruments: msgtel.New(m)}
	t.spans = telemetry.NewSpanGate(c.tracerProvider, t.tracer)
	t.server.Store(&server{})
	var err error
	t.unidentified, err = m.Int64Counter(MetricUnidentified, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries of messages that carried no message ID, handled with one derived from their stream sequence."))
	if err != nil {
		otel.Handle(err)
	}
	return t
}

// server is the NATS server a connection is connected to, as attributes.
type server struct {
	id    string               // its server ID; "" when unknown
	attrs []attribute.KeyValue // server.address and server.port, if known
}

// newServer returns the server of ID id at URL raw.
func newServer(id, raw string) *server {
	s := &server{id: id}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return s
	}
	s.attrs = append(s.attrs, semconv.ServerAddress(u.Hostname()))
	if port, err := strconv.Atoi(u.Port()); err == nil {
		s.attrs = append(s.attrs, semconv.ServerPort(port))
	}
	return s
}

// endpoint returns the server the bus's connection is connected to, as of
// now: it looks at the connection at most once per serverRecheck, so that
// the hot paths take no lock of the connection's, and keeps the last
// server known while the connection is down.
func (t *instruments) endpoint(now time.Time) *server {
	s := t.server.Load()
	n := now.UnixNano()
	if t.nc == nil || n-t.checked.Load() < int64(serverRecheck) {
		return s
	}
	t.checked.Store(n)
	id := t.nc.ConnectedServerId()
	if id == "" || id == s.id {
		return s
	}
	s = newServer(id, t.nc.ConnectedUrl())
	t.server.Store(s)
	return s
}

// with returns base followed by kv, in a slice of its own.
func with(base []attribute.KeyValue, kv ...attribute.KeyValue) []attribute.KeyValue {
	return append(base[:len(base):len(base)], kv...)
}

// topicTelemetry holds the options of the publish spans and metrics of one
// topic on one server.
type topicTelemetry struct {
	server   *server
	spanName string
	spanOpts []trace.SpanStartOption
	sentOpts []metric.AddOption
	durOpts  []metric.RecordOption
	sentBase []attribute.KeyValue // sentOpts' attributes, for a failure
	durBase  []attribute.KeyValue // durOpts' attributes, for a failure
}

func newTopicTelemetry(subject string, srv *server) *topicTelemetry {
	dest := semconv.MessagingDestinationName(subject)
	op := semconv.MessagingOperationName(opPublish)
	sent := with([]attribute.KeyValue{messagingSystem, op, dest}, srv.attrs...)
	dur := with(sent, semconv.MessagingOperationTypeSend)
	return &topicTelemetry{
		server:   srv,
		spanName: opPublish + " " + subject,
		spanOpts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(dur...)},
		sentOpts: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(sent...))},
		durOpts:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(dur...))},
		sentBase: sent,
		durBase:  dur,
	}
}

// forTopic returns the publish telemetry of topic, whose subject is
// subject, on server srv.
func (t *instruments) forTopic(topic, subject string, srv *server) *topicTelemetry {
	if v, ok := t.topics.Load(topic); ok {
		if tt := v.(*topicTelemetry); tt.server == srv {
			return tt
		}
		tt := newTopicTelemetry(subject, srv) // the connection moved
		t.topics.Store(topic, tt)
		return tt
	}
	tt := newTopicTelemetry(subject, srv)
	if t.nTopics.Add(1) > MaxTopicTelemetry {
		t.nTopics.Add(-1)
		return tt
	}
	if _, loaded := t.topics.LoadOrStore(topic, tt); loaded {
		t.nTopics.Add(-1)
	}
	return tt
}

// subTelemetry holds the options of one subscription's spans and metrics on
// one server.
type subTelemetry struct {
	server       *server
	spanName     string
	spanOpts     []trace.SpanStartOption
	consumedOpts []metric.AddOption
	processOpts  []metric.RecordOption
	processBase  []attribute.KeyValue // processOpts' attributes, for a failure
	groupOpts    []metric.AddOption   // of cqrs.redeliveries and cqrs.dead_letters
	settleOpts   [settlements][]metric.RecordOption
	settleBase   [settlements][]attribute.KeyValue
}

func newSubTelemetry(subject, group, consumer string, srv *server) *subTelemetry {
	dest := semconv.MessagingDestinationName(subject)
	grp := semconv.MessagingConsumerGroupName(group)
	sub := semconv.MessagingDestinationSubscriptionName(consumer)
	process := with([]attribute.KeyValue{messagingSystem, semconv.MessagingOperationName(opProcess), dest, grp, sub}, srv.attrs...)
	set := attribute.NewSet(process...)
	st := &subTelemetry{
		server:   srv,
		spanName: opProcess + " " + subject,
		spanOpts: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(with(process, semconv.MessagingOperationTypeProcess)...),
		},
		consumedOpts: []metric.AddOption{metric.WithAttributeSet(set)},
		processOpts:  []metric.RecordOption{metric.WithAttributeSet(set)},
		processBase:  process,
		groupOpts:    []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(messagingSystem, dest, grp))},
	}
	for i, name := range settleNames {
		base := with([]attribute.KeyValue{messagingSystem, semconv.MessagingOperationName(name),
			semconv.MessagingOperationTypeSettle, dest, grp, sub}, srv.attrs...)
		st.settleBase[i] = base
		st.settleOpts[i] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(base...))}
	}
	return st
}

// recordFailure records d in h with the attributes base and the
// error.type of err, building the set only when h records.
func recordFailure(ctx context.Context, h metric.Float64Histogram, d float64, base []attribute.KeyValue, err error) {
	if h.Enabled(ctx) {
		h.Record(ctx, d, metric.WithAttributeSet(attribute.NewSet(with(base, telemetry.ErrorType(err))...)))
	}
}

// addFailure adds n to c with the attributes base and the error.type of
// err, building the set only when c records.
func addFailure(ctx context.Context, c metric.Int64Counter, n int64, base []attribute.KeyValue, err error) {
	if c.Enabled(ctx) {
		c.Add(ctx, n, metric.WithAttributeSet(attribute.NewSet(with(base, telemetry.ErrorType(err))...)))
	}
}

// seconds returns the seconds since start.
func seconds(start time.Time) float64 { return time.Since(start).Seconds() }
