// Package exampletest runs an example program in its own test, the same
// way for every example.
package exampletest

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Run calls run, an example's whole program, with the telemetry on the
// stdout exporters (the OTLP endpoint variables cleared) and at most
// timeout to finish, and returns what it printed and its telemetry. It
// fails the test if run fails or leaves a goroutine behind. How long the
// run took is logged, not asserted: a loaded machine is slower.
func Run(t *testing.T, timeout time.Duration, run func(ctx context.Context, out, tel io.Writer) error) (out, tel string) {
	t.Helper()
	defer goleak.VerifyNone(t)
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var o, tl bytes.Buffer
	start := time.Now()
	if err := run(ctx, &o, &tl); err != nil {
		t.Fatalf("run() = %v; want nil\noutput:\n%s", err, o.String())
	}
	t.Logf("run took %v; its output:\n%s", time.Since(start).Round(time.Millisecond), o.String())
	return o.String(), tl.String()
}
