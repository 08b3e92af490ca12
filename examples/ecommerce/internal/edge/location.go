package edge

import (
	"net/http"
	"strings"
)

// relocate is a route's middleware that maps a Location header of the
// upstream's answer from the upstream's path space (from, such as
// "/orders/") into the gateway's (to, "/api/orders/"), as nginx's
// proxy_redirect does: the 202 of POST /api/orders points the client at
// GET /api/orders/{id}, a path the gateway serves.
func relocate(from, to string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&relocating{ResponseWriter: w, from: from, to: to}, r)
		})
	}
}

// relocating rewrites Location when the final header is written.
type relocating struct {
	http.ResponseWriter
	from, to string
	done     bool
}

func (w *relocating) WriteHeader(code int) {
	// An informational answer (the upstream's 100 Continue, which the
	// proxy passes on, or 103 Early Hints) comes before the final one,
	// whose Location is the one to map.
	if !w.done && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.done = true
		h := w.Header()
		if loc := h.Get("Location"); strings.HasPrefix(loc, w.from) {
			h.Set("Location", w.to+strings.TrimPrefix(loc, w.from))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *relocating) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer underneath (to flush,
// to set deadlines).
func (w *relocating) Unwrap() http.ResponseWriter { return w.ResponseWriter }
