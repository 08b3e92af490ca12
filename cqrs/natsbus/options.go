package natsbus

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Bus built with no options.
const (
	// DefaultStream is the name of the JetStream stream that holds the
	// bus's messages.
	DefaultStream = "CQRS"
	// DefaultSubjectPrefix is prepended to a topic to make its subject.
	DefaultSubjectPrefix = "cqrs."
	// DefaultAckWait is how long the server waits for a delivered message
	// to be acknowledged before it delivers it again.
	DefaultAckWait = 30 * time.Second
	// DefaultDuplicateWindow is how long the stream remembers message IDs
	// to drop duplicates.
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultPrefetch is how many messages a subscription fetches ahead of
	// its handlers, unless its concurrency is higher (see [WithPrefetch]):
	// the default batch of a nats.go pull consumer.
	DefaultPrefetch = 500
)

// Option configures a [Bus].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	stream          string
	prefix          string
	ackWait         time.Duration
	duplicateWindow time.Duration
	prefetch        int
	tracerProvider  trace.TracerProvider
	meterProvider   metric.MeterProvider
	optIn           bool
}

func defaultConfig() config {
	return config{
		stream:          DefaultStream,
		prefix:          DefaultSubjectPrefix,
		ackWait:         DefaultAckWait,
		duplicateWindow: DefaultDuplicateWindow,
	}
}

// WithStream sets the name of the JetStream stream that holds the bus's
// messages, which [Bus.Setup] creates. It must be non-empty and must not
// contain '.', '*', '>', '/', '\\' or white space. The default is
// [DefaultStream] ("CQRS").
func WithStream(name string) Option {
	return optionFunc(func(c *config) { c.stream = name })
}

// WithSubjectPrefix sets the prefix of the subjects the bus uses: topic t
// is published to subject prefix+t, and the stream captures prefix+">".
// The prefix must be one or more subject tokens followed by a '.', such
// as "orders.events.", without wildcards or white space. Buses that share
// a stream must use the same prefix. The default is [DefaultSubjectPrefix]
// ("cqrs.").
func WithSubjectPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.prefix = prefix })
}

// WithAckWait sets how long the server waits for a delivered message to
// be acknowledged before delivering it again, to this or another member of
// the group. While a handler runs the subscription tells the server it is
// still working every half AckWait, so a slow handler is not interrupted;
// the wait matters when a process dies or loses its connection mid-message.
// It is set on the group's consumer when a subscription starts. d must be
// at least one second. The default is [DefaultAckWait] (30 seconds).
func WithAckWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.ackWait = d })
}

// WithDuplicateWindow sets how long the stream remembers published message
// IDs: a message published again with the ID of one published within the
// window is dropped by the server. It is set on the stream by [Bus.Setup].
// d must be positive. The default is [DefaultDuplicateWindow] (2 minutes).
func WithDuplicateWindow(d time.Duration) Option {
	return optionFunc(func(c *config) { c.duplicateWindow = d })
}

// WithPrefetch sets how many messages a subscription fetches from the
// server ahead of its handlers; a subscription with Concurrency above n/2
// fetches twice its concurrency instead. n must not be negative; 0 means
// the default, [DefaultPrefetch] (500, as a bare nats.go consumer), at
// which a subscription on a local server processes about 90% as many
// messages a second as a bare nats.go consumer.
//
// A fetched message's AckWait runs while it waits its turn: if n times a
// handler's duration, divided by the concurrency, nears the AckWait,
// waiting messages are delivered again (to this or another member, their
// delivery count rising towards MaxDeliver). With handlers slower than
// about AckWait/(4n) (15 ms with the defaults) and a backlog, lower n,
// raise the concurrency or raise [WithAckWait]. A smaller n costs
// throughput: with n = 2 each message or two costs a round trip to the
// server, about 10 times slower. Messages fetched but not handled when a
// subscription closes are handed back to the group about a second later,
// whatever n is.
func WithPrefetch(n int) Option {
	return optionFunc(func(c *config) { c.prefetch = n })
}

// WithTracerProvider sets where the bus's spans go. The default, also used
// when tp is nil, is the global provider at the time of [New].
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets where the bus's metrics go. The default, also
// used when mp is nil, is the global provider at the time of [New].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithOptInAttributes records the semantic conventions' Opt-In attributes
// as well: messaging.message.body.size on the publish and process spans;
// off by default.
func WithOptInAttributes() Option {
	return optionFunc(func(c *config) { c.optIn = true })
}

// prefetchFor returns how many messages a subscription with concurrency n
// fetches ahead: the prefetch, and at least 2n.
func (c *config) prefetchFor(n int) int {
	p := c.prefetch
	if p == 0 {
		p = DefaultPrefetch
	}
	return max(p, 2*n)
}

// validate returns an error for each bad setting.
func (c *config) validate() []error {
	var errs []error
	if err := checkStreamName(c.stream); err != nil {
		errs = append(errs, fmt.Errorf("WithStream(%q): %w", c.stream, err))
	}
	if err := checkPrefix(c.prefix); err != nil {
		errs = append(errs, fmt.Errorf("WithSubjectPrefix(%q): %w", c.prefix, err))
	}
	if c.prefetch < 0 {
		errs = append(errs, fmt.Errorf("WithPrefetch(%d): must not be negative", c.prefetch))
	}
	if c.ackWait < time.Second {
		errs = append(errs, fmt.Errorf("WithAckWait(%v): must be at least 1s", c.ackWait))
	}
	if c.duplicateWindow <= 0 {
		errs = append(errs, fmt.Errorf("WithDuplicateWindow(%v): must be positive", c.duplicateWindow))
	}
	return errs
}

func checkStreamName(name string) error {
	if name == "" {
		return fmt.Errorf("empty stream name")
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || r <= ' ' || r == 0x7f
	}); i >= 0 {
		return fmt.Errorf("stream name contains %q", name[i])
	}
	return nil
}

func checkPrefix(prefix string) error {
	if !strings.HasSuffix(prefix, ".") {
		return fmt.Errorf("prefix must end with '.'")
	}
	return checkSubject(strings.TrimSuffix(prefix, "."))
}

// checkTopic reports whether topic can be appended to the prefix to make a
// subject without wildcards.
func checkTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("natsbus: empty topic")
	}
	if err := checkSubject(topic); err != nil {
		return fmt.Errorf("natsbus: topic %q: %w", topic, err)
	}
	return nil
}

// checkSubject reports whether s is a literal subject: non-empty tokens
// separated by '.', without wildcards or white space.
func checkSubject(s string) error {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("empty subject token")
		}
		if i := strings.IndexFunc(tok, func(r rune) bool { return r == '*' || r == '>' || r <= ' ' || r == 0x7f }); i >= 0 {
			return fmt.Errorf("subject contains %q", tok[i])
		}
	}
	return nil
}
