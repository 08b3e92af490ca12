package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxInFlight is the cap on requests awaiting an answer when
// [Config.MaxInFlight] is 0.
const DefaultMaxInFlight = 1000

// defaultTimeout bounds each request of the client Run makes when
// [Config.Client] is nil, so that a hung server cannot hold a run open.
const defaultTimeout = 30 * time.Second

// Config says what [Run] sends, how fast and for how long.
type Config struct {
	// Rate is the number of requests sent per second; it must be positive.
	Rate int
	// Duration is how long Run sends for; it must be positive. Run
	// schedules Rate×Duration requests (rounded down; at least one), the
	// k-th at k/Rate after the start.
	Duration time.Duration
	// MaxInFlight caps the requests sent and not yet answered; 0 means
	// DefaultMaxInFlight, and it must not be negative. A request whose
	// time comes while the cap is reached is not sent: it is counted in
	// Report.Dropped.
	MaxInFlight int

	// Client sends the requests. nil means a client of Run's own, with a
	// 30s timeout and room for MaxInFlight idle connections per host,
	// closed at the end. A caller's client should allow as many idle
	// connections per host as MaxInFlight (http.Transport's default is 2),
	// or the run will open and close connections at the load's rate.
	Client *http.Client
	// Next builds the i-th request sent (i counts from 0 and skips no
	// number: dropped requests take none), so a mix written as i%n keeps
	// its proportions. It must be set. ctx is Run's: a request built with
	// it (http.NewRequestWithContext) is canceled when Run stops; one
	// built with http.NewRequest gets it too. Next is called from one
	// goroutine; an error from it ends the run and is returned.
	Next func(ctx context.Context, i int) (*http.Request, error)

	// MetricsURL is a Prometheus text /metrics endpoint scraped before and
	// after the run, to tell what the library's patterns did meanwhile
	// (Report.Patterns); "" skips it.
	MetricsURL string
	// Progress receives a line a second while the run lasts; nil means
	// none.
	Progress io.Writer
}

// validate reports every bad field at once.
func (c *Config) validate() error {
	var errs []error
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("load: Rate is %d; want a positive number of requests per second", c.Rate))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("load: Duration is %v; want a positive duration", c.Duration))
	}
	if c.Rate > 0 && c.Duration > 0 && c.total() == 0 {
		errs = append(errs, fmt.Errorf("load: Rate %d for Duration %v schedules no request; want at least one", c.Rate, c.Duration))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("load: MaxInFlight is %d; want 0 (the default, %d) or more", c.MaxInFlight, DefaultMaxInFlight))
	}
	if c.Next == nil {
		errs = append(errs, errors.New("load: Next is nil; it builds the requests to send"))
	}
	return errors.Join(errs...)
}

// total returns the number of requests the schedule holds: Rate×Duration,
// rounded down, computed so as not to overflow.
func (c *Config) total() int {
	whole, frac := int64(c.Duration/time.Second), int64(c.Duration%time.Second)
	return int(int64(c.Rate)*whole + int64(c.Rate)*frac/int64(time.Second))
}

// due returns when, after the start, request k of the schedule goes:
// k/Rate seconds, computed from k each time rather than by adding 1/Rate,
// so that rounding never drifts the rate, and without overflow.
func (c *Config) due(k int) time.Duration {
	rate := int64(c.Rate)
	return time.Duration(int64(k)/rate)*time.Second + time.Duration(int64(k)%rate*int64(time.Second)/rate)
}

// Run sends cfg.Rate requests a second for cfg.Duration, open loop, and
// reports what came back; see the package documentation for what open loop
// means here and what the report holds.
//
// Run returns when every request sent has its answer or error. If ctx ends
// first, Run sends no more, cancels the requests in flight, waits for them
// and returns what it saw until then with ctx's error; requests cut short
// that way count in Sent, but not in Status nor Errors. Failing to scrape
// MetricsURL before the run is an error and nothing is sent; failing after
// it returns the report with the error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	client := cfg.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.MaxInFlight
		client = &http.Client{Transport: tr, Timeout: defaultTimeout}
		defer tr.CloseIdleConnections()
	}

	var before metricSet
	if cfg.MetricsURL != "" {
		var err error
		if before, err = scrape(ctx, client, cfg.MetricsURL); err != nil {
			return Report{}, fmt.Errorf("load: scrape before the run: %w", err)
		}
	}

	rec := newRecorder()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopProgress := startProgress(runCtx, cfg.Progress, rec)
	elapsed, runErr := send(runCtx, cfg, client, rec)
	stopProgress()

	rep := rec.report(elapsed)
	if runErr == nil {
		runErr = ctx.Err()
	}
	if cfg.MetricsURL != "" {
		// Scrape even after a cancellation: the run happened, and a user
		// who stopped it early still wants to know what the patterns did.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		after, err := scrape(sctx, client, cfg.MetricsURL)
		if err != nil {
			return rep, errors.Join(runErr, fmt.Errorf("load: scrape after the run: %w", err))
		}
		rep.Patterns = patternsBetween(before, after)
	}
	return rep, runErr
}

// send runs the schedule: the k-th request at start + k/Rate, whatever the
// answers to earlier ones. It returns the sending window (for the achieved
// rate) once every request it sent has finished.
func send(ctx context.Context, cfg Config, client *http.Client, rec *recorder) (time.Duration, error) {
	total := cfg.total()
	slots := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	start := time.Now()
	window := func() time.Duration {
		// A schedule kept ends at Duration (its last request goes
		// 1/Rate before); one that fell behind ends later.
		return max(time.Since(start), cfg.Duration)
	}
	for k := range total {
		at := start.Add(cfg.due(k))
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return time.Since(start), nil
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			// Behind schedule, the requests due go at once; the check
			// keeps a canceled run from sending them all the same.
			return time.Since(start), nil
		}
		select {
		case slots <- struct{}{}:
		default:
			rec.dropped.Add(1)
			continue
		}
		req, err := cfg.Next(ctx, int(rec.sent.Load()))
		if err != nil {
			<-slots
			return time.Since(start), fmt.Errorf("load: Next(%d): %w", rec.sent.Load(), err)
		}
		if req.Context() == context.Background() {
			req = req.WithContext(ctx)
		}
		rec.sent.Add(1)
		rec.inFlight.Add(1)
		wg.Go(func() {
			defer func() { <-slots }()
			rec.do(ctx, client, req)
		})
	}
	return window(), nil
}
