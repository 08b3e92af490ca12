package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/otelpatterns/patterns/circuitbreaker"
	"github.com/otelpatterns/patterns/retry"
)

// Upstream is a service behind the gateway: one or more targets (instances)
// that serve the same thing, and how requests are spread over them and
// protected.
//
// Only Name and Targets are required. Every protection is off until its
// field is set: no health checks, no outlier ejection, no breakers, no
// retries.
type Upstream struct {
	// Name identifies the upstream in routes, errors and telemetry (the
	// gateway.upstream attribute). It must be unique and not empty.
	Name string

	// Targets are the instances. There must be at least one, and no two
	// with the same host and port (their telemetry is told apart by them).
	Targets []Target

	// Balance is how a target is chosen for each attempt. The default is
	// [RoundRobin].
	Balance Balance

	// HealthCheck, when set, probes every target in the background and
	// takes failing ones out of service until they pass again.
	HealthCheck *HealthCheck

	// Outlier, when set, ejects a target that fails too many requests in a
	// row (passive health checking).
	Outlier *Outlier

	// Breaker, when set, puts a circuit breaker in front of each target.
	Breaker *Breaker

	// Retry, when set, retries failed attempts of requests that are safe
	// to repeat, on another target when there is one.
	Retry *Retry

	// H2C sends requests to the targets over HTTP/2 without TLS (prior
	// knowledge), as gRPC servers without TLS expect. The targets must be
	// http URLs.
	H2C bool

	// PassHost sends the client's Host header to the targets. By default
	// the Host header is the target's host, and the client's is sent as
	// X-Forwarded-Host.
	PassHost bool

	// Transport, when set, carries this upstream's requests and health
	// checks instead of the gateway's transport ([WithTransport]); the
	// gateway never closes it. It must not be set with H2C.
	Transport http.RoundTripper
}

// Target is one instance of an [Upstream].
type Target struct {
	// URL is the instance's base URL: http or https, a host, and
	// optionally a path that is put in front of every request's path
	// ("http://10.0.0.7:8080", "https://orders.internal/api"). It has no
	// query, fragment or user information.
	URL string
	// Weight is the target's share of requests under [WeightedRoundRobin]
	// and [LeastRequest], relative to the other targets' weights; 0 means
	// 1. It must not be negative, nor above 1,000,000.
	Weight int
}

// Balance is a load-balancing policy: how an [Upstream] chooses a target
// among those in service (healthy, not ejected, breaker not open).
type Balance string

// The load-balancing policies.
const (
	// RoundRobin takes the targets in turn, ignoring their weights.
	RoundRobin Balance = "round_robin"
	// WeightedRoundRobin takes the targets in turn in proportion to their
	// weights, spread out as nginx's smooth weighted round-robin does:
	// weights 5, 1, 1 give a a b a c a a, not a a a a a b c.
	WeightedRoundRobin Balance = "weighted_round_robin"
	// LeastRequest picks two targets at random and sends to the one with
	// fewer requests in flight relative to its weight (the power of two
	// choices), which steers load away from slow targets without the herd
	// behaviour of always picking the least loaded.
	LeastRequest Balance = "least_request"
)

// HealthCheck configures active health checks: the gateway sends a GET to
// each target's URL with Path, every Interval, and takes the target out of
// service after UnhealthyThreshold failures in a row, back in after
// HealthyThreshold successes in a row. Targets start in service, and the
// first round of checks runs at once. A check fails on a transport error,
// on a status that Status rejects, and when it takes longer than Timeout,
// reading up to 4 KiB of its body included. Health checks start no span.
type HealthCheck struct {
	// Path is the path (and query) probed, joined to the target's URL's
	// path with the escaping of both kept. It has no fragment. The
	// default is "/".
	Path string
	// Interval is the time between rounds of checks. The default is 10s.
	Interval time.Duration
	// Timeout bounds each check. A round of checks waits for all of
	// them, so a Timeout beyond Interval delays the next round. The
	// default is 2s.
	Timeout time.Duration
	// HealthyThreshold is how many checks in a row must pass to put an
	// out-of-service target back. The default is 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many checks in a row must fail to take a
	// target out of service. The default is 3.
	UnhealthyThreshold int
	// Status reports whether a response status means healthy. The default
	// accepts 200 to 399.
	Status func(code int) bool
}

