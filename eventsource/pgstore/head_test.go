package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestHead(t *testing.T) {
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, head, "empty store")
	stored, err := s.Append(ctx, "acct-1", eventsource.NoStream, events(3, "opened")...)
	require.NoError(t, err)
	require.NoError(t, s.AwaitVisible(ctx)) // other tests' transactions hold readers back
	head, err = s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, stored[2].Position, head)
}

// CountAfter counts events, not positions (which have gaps), up to its
// limit.
func TestCountAfter(t *testing.T) {
	s, _ := newStore(t, 4)
	ctx := testenv.Context(t, 10*time.Second)
	var stored []eventsource.Event
	for i := range 4 { // 4 transactions, 2 events each
		got, err := s.Append(ctx, "acct-1", eventsource.ExpectedVersion(2*i), events(2, "opened")...)
		require.NoError(t, err)
		stored = append(stored, got...)
	}
	require.NoError(t, s.AwaitVisible(ctx))
	for _, c := range []struct {
		after, limit, want int64
	}{
		{0, 100, 8},
		{-5, 100, 8},
		{stored[0].Position, 100, 7},
		{stored[1].Position, 100, 6},
		{stored[5].Position, 100, 2},
		{stored[7].Position, 100, 0},
		{0, 3, 3},
		{0, 0, 0},
	} {
		n, err := s.CountAfter(ctx, c.after, c.limit)
		require.NoError(t, err)
		require.Equal(t, c.want, n, "after %d, limit %d", c.after, c.limit)
	}
}
