package cache_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelpatterns/patterns/cache"
)

// TestLoadContext: the context a loader gets makes its Done channel only
// when asked (see loadContext), and behaves as a context.WithTimeout of the
// cache's background context with the caller's values, asked or not.
func TestLoadContext(t *testing.T) {
	type key struct{}
	t.Run("Err without Done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, err := cache.New(cache.WithLoadTimeout(time.Second), cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				if err := ctx.Err(); err != nil {
					return "", err
				}
				dl, ok := ctx.Deadline()
				if !ok || time.Until(dl) != time.Second {
					return "", context.Canceled // wrong: fails the test below
				}
				time.Sleep(2 * time.Second) // a source that ignores ctx
				return "", ctx.Err()
			}))
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Get(context.Background(), "k")
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		})
	})
	t.Run("derived context cancelled by Close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			loaderErr := make(chan error, 1)
			c, err := cache.New(cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				child, cancel := context.WithCancel(ctx)
				defer cancel()
				<-child.Done()
				loaderErr <- child.Err()
				return "", child.Err()
			}))
			require.NoError(t, err)
			go func() { _, _ = c.Get(context.Background(), "k") }()
			synctest.Wait() // the loader waits
			require.NoError(t, c.Close())
			assert.ErrorIs(t, <-loaderErr, context.Canceled)
		})
	})
	t.Run("caller's values", func(t *testing.T) {
		var got any
		c, err := cache.New(cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
			got = ctx.Value(key{})
			return "v", nil
		}))
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Get(context.WithValue(context.Background(), key{}, "caller"), "k")
		require.NoError(t, err)
		assert.Equal(t, "caller", got)
	})
	t.Run("timeout through Done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, err := cache.New(cache.WithLoadTimeout(time.Second), cache.WithLoader(func(ctx context.Context, _ string) (string, error) {
				<-ctx.Done()
				return "", ctx.Err()
			}))
			require.NoError(t, err)
			defer c.Close()
			start := time.Now()
			_, err = c.Get(context.Background(), "k")
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, time.Second, time.Since(start))
		})
	})
}
