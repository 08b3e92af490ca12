package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/otelpatterns/patterns/examples/ecommerce/internal/edge"
	"github.com/otelpatterns/patterns/examples/ecommerce/internal/shop"
	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
	"github.com/otelpatterns/patterns/examples/internal/prodotel"
	"github.com/otelpatterns/patterns/hexagonal"
)

// serviceName is the default service.name; OTEL_SERVICE_NAME overrides it.
const serviceName = "ecommerce"

// system is the program's parts, wired, before the App runs them.
type system struct {
	tel     *prodotel.Telemetry
	spans   *exampleotel.Spans      // nil unless the story prints trees
	metrics *sdkmetric.ManualReader // for the story's summary
	be      *backends
	shop    *shop.Shop // nil with -service edge
	edge    *edge.Edge // nil with -service other than edge
	admin   string     // the admin server's base URL
	app     *hexagonal.App
	phases  *phases // the App's log, for the story
}

// buildOptions say which system to build.
type buildOptions struct {
	cfg       config
	story     bool      // keep spans and metrics in memory for the story
	private   bool      // a schema and prefixes of its own, removed at the end
	logOutput io.Writer // the services' logs; nil: stderr
	// scenario sizes the rate limit so that a burst of the scenario's
	// meets it (see scenarioRate).
	scenario bool
}

// scenarioRate and scenarioBurst are the gateway's rate limit per client
// in the scenario: well above what one client of the scenario sends, well
// below its burst.
const (
	scenarioRate  = 20
	scenarioBurst = 20
)

// build makes the telemetry, the backends, the services, the edge and the
// admin server, and the App that runs them. On error it releases what it
// made.
func build(ctx context.Context, o buildOptions) (_ *system, err error) {
	s := &system{}
	tcfg := prodotel.Config{ServiceName: serviceName, LogOutput: o.logOutput}
	if o.cfg.service != "" {
		tcfg.ServiceName = serviceName + "-" + o.cfg.service
	}
	if o.story {
		s.spans = exampleotel.NewSpans()
		s.metrics = sdkmetric.NewManualReader()
		tcfg.SpanProcessors = append(tcfg.SpanProcessors, s.spans)
		tcfg.Readers = append(tcfg.Readers, s.metrics)
	}
	if s.tel, err = prodotel.New(ctx, tcfg); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	defer func() {
		if err != nil {
			// shutdownTelemetry also releases the shop and edge made so far.
			err = errors.Join(err, s.shutdownTelemetry(ctx))
		}
	}()

	only := o.cfg.service
	if only != "edge" {
		if s.be, err = openBackends(ctx, o.private, only, o.cfg.kafka); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, s.be.close(context.WithoutCancel(ctx)))
			}
		}()
	} else {
		s.be = &backends{}
	}

	// One health for the process: every server of the edge serves it,
	// and the admin server.
	health, err := hexagonal.NewHealth(append(s.be.checks,
		hexagonal.WithMeterProvider(s.tel.MeterProvider), hexagonal.WithTracerProvider(s.tel.TracerProvider))...)
	if err != nil {
		return nil, err
	}

	var components []hexagonal.Component
	components = append(components, s.be.component())
	if only != "edge" {
		scfg := shop.Config{
			Backends:       s.be.shop,
			TracerProvider: s.tel.TracerProvider,
			MeterProvider:  s.tel.MeterProvider,
			Logger:         s.tel.Logger,
		}
		if only != "" {
			scfg.Only = only
			scfg.Addrs = listenFor(only, o.cfg.listen)
			scfg.Remote = shop.Addrs{
				Orders: o.cfg.remote.orders, Catalogue: o.cfg.remote.catalogue, Payment: o.cfg.remote.payment,
				Inventory: o.cfg.remote.inventory, Shipping: o.cfg.remote.shipping,
			}
		}
		if s.shop, err = shop.New(ctx, scfg); err != nil {
			return nil, fmt.Errorf("shop: %w", err)
		}
		components = append(components, s.shop.Components()...)
	}
	if only == "" || only == "edge" {
		ecfg := edge.Config{
			GatewayAddr:    o.cfg.gatewayAddr,
			AuthAddr:       o.cfg.authAddr,
			CertFile:       o.cfg.certFile,
			KeyFile:        o.cfg.keyFile,
			TracerProvider: s.tel.TracerProvider,
			MeterProvider:  s.tel.MeterProvider,
			Logger:         s.tel.Logger,
			Health:         health.Handler(),
		}
		if only == "edge" {
			if o.cfg.gatewayAddr == "" {
				ecfg.GatewayAddr = o.cfg.listen
			}
			ecfg.OrdersURL, ecfg.CatalogueURL, ecfg.ShippingURL = o.cfg.remote.orders, o.cfg.remote.catalogue, o.cfg.remote.shipping
		} else {
			u := s.shop.URLs()
			ecfg.OrdersURL, ecfg.CatalogueURL, ecfg.ShippingURL = u.Orders, u.Catalogue, u.Shipping
		}
		if o.scenario {
			ecfg.RatePerSecond, ecfg.Burst = scenarioRate, scenarioBurst
		}
		if s.edge, err = edge.New(ecfg); err != nil {
			return nil, fmt.Errorf("edge: %w", err)
		}
		components = append(components, s.edge.Components()...)
	}

	admin, err := s.adminServer(o.cfg.adminAddr, health)
	if err != nil {
		return nil, err
	}
	components = append(components, admin)

	s.phases = newPhases(s.tel.Logger.Handler())
	s.app, err = hexagonal.New(
		hexagonal.WithComponent(components...),
		hexagonal.WithHealth(health),
		hexagonal.WithLogger(slog.New(s.phases)),
		hexagonal.WithTracerProvider(s.tel.TracerProvider),
		hexagonal.WithMeterProvider(s.tel.MeterProvider),
		hexagonal.WithStopTimeout(10*time.Second),
	)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// listenFor returns the listen addresses of a -service run: addr for the
