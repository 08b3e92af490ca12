package grpchealth

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/otelpatterns/patterns/hexagonal"
)

// DefaultWatchInterval is how often a Watch stream re-evaluates its
// service's status when no [WithWatchInterval] is given.
const DefaultWatchInterval = time.Second

// Option configures a [Server].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	services map[string][]string
	order    []string
	interval time.Duration
	errs     []error
}

// WithService names a service that clients may ask about (the
// HealthCheckRequest's service field, by convention the full name of a
// gRPC service such as "inventory.v1.InventoryService") and the checks of
// the [hexagonal.Health] that decide it: the service is SERVING while the
// app is running and every one of those checks, liveness or readiness,
// passes. A check name the health does not have counts as failing, so a
// typo shows as NOT_SERVING rather than as a service that is always up.
//
// The overall service, "", is always there and follows
// [hexagonal.Health.Ready]: every check, and the app's phase. It cannot
// be given here. By default no named service is known.
func WithService(name string, checks ...string) Option {
	return optionFunc(func(c *config) {
		switch {
		case name == "":
			c.errs = append(c.errs, errors.New(`WithService(""): the overall service "" follows every check and cannot be mapped`))
		case len(checks) == 0:
			c.errs = append(c.errs, fmt.Errorf("WithService(%q): no check names", name))
		case c.services[name] != nil:
			c.errs = append(c.errs, fmt.Errorf("WithService(%q): the service is already mapped", name))
		default:
			for i, n := range checks {
				if n == "" {
					c.errs = append(c.errs, fmt.Errorf("WithService(%q): check %d has an empty name", name, i))
				}
			}
			c.services[name] = append([]string(nil), checks...)
			c.order = append(c.order, name)
		}
	})
}

// WithWatchInterval sets how often each Watch stream re-evaluates its
// service's status, sending the new one when it changed. Checks are not
// run more often than the health's own interval
// ([hexagonal.WithCheckInterval]) whatever this is, since their results
// are reused. The default is [DefaultWatchInterval] (1s).
func WithWatchInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.interval = d })
}

// Server is a grpc_health_v1 Health service fed by a [hexagonal.Health]:
// register it with grpc_health_v1.RegisterHealthServer. A Server is safe
// for concurrent use.
//
// It starts no goroutine of its own: each Watch stream is served in the
// goroutine gRPC gives its handler, and ends when the client goes, the
// gRPC server stops, or [Server.Shutdown] is called.
type Server struct {
	healthpb.UnimplementedHealthServer

	health   *hexagonal.Health
	services map[string][]string
	names    []string // sorted, "" included
	interval time.Duration

	mu       sync.Mutex
	shutdown chan struct{} // closed by Shutdown
	down     bool
	stopCtx  context.Context // ended by Shutdown
	stop     context.CancelFunc
}

// New returns a health service answering from h, or an error naming every
// bad option (a nil h, a nil option as "opts[i] is nil").
func New(h *hexagonal.Health, opts ...Option) (*Server, error) {
	cfg := config{services: map[string][]string{}, interval: DefaultWatchInterval}
	if h == nil {
		cfg.errs = append(cfg.errs, errors.New("health is nil"))
	}
	for i, o := range opts {
		if o == nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("opts[%d] is nil", i))
			continue
		}
		o.apply(&cfg)
	}
	if cfg.interval <= 0 {
		cfg.errs = append(cfg.errs, fmt.Errorf("WithWatchInterval(%v): must be positive", cfg.interval))
	}
	if len(cfg.errs) > 0 {
		return nil, fmt.Errorf("grpchealth: %w", errors.Join(cfg.errs...))
	}
	names := append([]string{""}, cfg.order...)
	sort.Strings(names)
	stopCtx, stop := context.WithCancel(context.Background())
	return &Server{
		stopCtx:  stopCtx,
		stop:     stop,
		health:   h,
		services: cfg.services,
		names:    names,
		interval: cfg.interval,
		shutdown: make(chan struct{}),
	}, nil
}

