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
