package saga

import (
	"context"
	"encoding/json"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/retry"
)

// Codec encodes saga data for the log. Implementations are safe for
// concurrent use, and decode equal bytes to equal values: the orchestrator
// reuses the value it decoded while the bytes stay the same (for data of
// a plain type; see the package doc).
type Codec interface {
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a saga's data type.
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec]: encoding/json.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// policy is one of the orchestrator's default retry policies: attempts
// attempts, backing off exponentially (doubling) from initial to max,
// each wait drawn at random up to the backoff's (full jitter).
type policy struct {
	attempts     int
	initial, max time.Duration
}

// The orchestrator's default retry policies, which the docs of
// [Step.Retry] and [WithCompensationRetry] describe (a test checks their
// numbers against these).
var (
	defaultStepPolicy         = policy{attempts: 3, initial: 100 * time.Millisecond, max: 10 * time.Second}
	defaultRetriablePolicy    = policy{attempts: 20, initial: 100 * time.Millisecond, max: 30 * time.Second}
	defaultCompensationPolicy = policy{attempts: 10, initial: 100 * time.Millisecond, max: 30 * time.Second}
)

// options returns the retry options of p.
func (p policy) options() []retry.Option {
	return []retry.Option{retry.WithMaxAttempts(p.attempts),
		retry.WithBackoff(retry.Exponential(p.initial, 2, p.max)), retry.WithJitter(retry.FullJitter)}
}

// DefaultLease is how long an orchestrator holds a saga's lease without
// renewing it, unless [WithLease] says otherwise.
const DefaultLease = 30 * time.Second

// Option configures an [Orchestrator].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	owner          string
	lease          time.Duration
	codec          Codec
	defs           []Definer
	compensation   *retry.Retrier
	needsAttention func(ctx context.Context, id, name string, err error)
	recoverEvery   time.Duration
	recoverSet     bool
	// Set by options whose argument may not be nil or empty, to tell
	// "not given" from "given as nil".
	ownerSet, compensationSet, needsAttentionSet bool
	tp                                           trace.TracerProvider
	mp                                           metric.MeterProvider
}

// WithDefinitions registers definitions, so that [Orchestrator.Recover]
// can resume their sagas. [Orchestrator.Start] registers the definition it
// is given, but a process that restarts must register its definitions
// before it recovers. A nil definition, or two definitions with one name
// and version, make [NewOrchestrator] fail.
func WithDefinitions(defs ...Definer) Option {
	return optionFunc(func(c *config) { c.defs = append(c.defs, defs...) })
}

// WithOwner sets the identity under which the orchestrator leases sagas.
// It must be unique among the orchestrators sharing a log, and should
// differ from run to run of a process. The default is the host name, the
// process id and a random suffix. An owner that is empty, or that is not
// text any [Log] can store (it has a NUL byte or is not UTF-8; see
// [ValidText]), makes [NewOrchestrator] fail.
func WithOwner(owner string) Option {
	return optionFunc(func(c *config) { c.owner, c.ownerSet = owner, true })
}

// WithLease sets how long a saga stays leased to the orchestrator running
// it without renewal. The orchestrator renews its leases every third of
// it; another orchestrator may take over a saga whose lease expired (its
// owner crashed or hung). Shorter leases resume a crashed orchestrator's
// sagas sooner, at the cost of more renewals. The default is
// [DefaultLease]; a lease under a second makes [NewOrchestrator] fail.
func WithLease(d time.Duration) Option {
	return optionFunc(func(c *config) { c.lease = d })
}

// WithCodec sets how saga data is encoded in the log. The default is
// [JSON]; a nil c makes [NewOrchestrator] fail.
func WithCodec(c Codec) Option {
	return optionFunc(func(cfg *config) { cfg.codec = c })
}

