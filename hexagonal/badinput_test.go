package hexagonal_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/hexagonal"
)

// Run on an App not made by New returns an error instead of
// dereferencing nil.
func TestAppNotMadeByNew(t *testing.T) {
	for name, app := range map[string]*hexagonal.App{"zero": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			assert.EqualError(t, app.Run(context.Background()), "hexagonal: App.Run: the App was not made by New")
		})
	}
}
