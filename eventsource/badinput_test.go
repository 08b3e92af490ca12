package eventsource_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
)

// nilSnapshots is a typed nil snapshot store, a nil that != nil.
var nilSnapshots *eventsource.MemorySnapshots

// TestBadInput walks the invalid arguments of the package's entry points:
// each is rejected with an error (or, for the registrations written in
// code, a panic) whose message names the argument, never a nil
// dereference.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	newAccount := func() *Account { return &Account{} }
	repo, err := eventsource.NewRepository(store, newRegistry(), newAccount)
	require.NoError(t, err)
	nilRepo := (*eventsource.Repository[*Account])(nil)
	zeroRepo := &eventsource.Repository[*Account]{}
	nilRegistry := (*eventsource.Registry)(nil)
	upcaster := func(e eventsource.Event) (eventsource.Event, error) { return e, nil }

	tests := []struct {
		name      string
		call      func() error // may panic; the panic's message is checked
		wantPanic bool
		want      []string // in the message
		is        error    // the sentinel the error matches, if any
	}{
		// NewRepository lists every fault at once.
		{name: "NewRepository nil store", call: func() error {
			_, err := eventsource.NewRepository(nil, newRegistry(), newAccount)
			return err
		}, want: []string{"NewRepository", "store is nil"}},
		{name: "NewRepository typed nil store", call: func() error {
			_, err := eventsource.NewRepository((*eventsource.MemoryStore)(nil), newRegistry(), newAccount)
			return err
		}, want: []string{"store is nil"}},
		{name: "NewRepository nil registry", call: func() error {
			_, err := eventsource.NewRepository(store, nil, newAccount)
			return err
		}, want: []string{"registry is nil"}},
		{name: "NewRepository nil constructor", call: func() error {
			_, err := eventsource.NewRepository[*Account](store, newRegistry(), nil)
			return err
		}, want: []string{"constructor newA is nil"}},
		{name: "NewRepository nil option", call: func() error {
			_, err := eventsource.NewRepository(store, newRegistry(), newAccount, eventsource.WithSnapshotFormat(1), nil)
			return err
		}, want: []string{"opts[1] is nil"}},
		{name: "WithSnapshots nil store", call: func() error {
			_, err := eventsource.NewRepository(store, newRegistry(), newAccount, eventsource.WithSnapshots(nil, 10))
			return err
		}, want: []string{"WithSnapshots(nil, 10)", "snapshot store is nil"}},
		{name: "WithSnapshots typed nil store", call: func() error {
			_, err := eventsource.NewRepository(store, newRegistry(), newAccount, eventsource.WithSnapshots(nilSnapshots, 10))
			return err
		}, want: []string{"WithSnapshots(nil, 10)"}},
		{name: "WithSnapshots zero interval", call: func() error {
			_, err := eventsource.NewRepository(store, newRegistry(), newAccount, eventsource.WithSnapshots(&eventsource.MemorySnapshots{}, 0))
			return err
		}, want: []string{"WithSnapshots(_, 0)", "at least 1"}},
		{name: "NewRepository all at once", call: func() error {
			_, err := eventsource.NewRepository[*Account](nil, nil, nil, nil, eventsource.WithSnapshots(nil, -1))
			return err
		}, want: []string{"store is nil", "registry is nil", "constructor newA is nil", "opts[0] is nil", "WithSnapshots(nil, -1)", "WithSnapshots(_, -1)"}},

		// Repositories: misuse at call time.
		{name: "Load on nil Repository", call: func() error {
			_, err := nilRepo.Load(ctx, "a")
			return err
		}, want: []string{"Repository is nil or was not created by NewRepository"}, is: eventsource.ErrInvalidArgument},
		{name: "Save on zero Repository", call: func() error {
			return zeroRepo.Save(ctx, &Account{})
		}, want: []string{"not created by NewRepository"}, is: eventsource.ErrInvalidArgument},
		{name: "DropSnapshot on nil Repository", call: func() error {
			return nilRepo.DropSnapshot(ctx, "a")
		}, want: []string{"not created by NewRepository"}, is: eventsource.ErrInvalidArgument},
		{name: "New on zero Repository", call: func() error {
			zeroRepo.New("a")
			return nil
		}, wantPanic: true, want: []string{"not created by NewRepository"}},
		{name: "Save nil aggregate", call: func() error {
			return repo.Save(ctx, nil)
		}, want: []string{"Save: aggregate is nil"}, is: eventsource.ErrInvalidArgument},
		{name: "constructor returns nil on Load", call: func() error {
			r, err := eventsource.NewRepository(store, newRegistry(), func() *Account { return nil })
			require.NoError(t, err)
			_, err = r.Load(ctx, "a")
			return err
		}, want: []string{"constructor newA", "returned a nil *eventsource_test.Account"}},
		{name: "constructor returns nil on New", call: func() error {
			r, err := eventsource.NewRepository(store, newRegistry(), func() *Account { return nil })
			require.NoError(t, err)
			r.New("a")
			return nil
		}, wantPanic: true, want: []string{"constructor newA", "returned a nil"}},

		// Raise.
		{name: "Raise nil aggregate", call: func() error {
			return eventsource.Raise(nil, Deposited{1})
		}, want: []string{"Raise: aggregate is nil"}, is: eventsource.ErrInvalidArgument},
		{name: "Raise typed nil aggregate", call: func() error {
			return eventsource.Raise((*Account)(nil), Deposited{1})
		}, want: []string{"Raise: aggregate is nil"}, is: eventsource.ErrInvalidArgument},
		{name: "Raise nil event", call: func() error {
			return eventsource.Raise(&Account{}, nil)
		}, want: []string{"Raise(*eventsource_test.Account): event is nil"}, is: eventsource.ErrInvalidArgument},

		// Registries: registrations panic, calls return errors.
		{name: "NewRegistry nil option", call: func() error {
			eventsource.NewRegistry(eventsource.WithCodec(eventsource.JSON{}), nil)
			return nil
		}, wantPanic: true, want: []string{"NewRegistry: opts[1] is nil"}},
		{name: "Register nil registry", call: func() error {
			eventsource.Register[Deposited](nil, "account.deposited.v1")
			return nil
		}, wantPanic: true, want: []string{`Register[eventsource_test.Deposited]("account.deposited.v1"): registry is nil`}},
		{name: "Register interface type", call: func() error {
			eventsource.Register[any](eventsource.NewRegistry(), "anything")
			return nil
		}, wantPanic: true, want: []string{`Register[interface {}]("anything"): type is a interface`}},
		{name: "Register func type", call: func() error {
			eventsource.Register[func()](eventsource.NewRegistry(), "f")
			return nil
		}, wantPanic: true, want: []string{`Register[func()]("f"): type is a func`}},
		{name: "Register empty name", call: func() error {
			eventsource.Register[Deposited](eventsource.NewRegistry(), "")
			return nil
		}, wantPanic: true, want: []string{"Register[eventsource_test.Deposited]: empty name"}},
		{name: "Register name with NUL", call: func() error {
			eventsource.Register[Deposited](eventsource.NewRegistry(), "a\x00b")
			return nil
		}, wantPanic: true, want: []string{"name holds a NUL byte"}},
		{name: "Register name not UTF-8", call: func() error {
			eventsource.Register[Deposited](eventsource.NewRegistry(), "a\xffb")
			return nil
		}, wantPanic: true, want: []string{"name is not valid UTF-8"}},
		{name: "Register duplicate name", call: func() error {
			eventsource.Register[Withdrawn](newRegistry(), "account.deposited.v1")
			return nil
		}, wantPanic: true, want: []string{"name already registered for eventsource_test.Deposited"}},
		{name: "Register duplicate type", call: func() error {
			eventsource.Register[Deposited](newRegistry(), "account.deposited.v2")
			return nil
		}, wantPanic: true, want: []string{`type already registered as "account.deposited.v1"`}},
		{name: "Upcast nil registry", call: func() error {
			nilRegistry.Upcast("a.v1", upcaster)
			return nil
		}, wantPanic: true, want: []string{`Upcast("a.v1"): registry is nil`}},
		{name: "Upcast nil function", call: func() error {
			eventsource.NewRegistry().Upcast("a.v1", nil)
			return nil
		}, wantPanic: true, want: []string{`Upcast("a.v1"): nil function`}},
		{name: "Upcast empty name", call: func() error {
			eventsource.NewRegistry().Upcast("", upcaster)
			return nil
		}, wantPanic: true, want: []string{"Upcast: empty name"}},
		{name: "Encode nil registry", call: func() error {
			_, err := nilRegistry.Encode(Deposited{1}, nil)
			return err
		}, want: []string{"Encode: registry is nil"}, is: eventsource.ErrInvalidArgument},
		{name: "Encode nil event", call: func() error {
			_, err := newRegistry().Encode(nil, nil)
			return err
		}, want: []string{"Encode: event is nil"}, is: eventsource.ErrInvalidArgument},
		{name: "Decode nil registry", call: func() error {
			_, err := nilRegistry.Decode(eventsource.Event{Type: "account.deposited.v1"})
			return err
		}, want: []string{"Decode: registry is nil"}, is: eventsource.ErrInvalidArgument},

		// Stores: what every store rejects (the conformance suite has
		// the rest).
		{name: "Append empty stream id", call: func() error {
			_, err := store.Append(ctx, "", eventsource.Any, eventsource.NewEvent{Type: "t"})
			return err
		}, want: []string{"empty stream id"}, is: eventsource.ErrInvalidArgument},
		{name: "Append negative Exact", call: func() error {
			_, err := store.Append(ctx, "s", eventsource.Exact(-1), eventsource.NewEvent{Type: "t"})
			return err
		}, want: []string{"expected a negative exact version"}, is: eventsource.ErrInvalidArgument},
		{name: "Append empty command id", call: func() error {
			_, err := store.Append(eventsource.WithCommandID(ctx, ""), "s", eventsource.Any, eventsource.NewEvent{Type: "t"})
			return err
		}, want: []string{`command id "" is empty`}, is: eventsource.ErrInvalidArgument},
		{name: "SaveSnapshot empty stream id", call: func() error {
			return (&eventsource.MemorySnapshots{}).SaveSnapshot(ctx, eventsource.Snapshot{Version: -1})
		}, want: []string{"empty stream id", "negative version -1"}, is: eventsource.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, panicked := callCatching(tt.call)
			require.Error(t, err)
			var re runtime.Error
			require.NotErrorAs(t, err, &re, "a runtime panic, not a message naming the argument")
			assert.Equal(t, tt.wantPanic, panicked, "panicked (error %q)", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

// callCatching calls f and returns its error, or the value it panicked
// with as an error.
func callCatching(f func() error) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if e, ok := v.(error); ok {
				err = e
				return
			}
			err = fmt.Errorf("%v", v)
		}
	}()
	return f(), false
}
