package gateway_test

import (
	"context"
	"fmt"

	"github.com/otelpatterns/patterns/gateway"
)

// A principal that many requests share, such as one an authenticator
// caches per token, goes in each request's context with
// WithSharedPrincipal: a handler that asks for it gets a copy of its
// own, made once per request, and may change it freely.
func ExampleWithSharedPrincipal() {
	shared := &gateway.Principal{Subject: "ada", Roles: []string{"reader"}}

	ctx := gateway.WithSharedPrincipal(context.Background(), shared)
	p, _ := gateway.PrincipalFrom(ctx)
	p.Roles = append(p.Roles, "admin") // this request's copy only

	again, _ := gateway.PrincipalFrom(ctx) // the same copy
	other, _ := gateway.PrincipalFrom(gateway.WithSharedPrincipal(context.Background(), shared))
	fmt.Println(again.Roles, other.Roles, shared.Roles)
	// Output: [reader admin] [reader] [reader]
}

// Clone copies a principal deeply, claims included.
func ExamplePrincipal_Clone() {
	p := &gateway.Principal{Subject: "ada", Claims: map[string]any{"org": map[string]any{"id": "42"}}}
	cp := p.Clone()
	cp.Claims["org"].(map[string]any)["id"] = "7"
	fmt.Println(p.Claims["org"], cp.Claims["org"])
	// Output: map[id:42] map[id:7]
}
