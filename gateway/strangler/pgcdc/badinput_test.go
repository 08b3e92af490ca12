package pgcdc_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/gateway/strangler/pgcdc"
)

// The methods of a Consumer not made by New return an error, without
// connecting anywhere or dereferencing nil.
func TestConsumerNotMadeByNew(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func(*pgcdc.Consumer) error
	}{
		{"Setup", func(c *pgcdc.Consumer) error { return c.Setup(ctx) }},
		{"Run", func(c *pgcdc.Consumer) error { return c.Run(ctx) }},
		{"DropSlot", func(c *pgcdc.Consumer) error { return c.DropSlot(ctx) }},
	} {
		for name, consumer := range map[string]*pgcdc.Consumer{"zero": {}, "nil": nil} {
			t.Run(name+" "+c.name, func(t *testing.T) {
				assert.EqualError(t, c.call(consumer), "pgcdc: the Consumer was not made by New")
			})
		}
	}
}
