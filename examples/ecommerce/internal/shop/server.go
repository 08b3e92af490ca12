package shop

import (
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/hexagonal"
)

// server is one service's HTTP listener: its API and its health.
type server struct {
	name   string
	ln     net.Listener
	mux    *http.ServeMux
	health *hexagonal.Health
}

// newServer binds addr ("" is 127.0.0.1:0) for service name and mounts
// its health endpoints, with checks as its readiness checks.
func (s *Shop) newServer(name, addr string, checks ...hexagonal.Check) (*server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	opts := []hexagonal.HealthOption{hexagonal.WithMeterProvider(s.cfg.MeterProvider)}
	for _, c := range checks {
		opts = append(opts, hexagonal.WithCheck(c))
	}
	health, err := hexagonal.NewHealth(opts...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { ln.Close() })
	mux := http.NewServeMux()
	for _, p := range []string{"/livez", "/readyz", "/health", "/livez/", "/readyz/"} {
		mux.Handle(p, health.Handler())
	}
	return &server{name: name, ln: ln, mux: mux, health: health}, nil
}

// url is the server's base URL.
func (sv *server) url() string { return "http://" + sv.ln.Addr().String() }

// routed serves mux, naming the server span for the route that matched
// ("POST /orders", with http.route "/orders"), as the semantic conventions
// ask: otelhttp's span, made before routing, knows only the method.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			route := pattern
			if i := strings.IndexByte(pattern, ' '); i >= 0 {
				route = pattern[i+1:]
			}
			span := trace.SpanFromContext(r.Context())
			span.SetName(r.Method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		mux.ServeHTTP(w, r)
	})
}

// component is the server as a driving adapter of an app, its requests
// traced as the service's.
func (s *Shop) component(sv *server) hexagonal.Component {
	h := otelhttp.NewHandler(routed(sv.mux), sv.name,
		otelhttp.WithTracerProvider(s.cfg.TracerProvider),
		otelhttp.WithMeterProvider(s.cfg.MeterProvider))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return hexagonal.HTTPServerListener(sv.name, srv, sv.ln)
}