// known reports whether service is one the server answers for.
func (s *Server) known(service string) bool {
	_, ok := s.services[service]
	return ok || service == ""
}

// Status runs (or reuses the fresh results of) the health's checks and
// returns the status of service: SERVING, NOT_SERVING, or
// SERVICE_UNKNOWN for a service the server does not know. After
// [Server.Shutdown] every known service is NOT_SERVING.
func (s *Server) Status(ctx context.Context, service string) healthpb.HealthCheckResponse_ServingStatus {
	if s == nil || s.health == nil {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	if !s.known(service) {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	if s.isDown() {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return s.statusOf(service, s.health.Ready(ctx))
}

// statusOf derives a known service's status from a readiness report.
func (s *Server) statusOf(service string, rep hexagonal.Report) healthpb.HealthCheckResponse_ServingStatus {
	if service == "" {
		return servingIf(rep.OK)
	}
	if rep.Phase != "running" {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range s.services[service] {
		passed := false
		for _, r := range rep.Checks {
			if r.Name == name {
				passed = r.Err == nil
				break
			}
		}
		if !passed {
			return healthpb.HealthCheckResponse_NOT_SERVING
		}
	}
	return healthpb.HealthCheckResponse_SERVING
}

func servingIf(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// Check answers the status of the requested service, as the gRPC health
// protocol says: SERVING or NOT_SERVING for a known service, the error
// NOT_FOUND for an unknown one. The checks run within the call's
// deadline; a check still running when it ends counts as failing.
func (s *Server) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if s == nil || s.health == nil {
		return nil, status.Error(codes.Internal, "grpchealth: the Server was not made by New")
	}
	st := s.Status(ctx, req.GetService())
	if st == healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		return nil, status.Errorf(codes.NotFound, "grpchealth: unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// List answers the status of every known service, the overall one ("")
// included, from one run of the checks.
func (s *Server) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	if s == nil || s.health == nil {
		return nil, status.Error(codes.Internal, "grpchealth: the Server was not made by New")
	}
	out := &healthpb.HealthListResponse{Statuses: make(map[string]*healthpb.HealthCheckResponse, len(s.names))}
	down := s.isDown()
	var rep hexagonal.Report
	if !down {
		rep = s.health.Ready(ctx)
	}
	for _, name := range s.names {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if !down {
			st = s.statusOf(name, rep)
		}
		out.Statuses[name] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the requested service's status at once, then again each
// time it changes, re-evaluating it every watch interval
// ([WithWatchInterval]). A service the server does not know is answered
// SERVICE_UNKNOWN (not an error, as the protocol says) and the stream
// stays open. The stream ends when the client cancels it or goes away,
// when the gRPC server stops, or, after a last NOT_SERVING, when
// [Server.Shutdown] is called.
func (s *Server) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if s == nil || s.health == nil {
		return status.Error(codes.Internal, "grpchealth: the Server was not made by New")
	}
	// The checks run under a context that Shutdown ends too: a Watch
	// waiting for a check that hangs (up to its own timeout) ends at
	// once, and GracefulStop does not wait for it.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.stopCtx, cancel)()
	service := req.GetService()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	send := func(st healthpb.HealthCheckResponse_ServingStatus) error {
		if st == last {
			return nil
		}
		last = st
		return stream.Send(&healthpb.HealthCheckResponse{Status: st})
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		if err := send(s.Status(ctx, service)); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-s.shutdown:
			if s.known(service) {
				return send(healthpb.HealthCheckResponse_NOT_SERVING)
			}
			return nil
		case <-tick.C:
		}
	}
}

// Shutdown turns every service NOT_SERVING for good and ends the Watch
// streams, each after sending NOT_SERVING. Call it before the gRPC
// server's GracefulStop, which otherwise waits for the Watch streams,
// open for as long as their clients are. Later calls do nothing.
func (s *Server) Shutdown() {
	if s == nil || s.shutdown == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down {
		s.down = true
		close(s.shutdown)
		s.stop()
	}
}
