// Package gwbench builds the HTTP servers of the gateway benchmark
// (benchmarks/gateway.sh): the upstream every proxy sends to, a bare
// httputil.ReverseProxy, and the gateway in several configurations. The
// command benchmarks/cmd/gwbench runs one of them per process, as the
// out-of-process peers (Caddy, nginx) run; the package's test starts each
// in process once and checks that a request passes through.
package gwbench

import (
	"context"
	"crypto/rsa"
	"embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/auth"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

// The variants a proxy process can run.
const (
	// Bare is an httputil.ReverseProxy with Rewrite (SetURL and
	// SetXForwarded) and a pool of 32 KiB copy buffers, as the gateway
	// has; BareNoPool is the same without the pool, so that ReverseProxy
	// allocates a 32 KiB buffer per request, as it does by default.
	Bare       = "bare"
	BareNoPool = "bare-nopool"

	Routing = "routing" // the gateway: one route, one upstream, no-op telemetry
	// Full is routing + JWT + rate limit + breaker + retry, no-op
	// telemetry, each with its defaults: since gateway/auth caches the
	// tokens that verified by default, a token seen before is not
	// verified again (but its key is looked up).
	Full     = "full"
	FullOTel = "full-otel" // Full with the OTel SDK: every request traced, metrics kept
	// FullNoCache is Full with the token cache off
	// (auth.WithTokenCache(0, 0)): every token's signature and claims
	// are checked, as Full did before the cache became the default.
	FullNoCache = "full-nocache"
	// FullCached is Full with the token cache set explicitly, as the
	// default has it; kept for the scripts that name it.
	FullCached = "full-cached"
	// FullRS256 is Full verifying RS256 tokens (2048-bit keys) from a
	// static key set of two RSA keys, with the token cache on;
	// FullRS256NoCache verifies every token's signature. Their token
	// is [TokenRS256]'s, not [Token]'s.
	FullRS256        = "full-rs256"
	FullRS256NoCache = "full-rs256-nocache"
)

// The layer variants are the routing variant with one layer of the full
// chain each, with Full's settings, so that what one layer costs can be
// measured out of process: RoutingBreaker has the breaker per target,
// RoutingRetry the retrier, RoutingLimit the rate limit and RoutingJWT
// the JWT check (with the token cache, as Full has it).
const (
	RoutingBreaker = "routing-breaker"
	RoutingRetry   = "routing-retry"
	RoutingLimit   = "routing-limit"
	RoutingJWT     = "routing-jwt"
)

// Variants lists the proxy variants in the order the script runs them.
var Variants = []string{BareNoPool, Bare, Routing, Full, FullNoCache, FullCached, FullOTel, FullRS256, FullRS256NoCache,
	RoutingBreaker, RoutingRetry, RoutingLimit, RoutingJWT}

// Authenticated reports whether a variant refuses a request without a
// token.
func Authenticated(variant string) bool {
	switch variant {
	case Full, FullNoCache, FullCached, FullOTel, FullRS256, FullRS256NoCache, RoutingJWT:
		return true
	}
	return false
}

// TokenFor returns a token that variant accepts, valid for ttl: [Token]'s
// or, for the RS256 variants, [TokenRS256]'s.
func TokenFor(variant string, ttl time.Duration) string {
	if variant == FullRS256 || variant == FullRS256NoCache {
		return TokenRS256(ttl)
	}
	return Token(ttl)
}

// Path is the path the load generator asks for; Pattern the gateway's
// route for it. Every proxy forwards the path as it is.
const (
	Path    = "/api/items/42"
	Pattern = "GET /api/items/{id}"
)

// Body is what the upstream answers: a small JSON document.
const Body = `{"id":42,"name":"widget","price":9.99}` + "\n"

// secret signs the benchmark's tokens (HS256). FullNoCache verifies
// every request's signature and claims; the other full variants the
// first request's of each token.
var secret = []byte("gwbench HS256 secret, 32 bytes!!")

const (
	issuer   = "https://login.gwbench.test/"
	audience = "items-api"
	role     = "reader"
)

// Token returns a token that the full variants but the RS256 ones
// accept (HS256), valid for ttl.
func Token(ttl time.Duration) string {
	return sign(jwt.SigningMethodHS256, "bench", secret, ttl)
}

// TokenRS256 returns a token that the RS256 variants accept, signed with
// the second key of their key set, valid for ttl.
func TokenRS256(ttl time.Duration) string {
	return sign(jwt.SigningMethodRS256, "rsa-2", rsaKey("rsa2.pem"), ttl)
}

func sign(m jwt.SigningMethod, kid string, key any, ttl time.Duration) string {
	tok := jwt.NewWithClaims(m, jwt.MapClaims{
		"sub": "bench", "iss": issuer, "aud": audience, "roles": []string{role},
		"exp": time.Now().Add(ttl).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		panic(err) // the fixed keys cannot fail to sign
	}
	return s
}

//go:embed keys/*.pem
var keyFiles embed.FS

// rsaKey returns the benchmark's RSA key in keys/name.
func rsaKey(name string) *rsa.PrivateKey {
	b, err := keyFiles.ReadFile("keys/" + name)
	if err != nil {
		panic(err) // embedded
	}
	k, err := jwt.ParseRSAPrivateKeyFromPEM(b)
	if err != nil {
		panic(err) // embedded, and checked by the package's test
	}
	return k
}

// Upstream is the service behind every proxy: it answers [Body] to any
// request.
func Upstream() http.Handler {
	body := []byte(Body)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// Transport is the transport of the bare proxy: the one the gateway
// makes for itself (keep-alive, 256 idle connections per target, a 5s
// dial timeout, no environment proxy), so that both hold as many upstream
// connections.
func Transport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Server is a proxy variant ready to serve.
type Server struct {
	http.Handler
	// Close releases what the variant holds (the gateway, the
	// authenticator, the SDK providers).
	Close func(context.Context) error
}

// New builds the proxy variant to the upstream at upstreamURL.
func New(variant, upstreamURL string) (*Server, error) {
	return build(variant, upstreamURL, nil)
}

// build builds the proxy variant to the upstream at upstreamURL, with rt
// as its transport, or with its own (nil): a [Transport] for the bare
// proxy, the gateway's for the gateway.
func build(variant, upstreamURL string, rt closingTransport) (*Server, error) {
	target, err := url.Parse(upstreamURL)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", err)
	}
	switch variant {
	case Bare, BareNoPool:
		var t closingTransport = Transport()
		if rt != nil {
			t = rt
		}
		p := &httputil.ReverseProxy{
			Transport: t,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			// A client that goes away mid-request is no news here.
			ErrorLog: log.New(io.Discard, "", 0),
		}
		if variant == Bare {
			p.BufferPool = new(bufferPool)
		}
		return &Server{Handler: p, Close: func(context.Context) error { t.CloseIdleConnections(); return nil }}, nil
	case Routing:
		return newGateway(upstreamURL, layers{}, rt, nil, nil)
	case Full:
		return newGateway(upstreamURL, fullChain, rt, nil, nil)
	case FullNoCache:
		return newGateway(upstreamURL, layers{true, true, true, true, auth.WithTokenCache(0, 0), false}, rt, nil, nil)
	case FullCached:
		return newGateway(upstreamURL, layers{true, true, true, true, auth.WithTokenCache(auth.DefaultTokenCacheSize, auth.DefaultTokenCacheTTL), false}, rt, nil, nil)
	case FullRS256:
		return newGateway(upstreamURL, layers{true, true, true, true, nil, true}, rt, nil, nil)
	case FullRS256NoCache:
		return newGateway(upstreamURL, layers{true, true, true, true, auth.WithTokenCache(0, 0), true}, rt, nil, nil)
	case RoutingBreaker:
		return newGateway(upstreamURL, layers{breaker: true}, rt, nil, nil)
	case RoutingRetry:
		return newGateway(upstreamURL, layers{retry: true}, rt, nil, nil)
	case RoutingLimit:
		return newGateway(upstreamURL, layers{limit: true}, rt, nil, nil)
	case RoutingJWT:
		return newGateway(upstreamURL, layers{jwt: true}, rt, nil, nil)
	case FullOTel:
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		s, err := newGateway(upstreamURL, fullChain, rt, tp, mp)
		if err != nil {
			return nil, errors.Join(err, tp.Shutdown(context.Background()), mp.Shutdown(context.Background()))
		}
		closeGW := s.Close
		s.Close = func(ctx context.Context) error {
			return errors.Join(closeGW(ctx), tp.Shutdown(ctx), mp.Shutdown(ctx))
		}
		return s, nil
	}
	return nil, fmt.Errorf("variant %q: want one of %q", variant, Variants)
}

// layers are the parts of the full chain a gateway variant has.
type layers struct {
	breaker, retry, limit, jwt bool
	cache                      auth.Option // the token cache's setting, if not the default
	rs256                      bool        // RS256 keys and tokens, not HS256
}

var fullChain = layers{breaker: true, retry: true, limit: true, jwt: true}

// closingTransport is a transport whose idle connections can be closed.
type closingTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newGateway builds the gateway with the layers l of the full chain, and
// rt as its transport if not nil (closed with the gateway). tp and mp nil
// mean no-op providers.
func newGateway(upstreamURL string, l layers, rt closingTransport, tp trace.TracerProvider, mp metric.MeterProvider) (*Server, error) {
	var opts []gateway.Option
	closers := []func(){}
	if rt != nil {
		opts = append(opts, gateway.WithTransport(rt))
		closers = append(closers, rt.CloseIdleConnections)
	}
	if tp == nil {
		tp, mp = tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()
	} else {
		// W3C trace context to the upstream, as an application with the
		// SDK would set it up (the gateway uses the global propagator).
		otel.SetTextMapPropagator(propagation.TraceContext{})
	}
	opts = append(opts, gateway.WithTracerProvider(tp), gateway.WithMeterProvider(mp))

	up := gateway.Upstream{Name: "items", Targets: []gateway.Target{{URL: upstreamURL}}}
	// No route Timeout: the bare proxy has none, and a timer per request
	// costs about 2% of the routing variant's CPU time.
	route := gateway.Route{Pattern: Pattern, Upstream: "items"}
	// A breaker per target and retries (2 attempts, a budget), with
	// their defaults.
	if l.breaker {
		up.Breaker = &gateway.Breaker{}
	}
	if l.retry {
		up.Retry = &gateway.Retry{}
	}
	if l.jwt {
		keys := auth.WithKeys(auth.Key{ID: "bench", Algorithm: "HS256", Key: secret})
		if l.rs256 {
			keys = auth.WithKeys(
				auth.Key{ID: "rsa-1", Algorithm: "RS256", Key: &rsaKey("rsa1.pem").PublicKey},
				auth.Key{ID: "rsa-2", Algorithm: "RS256", Key: &rsaKey("rsa2.pem").PublicKey})
		}
		authOpts := []auth.Option{keys, auth.WithIssuer(issuer), auth.WithAudience(audience), auth.WithMeterProvider(mp)}
		if l.cache != nil {
			authOpts = append(authOpts, l.cache)
		}
		a, err := auth.New(authOpts...)
		if err != nil {
			return nil, err
		}
		closers = append(closers, a.Close)
		route.Middleware = append(route.Middleware, a.Middleware(auth.RequireAnyRole(role)))
	}
	if l.limit {
		// A per-client limit far above what the machine can serve, so
		// that it is checked on every request and never rejects one.
		lim, err := ratelimit.New(ratelimit.Limit{
			Name:     "per-client",
			Requests: 10_000_000, Per: time.Second,
			Key:   ratelimit.ByClientIP(),
			Scope: ratelimit.AcrossRoutes,
		}, ratelimit.WithMeterProvider(mp))
		if err != nil {
			for _, c := range closers {
				c()
			}
			return nil, err
		}
		route.Middleware = append(route.Middleware, lim.Middleware)
	}
	opts = append(opts, gateway.WithUpstreams(up), gateway.WithRoutes(route))
	g, err := gateway.New(opts...)
	if err != nil {
		for _, c := range closers {
			c()
		}
		return nil, err
	}
	return &Server{Handler: g, Close: func(context.Context) error {
		g.Close()
		for _, c := range closers {
			c()
		}
		return nil
	}}, nil
}

// Drain reads and closes a response body, so that its connection is
// reused.
func Drain(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// bufferPool lends the bare proxy 32 KiB copy buffers, as the gateway's
// own pool does.
type bufferPool struct{ p sync.Pool }

const bufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[bufferSize]byte); ok {
		return v[:]
	}
	return new([bufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == bufferSize {
		b.p.Put((*[bufferSize]byte)(buf[:bufferSize]))
	}
}
