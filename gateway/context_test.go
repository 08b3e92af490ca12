package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"

	"github.com/otelpatterns/patterns/gateway"
)

// TestSharedPrincipal: PrincipalFrom hands out a copy of a shared
// principal, the same one for every ask on the context and the contexts
// derived from it, and a change to it reaches neither the shared
// principal nor the copy of another context.
func TestSharedPrincipal(t *testing.T) {
	shared := &gateway.Principal{
		Scheme: "jwt", Subject: "alice", Roles: []string{"reader"}, Scopes: []string{"orders:read"},
		Claims: map[string]any{"sub": "alice", "org": map[string]any{"ids": []any{"o1"}}, "aud": []string{"api"}},
	}
	want := shared.Clone()
	ctx := gateway.WithSharedPrincipal(context.Background(), shared)
	p, ok := gateway.PrincipalFrom(ctx)
	if !ok || p == shared {
		t.Fatalf("PrincipalFrom = %p, %v; want a copy of %p", p, ok, shared)
	}
	if again, _ := gateway.PrincipalFrom(gateway.WithRoute(ctx, "GET /x")); again != p {
		t.Errorf("PrincipalFrom of a derived context = %p; want the context's copy %p", again, p)
	}
	p.Subject = "mallory"
	p.Roles[0] = "admin"
	p.Scopes[0] = "orders:write"
	p.Claims["sub"] = "mallory"
	p.Claims["org"].(map[string]any)["ids"].([]any)[0] = "o2"
	p.Claims["aud"].([]string)[0] = "other"
	if !reflect.DeepEqual(shared, want) {
		t.Errorf("a change to the copy reached the shared principal: %+v", shared)
	}
	other, _ := gateway.PrincipalFrom(gateway.WithSharedPrincipal(context.Background(), shared))
	if !reflect.DeepEqual(other, want) {
		t.Errorf("another context's copy = %+v; want %+v", other, want)
	}

	if p, ok := gateway.PrincipalFrom(gateway.WithSharedPrincipal(context.Background(), nil)); ok || p != nil {
		t.Errorf("PrincipalFrom of a nil shared principal = %v, %v; want nil, false", p, ok)
	}
	// The nearest principal wins, whichever way it was put.
	own := &gateway.Principal{Subject: "bob"}
	if p, _ := gateway.PrincipalFrom(gateway.WithPrincipal(ctx, own)); p != own {
		t.Errorf("PrincipalFrom over WithPrincipal = %v; want %v", p, own)
	}
	if p, _ := gateway.PrincipalFrom(gateway.WithSharedPrincipal(gateway.WithPrincipal(context.Background(), own), shared)); p == nil || p.Subject != "alice" {
		t.Errorf("PrincipalFrom over WithSharedPrincipal = %v; want a copy of alice's", p)
	}
}

// TestPrincipalClone: Clone copies deeply, and an append to the copy's
// Roles does not write into its Scopes.
func TestPrincipalClone(t *testing.T) {
	if (*gateway.Principal)(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
	p := &gateway.Principal{Subject: "a", Roles: []string{"r1"}, Scopes: []string{"s1"}}
	cp := p.Clone()
	_ = append(cp.Roles, "r2")
	if cp.Scopes[0] != "s1" {
		t.Errorf("an append to the copy's Roles changed its Scopes to %q", cp.Scopes)
	}
	if e := (&gateway.Principal{}).Clone(); e.Roles != nil || e.Scopes != nil || e.Claims != nil {
		t.Errorf("Clone of an empty principal = %+v; want nil slices and claims", e)
	}
}

// TestClientIPWithoutAllocation: ClientIP reads the gateway's address
// without boxing it, and WithClientIP over the gateway's context still
// wins.
func TestClientIPWithoutAllocation(t *testing.T) {
	override := netip.MustParseAddr("192.0.2.7")
	var got, overridden netip.Addr
	var allocs float64
	_, srv := start(t, gateway.WithRoutes(gateway.Route{Pattern: "GET /ip", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		got, _ = gateway.ClientIP(ctx)
		allocs = testing.AllocsPerRun(100, func() { _, _ = gateway.ClientIP(ctx) })
		overridden, _ = gateway.ClientIP(gateway.WithClientIP(ctx, override))
	})}))
	if resp, _ := get(t, srv, "/ip"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ClientIP = %v; want 127.0.0.1", got)
	}
	if allocs != 0 {
		t.Errorf("ClientIP allocates %v times; want 0", allocs)
	}
	if overridden != override {
		t.Errorf("ClientIP over WithClientIP = %v; want %v", overridden, override)
	}
	if a, ok := gateway.ClientIP(httptest.NewRequest(http.MethodGet, "/", nil).Context()); ok || a.IsValid() {
		t.Errorf("ClientIP outside a gateway = %v, %v; want none", a, ok)
	}
}
