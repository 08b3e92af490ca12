package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/aggregate"
	"github.com/otelpatterns/patterns/gateway/ratelimit"
)

const order = `{"customer_id":"alice","lines":[{"sku":"lamp","qty":2}]}`

func TestGatewayAuthorization(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	web, reporting := r.token(t, "web-app"), r.token(t, "reporting")

	tests := []struct {
		name, method, path, token, body string
		want                            int
		challenge                       string // in WWW-Authenticate
	}{
		{name: "no token", method: "GET", path: "/api/orders/o-1", want: 401, challenge: "Bearer"},
		{name: "bad token", method: "GET", path: "/api/orders/o-1", token: web + "x", want: 401, challenge: `error="invalid_token"`},
		{name: "no orders:write", method: "POST", path: "/api/orders", token: reporting, body: order, want: 403, challenge: `error="insufficient_scope"`},
		{name: "no catalogue:read", method: "GET", path: "/api/products", token: reporting, want: 403},
		{name: "orders:read", method: "GET", path: "/api/orders/o-1", token: reporting, want: 200},
		{name: "orders:write", method: "POST", path: "/api/orders", token: web, body: order, want: 202},
		{name: "catalogue:read", method: "GET", path: "/api/products/lamp", token: web, want: 200},
		{name: "no such route", method: "GET", path: "/api/customers", token: web, want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.do(t, tt.method, tt.path, tt.token, tt.body, "Idempotency-Key", "k-"+tt.name)
			if res.status != tt.want {
				t.Fatalf("%s %s = %v; want %d", tt.method, tt.path, res, tt.want)
			}
			if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, tt.challenge) {
				t.Errorf("WWW-Authenticate = %q; want it to hold %q", got, tt.challenge)
			}
		})
	}

	// Its Location is the gateway's path of the order.
	res := r.do(t, "POST", "/api/orders", web, order, "Idempotency-Key", "k-location")
	if loc := res.header.Get("Location"); loc != "/api/orders/o-1" {
		t.Errorf("Location = %q; want /api/orders/o-1", loc)
	}

	// The order reached the orders service with its Idempotency-Key and
	// the caller's client ID, and without the token.
	got := svcs.orders.last("/orders")
	if got == nil {
		t.Fatal("the orders service got no POST /orders")
	}
	if k := got.Header.Get("Idempotency-Key"); k != "k-location" {
		t.Errorf("Idempotency-Key = %q; want k-location", k)
	}
	if id := got.Header.Get(ClientIDHeader); id != "web-app" {
		t.Errorf("%s = %q; want web-app", ClientIDHeader, id)
	}
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("Authorization = %q upstream; want none", a)
	}
}

func TestGatewayClientIDCannotBeForged(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	res := r.do(t, "GET", "/api/orders/o-1", r.token(t, "reporting"), "", ClientIDHeader, "web-app")
	if res.status != 200 {
		t.Fatalf("GET = %v; want 200", res)
	}
	if id := svcs.orders.last("/orders/o-1").Header.Get(ClientIDHeader); id != "reporting" {
		t.Errorf("%s = %q upstream; want reporting, from the token", ClientIDHeader, id)
	}
}

func TestGatewayTLS(t *testing.T) {
	r := startEdge(t, newServices(t), nil)
	if !strings.HasPrefix(r.GatewayURL(), "https://127.0.0.1:") {
		t.Errorf("GatewayURL() = %q; want https://127.0.0.1:PORT", r.GatewayURL())
	}
	res := r.do(t, "GET", "/api/products/lamp", r.token(t, "web-app"), "")
	state := res.resp.TLS
	if state == nil {
		t.Fatal("the gateway answered without TLS")
	}
	leaf := state.PeerCertificates[0]
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("the certificate's key is a %T; want ECDSA", leaf.PublicKey)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%s) = %v", host, err)
		}
	}
	// A client that does not trust it is refused.
	plain := &http.Client{Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	_, err := plain.Get(r.GatewayURL() + "/api/products")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET without ClientTLS = %v; want %T", err, unknown)
	}
}

