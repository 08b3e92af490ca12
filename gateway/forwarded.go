package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// spoofable are the request headers by which a client could pass for
// another address, host or scheme. They are removed from the requests of
// peers that are not trusted proxies, before anything reads them.
// X-Forwarded-Ssl ("on") and X-Forwarded-Scheme say the scheme too, and
// some frameworks believe them before X-Forwarded-Proto (Rack does);
// Spring's ForwardedHeaderFilter removes the same set. Front-End-Https
// ("on", Microsoft's) says the scheme as well, and True-Client-Ip
// (Akamai's, Cloudflare's) and X-Client-Ip the client's address, which
// frameworks and rate limiters read before X-Forwarded-For (Express's
// request-ip, Rails' RemoteIp list them).
var spoofable = [...]string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Real-Ip",
	"True-Client-Ip", "X-Client-Ip", "Front-End-Https",
}

// spoofed reports whether name is one of spoofable.
func spoofed(name string) bool {
	if name == "" {
		return false
	}
	switch name[0] { // each starts with one of these: most names are out at once
	case 'F', 'T', 'X':
		for _, s := range spoofable {
			if name == s {
				return true
			}
		}
	}
	return false
}

// proxies is the trusted-proxies list.
type proxies []netip.Prefix

// parseProxies parses WithTrustedProxies' arguments, naming each bad one.
func parseProxies(cidrs []string) (proxies, []error) {
	var (
		out  proxies
		errs []error
	)
	for i, s := range cidrs {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("gateway: trusted_proxies[%d]: %q is not a CIDR prefix", i, cidrs[i]))
				continue
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("gateway: trusted_proxies[%d]: %q is neither a CIDR prefix nor an IP address", i, cidrs[i]))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errs
}

