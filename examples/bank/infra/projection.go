package infra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/examples/bank/model"
)

// Projection is a read model: the owner and balance of every account,
// kept from the store's global order of events rather than by loading
// aggregates. It is safe for concurrent use.
type Projection struct {
	reg    *eventsource.Registry
	tracer trace.Tracer // nil for no spans

	mu      sync.Mutex
	seen    map[[16]byte]bool // event IDs handled: delivery is at least once
	state   Balances
	changed chan struct{} // closed and replaced whenever state changes

	stop func()
	done chan struct{} // closed when the subscription has ended
	err  error         // why it ended, once done is closed
}

// Balances is what the projection shows.
type Balances struct {
	Events   int // distinct events handled
	Upcast   int // of which stored in an older shape
	Owners   map[string]string
	Balances map[string]model.Money
}

// NewProjection returns an empty projection decoding events with reg,
// which handles each event in a span of tracer (none when tracer is nil).
func NewProjection(reg *eventsource.Registry, tracer trace.Tracer) *Projection {
	return &Projection{
		reg: reg, tracer: tracer,
		seen:    map[[16]byte]bool{},
		state:   Balances{Owners: map[string]string{}, Balances: map[string]model.Money{}},
		changed: make(chan struct{}),
	}
}

// Start subscribes to store's global order from its first event, and
// applies each event on a goroutine of its own until Shutdown is called.
func (p *Projection) Start(ctx context.Context, store eventsource.Store) {
	ctx, p.stop = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		for e, err := range store.Subscribe(ctx, 0) {
			if err == nil {
				err = p.Apply(ctx, e)
			}
			if err != nil {
				if ctx.Err() == nil {
					p.err = err
				}
				return
			}
		}
	}()
}

// Shutdown ends the subscription and returns why it ended early, if it
// did.
func (p *Projection) Shutdown() error {
	p.stop()
	<-p.done
	return p.err
}

// Apply handles one event, in a bank.project span linked to the span of
// the command that appended it (when the projection has a tracer). An
// event it has handled already is skipped.
func (p *Projection) Apply(ctx context.Context, e eventsource.Event) (err error) {
	if p.tracer != nil {
		_, span := p.tracer.Start(ctx, "bank.project",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.LinkFromContext(eventsource.TraceContext(ctx, e))),
			trace.WithAttributes(
				attribute.String("bank.account", e.StreamID),
				attribute.Int64("bank.event.version", e.Version),
				attribute.String("bank.event.type", e.Type)))
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	ev, err := p.reg.Decode(e)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[e.ID] {
		return nil
	}
	p.seen[e.ID] = true
	s := &p.state
	switch ev := ev.(type) {
	case model.AccountOpened:
		s.Owners[e.StreamID] = ev.Owner
		s.Balances[e.StreamID] = model.Money{Currency: ev.Currency} // the first event of the stream
	case model.Deposited:
		b := s.Balances[e.StreamID]
		b.Cents += ev.Amount.Cents
		s.Balances[e.StreamID] = b
	case model.Withdrawn:
		b := s.Balances[e.StreamID]
		b.Cents -= ev.Amount.Cents
		s.Balances[e.StreamID] = b
	default:
		return fmt.Errorf("event %s of %q: unexpected %T", e.Type, e.StreamID, ev)
	}
	s.Events++
	if e.Type == TypeDepositedV0 {
		s.Upcast++
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// WaitFor waits until the projection has handled n distinct events.
func (p *Projection) WaitFor(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, changed := p.state.Events, p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			return errors.Join(fmt.Errorf("projection: the subscription ended after %d of %d events", got, n), p.err)
		case <-ctx.Done():
			return fmt.Errorf("projection: handled %d of %d events: %w", got, n, ctx.Err())
		}
	}
}

// View returns a copy of the projection's state.
func (p *Projection) View() Balances {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.Owners, s.Balances = maps.Clone(s.Owners), maps.Clone(s.Balances)
	return s
}

// IDs returns the accounts, sorted.
func (s Balances) IDs() []string { return slices.Sorted(maps.Keys(s.Balances)) }

// Equal reports whether s and o show the same.
func (s Balances) Equal(o Balances) bool {
	return s.Events == o.Events && s.Upcast == o.Upcast &&
		maps.Equal(s.Owners, o.Owners) && maps.Equal(s.Balances, o.Balances)
}
