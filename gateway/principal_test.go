package gateway_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/gateway"
)

// TestWithSharedPrincipalNilParent: a nil parent is refused at once, with
// a message naming the function, as context.WithValue refuses one, not by
// a nil dereference at the first lookup.
func TestWithSharedPrincipalNilParent(t *testing.T) {
	assert.PanicsWithValue(t, "gateway.WithSharedPrincipal: nil parent context", func() {
		//lint:ignore SA1012 the nil parent is what is tested
		gateway.WithSharedPrincipal(nil, &gateway.Principal{Subject: "ada"})
	})
}
