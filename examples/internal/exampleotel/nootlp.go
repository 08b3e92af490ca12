//go:build !otlp

package exampleotel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpBuilt says whether this build has the OTLP exporters: not without
// the otlp tag, since they bring gRPC and protobuf (go.opentelemetry.io's
// OTLP/HTTP exporters and their generated collector packages import
// google.golang.org/grpc), 152 more packages to compile and 16 MB more
// modules to download for the first build of an example.
const otlpBuilt = false

func newOTLPSpanExporter(context.Context) (sdktrace.SpanExporter, error) { return nil, errNoOTLP }

func newOTLPMetricExporter(context.Context) (sdkmetric.Exporter, error) { return nil, errNoOTLP }

// rerunVar is set in the environment of an example run again by
// rerunWithOTLP, so that the run again does not run again in turn.
const rerunVar = "PATTERNS_EXAMPLE_OTLP_RERUN"

// rerunWithOTLP runs the example again with go run -tags otlp, when an
// OTLP endpoint is set, so that setting OTEL_EXPORTER_OTLP_ENDPOINT is
// all it takes to send an example's telemetry to a collector; and exits
// with the status of that run. It returns, and New then fails with
// errNoOTLP, when the example cannot be run again that way: not built by
// the go command from this module, no go command, or this run is itself
// the run again.
func rerunWithOTLP() {
	if !otlpConfigured("TRACES") && !otlpConfigured("METRICS") || os.Getenv(rerunVar) != "" {
		return
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Path == "" || bi.Main.Path != "github.com/otelpatterns/patterns" {
		return
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return
	}
	fmt.Fprintf(os.Stderr, "an OTLP endpoint is set: running %s again, built with -tags otlp for the OTLP exporters "+
		"(they bring gRPC and protobuf, which the default build leaves out; the first such build takes longer)\n", bi.Path)
	cmd := exec.Command(goCmd, append([]string{"run", "-tags", "otlp", bi.Path}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), rerunVar+"=1")
	// Ctrl-C reaches the run again, which stops as it would have here;
	// this process waits for it.
	signal.Ignore(os.Interrupt)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "running the example again with -tags otlp:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