// Outlier configures passive outlier ejection: a target whose requests
// fail ConsecutiveFailures times in a row (a transport error, a timeout,
// or a 502, 503 or 504 answer) is ejected: it gets no requests for
// BaseEjection, then is re-admitted. Each ejection of the same target
// lasts twice as long as its previous one, up to MaxEjection; each
// BaseEjection that a re-admitted target then stays in service takes one
// doubling back. Requests that the client cancelled count for nothing.
type Outlier struct {
	// ConsecutiveFailures is how many failures in a row eject a target.
	// The default is 5.
	ConsecutiveFailures int
	// BaseEjection is how long a first ejection lasts. The default is 30s.
	BaseEjection time.Duration
	// MaxEjection bounds how long an ejection lasts. It must be at least
	// BaseEjection. The default is 10 times BaseEjection.
	MaxEjection time.Duration
	// MaxEjectedPercent bounds the share of an upstream's targets that can
	// be ejected at once, in 1..100, so that a fault shared by every
	// target (a bad deploy, a dependency of all of them) does not eject
	// them all. Targets that the health checks took out count as
	// ejected here; one target can be ejected while all the others are
	// in service. The default is 50.
	MaxEjectedPercent int
}

// Breaker configures a circuit breaker per target, from a
// circuitbreaker.Group. An open breaker takes its target out of
// service; when every target's breaker is open, the upstream is
// unavailable. Each breaker is named "{upstream}/{host:port}" (and the
// target URL's path, if it has one) in the circuitbreaker package's
// telemetry.
//
// [Gateway.Update] keeps the breakers (and their state) of an upstream
// whose Breaker is the same pointer as before; a new Breaker value starts
// every target's breaker closed.
type Breaker struct {
	// Options configure each breaker (circuitbreaker.New's defaults
	// otherwise). The gateway adds its meter provider.
	Options []circuitbreaker.Option
	// Failure reports whether a response status counts as a failure of
	// the target. Transport errors and timeouts always do. The default
	// counts 500 and above.
	Failure func(code int) bool
	// GRPCFailure reports whether a gRPC answer's status code
	// (grpc-status, 0 to 16) counts as a failure of the target, for a
	// request sent as gRPC. The default counts UNAVAILABLE (14) and
	// DEADLINE_EXCEEDED (4); others are the caller's business (grpc-go
	// answers INTERNAL and RESOURCE_EXHAUSTED to a client's malformed or
	// oversized message). Whatever it says, a DEADLINE_EXCEEDED after
	// the client's own deadline ran out never counts, and an answer
	// without a grpc-status always does.
	GRPCFailure func(code int) bool
}

// Retry configures retries. A request is retried only when repeating it is
// safe: its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE)
// or it carries an Idempotency-Key header; and it is not a protocol
// upgrade. Its body streams to the first attempt as the client sends
// it, so a call whose client waits for the answer before it ends its
// body (a gRPC stream) is not held up; what the attempt read is kept,
// and the next attempt sends it, then the rest, so that every attempt
// sends the same bytes. Once an attempt has read more of the body than
// MaxBodyBytes, or reading it failed, no other attempt is made. An
// attempt is retried when it fails with a transport error or a per-try
// timeout, or is answered with a status that Status accepts, and goes
// to a target not tried yet when one is in service. Retries stop when the response has started: the gateway never retries
// after sending anything to the client.
//
// Retries are made by a retry.Retrier named after the upstream, so they
// follow its rules (backoff with full jitter, the request's deadline, the
// budget) and carry its telemetry.
type Retry struct {
	// Attempts is the most attempts per request, the first included;
	// 1 turns retries off. The default is 2.
	Attempts int
	// Backoff sets the waits between attempts. The default is
	// retry.Exponential(25ms, 2, 250ms).
	Backoff retry.Backoff
	// PerTryTimeout bounds each attempt until its response headers
	// arrive; an attempt that takes longer is abandoned and retried. It
	// always ends within the route's Timeout. The time an attempt of a
	// request that may be retried spends waiting for the client's body
	// does not count: a slow upload is not the target's doing. The
	// default, 0, sets no bound besides the route's.
	PerTryTimeout time.Duration
	// Budget caps retries as a share of requests. The default is a
	// budget per upstream made by retry.NewBudget(): in an outage, retries
	// of at most 20% of the requests plus 10 a second, plus up to 20 at
	// once when it starts.
	Budget *retry.Budget
	// Status reports whether a response status is worth retrying. The
	// default retries 502, 503 and 504. A gRPC answer whose headers say
	// UNAVAILABLE (trailers-only, so nothing of it has reached the
	// client) is judged as a 503. The last attempt's response is passed
	// on to the client whatever its status.
	Status func(code int) bool
	// MaxBodyBytes bounds the request body held in memory to be sent
	// again. Once an attempt has read more, the request is not sent
	// again: the client gets that attempt's answer or failure. The
	// default is 64 KiB; it must not be negative.
	MaxBodyBytes int64
}

