package gateway

import (
	"context"
	"fmt"
	"net/http"
)

// Proxy returns a handler that proxies requests to the upstream named
// name, as a route with that Upstream would: with the upstream's
// balancing, breakers and retries, the forwarding headers and the request
// ID, and the gateway's own 502, 503 and 504 when the upstream does not
// answer. The path is sent as the request has it. It is the building
// block of a route Handler that chooses among upstreams per request, as
// the strangler facade of gateway/strangler does.
//
// The upstream is looked up per request in the live routing table, so a
// handler made before [Gateway.Update] follows the upstream's new
// targets; a request for an upstream the table does not have gets 503.
// Served outside the gateway (not from a route), the request has no
// client address or request ID to forward.
func (g *Gateway) Proxy(name string) http.Handler {
	return &directProxy{g: g, name: name}
}

// ProxyTo is [Gateway.Proxy] for a handler that the gateway serves (a
// route's Handler), built before the gateway is: it proxies to the
// upstream named name of the gateway serving the request. A request that
// no gateway serves gets 503.
//
//	facade, err := strangler.New(gateway.ProxyTo("legacy"), gateway.ProxyTo("orders"))
//	...
//	g, err := gateway.New(gateway.WithUpstreams(...), gateway.WithRoutes(gateway.Route{
//		Pattern: "/orders/", Handler: facade,
//	}))
func ProxyTo(name string) http.Handler { return &directProxy{name: name} }

type directProxy struct {
	g    *Gateway // nil for ProxyTo
	name string
}

func (p *directProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL == nil {
		writeError(w, http.StatusInternalServerError) // the caller's bug
		return
	}
	t := tableFor(p.g, r.Context())
	if t == nil {
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	rt := t.direct[p.name]
	if rt == nil {
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	rt.proxyServe(w, r)
}

// Transport returns a round tripper that sends a request whose URL host
// is an upstream's name ("http://orders/orders/42") to that upstream,
// with its balancing, breakers and retries and a client span per
// attempt, and the request ID of the request being served, if the call
// is made with its context. The scheme of the URL is ignored: each
// target's own is used, and so is its host for the Host header, unless
// the request sets a Host other than the upstream's name.
// Route handlers that call upstreams themselves (aggregations, GraphQL
// resolvers) use it, so those calls are protected as proxied ones are:
//
//	client := &http.Client{Transport: g.Transport()}
//	resp, err := client.Get("http://orders/orders/42")
//
// Like [Gateway.Proxy], it looks the upstream up in the live table. A
// host that names no upstream is an error matching [ErrUnknownUpstream];
// an upstream with no target available, one matching [ErrUnavailable].
func (g *Gateway) Transport() http.RoundTripper { return upstreamTransport{g} }

// UpstreamTransport is [Gateway.Transport] for handlers that the gateway
// serves, built before the gateway is: it sends requests to the upstreams
// of the gateway serving the request whose context they carry, so calls
// must be made with that context (or one derived from it). Other
// requests get an error.
func UpstreamTransport() http.RoundTripper { return upstreamTransport{} }

type upstreamTransport struct{ g *Gateway } // g nil for UpstreamTransport

func (t upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, fmt.Errorf("gateway: Transport: the request has no URL")
	}
	tb := tableFor(t.g, req.Context())
	if tb == nil {
		closeBody(req)
		return nil, fmt.Errorf("gateway: UpstreamTransport: the request's context is not that of a request the gateway serves")
	}
	u := tb.byName[req.URL.Host]
	if u == nil {
		closeBody(req)
		return nil, fmt.Errorf("%w named %q", ErrUnknownUpstream, req.URL.Host)
	}
	// The upstream sets each attempt's target on the URL; the caller's
	// request is not to be changed.
	out := *req
	url := *req.URL
	out.URL = &url
	if out.Host == req.URL.Host {
		// The upstream's name, as http.NewRequest put it: the target
		// gets its own host, as proxied requests do.
		out.Host = ""
	}
	if st := stateOf(req.Context()); st != nil && st.requestID != nil {
		if _, set := req.Header[st.table.requestID]; !set {
			// The calls made for a request carry its ID, as its proxied
			// requests do.
			out.Header = req.Header.Clone()
			if out.Header == nil {
				out.Header = http.Header{}
			}
			out.Header[st.table.requestID] = st.requestID
		}
	}
	return u.RoundTrip(&out)
}

// tableFor is the routing table that Proxy and Transport of g use for a
// request with context ctx: the one the request started on, if g (or,
// for ProxyTo and UpstreamTransport, g nil: any gateway) serves it;
// else g's live one.
func tableFor(g *Gateway, ctx context.Context) *table {
	if st := stateOf(ctx); st != nil && (g == nil || st.table.owner == g) {
		return st.table
	}
	if g != nil {
		return g.table.Load()
	}
	return nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
