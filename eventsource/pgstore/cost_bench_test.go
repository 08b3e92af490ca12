//go:build linux

package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/pgstore"
)

// BenchmarkAppendCost runs the rounds of BenchmarkAppendConcurrent (8
// goroutines, single events, each to a stream of its own) through raw
// pgx, the store, and the store sending no notifications, in turn (which
// goes first rotates), and reports each one's median rate, its median
// ratio to raw pgx's in the same iteration, and what each event costs in
// CPU: the benchmark process's (getrusage, so the Go runtime's too) and
// the server's, summed over the backends of the pool (read from /proc, so
// only when the server runs on this machine; 0 otherwise). CPU per event
// is steadier than a rate on a shared machine, and says on which side an
// append's extra cost lies. Run it with -benchtime Nx for N iterations.
func BenchmarkAppendCost(b *testing.B) {
	const goroutines, appendsPerRound = 8, 40
	env := benchSetup(b, goroutines+2)
	ctx := context.Background()
	pids := backendPIDs(b, env.pool, goroutines+2)
	arms := []costArm{
		{name: "raw", append: func(stream string, version int64) error {
			return env.rawAppend(ctx, stream, version, 1)
		}},
		{name: "pgstore", append: func(stream string, version int64) error {
			_, err := env.store.Append(ctx, stream, eventsource.Exact(version), newEvents(1)...)
			return err
		}},
	}
	// The store's appends without their notifications: what these cost.
	quiet := newStoreIn(b, env.pool, strings.Trim(env.schema, `"`))
	pgstore.SkipNotify(quiet)
	arms = append(arms, costArm{name: "pgstore_nonotify", append: func(stream string, version int64) error {
		_, err := quiet.Append(ctx, stream, eventsource.Exact(version), newEvents(1)...)
		return err
	}})
	for i := range arms {
		arms[i].versions = make([]int64, goroutines)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for k := range arms {
			a := &arms[(i+k)%len(arms)]
			// Each arm appends to streams of its own.
			client, server := cpuTime(), serverCPU(pids)
			start := time.Now()
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					stream := fmt.Sprintf("%s-%d", a.name, g)
					for range appendsPerRound {
						if err := a.append(stream, a.versions[g]); err != nil {
							b.Error(err)
							return
						}
						a.versions[g]++
					}
				})
			}
			wg.Wait()
			a.client += cpuTime() - client
			a.server += serverCPU(pids) - server
			a.events += goroutines * appendsPerRound
			a.rates = append(a.rates, float64(goroutines*appendsPerRound)/time.Since(start).Seconds())
		}
	}
	b.StopTimer()
	for k := range arms {
		a := &arms[k]
		n := float64(a.events)
		b.ReportMetric(float64(a.client.Microseconds())/n, a.name+"_client_µs/event")
		b.ReportMetric(float64(a.server.Microseconds())/n, a.name+"_server_µs/event")
		if k > 0 {
			ratios := make([]float64, len(a.rates))
			for i := range ratios {
				ratios[i] = a.rates[i] / arms[0].rates[i]
			}
			b.ReportMetric(median(ratios), a.name+"/raw")
		}
		b.ReportMetric(median(append([]float64(nil), a.rates...)), a.name+"_events/s")
	}
}

// costArm is one way of appending of BenchmarkAppendCost, with what it
// measured.
type costArm struct {
	name           string
	append         func(stream string, version int64) error
	versions       []int64
	rates          []float64
	events         int
	client, server time.Duration
}

// cpuTime returns the CPU time (user and system) of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendPIDs returns the server pids of the pool's n connections,
// holding all of them at once so that each is a different one.
func backendPIDs(b *testing.B, pool *pgxpool.Pool, n int) []int {
	ctx := context.Background()
	var pids []int
	var conns []*pgxpool.Conn
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		pids = append(pids, int(c.Conn().PgConn().PID()))
	}
	for _, c := range conns {
		c.Release()
	}
	return pids
}

// serverCPU returns the CPU time (user and system) of the server
// processes pids, read from /proc; 0 for those it cannot read.
func serverCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command's name, which ends with ')':
		// utime and stime are the 12th and 13th of them.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100
}
