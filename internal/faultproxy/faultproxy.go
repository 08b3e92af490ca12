// Package faultproxy puts a fault-injecting TCP proxy (toxiproxy, run in
// the test process) between a test and a real server, so that integration
// tests can cut, freeze, slow down or reset the connections of the client
// under test while the server itself keeps running.
//
// A Proxy listens on a free loopback port and forwards to its upstream.
// Faults apply to the connections through it until removed; [Proxy.Cut]
// closes every connection and refuses new ones until [Proxy.Restore]. The
// proxy is stopped, and its goroutines end, when the test ends.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// Proxy is a fault-injecting proxy in front of one upstream server.
type Proxy struct {
	t    testing.TB
	p    *toxiproxy.Proxy
	addr string
	seq  atomic.Int64
}

var names atomic.Int64

// New starts a proxy to upstream (host:port) on a free loopback port,
// stopped when the test ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	name := fmt.Sprintf("proxy-%d", names.Add(1))
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("faultproxy: starting a proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{t: t, p: p, addr: p.Listen}
}

// Addr returns the proxy's host:port, to connect to instead of the
// upstream's.
func (p *Proxy) Addr() string { return p.addr }

// Host returns the proxy's host.
func (p *Proxy) Host() string {
	h, _, _ := net.SplitHostPort(p.addr)
	return h
}

// Port returns the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// URL returns rawURL (such as a PostgreSQL or NATS URL) with its host and
// port replaced by the proxy's.
func (p *Proxy) URL(rawURL string) string {
	p.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		p.t.Fatalf("faultproxy: parsing %q: %v", rawURL, err)
	}
	u.Host = p.addr
	return u.String()
}

// Direction says which way a fault applies: to what the server sends
// (Downstream) or to what the client sends (Upstream).
type Direction string

// The directions of a fault.
const (
	Downstream Direction = "downstream"
	Upstream   Direction = "upstream"
)

// Fault is a fault in place; Remove takes it away.
type Fault struct {
	p    *Proxy
	name string
}

// Remove takes the fault away. Connections open through the proxy carry on
// without it.
func (f Fault) Remove() {
	if err := f.p.p.Toxics.RemoveToxic(context.Background(), f.name); err != nil {
		f.p.t.Errorf("faultproxy: removing %s: %v", f.name, err)
	}
}

func (p *Proxy) add(typ string, dir Direction, attrs map[string]any) Fault {
	p.t.Helper()
	name := fmt.Sprintf("%s-%s-%d", typ, dir, p.seq.Add(1))
	body, _ := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": string(dir), "toxicity": 1.0, "attributes": attrs,
	})
	if _, err := p.p.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		p.t.Fatalf("faultproxy: adding %s: %v", name, err)
	}
	return Fault{p: p, name: name}
}

// Latency delays the data flowing in direction dir by d.
func (p *Proxy) Latency(dir Direction, d time.Duration) Fault {
	p.t.Helper()
	return p.add("latency", dir, map[string]any{"latency": d.Milliseconds()})
}

// Blackhole drops the data flowing in direction dir and keeps the
// connections open: the peer waits for an answer that never comes, as
// behind a dead router or a frozen server.
func (p *Proxy) Blackhole(dir Direction) Fault {
	p.t.Helper()
	return p.add("timeout", dir, map[string]any{"timeout": 0})
}

// ResetPeer resets (TCP RST) every connection that sends data in direction
// dir, after d.
//
// toxiproxy v2.5.0 leaves a goroutine blocked for good for each
// connection it resets while data flows through it (the toxic in front
// of the reset one sends to it after it stopped reading): a package whose
// tests reset busy connections and check for leaks with goleak ignores it
// with [IgnoreResetLeaks].
func (p *Proxy) ResetPeer(dir Direction, d time.Duration) Fault {
	p.t.Helper()
	return p.add("reset_peer", dir, map[string]any{"timeout": d.Milliseconds()})
}

// Bandwidth limits the data flowing in direction dir to kbps kilobytes a
// second.
func (p *Proxy) Bandwidth(dir Direction, kbps int) Fault {
	p.t.Helper()
	return p.add("bandwidth", dir, map[string]any{"rate": kbps})
}

// Cut closes every connection through the proxy and refuses new ones until
// [Proxy.Restore]. Like [Proxy.ResetPeer], it can leave a goroutine of
// toxiproxy's blocked for a connection data was flowing through (see
// [IgnoreResetLeaks]).
func (p *Proxy) Cut() { p.p.Stop() }

// Restore accepts connections again after [Proxy.Cut], on the same port.
func (p *Proxy) Restore() {
	p.t.Helper()
	if err := p.p.Start(); err != nil {
		p.t.Fatalf("faultproxy: restoring the proxy on %s: %v", p.addr, err)
	}
}

// IgnoreResetLeaks is the goleak option that ignores the goroutines that
// toxiproxy leaves blocked after [Proxy.ResetPeer] resets, or [Proxy.Cut]
// closes, a busy connection.
func IgnoreResetLeaks() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe")
}