func (p proxies) trusts(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses a request's RemoteAddr.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// clientAddr returns the client's address for a request from a trusted
// peer: walking the forwarding chain from the right (the hop nearest the
// gateway), the first address that is not a trusted proxy. The chain is
// X-Forwarded-For, or Forwarded's for= values when there is no
// X-Forwarded-For. The walk stops at a hop it cannot read (an obfuscated
// or "unknown" node, garbage) and answers the last address it could; when
// every hop is trusted it answers the left-most.
func (p proxies) clientAddr(h http.Header, peer netip.Addr) netip.Addr {
	client := peer
	if xff := h["X-Forwarded-For"]; len(xff) > 0 {
		for i := len(xff) - 1; i >= 0; i-- {
			v := xff[i]
			for {
				j := strings.LastIndexByte(v, ',')
				hop, ok := parseHop(strings.TrimSpace(v[j+1:]))
				if !ok {
					return client
				}
				client = hop
				if !p.trusts(hop) {
					return client
				}
				if j < 0 {
					break
				}
				v = v[:j]
			}
		}
		return client
	}
	fwd := h["Forwarded"]
	if len(fwd) == 0 {
		return client
	}
	elems, err := parseForwarded(strings.Join(fwd, ","))
	if err != nil {
		return client
	}
	for i := len(elems) - 1; i >= 0; i-- {
		hop, ok := parseNode(elems[i].For)
		if !ok {
			return client
		}
		client = hop
		if !p.trusts(hop) {
			return client
		}
	}
	return client
}

// parseHop parses an X-Forwarded-For entry: an IP address, perhaps with a
// port, IPv6 perhaps in brackets.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// parseNode parses a Forwarded for= node (RFC 7239 section 6): an IPv4
// address or a bracketed IPv6 address, with an optional port. Obfuscated
// identifiers and "unknown" are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	host, _, _ := strings.Cut(s, ":")
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// forwardedElement is one element of a Forwarded header: one hop.
type forwardedElement struct {
	For, By, Host, Proto string
}

var errForwardedSyntax = errors.New("gateway: malformed Forwarded header")

// parseForwarded parses a Forwarded header value (RFC 7239 section 4):
// comma-separated elements of semicolon-separated name=value pairs, values
// tokens or quoted strings. Names other than for, by, host and proto are
// skipped. It fails on anything malformed, since a chain that cannot be
// read cannot be trusted.
func parseForwarded(v string) ([]forwardedElement, error) {
	var (
		out []forwardedElement
		cur forwardedElement
	)
	i := 0
	skipOWS := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	for {
		skipOWS()
		if i < len(v) && v[i] != ',' && v[i] != ';' {
			start := i
			for i < len(v) && isTokenChar(v[i]) {
				i++
			}
			name := v[start:i]
			if name == "" || i >= len(v) || v[i] != '=' {
				return nil, errForwardedSyntax
			}
			i++
			var val string
			if i < len(v) && v[i] == '"' {
				i++
				var b strings.Builder
				for {
					if i >= len(v) {
						return nil, errForwardedSyntax
					}
					c := v[i]
					if c == '"' {
						i++
						break
					}
					if c == '\\' {
						i++
						if i >= len(v) {
							return nil, errForwardedSyntax
						}
						c = v[i]
					}
					if c < 0x20 && c != '\t' || c == 0x7f {
						return nil, errForwardedSyntax
					}
					b.WriteByte(c)
					i++
				}
				val = b.String()
			} else {
				start := i
				for i < len(v) && isTokenChar(v[i]) {
					i++
				}
				val = v[start:i]
				if val == "" {
					return nil, errForwardedSyntax
				}
			}
			switch strings.ToLower(name) {
			case "for":
				cur.For = val
			case "by":
				cur.By = val
			case "host":
				cur.Host = val
			case "proto":
				cur.Proto = val
			}
			skipOWS()
		}
		if i >= len(v) {
			out = append(out, cur)
			return out, nil
		}
		switch v[i] {
		case ';':
		case ',':
			out = append(out, cur)
			cur = forwardedElement{}
		default:
			return nil, errForwardedSyntax
		}
		i++
	}
}

// formatForwarded returns the Forwarded element of one hop.
func formatForwarded(e forwardedElement) string {
	if e.By == "" && isToken(e.For) && isToken(e.Host) && isToken(e.Proto) {
		return "for=" + e.For + ";host=" + e.Host + ";proto=" + e.Proto // the usual hop, in one allocation
	}
	var b strings.Builder
	b.Grow(len(e.For) + len(e.By) + len(e.Host) + len(e.Proto) + 32)
	pair := func(name, val string) {
		if val == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		b.WriteByte('=')
		writeValue(&b, val)
	}
	pair("for", e.For)
	pair("by", e.By)
	pair("host", e.Host)
	pair("proto", e.Proto)
	return b.String()
}

// nodeOf is an address as a Forwarded node: IPv6 in brackets.
func nodeOf(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func isToken(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isTokenChar(v[i]) {
			return false
		}
	}
	return v != ""
}

// appendValue appends v as a Forwarded value: a token, or else a quoted
// string ("127.0.0.1:8080", whose colon is not a token character).
func appendValue(b []byte, v string) []byte {
	if isToken(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

func writeValue(b *strings.Builder, v string) {
	if isToken(v) {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// setForwarded sets the outbound request's forwarding headers. From a
// trusted peer, the inbound values are kept and the gateway's hop
// appended; from any other peer they were removed on arrival, and the
// gateway's hop is the whole chain. A trusted peer that sent one chain
// and not the other (a load balancer sending X-Forwarded-* only) has the
// other made from it, so that the two name the same client: an upstream
// reading Forwarded first would otherwise take the peer for the client.
func setForwarded(pr *httputil.ProxyRequest, st *reqState) {
	in, out := pr.In, pr.Out
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	h := out.Header
	// One backing array for the four single-valued headers, each a
	// full slice of its own (an append to one cannot spill into another):
	// the request state's, for the request's first proxying (a handler
	// may proxy one request twice).
	var vals []string
	if st.fwdTaken.CompareAndSwap(false, true) {
		vals = st.fwdVals[:]
	} else {
		vals = make([]string, len(st.fwdVals))
	}
	one := func(i int, v string) []string { vals[i] = v; return vals[i : i+1 : i+1] }
	hop := forwardedElement{Host: in.Host, Proto: proto}
	var fwd string
	if st.peer.IsValid() {
		var peer string
		if st.peer.Is4() && in.Host != "" {
			// The usual hop, in one allocation: the Forwarded element,
			// of which the address is a part.
			var buf [128]byte
			b := append(buf[:0], "for="...)
			b = st.peer.AppendTo(b)
			n := len(b)
			b = appendValue(append(b, ";host="...), in.Host)
			b = append(append(b, ";proto="...), proto...)
			fwd = string(b)
			peer = fwd[len("for="):n]
		} else {
			peer = st.peer.String()
			hop.For = peer
			if st.peer.Is6() {
				hop.For = "[" + peer + "]"
			}
		}
		prior := carried(in.Header, "X-Forwarded-For", st)
		if len(prior) == 0 && st.peerTrusted {
			prior = xffFromForwarded(carried(in.Header, "Forwarded", st))
		}
		if len(prior) > 0 {
			h["X-Forwarded-For"] = one(0, strings.Join(prior, ", ")+", "+peer)
		} else {
			h["X-Forwarded-For"] = one(0, peer)
		}
	}
	var firstHost, firstProto string // the client's, as a trusted proxy says
	if v := carried(in.Header, "X-Forwarded-Host", st); len(v) > 0 {
		firstHost = v[0]
	}
	if v := carried(in.Header, "X-Forwarded-Proto", st); len(v) > 0 {
		firstProto = v[0]
	}
	fwdHost, fwdProto := cmp.Or(firstHost, in.Host), cmp.Or(firstProto, proto)
	if fwdHost != "" {
		h["X-Forwarded-Host"] = one(1, fwdHost)
	}
	h["X-Forwarded-Proto"] = one(2, fwdProto)
	if fwd == "" {
		fwd = formatForwarded(hop)
	}
	prior := carried(in.Header, "Forwarded", st)
	if len(prior) > 0 {
		if _, err := parseForwarded(strings.Join(prior, ",")); err != nil {
			prior = nil // dropped: a chain that cannot be read cannot be believed
		}
	}
	if len(prior) > 0 {
		fwd = strings.Join(prior, ", ") + ", " + fwd
	} else if xff := carried(in.Header, "X-Forwarded-For", st); len(xff) > 0 {
		fwd = forwardedFromXFF(xff, firstEntry(firstHost), firstEntry(firstProto)) + ", " + fwd
	}
	h["Forwarded"] = one(3, fwd)
}

// forwardedFromXFF returns the Forwarded elements of an X-Forwarded-For
// chain: one a hop, an entry that is not an address "unknown", and on the
// first (the client's hop to the first proxy) the host and scheme it
// asked for, which X-Forwarded-Host and -Proto carry.
func forwardedFromXFF(xff []string, host, proto string) string {
	var elems []string
	for _, v := range xff {
		for hop := range strings.SplitSeq(v, ",") {
			e := forwardedElement{For: "unknown"}
			if a, ok := parseHop(strings.TrimSpace(hop)); ok {
				e.For = nodeOf(a)
			}
			if len(elems) == 0 {
				e.Host, e.Proto = host, proto
			}
			elems = append(elems, formatForwarded(e))
		}
	}
	return strings.Join(elems, ", ")
}

// firstEntry is the first entry of a comma-separated list, trimmed: a
// proxy that appends to X-Forwarded-Host or -Proto (Apache's mod_proxy)
// makes one, of which the first is the client's.
func firstEntry(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// xffFromForwarded returns the X-Forwarded-For entries of a Forwarded
// chain: its for= nodes, addresses without brackets or port, obfuscated
// identifiers as they are, anything else (a quoted value with a comma
// would be two entries) "unknown". It returns nil for a chain that
// cannot be read.
func xffFromForwarded(fwd []string) []string {
	if len(fwd) == 0 {
		return nil
	}
	elems, err := parseForwarded(strings.Join(fwd, ","))
	if err != nil || len(elems) == 0 {
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		switch a, ok := parseNode(e.For); {
		case ok:
			out[i] = a.String()
		case obfuscatedNode(e.For):
			out[i] = e.For
		default:
			out[i] = "unknown"
		}
	}
	return []string{strings.Join(out, ", ")}
}

// carried returns the inbound values of a forwarding header that go on
// upstream: those of a trusted peer. One that the peer named in
// Connection (making it hop-by-hop, for the gateway alone) is gone by
// now (stripConnection), once the client's address was read from it.
func carried(h http.Header, name string, st *reqState) []string {
	if !st.peerTrusted {
		return nil
	}
	return h[name]
}

// obfuscatedNode reports whether s is an obfuscated node of RFC 7239
// (section 6.3): an underscore, then letters, digits, '.', '_' or '-'.
func obfuscatedNode(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
