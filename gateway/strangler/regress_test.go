package strangler_test

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/gateway/strangler"
	"github.com/otelpatterns/patterns/internal/telemetry/telemetrytest"
)

// TestShadowUnboundedBody: MaxBodyBytes at math.MaxInt64, the way to say
// "no bound", still hands the primary (and the copy) the whole body; the
// bound plus one, overflowing, once read nothing and sent the primary an
// empty body.
func TestShadowUnboundedBody(t *testing.T) {
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{Methods: []string{http.MethodPut}, MaxBodyBytes: math.MaxInt64}),
	}, nil)
	copied := make(chan string, 1)
	e.modern.handle(func(w http.ResponseWriter, r *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		copied <- b.String()
	})
	code, body := e.send(t, http.MethodPut, "/orders/1", `{"n":1}`)
	if code != http.StatusOK || !strings.Contains(body, `"Body":"{\"n\":1}"`) {
		t.Fatalf("PUT: %d %s; want legacy's echo of the body", code, body)
	}
	e.drain(t)
	select {
	case got := <-copied:
		if got != `{"n":1}` {
			t.Errorf("the copy's body = %q; want the request's", got)
		}
	default:
		t.Error("no copy reached the new side")
	}
}

// TestSetShadowAfterShutdown: SetShadow(true) after Shutdown leaves
// shadowing off, as Shutdown says: it turned it back on for requests
// that were then read, teed and copied for nothing, and each counted as
// dropped (closed).
func TestSetShadowAfterShutdown(t *testing.T) {
	tel := telemetrytest.New(t)
	e := newEnv(t, []strangler.Option{
		strangler.WithShadow(strangler.Shadow{}),
		strangler.WithMeterProvider(tel.MeterProvider),
	}, nil)
	e.drain(t)
	e.f.SetShadow(true)
	if side := e.side(t, "/orders/1"); side != "legacy" {
		t.Fatalf("after Shutdown: %s; want legacy", side)
	}
	if tel.HasMetric(t, shadowMetric) {
		t.Errorf("after Shutdown, shadow copies were counted; want none:\n%s", tel.Describe(t, shadowMetric))
	}
}
