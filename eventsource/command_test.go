package eventsource_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
)

func TestCommandID(t *testing.T) {
	ctx := context.Background()
	_, ok := eventsource.CommandID(ctx)
	assert.False(t, ok, "CommandID of a context without one")
	ctx = eventsource.WithCommandID(ctx, "cmd-1")
	id, ok := eventsource.CommandID(ctx)
	assert.True(t, ok)
	assert.Equal(t, "cmd-1", id)
	id, ok = eventsource.CommandID(eventsource.WithCommandID(ctx, ""))
	assert.True(t, ok, "an empty ID is carried, for Append to reject")
	assert.Empty(t, id)
}

func TestCheckCommandID(t *testing.T) {
	tests := []struct {
		id   string
		want string // in the error; "" for none
	}{
		{"cmd-1", ""},
		{"ünïcødé 日本語", ""},
		{strings.Repeat("x", eventsource.MaxCommandIDLen), ""},
		{"", "is empty"},
		{strings.Repeat("x", eventsource.MaxCommandIDLen+1), "is 201 bytes long; at most 200"},
		{"a\xff", "is not valid UTF-8"},
		{"a\x00", "holds a NUL byte"},
		{"\xff\x00", "is not valid UTF-8 and holds a NUL byte"},
	}
	for _, tt := range tests {
		err := eventsource.CheckCommandID(tt.id)
		if tt.want == "" {
			assert.NoError(t, err, "CheckCommandID(%q)", tt.id)
			continue
		}
		require.ErrorIs(t, err, eventsource.ErrInvalidArgument, "CheckCommandID(%q)", tt.id)
		assert.Contains(t, err.Error(), tt.want, "CheckCommandID(%q)", tt.id)
		assert.Less(t, len(err.Error()), 120, "CheckCommandID(%q) shows a long ID in full", tt.id)
	}
}

func TestDuplicateCommandError(t *testing.T) {
	var err error = &eventsource.DuplicateCommandError{CommandID: "cmd-1", StreamID: "acc-1"}
	assert.ErrorIs(t, fmt.Errorf("saving: %w", err), eventsource.ErrDuplicateCommand)
	assert.NotErrorIs(t, err, eventsource.ErrConcurrencyConflict)
	assert.EqualError(t, err, `eventsource: command "cmd-1" has already appended to stream "acc-1"`)
	var typed interface{ ErrorType() string }
	for _, e := range []error{err, eventsource.ErrDuplicateCommand} {
		require.True(t, errors.As(e, &typed))
		assert.Equal(t, "eventsource.duplicate_command", typed.ErrorType())
	}
}

func ExampleWithCommandID() {
	ctx := context.Background()
	store := &eventsource.MemoryStore{}
	deposit := eventsource.NewEvent{Type: "deposited.v1", Data: []byte(`{"amount":30}`)}

	// The command's sender chose the ID; its retry carries the same one.
	ctx = eventsource.WithCommandID(ctx, "deposit-7f3a")
	_, err := store.Append(ctx, "acc-1", eventsource.Any, deposit)
	fmt.Println("first:", err)
	_, err = store.Append(ctx, "acc-1", eventsource.Any, deposit)
	fmt.Println("retry:", err, errors.Is(err, eventsource.ErrDuplicateCommand))
	seen, _ := store.CommandRecorded(ctx, "deposit-7f3a")
	fmt.Println("recorded:", seen)
	// Output:
	// first: <nil>
	// retry: eventsource: command "deposit-7f3a" has already appended to stream "acc-1" true
	// recorded: true
}

// The memory store's command log answers for a (command, stream) pair
// with CommandRecordedIn, and for a command on any stream with
// CommandRecorded.
func TestMemoryStoreCommandRecordedIn(t *testing.T) {
	s := &eventsource.MemoryStore{}
	ctx := context.Background()
	_, err := s.Append(eventsource.WithCommandID(ctx, "cmd-1"), "a", eventsource.NoStream, eventsource.NewEvent{Type: "t.v1"})
	require.NoError(t, err)
	for _, tc := range []struct {
		command, stream string
		want            bool
	}{{"cmd-1", "a", true}, {"cmd-1", "b", false}, {"cmd-2", "a", false}} {
		got, err := s.CommandRecordedIn(ctx, tc.command, tc.stream)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "CommandRecordedIn(%q, %q)", tc.command, tc.stream)
	}
	ok, err := s.CommandRecorded(ctx, "cmd-1")
	require.NoError(t, err)
	assert.True(t, ok)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.CommandRecordedIn(canceled, "cmd-1", "a")
	require.ErrorIs(t, err, context.Canceled)
}