// one service.
func listenFor(service, addr string) shop.Addrs {
	var a shop.Addrs
	switch service {
	case "orders":
		a.Orders = addr
	case "catalogue":
		a.Catalogue = addr
	case "payment":
		a.Payment = addr
	case "inventory":
		a.Inventory = addr
	case "shipping":
		a.Shipping = addr
	}
	return a
}

// adminServer binds the admin server: the process' health and metrics.
func (s *system) adminServer(addr string, health *hexagonal.Health) (hexagonal.Component, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return hexagonal.Component{}, fmt.Errorf("admin server: %w", err)
	}
	s.admin = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	for _, p := range []string{"/livez", "/livez/", "/readyz", "/readyz/", "/health"} {
		mux.Handle(p, health.Handler())
	}
	mux.Handle("/metrics", s.tel.Metrics)
	return hexagonal.HTTPServerListener("admin", &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln), nil
}

// start runs the App on a goroutine of its own and waits until it is
// ready. stop ends it (as SIGTERM would) and returns Run's error.
func (s *system) start(ctx context.Context) (stop func() error, err error) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.app.Run(runCtx) }()
	stop = func() error {
		cancel()
		return <-done
	}
	wait, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.app.Health().Ready(wait).OK {
		select {
		case err := <-done:
			cancel()
			if err == nil {
				err = errors.New("the app stopped while starting")
			}
			return nil, err
		case <-wait.Done():
			return nil, errors.Join(fmt.Errorf("the system did not become ready: %w", wait.Err()), stop())
		case <-tick.C:
		}
	}
	return stop, nil
}

// shutdownTelemetry releases what the shop and the edge hold beyond their
// components (the saga's recovery, an edge server a cut-short start left
// running), then flushes and stops the telemetry. It runs last in every
// mode, after the App has stopped or when it never ran.
func (s *system) shutdownTelemetry(ctx context.Context) error {
	var errs []error
	if s.edge != nil {
		if err := s.edge.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the edge: %w", err))
		}
	}
	if s.shop != nil {
		s.shop.Close()
	}
	return errors.Join(append(errs, s.flushTelemetry(ctx))...)
}

// flushTelemetry flushes and stops the telemetry.
func (s *system) flushTelemetry(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.tel.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down telemetry: %w", err)
	}
	return nil
}
