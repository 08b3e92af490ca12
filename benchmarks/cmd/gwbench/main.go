// Command gwbench runs one server of the gateway benchmark
// (benchmarks/gateway.sh) in its own process: the upstream, or a proxy
// variant in front of it.
//
//	gwbench -serve upstream -addr 127.0.0.1:0
//	gwbench -serve routing -addr 127.0.0.1:0 -upstream http://127.0.0.1:PORT
//	gwbench -serve full -timed -upstream http://127.0.0.1:PORT # GET /_gwbench/timing: "n p50µs p99µs" of its own time
//	gwbench -token     # prints a token the full variants accept, valid a day
//	gwbench -token -serve full-rs256 # the token of one variant
//	gwbench -free-port # prints a free loopback port
//	gwbench -report samples.txt -ref bare # the markdown table of medians
//	gwbench -load http://127.0.0.1:PORT/api/items/42 -rate 1000 -duration 10s -H "Authorization: Bearer ..."
//
// It prints "listening on HOST:PORT" once it accepts connections, and
// serves until SIGINT or SIGTERM. -cpuprofile writes a CPU profile of the
// whole run, for looking at where a variant spends its time; -memprofile
// a profile of every allocation it made (slow: not for measured runs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/otelpatterns/patterns/benchmarks/internal/gwbench"
)

func main() {
	serve := flag.String("serve", "", `what to serve: "upstream", or a proxy variant: `+fmt.Sprint(gwbench.Variants))
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "the upstream's base URL, for a proxy variant")
	token := flag.Bool("token", false, "print a token the variant of -serve accepts (the full variants' without -serve), valid for a day, and exit")
	timed := flag.Bool("timed", false, "with a proxy variant: measure the proxy's own time per request (less the upstream's round trips), answered at "+gwbench.TimingPath)
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile (allocations since the start, every one sampled) to this file at the end")
	freePort := flag.Bool("free-port", false, "print a free loopback TCP port and exit")
	report := flag.String("report", "", "read samples (round target rps p50µs p99µs, a line each) from this file, print a markdown table of medians and exit")
	ref := flag.String("ref", gwbench.Bare, "the target -report compares the others with")
	latency := flag.Bool("latency", false, "with -report: the samples are fixed-rate latencies; print p50 and p99 and what each target adds to -ref's")
	load := flag.String("load", "", "send a fixed-rate load to this URL, print \"rate p50µs p99µs sent-p50µs sent-p99µs\" (from when due, then from when sent) and exit")
	rate := flag.Int("rate", 1000, "with -load: requests per second")
	duration := flag.Duration("duration", 10*time.Second, "with -load: how long")
	workers := flag.Int("workers", 32, "with -load: concurrent requests at most")
	var headers headerFlag
	flag.Var(&headers, "H", `with -load: a request header, "Name: value" (repeatable)`)
	flag.Parse()
	switch {
	case *load != "":
		res, err := gwbench.Load{URL: *load, Header: http.Header(headers), Rate: *rate, Duration: *duration, Workers: *workers}.Run(context.Background())
		if err != nil {
			log.Fatal("gwbench: ", err)
		}
		if res.Failed > 0 {
			log.Printf("gwbench: %d of %d requests failed", res.Failed, res.Sent)
		}
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		fmt.Printf("%d %.1f %.1f %.1f %.1f\n", *rate, us(res.P50), us(res.P99), us(res.SentP50), us(res.SentP99))
		return
	case *token:
		fmt.Println(gwbench.TokenFor(*serve, 24*time.Hour))
		return
	case *freePort:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal("gwbench: ", err)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return
	case *report != "":
		f, err := os.Open(*report)
		if err != nil {
			log.Fatal("gwbench: ", err)
		}
		samples, err := gwbench.ParseSamples(f)
		f.Close()
		if err != nil || len(samples) == 0 {
			log.Fatalf("gwbench: %s: %d samples, %v", *report, len(samples), err)
		}
		if *latency {
			gwbench.ReportLatency(os.Stdout, samples, *ref)
		} else {
			gwbench.Report(os.Stdout, samples, *ref)
		}
		return
	}
	if *memprofile != "" {
		// Every allocation sampled: the profile then counts them exactly,
		// at a cost to speed (not for a measured run).
		runtime.MemProfileRate = 1
	}
	if err := run(*serve, *addr, *upstream, *timed, *cpuprofile, *memprofile); err != nil {
		log.Fatal("gwbench: ", err)
	}
}

func run(serve, addr, upstream string, timed bool, cpuprofile, memprofile string) error {
	var h http.Handler
	closeFn := func(context.Context) error { return nil }
	if serve == "upstream" {
		h = gwbench.Upstream()
	} else {
		if upstream == "" {
			return errors.New("-upstream is required for a proxy variant")
		}
		build := gwbench.New
		if timed {
			build = gwbench.NewTimed
		}
		s, err := build(serve, upstream)
		if err != nil {
			return err
		}
		h, closeFn = s, s.Close
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(srv.Shutdown(sctx), closeFn(sctx))
	if memprofile != "" {
		f, ferr := os.Create(memprofile)
		if ferr != nil {
			return errors.Join(err, ferr)
		}
		err = errors.Join(err, writeAllocs(f, 0), f.Close())
	}
	return err
}

// writeAllocs writes the profile of every allocation made so far. The
// runtime publishes the profile at the end of a garbage collection (it
// "may be up to two garbage collection cycles old"), so one is run first:
// without it the allocations since the last one, the end of the run,
// were missing from the counts.
func writeAllocs(w io.Writer, debug int) error {
	runtime.GC()
	return pprof.Lookup("allocs").WriteTo(w, debug)
}

// headerFlag collects -H "Name: value" flags.
type headerFlag http.Header

func (h *headerFlag) String() string { return fmt.Sprint(http.Header(*h)) }

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok {
		return fmt.Errorf("%q: want Name: value", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	http.Header(*h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}