// Defaults of the upstream settings.
const (
	defaultHealthPath         = "/"
	defaultHealthInterval     = 10 * time.Second
	defaultHealthTimeout      = 2 * time.Second
	defaultHealthyThreshold   = 2
	defaultUnhealthyThreshold = 3
	defaultConsecutive        = 5
	defaultBaseEjection       = 30 * time.Second
	defaultMaxEjectedPercent  = 50
	defaultAttempts           = 2
	defaultRetryBodyBytes     = 64 << 10
	maxWeight                 = 1_000_000
)

var defaultBackoff = retry.Exponential(25*time.Millisecond, 2, 250*time.Millisecond)

func healthyStatus(code int) bool { return code >= 200 && code < 400 }

func serverFailure(code int) bool { return code >= 500 }

func gatewayFailure(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// targetSpec is a validated target.
type targetSpec struct {
	url    *url.URL
	weight int
}

// upstreamSpec is a validated upstream with its defaults filled in.
type upstreamSpec struct {
	Upstream
	targets []targetSpec
	health  HealthCheck
	outlier Outlier
	retry   Retry
}

// validateUpstream checks u, reporting each bad field as "upstream "name":
// field: problem", and returns it with its defaults filled in.
func validateUpstream(i int, u Upstream) (*upstreamSpec, []error) {
	var errs []error
	name := fmt.Sprintf("upstream %q", u.Name)
	if u.Name == "" {
		name = fmt.Sprintf("upstreams[%d]", i)
		errs = append(errs, fmt.Errorf("gateway: %s: name: must not be empty", name))
	}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("gateway: %s: %s", name, oneLine(fmt.Sprintf(format, args...))))
	}
	s := &upstreamSpec{Upstream: u}
	if len(u.Targets) == 0 {
		bad("targets: must not be empty")
	}
	seen := map[string]int{}
	for j, t := range u.Targets {
		ts, err := parseTarget(t, u.H2C)
		if err != nil {
			bad("targets[%d].url: %v", j, err)
		} else {
			// A target's series carry its address and port, which must
			// tell it from the others: an ejected one would otherwise be
			// reported under the same series as one in service.
			h, p := hostPort(ts.url.Scheme, ts.url.Host)
			at := net.JoinHostPort(strings.ToLower(h), strconv.Itoa(p))
			if k, dup := seen[at]; dup && u.Targets[k].URL == t.URL {
				bad("targets[%d].url: %q is also targets[%d]", j, t.URL, k)
			} else if dup {
				bad("targets[%d].url: %q has the host and port of targets[%d] (%q): targets must differ in them", j, t.URL, k, u.Targets[k].URL)
			} else {
				seen[at] = j
			}
		}
		switch {
		case t.Weight < 0:
			bad("targets[%d].weight: must be positive (got %d)", j, t.Weight)
		case t.Weight > maxWeight:
			bad("targets[%d].weight: must be at most %d (got %d)", j, maxWeight, t.Weight)
		}
		ts.weight = max(t.Weight, 1)
		s.targets = append(s.targets, ts)
	}
	switch u.Balance {
	case "":
		s.Balance = RoundRobin
	case RoundRobin, WeightedRoundRobin, LeastRequest:
	default:
		bad("balance: unknown policy %q (want %q, %q or %q)", u.Balance, RoundRobin, WeightedRoundRobin, LeastRequest)
	}
	if u.H2C && u.Transport != nil {
		bad("h2c: cannot be set with transport (configure HTTP/2 on the transport)")
	}
	if h := u.HealthCheck; h != nil {
		s.health = *h
		hc := &s.health
		if hc.Path == "" {
			hc.Path = defaultHealthPath
		}
		if p, err := url.Parse(hc.Path); err != nil || p.Scheme != "" || p.Host != "" || p.Path != "" && p.Path[0] != '/' || p.Fragment != "" {
			bad("health_check.path: %q is not an absolute path", h.Path)
		}
		switch {
		case hc.Interval < 0:
			bad("health_check.interval: must be positive (got %v)", hc.Interval)
		case hc.Interval == 0:
			hc.Interval = defaultHealthInterval
		}
		switch {
		case hc.Timeout < 0:
			bad("health_check.timeout: must be positive (got %v)", hc.Timeout)
		case hc.Timeout == 0:
			hc.Timeout = defaultHealthTimeout
		}
		if hc.HealthyThreshold < 0 {
			bad("health_check.healthy_threshold: must be positive (got %d)", hc.HealthyThreshold)
		} else if hc.HealthyThreshold == 0 {
			hc.HealthyThreshold = defaultHealthyThreshold
		}
		if hc.UnhealthyThreshold < 0 {
			bad("health_check.unhealthy_threshold: must be positive (got %d)", hc.UnhealthyThreshold)
		} else if hc.UnhealthyThreshold == 0 {
			hc.UnhealthyThreshold = defaultUnhealthyThreshold
		}
		if hc.Status == nil {
			hc.Status = healthyStatus
		}
	}
	if o := u.Outlier; o != nil {
		s.outlier = *o
		oc := &s.outlier
		if oc.ConsecutiveFailures < 0 {
			bad("outlier.consecutive_failures: must be positive (got %d)", oc.ConsecutiveFailures)
		} else if oc.ConsecutiveFailures == 0 {
			oc.ConsecutiveFailures = defaultConsecutive
		}
		if oc.BaseEjection < 0 {
			bad("outlier.base_ejection: must be positive (got %v)", oc.BaseEjection)
		} else if oc.BaseEjection == 0 {
			oc.BaseEjection = defaultBaseEjection
		}
		switch {
		case oc.MaxEjection < 0:
			bad("outlier.max_ejection: must be positive (got %v)", oc.MaxEjection)
		case oc.MaxEjection == 0:
			oc.MaxEjection = 10 * oc.BaseEjection
		case oc.MaxEjection < oc.BaseEjection:
			bad("outlier.max_ejection: must be at least base_ejection (%v < %v)", oc.MaxEjection, oc.BaseEjection)
		}
		switch {
		case oc.MaxEjectedPercent == 0:
			oc.MaxEjectedPercent = defaultMaxEjectedPercent
		case oc.MaxEjectedPercent < 0 || oc.MaxEjectedPercent > 100:
			bad("outlier.max_ejected_percent: must be in 1..100 (got %d)", oc.MaxEjectedPercent)
		}
	}
	if b := u.Breaker; b != nil {
		if err := circuitbreaker.Validate(b.Options...); err != nil {
			bad("breaker.options: %v", err)
		}
	}
	if r := u.Retry; r != nil {
		s.retry = *r
		rc := &s.retry
		if rc.Attempts < 0 {
			bad("retry.attempts: must be positive (got %d)", rc.Attempts)
		} else if rc.Attempts == 0 {
			rc.Attempts = defaultAttempts
		}
		if rc.Backoff == (retry.Backoff{}) {
			rc.Backoff = defaultBackoff
		}
		if rc.PerTryTimeout < 0 {
			bad("retry.per_try_timeout: must not be negative (got %v)", rc.PerTryTimeout)
		}
		if rc.MaxBodyBytes < 0 {
			bad("retry.max_body_bytes: must not be negative (got %d)", rc.MaxBodyBytes)
		} else if rc.MaxBodyBytes == 0 {
			rc.MaxBodyBytes = defaultRetryBodyBytes
		}
		if rc.Status == nil {
			rc.Status = gatewayFailure
		}
		if err := retry.Validate(retry.WithBackoff(rc.Backoff)); err != nil {
			bad("retry.backoff: %v", err)
		}
	}
	return s, errs
}

