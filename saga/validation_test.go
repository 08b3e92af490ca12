package saga_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cqrs"
	"github.com/otelpatterns/patterns/saga"
)

// nilCodec is a Codec whose nil pointer WithCodec must reject.
type nilCodec struct{}

func (*nilCodec) Marshal(v any) ([]byte, error)      { return nil, nil }
func (*nilCodec) Unmarshal(data []byte, v any) error { return nil }

// TestInvalidInput walks the invalid arguments of the constructors and
// options: each is rejected, with a message that names the argument or
// option, and none panics. (saga.WithID("") used to generate an id,
// WithCodec(nil) and WithCompensationRetry(nil) to fall back to the
// default, WithOwner("") to use the default owner. Issue 18.)
func TestInvalidInput(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	other, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	noop := func(context.Context, order) (func(*order), error) { return nil, nil }
	undo := func(context.Context, order) error { return nil }
	var nilDef *saga.Definition[order]
	var nilLog *saga.MemoryLog
	var nilBus *cqrs.MemoryBus

	tests := []struct {
		name string
		call func() error
		want []string // each in the message
	}{
		// NewOrchestrator and its options.
		{"nil log", func() error { _, err := saga.NewOrchestrator(nil); return err }, []string{"nil log"}},
		{"typed nil log", func() error { _, err := saga.NewOrchestrator(nilLog); return err }, []string{"nil log"}},
		{"WithDefinitions(nil)", func() error { _, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(nil)); return err },
			[]string{"WithDefinitions: definition 1: nil"}},
		{"WithDefinitions(typed nil)", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(def, nilDef))
			return err
		}, []string{"WithDefinitions: definition 2: nil"}},
		{"WithDefinitions twice one version", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithDefinitions(def, other))
			return err
		}, []string{"WithDefinitions: definition 2", `saga "order" version 1`}},
		{"WithOwner empty", func() error { _, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithOwner("")); return err },
			[]string{`WithOwner("")`}},
		{"WithOwner NUL", func() error { _, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithOwner("a\x00b")); return err },
			[]string{`WithOwner("a\x00b")`, "NUL"}},
		{"WithLease(0)", func() error { _, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithLease(0)); return err },
			[]string{"WithLease(0s)"}},
		{"WithLease negative", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithLease(-time.Second))
			return err
		},
			[]string{"WithLease(-1s)"}},
		{"WithCodec(nil)", func() error { _, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithCodec(nil)); return err },
			[]string{"WithCodec(nil)"}},
		{"WithCodec(typed nil)", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithCodec((*nilCodec)(nil)))
			return err
		}, []string{"WithCodec(nil)"}},
		{"WithCompensationRetry(nil)", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithCompensationRetry(nil))
			return err
		}, []string{"WithCompensationRetry(nil)"}},
		{"WithNeedsAttention(nil)", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithNeedsAttention(nil))
			return err
		}, []string{"WithNeedsAttention(nil)"}},
		{"WithRecoverInterval negative", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithRecoverInterval(-time.Second))
			return err
		}, []string{"WithRecoverInterval(-1s)"}},
		{"nil option", func() error {
			_, err := saga.NewOrchestrator(&saga.MemoryLog{}, saga.WithLease(time.Minute), nil)
			return err
		},
			[]string{"opts[1] is nil"}},
		{"every fault at once", func() error {
			_, err := saga.NewOrchestrator(nil, saga.WithLease(0), nil, saga.WithCodec(nil), saga.WithOwner(""))
			return err
		}, []string{"nil log", "WithLease(0s)", "opts[1] is nil", "WithCodec(nil)", `WithOwner("")`}},

		// Define.
		{"Define: bad saga name", func() error { _, err := saga.Define("a/b", 1, step(&j, "pay", nil)); return err },
			[]string{`saga name "a/b"`}},
		{"Define: version 0", func() error { _, err := saga.Define("order", 0, step(&j, "pay", nil)); return err },
			[]string{"version 0"}},
		{"Define: no steps", func() error { _, err := saga.Define[order]("order", 1); return err }, []string{"no steps"}},
		{"Define: empty step name", func() error { _, err := saga.Define("order", 1, step(&j, "", nil)); return err },
			[]string{`step "": name: empty`}},
		{"Define: duplicate step", func() error {
			_, err := saga.Define("order", 1, step(&j, "pay", nil), step(&j, "pay", nil))
			return err
		},
			[]string{`step "pay": defined twice`}},
		{"Define: nil action", func() error {
			_, err := saga.Define("order", 1, saga.Step[order]{Name: "pay", Compensate: undo})
			return err
		}, []string{`step "pay": no action`}},
		{"Define: nil compensation", func() error {
			_, err := saga.Define("order", 1, saga.Step[order]{Name: "pay", Action: noop})
			return err
		}, []string{`step "pay": no compensation`}},
		{"Define: negative timeout", func() error {
			_, err := saga.Define("order", 1, saga.Step[order]{Name: "pay", Action: noop, Compensate: undo, Timeout: -time.Second})
			return err
		}, []string{`step "pay": negative timeout`}},
		{"Define: interface data", func() error {
			_, err := saga.Define("order", 1, saga.Step[any]{Name: "pay",
				Action:     func(context.Context, any) (func(*any), error) { return nil, nil },
				Compensate: func(context.Context, any) error { return nil }})
			return err
		}, []string{"data type interface {}"}},

		// NewChoreography.
		{"NewChoreography: empty name", func() error { _, err := saga.NewChoreography("", cqrs.NewMemoryBus()); return err },
			[]string{"name must not be empty"}},
		{"NewChoreography: long name", func() error {
			_, err := saga.NewChoreography(strings.Repeat("x", saga.MaxNameLen+1), cqrs.NewMemoryBus())
			return err
		}, []string{"name: 201 bytes; at most 200"}},
		{"NewChoreography: invalid UTF-8", func() error { _, err := saga.NewChoreography("a\xffb", cqrs.NewMemoryBus()); return err },
			[]string{"name: has a NUL byte or is not UTF-8"}},
		{"NewChoreography: nil bus", func() error { _, err := saga.NewChoreography("order", nil); return err },
			[]string{"bus must not be nil"}},
		{"NewChoreography: typed nil bus", func() error { _, err := saga.NewChoreography("order", nilBus); return err },
			[]string{"bus must not be nil"}},
		{"NewChoreography: nil option", func() error { _, err := saga.NewChoreography("order", cqrs.NewMemoryBus(), nil); return err },
			[]string{`saga: new choreography "order"`, "opts[0] is nil"}},
		{"NewChoreography: every fault at once", func() error { _, err := saga.NewChoreography("", nil, nil); return err },
			[]string{"name must not be empty", "bus must not be nil", "opts[0] is nil"}},
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

