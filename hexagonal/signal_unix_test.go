//go:build unix

package hexagonal_test

import (
	"context"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/hexagonal"
)

// TestProcessSignalStops sends SIGTERM to the test process itself: Run
// subscribes to it with signal.Notify by default (before any component
// starts, so the signal, sent once the last one started, cannot kill the
// process).
func TestProcessSignalStops(t *testing.T) {
	var j journal
	started := make(chan struct{})
	app, err := hexagonal.New(quiet(), hexagonal.WithComponent(j.component("api"), ready(started)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-started
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v; want nil after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	if got := j.list(); !slices.Equal(got, []string{"start api", "stop api"}) {
		t.Errorf("calls = %q", got)
	}
}