// parseTarget checks a target's URL.
func parseTarget(t Target, h2c bool) (targetSpec, error) {
	u, err := url.Parse(t.URL)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // without the URL again
	}
	switch {
	case err != nil:
		return targetSpec{}, fmt.Errorf("%q: %v", t.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return targetSpec{}, fmt.Errorf("%q: scheme must be http or https", t.URL)
	case h2c && u.Scheme != "http":
		return targetSpec{}, fmt.Errorf("%q: h2c targets must be http", t.URL)
	case u.Host == "" || u.Hostname() == "":
		return targetSpec{}, fmt.Errorf("%q: host must not be empty", t.URL)
	case u.User != nil:
		return targetSpec{}, fmt.Errorf("%q: must not carry user information", t.URL)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return targetSpec{}, fmt.Errorf("%q: must not have a query or fragment", t.URL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return targetSpec{}, fmt.Errorf("%q: bad port", t.URL)
		}
	}
	u.Path = trimSlash(u.Path)
	u.RawPath = trimSlash(u.RawPath)
	return targetSpec{url: u}, nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

func toGroupOptions(opts []circuitbreaker.Option) []circuitbreaker.GroupOption {
	out := make([]circuitbreaker.GroupOption, 0, len(opts)+2)
	for _, o := range opts {
		out = append(out, o) // none is nil: New validated them
	}
	return out
}
