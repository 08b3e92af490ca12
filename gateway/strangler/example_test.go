package strangler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/otelpatterns/patterns/gateway"
	"github.com/otelpatterns/patterns/gateway/strangler"
)

// service starts a local upstream that answers with its name and the
// path it was asked for, as JSON.
func service(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"service":%q,"path":%q}`, name, r.URL.Path)
	}))
}

// facade builds a facade between the upstreams legacy and new with
// opts, and a gateway with those upstreams and a route /orders/ served
// by it. gateway.ProxyTo lets the facade be built first.
func facade(legacyURL, newURL string, opts ...strangler.Option) (*gateway.Gateway, *strangler.Facade) {
	f, err := strangler.New(gateway.ProxyTo("legacy"), gateway.ProxyTo("new"), opts...)
	if err != nil {
		log.Fatal(err)
	}
	g, err := gateway.New(
		gateway.WithUpstreams(
			gateway.Upstream{Name: "legacy", Targets: []gateway.Target{{URL: legacyURL}}},
			gateway.Upstream{Name: "new", Targets: []gateway.Target{{URL: newURL}}},
		),
		gateway.WithRoutes(gateway.Route{Pattern: "/orders/", Handler: f}),
	)
	if err != nil {
		log.Fatal(err)
	}
	return g, f
}

func get(srv *httptest.Server, path string, header ...string) string {
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct{ Service string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.Service
}

// Rules send chosen paths and callers to the new side; the rest stays
// on legacy while the percentage is 0.
func ExampleNew() {
	legacy, modern := service("legacy"), service("new")
	defer legacy.Close()
	defer modern.Close()
	g, f := facade(legacy.URL, modern.URL,
		strangler.WithPaths(strangler.TargetNew, "GET /orders/{id}/invoice"),
		strangler.WithHeader(strangler.TargetNew, "X-Beta", "on"),
	)
	defer g.Close()
	defer f.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	fmt.Println("/orders/7:", get(srv, "/orders/7"))
	fmt.Println("/orders/7/invoice:", get(srv, "/orders/7/invoice"))
	fmt.Println("/orders/7 as a beta tester:", get(srv, "/orders/7", "X-Beta", "on"))
	// Output:
	// /orders/7: legacy
	// /orders/7/invoice: new
	// /orders/7 as a beta tester: new
}

// Configuration errors come all at once, each naming its field.
func ExampleNew_errors() {
	_, err := strangler.New(nil, http.NotFoundHandler(),
		strangler.WithPercent(150),
		strangler.WithShadow(strangler.Shadow{Ignore: []string{"items..id"}}),
	)
	fmt.Println(err)
	// Output:
	// strangler: legacy: must not be nil
	// strangler: WithPercent(150): must be in [0, 100]
	// strangler: Shadow.Ignore[0]: "items..id": empty segment (two dots, or a dot at an end)
}

// The percentage moves at run time; each user, keyed here by a header,
// stays where it was as it rises.
func ExampleFacade_SetPercent() {
	legacy, modern := service("legacy"), service("new")
	defer legacy.Close()
	defer modern.Close()
	g, f := facade(legacy.URL, modern.URL, strangler.WithStickyKey(strangler.ByHeader("X-User")))
	defer g.Close()
	defer f.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	users := []string{"ann", "bob", "cyd", "dee", "eve", "fay", "gus", "hal"}
	for _, pct := range []float64{0, 10, 50, 100} {
		if err := f.SetPercent(pct); err != nil {
			log.Fatal(err)
		}
		var onNew []string
		for _, u := range users {
			if get(srv, "/orders/1", "X-User", u) == "new" {
				onNew = append(onNew, u)
			}
		}
		fmt.Printf("%v%%: %v\n", pct, onNew)
	}
	// Output:
	// 0%: []
	// 10%: [hal]
	// 50%: [ann cyd dee gus hal]
	// 100%: [ann bob cyd dee eve fay gus hal]
}

// A feature flag decides from the caller's claims, which the gateway's
// authentication puts in the request's context.
func ExampleWithFlag() {
	flag := func(r *http.Request) (strangler.Target, bool) {
		p, ok := gateway.PrincipalFrom(r.Context())
		if ok && p.Claims["tenant"] == "acme" {
			return strangler.TargetNew, true
		}
		return 0, false // not decided: the percentage decides
	}
	f, err := strangler.New(echo("legacy"), echo("new"), strangler.WithFlag(flag))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	for _, tenant := range []string{"acme", "initech"} {
		p := &gateway.Principal{Subject: "u1", Claims: map[string]any{"tenant": tenant}}
		r := httptest.NewRequestWithContext(gateway.WithPrincipal(context.Background(), p), http.MethodGet, "/orders/1", nil)
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		fmt.Println(tenant, "->", w.Body.String())
	}
	// Output:
	// acme -> new
	// initech -> legacy
}

func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
}

// Shadow traffic: clients get legacy's answers, a copy of each GET goes
// to the new side, and the answers are compared without the fields that
// differ by nature. The new service has one deliberate difference.
func ExampleWithShadow() {
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"L-1","created_at":"2019-03-01","total":20.0,"currency":"EUR"}`)
	}))
	defer legacy.Close()
	modern := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		currency := "EUR"
		if strings.HasSuffix(r.URL.Path, "/2") {
			currency = "eur" // the deliberate difference
		}
		fmt.Fprintf(w, `{"currency":%q,"total":20,"id":"0191-aa","created_at":"2025-01-01T00:00:00Z"}`, currency)
	}))
	defer modern.Close()
	g, f := facade(legacy.URL, modern.URL, strangler.WithShadow(strangler.Shadow{
		Ignore: []string{"id", "created_at"},
	}))
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, path := range []string{"/orders/1", "/orders/2", "/orders/3"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
	}
	// Shutdown waits for the queued copies to be compared.
	if err := f.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	for _, d := range f.Diffs() {
		fmt.Println(d.Method, d.Path, "primary:", d.Primary)
		for _, fd := range d.Fields {
			fmt.Printf("  %s: legacy %s, new %s\n", fd.Field, fd.Legacy, fd.New)
		}
	}
	// Output:
	// GET /orders/2 primary: legacy
	//   body.currency: legacy "EUR", new "eur"
}