// WithCompensationRetry sets the retry policy of compensations: when it
// gives up on a compensation, the saga stops in status NeedsAttention. A
// compensation that returns a [retry.Permanent] error says it can never
// succeed, and needs attention at once. The default makes 10 attempts,
// backing off exponentially from 100ms to 30s with full jitter (each wait
// drawn at random up to the backoff's, so that the waits add up to half
// the backoff's on average): it gives up on a compensation that keeps
// failing after 25.6s on average, 51.1s at most, plus the attempts' own
// time. It reports its spans
// and metrics (retry.name saga.compensation) to the orchestrator's
// providers; r keeps the providers it was built with. A nil r makes
// [NewOrchestrator] fail.
func WithCompensationRetry(r *retry.Retrier) Option {
	return optionFunc(func(c *config) { c.compensation, c.compensationSet = r, true })
}

// WithNeedsAttention sets a function called when a saga stops in status
// NeedsAttention, with its id, its definition's name and the error that
// stopped it, so that someone is told (and resolves it: see
// [Orchestrator.Retry] and [Orchestrator.Resolve]). It runs on the saga's
// goroutine, after the status is in the log; [Orchestrator.Close] waits
// for it. Its context carries the saga's values (its span) and ends only
// when Close gives up waiting, so a notification may take its time. By
// default nothing is called; a nil f makes [NewOrchestrator] fail.
func WithNeedsAttention(f func(ctx context.Context, id, name string, err error)) Option {
	return optionFunc(func(c *config) { c.needsAttention, c.needsAttentionSet = f, true })
}

// WithRecoverInterval makes the orchestrator look for unfinished sagas
// whose lease expired or was released every d, as [Orchestrator.Recover]
// does, until it is closed: sagas whose orchestrator crashed or closed,
// and sagas whose run stopped because the log was out of reach until the
// lease expired (see Durability in the package documentation). The
// default is a third of the lease (10s with [DefaultLease]), at least a
// second; 0 looks only when Recover is called, and a negative d makes
// [NewOrchestrator] fail. These looks are measured,
// not traced (see Telemetry in the package documentation): the runs they
// resume have spans of their own, roots linked to the runs that started
// their sagas.
func WithRecoverInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.recoverEvery, c.recoverSet = d, true })
}

// ProviderOption is an option of both an [Orchestrator] and a
// [Choreography].
type ProviderOption interface {
	Option
	ChoreographyOption
}

type providerOption struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

func (p providerOption) apply(c *config) {
	if p.tp != nil {
		c.tp = p.tp
	}
	if p.mp != nil {
		c.mp = p.mp
	}
}

func (p providerOption) applyChoreography(c *choreographyConfig) {
	if p.tp != nil {
		c.tp = p.tp
	}
	if p.mp != nil {
		c.mp = p.mp
	}
}

// WithTracerProvider sets where the spans of an orchestrator or a
// choreography go, those of the orchestrator's default retry policies
// included. The default, also used when tp is nil, is the global
// provider at the time of [NewOrchestrator] or [NewChoreography].
func WithTracerProvider(tp trace.TracerProvider) ProviderOption {
	return providerOption{tp: tp}
}

// WithMeterProvider sets where the metrics of an orchestrator or a
// choreography go, those of the orchestrator's default retry policies
// included. The default, also used when mp is nil, is the global
// provider at the time of [NewOrchestrator] or [NewChoreography].
func WithMeterProvider(mp metric.MeterProvider) ProviderOption {
	return providerOption{mp: mp}
}

// StartOption configures one [Orchestrator.Start].
type StartOption interface{ applyStart(*startConfig) }

type startConfig struct {
	id    string
	idSet bool
}

type startOptionFunc func(*startConfig)

func (f startOptionFunc) applyStart(c *startConfig) { f(c) }

// WithID sets the new saga's id instead of a random one: an order number,
// say, so that starting the saga for one order twice fails with
// [ErrExists] instead of running it twice. It must be 1 to [MaxNameLen]
// bytes of UTF-8 without '/' or NUL: [Orchestrator.Start] fails for
// another, an empty id included.
func WithID(id string) StartOption {
	return startOptionFunc(func(c *startConfig) { c.id, c.idSet = id, true })
}
