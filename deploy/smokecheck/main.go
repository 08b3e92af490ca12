// Command smokecheck holds the assertions of deploy/smoke, made through
// the HTTP APIs of a running Prometheus and Jaeger:
//
//	smokecheck exprs -dashboards DIR -rules FILE
//	smokecheck promql -prometheus URL -dashboards DIR -rules FILE
//	smokecheck trace -jaeger URL -hop NAME=REGEXP ... [-linked NAME]
//	smokecheck nats-cleanup -url URL -prefix PREFIX
//
// exprs lists the PromQL expressions of the Grafana dashboards and the
// alert rules as promql would query them; promql asserts that each returns
// data and that every rule evaluates; trace asserts that one trace holds
// a span for every hop of the request's path.
//
// It is a module of its own, as deploy/tools (Jaeger) is, so that the
// library's go.mod carries none of their dependencies, and so that its
// own do not change the versions Jaeger is built with (and so its cache).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "exprs":
		err = runExprs(os.Args[2:], os.Stdout)
	case "promql":
		err = runPromQL(os.Args[2:], os.Stdout)
	case "nats-cleanup":
		err = runNATSCleanup(os.Args[2:], os.Stdout)
	case "trace":
		err = runTrace(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smokecheck:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: smokecheck exprs|promql|trace|nats-cleanup [flags]; -h for the flags of each")
	os.Exit(2)
}