// TestGatewayIPRateLimitBeforeAuth: the per-address limit comes before
// authentication, so a flood of bad tokens from one address is refused
// with 429 once its bucket is empty, without a signature check (behind
// authentication, every bad token would be answered 401).
func TestGatewayIPRateLimitBeforeAuth(t *testing.T) {
	r := startEdge(t, newServices(t), func(c *Config) { c.IPRatePerSecond, c.IPBurst = 1, 3 })
	var unauthorized int
	var limited response
	for range 20 {
		res := r.do(t, "GET", "/api/products/lamp", "not.a.token", "")
		switch res.status {
		case http.StatusUnauthorized:
			unauthorized++
			continue
		case http.StatusTooManyRequests:
			limited = res
		default:
			t.Fatalf("GET with a bad token = %v; want 401 or 429", res)
		}
		break
	}
	if limited.status != http.StatusTooManyRequests {
		t.Fatalf("20 bad tokens from one address at 1/s with a burst of 3: %d answered 401, none limited", unauthorized)
	}
	if unauthorized == 0 {
		t.Error("no bad token reached authentication before the limit; want the burst's")
	}
	if rl := strings.Join(limited.header.Values("RateLimit"), ", "); !strings.Contains(rl, `"`+IPRateLimitName+`"`) {
		t.Errorf("429's RateLimit = %q; want the %s limit", rl, IPRateLimitName)
	}
	if h := limited.header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("429 with WWW-Authenticate %q: authentication ran", h)
	}
	// A good token from the same address is limited too: the budget is
	// the address's, whoever it claims to be.
	if res := r.do(t, "GET", "/api/products/lamp", r.token(t, "web-app"), ""); res.status != http.StatusTooManyRequests {
		t.Errorf("a good token from the limited address = %v; want 429", res)
	}
}

func TestGatewayRateLimit(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	r := startEdge(t, newServices(t), func(c *Config) { c.RatePerSecond, c.Burst, c.MeterProvider = 1, 2, mp })
	web := r.token(t, "web-app")
	var limited response
	for range 20 {
		res := r.do(t, "GET", "/api/products/lamp", web, "")
		if res.status == http.StatusTooManyRequests {
			limited = res
			break
		}
		if res.status != 200 {
			t.Fatalf("GET = %v; want 200 or 429", res)
		}
		if rl := strings.Join(res.header.Values("RateLimit"), ", "); !strings.Contains(rl, `"`+RateLimitName+`"`) {
			t.Errorf("RateLimit = %q; want the %s limit", rl, RateLimitName)
		}
	}
	if limited.status != http.StatusTooManyRequests {
		t.Fatal("20 requests at a rate of 1 a second with a burst of 2: none limited")
	}
	for _, h := range []string{"Retry-After", "RateLimit", "RateLimit-Policy"} {
		if limited.header.Get(h) == "" {
			t.Errorf("429 without %s: %v", h, limited.header)
		}
	}
	if p := limited.header.Get("RateLimit-Policy"); !strings.Contains(p, "q=1") {
		t.Errorf("RateLimit-Policy = %q; want q=1", p)
	}
	// The budget is the client's: another client still gets through.
	if res := r.do(t, "GET", "/api/products/lamp", r.token(t, "mobile-app"), ""); res.status != 200 {
		t.Errorf("another client's GET = %v; want 200", res)
	}

	// And it is counted as limited, under the limit's name.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	limitedCount := int64(0)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ratelimit.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				d, _ := dp.Attributes.Value(ratelimit.AttrDecision)
				n, _ := dp.Attributes.Value(ratelimit.AttrName)
				if d.AsString() == ratelimit.DecisionLimited && n.AsString() == RateLimitName {
					limitedCount += dp.Value
				}
			}
		}
	}
	if limitedCount != 1 {
		t.Errorf("limited decisions counted = %d; want 1", limitedCount)
	}
}

func TestGatewayCatalogueFallback(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	web := r.token(t, "web-app")
	first := r.do(t, "GET", "/api/products/lamp", web, "")
	if first.status != 200 || first.header.Get(gateway.FallbackHeader) != "" {
		t.Fatalf("GET = %v %v; want 200 from the catalogue", first, first.header)
	}
	svcs.catalogue.srv.Close() // refuses connections from now on
	res := r.do(t, "GET", "/api/products/lamp", web, "")
	if res.status != 200 || res.header.Get(gateway.FallbackHeader) == "" {
		t.Fatalf("GET with the catalogue down = %v %v; want the last answer as a fallback", res, res.header)
	}
	if string(res.body) != string(first.body) {
		t.Errorf("fallback body = %s; want %s", res.body, first.body)
	}
}