// TestInvalidStartInput walks the invalid arguments of Start, the
// method and the function: each is an error naming it, not a panic, and
// starts no saga.
func TestInvalidStartInput(t *testing.T) {
	var j journal
	def, err := saga.Define("order", 1, step(&j, "pay", nil))
	require.NoError(t, err)
	log := &createCounter{MemoryLog: &saga.MemoryLog{}}
	o := newOrchestrator(t, log)
	ctx := ctxWithin(t, 10*time.Second)
	var nilDef *saga.Definition[order]

	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"WithID empty", func() error { _, err := o.Start(ctx, def, order{}, saga.WithID("")); return err }, `WithID(""): empty`},
		{"WithID slash", func() error { _, err := o.Start(ctx, def, order{}, saga.WithID("a/b")); return err }, `WithID("a/b")`},
		{"WithID too long", func() error {
			_, err := o.Start(ctx, def, order{}, saga.WithID(strings.Repeat("x", saga.MaxNameLen+1)))
			return err
		}, "WithID(", // and the length
		},
		{"pointer data", func() error { _, err := o.Start(ctx, def, &order{}); return err }, "data is *saga_test.order"},
		{"nil data", func() error { _, err := o.Start(ctx, def, nil); return err }, "data is <nil>"},
		{"nil option", func() error { _, err := o.Start(ctx, def, order{}, saga.WithID("a"), nil); return err }, `saga: Start "order": opts[1] is nil`},
		{"typed Start: nil option", func() error { _, err := saga.Start(ctx, o, def, order{}, nil); return err }, "opts[0] is nil"},
		{"nil definition", func() error { _, err := o.Start(ctx, nil, order{}); return err }, "nil definition"},
		{"typed nil definition", func() error { _, err := o.Start(ctx, nilDef, order{}); return err }, "nil definition"},
		{"typed Start: WithID empty", func() error { _, err := saga.Start(ctx, o, def, order{}, saga.WithID("")); return err }, `WithID(""): empty`},
		{"typed Start: nil orchestrator", func() error { _, err := saga.Start(ctx, nil, def, order{}); return err }, "nil orchestrator"},
		{"typed Start: nil definition", func() error { _, err := saga.Start(ctx, o, nilDef, order{}); return err }, "nil definition"},
		{"typed Wait: nil orchestrator", func() error { _, err := saga.Wait(ctx, nil, def, "x"); return err }, "nil orchestrator"},
		{"typed Wait: nil definition", func() error { _, err := saga.Wait(ctx, o, nilDef, "x"); return err }, "nil definition"},
		{"Resolve: empty reason", func() error { return o.Resolve(ctx, "x", "") }, "empty reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Zero(t, log.creates.Load(), "a rejected Start wrote to the log")
	_, err = saga.Wait(ctx, o, def, "missing")
	assert.True(t, errors.Is(err, saga.ErrNotFound), "Wait() = %v; want ErrNotFound", err)
}

// createCounter counts the calls of Create.
type createCounter struct {
	*saga.MemoryLog
	creates atomic.Int32
}

func (l *createCounter) Create(ctx context.Context, rec saga.Record, owner string, lease time.Duration) error {
	l.creates.Add(1)
	return l.MemoryLog.Create(ctx, rec, owner, lease)
}
