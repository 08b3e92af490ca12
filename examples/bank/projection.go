package main

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
)

// projection is a read model: the owner and balance of every account, kept
// from the store's global order of events rather than by loading
// aggregates. It is safe for concurrent use.
type projection struct {
	reg    *eventsource.Registry
	tracer trace.Tracer // nil for no spans

	mu      sync.Mutex
	seen    map[[16]byte]bool // event IDs handled: delivery is at least once
	state   balances
	changed chan struct{} // closed and replaced whenever state changes

	stop func()
	done chan struct{} // closed when the subscription has ended
	err  error         // why it ended, once done is closed
}

// balances is what the projection shows.
type balances struct {
	events   int // distinct events handled
	upcast   int // of which stored in an older shape
	owners   map[string]string
	balances map[string]Money
}

func newProjection(reg *eventsource.Registry, tracer trace.Tracer) *projection {
	return &projection{
		reg: reg, tracer: tracer,
		seen:    map[[16]byte]bool{},
		state:   balances{owners: map[string]string{}, balances: map[string]Money{}},
		changed: make(chan struct{}),
	}
}

// start subscribes to store's global order from its first event, and
// applies each event on a goroutine of its own until stop is called.
func (p *projection) start(ctx context.Context, store eventsource.Store) {
	ctx, p.stop = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		for e, err := range store.Subscribe(ctx, 0) {
			if err == nil {
				err = p.apply(ctx, e)
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

// shutdown ends the subscription and returns why it ended early, if it did.
func (p *projection) shutdown() error {
	p.stop()
	<-p.done
	return p.err
}

// apply handles one event, in a span linked to the span of the command
// that appended it (when the projection has a tracer). An event it has
// handled already is skipped.
func (p *projection) apply(ctx context.Context, e eventsource.Event) (err error) {
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
	case AccountOpened:
		s.owners[e.StreamID] = ev.Owner
		s.balances[e.StreamID] = 0 // the first event of the stream
	case Deposited:
		s.balances[e.StreamID] += ev.Amount
	case Withdrawn:
		s.balances[e.StreamID] -= ev.Amount
	default:
		return fmt.Errorf("event %s of %q: unexpected %T", e.Type, e.StreamID, ev)
	}
	s.events++
	if e.Type == typeDepositedV0 {
		s.upcast++
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// waitFor waits until the projection has handled n distinct events.
func (p *projection) waitFor(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, changed := p.state.events, p.changed
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

// view returns a copy of the projection's state.
func (p *projection) view() balances {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.owners, s.balances = maps.Clone(s.owners), maps.Clone(s.balances)
	return s
}

// ids returns the accounts, sorted.
func (s balances) ids() []string { return slices.Sorted(maps.Keys(s.balances)) }

func (s balances) equal(o balances) bool {
	return s.events == o.events && s.upcast == o.upcast &&
		maps.Equal(s.owners, o.owners) && maps.Equal(s.balances, o.balances)
}
