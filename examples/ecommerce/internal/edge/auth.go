package edge

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/otelpatterns/patterns/hexagonal"
)

// authServer is the token server's component, "auth": the token
// endpoint and the key set, over plain HTTP (it is reached on loopback
// or inside the deployment's network; put it behind TLS elsewhere).
func (e *Edge) authServer() hexagonal.Component {
	return e.server("auth", e.authLn, nil, authReadTimeout, func() (http.Handler, func() error, error) {
		h := otelhttp.NewHandler(e.tokens.handler(), "auth",
			otelhttp.WithTracerProvider(e.tp), otelhttp.WithMeterProvider(e.mp),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
				// Named by path only for the two known ones, so that
				// random paths make no new span names.
				if r.URL.Path == TokenPath || r.URL.Path == JWKSPath {
					return r.Method + " " + r.URL.Path
				}
				return r.Method
			}))
		return h, func() error { return nil }, nil
	})
}