// Buckets are the same in every process: a user's side can be computed
// anywhere, for support or for a dashboard.
func ExampleBucket() {
	for _, user := range []string{"alice", "bob"} {
		b := strangler.Bucket(user)
		fmt.Printf("%s: bucket %d, on the new side from %.2f%%\n", user, b, float64(b+1)/100)
	}
	// Output:
	// alice: bucket 7236, on the new side from 72.37%
	// bob: bucket 9952, on the new side from 99.53%
}

// A route half moved: each user goes to one side by the bucket of a
// sticky key, and every GET is shadowed to the other side, whose answer
// is compared with the one the client got. The two sides agree but for
// the field that names them, which the comparison ignores.
func Example() {
	var calls [2]atomic.Int32 // legacy, new
	side := func(name string, n *atomic.Int32) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"side":%q,"order":%q,"total":20}`, name, r.URL.Path)
		})
	}
	f, err := strangler.New(side("legacy", &calls[0]), side("new", &calls[1]),
		strangler.WithStickyKey(strangler.ByHeader("X-User")),
		strangler.WithPercent(50),
		strangler.WithShadow(strangler.Shadow{Ignore: []string{"side"}}),
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, user := range []string{"ann", "bob", "cyd", "dee"} {
		r := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
		r.Header.Set("X-User", user)
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		var answer struct{ Side string }
		_ = json.Unmarshal(w.Body.Bytes(), &answer)
		fmt.Printf("%s (bucket %d): %s\n", user, strangler.Bucket(user), answer.Side)
	}
	// Shutdown waits for the shadow copies to be compared.
	if err := f.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("calls: legacy %d, new %d; differences: %d\n", calls[0].Load(), calls[1].Load(), len(f.Diffs()))
	// Output:
	// ann (bucket 1683): new
	// bob (bucket 9952): legacy
	// cyd (bucket 3960): new
	// dee (bucket 1296): new
	// calls: legacy 4, new 4; differences: 0
}
