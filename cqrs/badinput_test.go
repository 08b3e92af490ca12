package cqrs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/cqrs/buskit"
	"github.com/otelpatterns/patterns/eventsource"
)

type namedProjection string

func (p namedProjection) Name() string                                    { return string(p) }
func (p namedProjection) Handle(context.Context, eventsource.Event) error { return nil }

// TestBadInput walks the invalid arguments and options of every entry
// point: each is an error naming what is wrong, never a panic.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	cps := &cqrs.MemoryCheckpoints{}
	bus := cqrs.NewMemoryBus()
	t.Cleanup(func() { _ = bus.Close() })
	topic := func(eventsource.Event) string { return "t" }
	var nilBus *cqrs.Bus
	var nilMemBus *cqrs.MemoryBus
	var nilStore *eventsource.MemoryStore
	var nilCps *cqrs.MemoryCheckpoints
	runner, err := cqrs.NewRunner(store, cps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })

	tests := []struct {
		name string
		call func() error
		want []string // in the error, each
	}{
		{"Use(nil)", func() error { return cqrs.NewBus().Use(cqrs.Validation(), nil, nil) },
			[]string{"cqrs: Bus.Use", "middleware 1 (of 3) is nil", "middleware 2 (of 3) is nil"}},
		{"nil Bus.Use", func() error { return nilBus.Use(cqrs.Validation()) }, []string{"Bus.Use: nil bus"}},
		{"middleware returning nil", func() error {
			b := cqrs.NewBus()
			require.NoError(t, b.Use(func(cqrs.HandlerFunc) cqrs.HandlerFunc { return nil }))
			return cqrs.HandleCommand(b, func(context.Context, Deposit) error { return nil })
		}, []string{"middleware 0 returned a nil HandlerFunc"}},
		{"HandleCommand(nil, nil)", func() error { return cqrs.HandleCommand[Deposit](nil, nil) },
			[]string{"cqrs: HandleCommand", "nil bus", "nil handler"}},
		{"HandleCommand of an interface", func() error {
			return cqrs.HandleCommand(cqrs.NewBus(), func(context.Context, fmt.Stringer) error { return nil })
		}, []string{"fmt.Stringer is an interface"}},
		{"HandleQuery(nil, nil)", func() error { return cqrs.HandleQuery[Balance, int](nil, nil) },
			[]string{"cqrs: HandleQuery", "nil bus", "nil handler"}},
		{"Dispatch on a nil bus", func() error { return nilBus.Dispatch(ctx, Deposit{}) }, []string{"Dispatch: nil bus"}},
		{"Dispatch(nil)", func() error { return cqrs.NewBus().Dispatch(ctx, nil) }, []string{"no handler for a nil command"}},
		{"Ask on a nil bus", func() error { _, err := cqrs.Ask[Balance, int](ctx, nil, Balance{}); return err },
			[]string{"Ask: nil bus"}},
		{"Subscribe: empty names, nil handler, bad options", func() error {
			_, err := bus.Subscribe(ctx, "", "", nil, cqrs.WithMaxDeliver(0), cqrs.WithConcurrency(-1),
				cqrs.WithRedeliveryBackoff(nil), cqrs.WithDeadLetter(nil), nil)
			return err
		}, []string{"topic must not be empty", "group must not be empty", "handler must not be nil",
			"WithMaxDeliver(0): must be at least 1", "WithConcurrency(-1): must be at least 1",
			"WithRedeliveryBackoff(nil)", "WithDeadLetter(nil)"}},
		{"Publish to an empty topic", func() error { return bus.Publish(ctx, "", cqrs.Message{ID: "1"}) },
			[]string{"topic must not be empty"}},
		{"buskit.NewSubscribeConfig", func() error {
			_, err := buskit.NewSubscribeConfig(cqrs.WithMaxDeliver(-2), nil)
			return err
		}, []string{"WithMaxDeliver(-2)"}},
		{"NewRelay: every argument", func() error {
			_, err := cqrs.NewRelay("", nil, nil, nil, nil, cqrs.WithRelayDeadLetter(nil), nil)
			return err
		}, []string{"cqrs: NewRelay", "empty name", "nil store", "nil bus", "nil checkpoint store",
			"nil topic function", "WithRelayDeadLetter(nil)", "opts[1] is nil"}},
		{"NewRelay: nil option", func() error {
			_, err := cqrs.NewRelay("r", store, bus, cps, topic, nil)
			return err
		}, []string{"cqrs: NewRelay", "opts[0] is nil"}},
		{"NewRelay: typed nils", func() error {
			_, err := cqrs.NewRelay("r", nilStore, nilMemBus, nilCps, topic)
			return err
		}, []string{"nil store", "nil bus", "nil checkpoint store"}},
		{"zero Relay", func() error { return (&cqrs.Relay{}).Run(ctx) }, []string{"not made by NewRelay"}},
		{"NewRunner: nil", func() error { _, err := cqrs.NewRunner(nil, nil, nil); return err },
			[]string{"cqrs: NewRunner", "nil store", "nil checkpoint store", "opts[0] is nil"}},
		{"NewRunner: nil option", func() error {
			_, err := cqrs.NewRunner(store, cps, cqrs.WithMeterProvider(nil), nil)
			return err
		}, []string{"cqrs: NewRunner", "opts[1] is nil"}},
		{"NewRunner: typed nils", func() error { _, err := cqrs.NewRunner(nilStore, nilCps); return err },
			[]string{"nil store", "nil checkpoint store"}},
		{"Runner.Start(nil)", func() error { return runner.Start(nil) }, []string{"nil projection"}},
		{"Runner.Start: no name", func() error { return runner.Start(namedProjection("")) }, []string{"empty name"}},
		{"Runner.Rebuild(nil)", func() error { return runner.Rebuild(ctx, nil) }, []string{"nil projection"}},
		{"zero Runner", func() error { return (&cqrs.Runner{}).Start(namedProjection("p")) },
			[]string{"not made by NewRunner"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestZeroValues checks that the zero Bus and MemoryBus work, and that
// nil arguments with a documented meaning, and the nil options of NewBus
// and NewMemoryBus (which return no error), are accepted.
func TestZeroValues(t *testing.T) {
	ctx := context.Background()
	var bus cqrs.Bus
	require.NoError(t, bus.Use(cqrs.Logging(nil), cqrs.Retrying(nil)))
	n := 0
	require.NoError(t, cqrs.HandleCommand(&bus, func(context.Context, Deposit) error { n++; return nil }))
	require.NoError(t, bus.Dispatch(ctx, Deposit{"a", 1}))
	assert.Equal(t, 1, n, "Dispatch() on a zero Bus")
	require.NotPanics(t, func() { _ = cqrs.NewBus(nil, cqrs.WithTracerProvider(nil)) })
	require.NotPanics(t, func() { require.NoError(t, cqrs.NewMemoryBus(nil, cqrs.WithMeterProvider(nil)).Close()) })

	var mb cqrs.MemoryBus
	got := make(chan cqrs.Message, 1)
	sub, err := mb.Subscribe(ctx, "t", "g", func(_ context.Context, m cqrs.Message) error { got <- m; return nil }, nil)
	require.NoError(t, err)
	require.NoError(t, mb.Publish(ctx, "t", cqrs.Message{ID: "1"}))
	assert.Equal(t, "1", (<-got).ID, "the message published on a zero MemoryBus")
	require.NoError(t, sub.Close())
	require.NoError(t, mb.Close())
}

// resettable is a projection that counts its resets.
type resettable struct {
	namedProjection
	resets int
}

func (p *resettable) Reset(context.Context) error { p.resets++; return nil }

// TestRebuildRejectsAnEmptyNameBeforeResetting: Rebuild resets the read
// model, saves the checkpoint and then starts the projection, which
// refuses an empty name; the name must be refused before the reset, or
// the read model is wiped and the error comes after.
func TestRebuildRejectsAnEmptyNameBeforeResetting(t *testing.T) {
	runner, err := cqrs.NewRunner(&eventsource.MemoryStore{}, &cqrs.MemoryCheckpoints{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })
	p := &resettable{}
	err = runner.Rebuild(context.Background(), p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty name")
	assert.Zero(t, p.resets, "Rebuild reset the read model of a projection it then refused")
}

// TestRebuildOnAClosedRunnerResetsNothing: Start fails on a closed
// runner, so Rebuild must fail before it resets the read model.
func TestRebuildOnAClosedRunnerResetsNothing(t *testing.T) {
	runner, err := cqrs.NewRunner(&eventsource.MemoryStore{}, &cqrs.MemoryCheckpoints{})
	require.NoError(t, err)
	require.NoError(t, runner.Close())
	p := &resettable{namedProjection: "totals"}
	err = runner.Rebuild(context.Background(), p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "closed")
	assert.Zero(t, p.resets, "Rebuild reset the read model on a closed runner")
}
