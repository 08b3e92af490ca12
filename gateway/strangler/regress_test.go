package strangler_test

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/gateway/strangler"
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