func TestWebBFF(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	web := r.token(t, "web-app")
	res := r.do(t, "GET", "/web/orders/o-1", web, "")
	if res.status != 200 {
		t.Fatalf("GET /web/orders/o-1 = %v; want 200", res)
	}
	doc := res.json(t)
	order, _ := doc["order"].(map[string]any)
	if order["order_id"] != "o-1" {
		t.Errorf("order = %v; want o-1", doc["order"])
	}
	products, _ := doc["products"].(map[string]any)
	if len(products) != 2 || products["lamp"] == nil || products["mug"] == nil {
		t.Errorf("products = %v; want lamp and mug, the order's lines, only", doc["products"])
	}
	shipment, _ := doc["shipment"].(map[string]any)
	if shipment["tracking"] != "PX-42" {
		t.Errorf("shipment = %v; want tracking PX-42", doc["shipment"])
	}
	if _, ok := doc[aggregate.PartialField]; ok {
		t.Errorf("document = %s; want it whole", res.body)
	}

	svcs.shipping.down.Store(true)
	res = r.do(t, "GET", "/web/orders/o-1", web, "")
	if res.status != 200 {
		t.Fatalf("GET with shipping down = %v; want 200 without the shipment", res)
	}
	doc = res.json(t)
	if _, ok := doc["shipment"]; ok {
		t.Errorf("shipment = %v with shipping down; want none", doc["shipment"])
	}
	partial, _ := doc[aggregate.PartialField].(map[string]any)
	if partial["shipment"] == nil || res.header.Get(aggregate.PartialHeader) != "shipment" {
		t.Errorf("document %s, %s: %v; want the shipment listed as missing", res.body, aggregate.PartialHeader, res.header.Get(aggregate.PartialHeader))
	}
	if doc["order"] == nil || doc["products"] == nil {
		t.Errorf("document = %s; want the order and products still", res.body)
	}

	// Failures in a row open the shipping breaker: the shipment is then
	// left out at once, without calling shipping.
	var reason any
	for range 10 {
		res = r.do(t, "GET", "/web/orders/o-1", web, "")
		partial, _ := res.json(t)[aggregate.PartialField].(map[string]any)
		shipment, _ := partial["shipment"].(map[string]any)
		if reason = shipment["error"]; reason == "unavailable" {
			break
		}
	}
	if reason != "unavailable" {
		t.Fatalf("shipment's failure = %v after shipping failed 10 times; want unavailable (breaker open)", reason)
	}
	before := svcs.shipping.calls()
	if res := r.do(t, "GET", "/web/orders/o-1", web, ""); res.status != 200 {
		t.Errorf("GET with the breaker open = %v; want 200", res)
	}
	if n := svcs.shipping.calls() - before; n != 0 {
		t.Errorf("shipping got %d calls with its breaker open; want 0", n)
	}

	if res := r.do(t, "GET", "/web/orders/o-404", web, ""); res.status != 404 {
		t.Errorf("GET a missing order = %v; want 404", res)
	}
}

func TestMobileBFF(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	mobile := r.token(t, "mobile-app")
	webRes := r.do(t, "GET", "/web/orders/o-1", mobile, "")
	catalogueCalls := svcs.catalogue.calls()
	res := r.do(t, "GET", "/mobile/orders/o-1", mobile, "")
	if res.status != 200 {
		t.Fatalf("GET /mobile/orders/o-1 = %v; want 200", res)
	}
	doc := res.json(t)
	want := map[string]any{"order_id": "o-1", "status": "confirmed", "total_cents": 4597.0, "items": 3.0, "shipment": "in_transit", "tracking": "PX-42"}
	if len(doc) != len(want) {
		t.Errorf("document = %s; want the fields %v", res.body, want)
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v; want %v", k, doc[k], v)
		}
	}
	if len(res.body) >= len(webRes.body) {
		t.Errorf("mobile document %d bytes, web %d; want it smaller", len(res.body), len(webRes.body))
	}
	// Only the web page asks for the products.
	if n := svcs.catalogue.calls(); n != catalogueCalls {
		t.Errorf("the mobile BFF called the catalogue %d times; want 0", n-catalogueCalls)
	}
}

func TestCertFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, "edge-test-from-file")
	r := startEdge(t, newServices(t), func(c *Config) { c.CertFile, c.KeyFile = certFile, keyFile })
	res := r.do(t, "GET", "/api/products/lamp", r.token(t, "web-app"), "")
	if res.status != 200 {
		t.Fatalf("GET = %v; want 200", res)
	}
	if cn := res.resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "edge-test-from-file" {
		t.Errorf("the gateway's certificate is %q; want the file's", cn)
	}

	for _, files := range [][2]string{{certFile, ""}, {"", keyFile}, {filepath.Join(dir, "none.pem"), keyFile}} {
		cfg := newServices(t).config()
		cfg.CertFile, cfg.KeyFile = files[0], files[1]
		if e, err := New(cfg); err == nil {
			_ = e.Close()
			t.Errorf("New(CertFile %q, KeyFile %q) = nil error", files[0], files[1])
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 named cn.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewReportsEveryError(t *testing.T) {
	_, err := New(Config{OrdersURL: "orders:8080", RatePerSecond: -1, IPBurst: -1, Clients: []Client{{ID: "a"}, {ID: "a", Secret: "s"}}})
	if err == nil {
		t.Fatal("New() = nil error")
	}
	for _, want := range []string{"OrdersURL", "CatalogueURL", "ShippingURL", "RatePerSecond", "IPBurst", "Clients[0]", "Clients[1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New() = %v; want it to name %s", err, want)
		}
	}
}

func TestHealthOnEveryServer(t *testing.T) {
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok " + r.URL.Path)) })
	r := startEdge(t, newServices(t), func(c *Config) { c.Health = health })
	for _, base := range []string{r.GatewayURL(), r.TokenURL()[:len(r.TokenURL())-len(TokenPath)], r.WebBFFURL(), r.MobileBFFURL()} {
		for _, path := range []string{"/livez", "/readyz/ping", "/health"} {
			resp, err := r.client.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET %s%s = %d; want 200", base, path, resp.StatusCode)
			}
		}
	}
}

func TestComponentsStopWithNoGoroutineLeft(t *testing.T) {
	svcs := newServices(t)
	r := startEdge(t, svcs, nil)
	web := r.token(t, "web-app")
	for _, p := range []string{"/api/orders/o-1", "/api/products", "/web/orders/o-1", "/mobile/orders/o-1"} {
		if res := r.do(t, "GET", p, web, ""); res.status != 200 {
			t.Fatalf("GET %s = %v; want 200", p, res)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, s := range []*stub{svcs.orders, svcs.catalogue, svcs.shipping} {
		s.srv.Close()
	}
	goleak.VerifyNone(t)
	// And the listeners are closed.
	if _, err := net.Dial("tcp", strings.TrimPrefix(r.GatewayURL(), "https://")); err == nil {
		t.Error("the gateway's port still accepts connections")
	}
}

func TestOneTraceThroughGatewayAndBFF(t *testing.T) {
	// The gateways propagate with the global propagator, which the
	// program sets (prodotel): W3C trace context.
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	svcs := newServices(t)
	r := startEdge(t, svcs, func(c *Config) { c.TracerProvider = tp })
	if res := r.do(t, "GET", "/web/orders/o-1", r.token(t, "web-app"), ""); res.status != 200 {
		t.Fatalf("GET = %v; want 200", res)
	}
	if err := r.stop(); err != nil { // every span has ended
		t.Fatal(err)
	}
	var root sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer && !s.Parent().IsValid() && strings.Contains(s.Name(), "/web/orders/{id}") {
			root = s
		}
	}
	if root == nil {
		t.Fatal("no root server span for GET /web/orders/{id}")
	}
	servers, aggregations := 0, 0
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			continue
		}
		switch {
		case s.SpanKind() == trace.SpanKindServer:
			servers++
		case s.Name() == aggregate.SpanAggregation:
			aggregations++
		}
	}
	if servers != 2 || aggregations != 1 {
		t.Errorf("the trace has %d server spans and %d aggregations; want 2 (gateway, web BFF) and 1", servers, aggregations)
	}
	tp2 := svcs.orders.last("/orders/o-1").Header.Get("Traceparent")
	if !strings.Contains(tp2, root.SpanContext().TraceID().String()) {
		t.Errorf("the orders service got traceparent %q; want the trace %s", tp2, root.SpanContext().TraceID())
	}
}
