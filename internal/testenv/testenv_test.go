package testenv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records Skip and Fatal instead of stopping
// the goroutine, so that lookup's behaviour can be checked.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = args[0].(string) }
func (r *recorder) Fatal(args ...any) { r.failed = args[0].(string) }

func TestLookup(t *testing.T) {
	getters := []struct {
		name string
		get  func(testing.TB) string
	}{
		{RedisAddrVar, RedisAddr},
		{PostgresURLVar, PostgresURL},
		{NATSURLVar, NATSURL},
	}
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			t.Run("set", func(t *testing.T) {
				t.Setenv(g.name, "backend:1234")
				t.Setenv(RequireVar, "1")
				r := &recorder{TB: t}
				assert.Equal(t, "backend:1234", g.get(r))
				assert.Empty(t, r.skipped)
				assert.Empty(t, r.failed)
			})
			t.Run("unset skips", func(t *testing.T) {
				t.Setenv(g.name, "")
				t.Setenv(RequireVar, "")
				r := &recorder{TB: t}
				assert.Empty(t, g.get(r))
				require.NotEmpty(t, r.skipped, "want a skip")
				assert.Contains(t, r.skipped, "set "+g.name)
				assert.Empty(t, r.failed)
			})
			t.Run("unset and required fails", func(t *testing.T) {
				t.Setenv(g.name, "")
				t.Setenv(RequireVar, "1")
				r := &recorder{TB: t}
				g.get(r)
				require.NotEmpty(t, r.failed, "want a failure")
				assert.Contains(t, r.failed, "set "+g.name)
				assert.True(t, strings.Contains(r.failed, RequireVar), "failure %q does not say why it is not a skip", r.failed)
				assert.Empty(t, r.skipped)
			})
		})
	}
}
