package edge

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

// TestCloseReleasesWhatAStartBuilt covers the components an app does
// not stop: one whose Start returned after the app gave up on it, and
// one it never stopped.
func TestCloseReleasesWhatAStartBuilt(t *testing.T) {
	svcs := newServices(t)
	e, err := New(svcs.config())
	if err != nil {
		t.Fatal(err)
	}
	comps := e.Components()
	if names := [4]string{comps[0].Name, comps[1].Name, comps[2].Name, comps[3].Name}; names != [4]string{"auth", "web-bff", "mobile-bff", "gateway"} {
		t.Errorf("Components() = %v; want auth, web-bff, mobile-bff, gateway", names)
	}

	// A start the app gave up on (its context ended) releases what it
	// built itself.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := comps[2].Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start(canceled) = %v; want %v", err, context.Canceled)
	}
	// A component started and never stopped is released by Close.
	if err := comps[1].Start(context.Background()); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	for _, s := range []*stub{svcs.orders, svcs.catalogue, svcs.shipping} {
		s.srv.Close()
	}
	goleak.VerifyNone(t)
}
