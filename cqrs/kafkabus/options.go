package kafkabus

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/cqrs"
)

// Defaults of a Bus built with no options.
const (
	// DefaultTopicPrefix is prepended to a bus topic to make its Kafka
	// topic.
	DefaultTopicPrefix = "cqrs."
	// DefaultPartitions is how many partitions [Bus.Setup] gives a topic
	// it creates.
	DefaultPartitions = 6
	// DefaultCommitInterval is how often a subscription commits the
	// offsets of the messages its handlers finished.
	DefaultCommitInterval = time.Second
	// DefaultMaxBuffered is how many records a subscription holds,
	// fetched ahead of its handlers, before it stops taking more from its
	// client.
	DefaultMaxBuffered = 500
)

// Option configures a [Bus].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	prefix         string
	partitions     int32
	replication    int16
	topicConfigs   map[string]*string
	commitInterval time.Duration
	maxBuffered    int
	key            func(cqrs.Message) string
	autoSetup      bool
	clientOpts     []kgo.Opt
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	optIn          bool
}

func defaultConfig() config {
	return config{
		prefix:         DefaultTopicPrefix,
		partitions:     DefaultPartitions,
		replication:    -1,
		commitInterval: DefaultCommitInterval,
		maxBuffered:    DefaultMaxBuffered,
		key:            DefaultKey,
	}
}

// DefaultKey is the default record key ([WithKey]): the message's Key,
// which the [cqrs.Relay] sets to the event's stream (aggregate) ID, so that
// one aggregate's events stay in order on one partition. A message without
// a Key is keyed by its topic (see [WithKey]).
func DefaultKey(m cqrs.Message) string { return m.Key }

// WithKey sets the function that returns the key of the record that
// carries a message. Kafka puts records with the same key on the same
// partition, in order, and a subscription handles each partition in
// order: key by the event's stream (aggregate) ID so that each aggregate's
// events are handled in the order they were appended while different
// aggregates are handled in parallel. A message for which f returns "" is
// keyed by its topic's name: all such messages of a topic share one
// partition and keep their publication order, as on the other buses of
// the module, at the cost of parallelism. f must not be nil. The default
// is [DefaultKey] (the message's Key). Whatever f returns, handlers get
// the message's Key as it was published.
func WithKey(f func(m cqrs.Message) string) Option {
	return optionFunc(func(c *config) { c.key = f })
}

// WithTopicPrefix sets the prefix of the Kafka topics of the bus: bus topic
// t is Kafka topic prefix+t. The prefix may be empty; it holds only ASCII
// letters, digits, '.', '_' and '-', as Kafka topic names do. The default
// is [DefaultTopicPrefix] ("cqrs.").
func WithTopicPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.prefix = prefix })
}

// WithPartitions sets how many partitions [Bus.Setup] gives the topics it
// creates; the partitions of existing topics are left alone. n must be at
// least 1. The default is [DefaultPartitions] (6).
func WithPartitions(n int) Option {
	return optionFunc(func(c *config) { c.partitions = int32(min(max(n, -1), 1<<30)) })
}

// WithReplicationFactor sets the replication factor of the topics
// [Bus.Setup] creates. n must be at least 1, or -1 for the brokers'
// default.replication.factor, which is the default.
func WithReplicationFactor(n int) Option {
	return optionFunc(func(c *config) { c.replication = int16(min(max(n, -2), 1<<14)) })
}

// WithTopicConfig sets a configuration entry (such as "retention.ms" or
// "min.insync.replicas") of the topics [Bus.Setup] creates. The name must
// not be empty. By default topics get the brokers' defaults.
func WithTopicConfig(name, value string) Option {
	return optionFunc(func(c *config) {
		if c.topicConfigs == nil {
			c.topicConfigs = map[string]*string{}
		}
		c.topicConfigs[name] = &value
	})
}

// WithCommitInterval sets how often a subscription commits the offsets of
// the records whose handling finished. It also commits when it loses
// partitions in a rebalance and when it closes, so the interval bounds
// what a crash (not a rebalance) replays. d must be positive. The default
// is [DefaultCommitInterval] (1s).
func WithCommitInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.commitInterval = d })
}

// WithMaxBuffered sets how many records a subscription holds, taken from
// its client ahead of its handlers, across its partitions, before it stops
// taking more until its handlers bring them below n (the client's own
// fetch buffers, sized by its fetch options, come on top). The records of
// a partition whose record waits out a redelivery backoff do not count: the
// partition is paused meanwhile, and the others go on. n must be at least
// 1. The default is [DefaultMaxBuffered] (500).
func WithMaxBuffered(n int) Option {
	return optionFunc(func(c *config) { c.maxBuffered = n })
}

// WithAutoSetup has [Bus.Publish] and [Bus.Subscribe] call [Bus.Setup] for
// a topic the first time the bus uses it. It suits tests and development;
// in production, create topics explicitly (Setup at start-up, or the
// operators' tools), so that a typo does not create a topic. Off by
// default: publishing to a topic that does not exist fails with an error
// wrapping [kerr.UnknownTopicOrPartition].
func WithAutoSetup() Option {
	return optionFunc(func(c *config) { c.autoSetup = true })
}

// WithClientOptions adds franz-go client options to every client the bus
// makes (its producer and each subscription's consumer): TLS, SASL, a
// client ID, timeouts, linger, a logger. The bus sets the seed brokers,
// acks=all with the idempotent producer, the consumer group and its
// callbacks, the cooperative-sticky balancer, and marked autocommits
// after these, so options that change them are overridden. Nil options
// are ignored.
func WithClientOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) {
		for _, o := range opts {
			if o != nil {
				c.clientOpts = append(c.clientOpts, o)
			}
		}
	})
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

// validate returns an error for each bad setting.
func (c *config) validate() []error {
	var errs []error
	if err := checkName(c.prefix, true); err != nil {
		errs = append(errs, fmt.Errorf("WithTopicPrefix(%q): %w", c.prefix, err))
	}
	if c.partitions < 1 {
		errs = append(errs, fmt.Errorf("WithPartitions(%d): must be at least 1", c.partitions))
	}
	if c.replication < 1 && c.replication != -1 {
		errs = append(errs, fmt.Errorf("WithReplicationFactor(%d): must be at least 1, or -1", c.replication))
	}
	for name := range c.topicConfigs {
		if name == "" {
			errs = append(errs, fmt.Errorf("WithTopicConfig(\"\"): empty name"))
		}
	}
	if c.commitInterval <= 0 {
		errs = append(errs, fmt.Errorf("WithCommitInterval(%v): must be positive", c.commitInterval))
	}
	if c.maxBuffered < 1 {
		errs = append(errs, fmt.Errorf("WithMaxBuffered(%d): must be at least 1", c.maxBuffered))
	}
	if c.key == nil {
		errs = append(errs, fmt.Errorf("WithKey(nil): must not be nil"))
	}
	return errs
}

// maxTopicLen is the longest topic name Kafka takes.
const maxTopicLen = 249

// checkName reports whether s can be (part of, when partial) a Kafka topic
// name: ASCII letters, digits, '.', '_' and '-'.
func checkName(s string, partial bool) error {
	if s == "" && !partial {
		return fmt.Errorf("empty name")
	}
	if len(s) > maxTopicLen {
		return fmt.Errorf("longer than %d bytes", maxTopicLen)
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("contains %q: Kafka topic names hold ASCII letters, digits, '.', '_' and '-' only", s[i:i+1])
	}
	if !partial && (s == "." || s == "..") {
		return fmt.Errorf("%q is not a topic name", s)
	}
	return nil
}
