package gateway

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestErrorHandlerNeverWritesAfterStart protects the error handler's
// promise: once the response has started (or the connection was
// hijacked for a WebSocket), it writes nothing.
func TestErrorHandlerNeverWritesAfterStart(t *testing.T) {
	rt := &route{spec: &routeSpec{}}
	for _, pw := range []*proxyWriter{{started: true}, {hijacked: true}} {
		rec := httptest.NewRecorder()
		pw.ResponseWriter = rec
		rt.proxyError(pw, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("upstream broke off"))
		if rec.Body.Len() != 0 || len(rec.Header()) != 0 || rec.Flushed {
			t.Errorf("proxyError after start (%+v) wrote %d bytes, headers %v", *pw, rec.Body.Len(), rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	rt.proxyError(&proxyWriter{ResponseWriter: rec}, httptest.NewRequest(http.MethodGet, "/", nil), errors.New("refused"))
	if rec.Code != http.StatusBadGateway {
		t.Errorf("proxyError before start wrote %d; want 502", rec.Code)
	}
}

func TestParseForwarded(t *testing.T) {
	tests := []struct {
		in   string
		want []forwardedElement
		ok   bool
	}{
		{`for=192.0.2.60;proto=http;by=203.0.113.43`, []forwardedElement{{For: "192.0.2.60", Proto: "http", By: "203.0.113.43"}}, true},
		{`For="[2001:db8:cafe::17]:4711"`, []forwardedElement{{For: "[2001:db8:cafe::17]:4711"}}, true},
		{`for=192.0.2.43, for=198.51.100.17`, []forwardedElement{{For: "192.0.2.43"}, {For: "198.51.100.17"}}, true},
		{`for="_gazonk"; host="a,b;c"`, []forwardedElement{{For: "_gazonk", Host: "a,b;c"}}, true},
		{`for="a\"b"`, []forwardedElement{{For: `a"b`}}, true},
		{`for=`, nil, false},
		{`for="unterminated`, nil, false},
		{`=x`, nil, false},
		{`for=a b`, nil, false},
	}
	for _, tt := range tests {
		got, err := parseForwarded(tt.in)
		if (err == nil) != tt.ok || tt.ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseForwarded(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseNode(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "192.0.2.1", "192.0.2.1:80": "192.0.2.1", "[2001:db8::1]": "2001:db8::1",
		"[2001:db8::1]:8080": "2001:db8::1", "[::ffff:192.0.2.1]": "192.0.2.1",
		"unknown": "", "_hidden": "", "2001:db8::1": "", "[192.0.2.1]": "",
	} {
		a, ok := parseNode(in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("parseNode(%q) = %q; want %q", in, got, want)
		}
	}
}

// FuzzForwarded feeds forwarding headers from a trusted peer: the client
// address is always a valid address that is the peer or appears in the
// headers, parsing never panics, and the Forwarded element the gateway
// writes for any host parses back to what it wrote.
func FuzzForwarded(f *testing.F) {
	f.Add("203.0.113.9, 10.1.1.1", "", "api.example.com")
	f.Add("", `for="[2001:db8::1]:4711";proto=https, for=10.0.0.3`, "a:8080")
	f.Add("garbage,,, ", `for=_x;by=unknown`, `h"q\`)
	f.Add("[2001:db8::2]:1, ::ffff:10.0.0.1", "for", "")
	trusted, _ := parseProxies([]string{"10.0.0.0/8", "127.0.0.1"})
	peer := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, xff, fwd, host string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		client := trusted.clientAddr(h, peer)
		if !client.IsValid() {
			t.Fatalf("clientAddr(%q, %q) is not valid", xff, fwd)
		}
		hops := map[netip.Addr]bool{peer: true}
		for _, v := range h["X-Forwarded-For"] {
			for hop := range strings.SplitSeq(v, ",") {
				if a, ok := parseHop(strings.TrimSpace(hop)); ok {
					hops[a] = true
				}
			}
		}
		if elems, err := parseForwarded(strings.Join(h["Forwarded"], ",")); err == nil {
			for _, e := range elems {
				if a, ok := parseNode(e.For); ok {
					hops[a] = true
				}
			}
		}
		if !hops[client] {
			t.Fatalf("clientAddr(%q, %q) = %s: neither the peer nor a hop of the headers", xff, fwd, client)
		}
		if elems, err := parseForwarded(fwd); err == nil {
			for _, e := range elems {
				again, err := parseForwarded(formatForwarded(e))
				if err != nil || len(again) != 1 || again[0] != e {
					t.Fatalf("element %+v written as %q parses back as %+v, %v", e, formatForwarded(e), again, err)
				}
			}
		}
		e := forwardedElement{For: nodeOf(peer), Host: host, Proto: "https"}
		if !validHeaderValue(host) {
			return
		}
		again, err := parseForwarded(formatForwarded(e))
		if err != nil || len(again) != 1 || again[0] != e {
			t.Fatalf("hop %+v written as %q parses back as %+v, %v", e, formatForwarded(e), again, err)
		}
	})
}

// validHeaderValue reports whether s can be a header value (what a Host
// header that reached the gateway can hold).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// TestSetForwardedFastPath: the one-allocation Forwarded element of an
// IPv4 peer is the one formatForwarded makes, whatever the host (a
// token, with a port, with characters to escape).
func TestSetForwardedFastPath(t *testing.T) {
	for _, host := range []string{"api.example.com", "127.0.0.1:8080", "[::1]:80", `we"ird\host`} {
		in := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		in.Host = host
		out := in.Clone(in.Context())
		out.Header = http.Header{}
		st := &reqState{peer: netip.MustParseAddr("192.0.2.7")}
		setForwarded(&httputil.ProxyRequest{In: in, Out: out}, st)
		want := formatForwarded(forwardedElement{For: "192.0.2.7", Host: host, Proto: "http"})
		if got := out.Header.Get("Forwarded"); got != want {
			t.Errorf("host %q: Forwarded = %q; want %q", host, got, want)
		}
		if got := out.Header.Get("X-Forwarded-For"); got != "192.0.2.7" {
			t.Errorf("host %q: X-Forwarded-For = %q; want 192.0.2.7", host, got)
		}
	}
}

// TestSpoofedCoversSpoofable: spoofed looks at a name's first letter
// before comparing; every name of spoofable must pass it, and what is
// not there must not.
func TestSpoofedCoversSpoofable(t *testing.T) {
	for _, name := range spoofable {
		if !spoofed(name) {
			t.Errorf("spoofed(%q) = false", name)
		}
	}
	for _, name := range []string{"", "Accept", "X-Request-Id", "Forwarded-For", "x-forwarded-for"} {
		if spoofed(name) {
			t.Errorf("spoofed(%q) = true", name)
		}
	}
}

// TestSetForwardedTwice: the first proxying of a request takes the
// request state's room for the forwarding headers' values; a second one
// (a handler may proxy a request twice) must not write over them.
func TestSetForwardedTwice(t *testing.T) {
	st := &reqState{peer: netip.MustParseAddr("192.0.2.7")}
	proxy := func(host string) http.Header {
		in := httptest.NewRequest(http.MethodGet, "http://x/", nil)
		in.Host = host
		out := in.Clone(in.Context())
		out.Header = http.Header{}
		setForwarded(&httputil.ProxyRequest{In: in, Out: out}, st)
		return out.Header
	}
	first := proxy("first.example")
	want := first.Clone()
	proxy("second.example")
	if !reflect.DeepEqual(first, want) {
		t.Errorf("the first proxying's headers became %v; want %v", first, want)
	}
}

// TestNewRequestID checks the IDs the gateway makes: 26 characters of the
// base32 alphabet that the gateway accepts back from a client, none
// repeated, and every position random (a position that ran out of bits
// would hold one character only).
func TestNewRequestID(t *testing.T) {
	const n = 2000
	var st reqState
	seen := make(map[string]bool, n)
	var perPos [26]map[byte]bool
	for i := range perPos {
		perPos[i] = map[byte]bool{}
	}
	for range n {
		id := st.newRequestID()
		if len(id) != 26 || !validRequestID(id) || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			t.Fatalf("newRequestID() = %q; want 26 characters of the base32 alphabet", id)
		}
		if seen[id] {
			t.Fatalf("newRequestID() repeated %q", id)
		}
		seen[id] = true
		for i := range id {
			perPos[i][id[i]] = true
		}
	}
	for i, chars := range perPos {
		if len(chars) != 32 {
			t.Errorf("position %d held %d distinct characters in %d IDs; want all 32", i, len(chars), n)
		}
	}
}

// TestEjectionNeverOverflows: each ejection of a target doubled the one
// before with a shift that could overflow, into a negative time (taken
// for MaxEjection) or a short one (taken as it was); and the end of an
// ejection, now plus a MaxEjection meant as for ever, wrapped into the
// past, so that the target was back in service at once.
func TestEjectionNeverOverflows(t *testing.T) {
	for level, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		if got := ejection(time.Second, 10*time.Second, level+1); got != want*time.Second {
			t.Errorf("ejection(1s, 10s, %d) = %v; want %v", level+1, got, want*time.Second)
		}
	}
	for _, base := range []time.Duration{time.Second, 1<<33 + 1, time.Duration(math.MaxInt64 / 3)} {
		prev := time.Duration(0)
		for level := 1; level <= 100; level++ {
			d := ejection(base, math.MaxInt64, level)
			if d < prev || d < base {
				t.Fatalf("ejection(%v, max, %d) = %v; want at least %v and the %v before it", base, level, d, base, prev)
			}
			prev = d
		}
	}

	now := int64(time.Hour)
	u := &upstream{spec: &upstreamSpec{Upstream: Upstream{Outlier: &Outlier{}}}, clock: func() int64 { return now }}
	u.spec.outlier = Outlier{ConsecutiveFailures: 1, BaseEjection: time.Second, MaxEjection: math.MaxInt64, MaxEjectedPercent: 100}
	tg := &target{state: newTargetState("u", "h", 80)}
	u.targets = []*target{tg}
	u.stats = &upstreamStats{}
	u.stats.live.Store(u)
	for i := range 40 {
		u.record(tg, true)
		var mono int64
		if u.inService(tg, &mono) {
			t.Fatalf("ejection %d: the target is in service at once (ejected until %d, now %d)", i+1, tg.state.ejectedUntil.Load(), now)
		}
		if until := tg.state.ejectedUntil.Load(); until < math.MaxInt64 {
			now = until // the end of this ejection: in service again, for the next
			mono = 0
			if !u.inService(tg, &mono) {
				t.Fatalf("ejection %d: the target is not back in service at its end", i+1)
			}
		} else {
			break // ejected for ever, as configured
		}
	}
}
