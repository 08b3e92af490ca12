package natsbus

import (
	"bytes"
	"maps"
	"net/textproto"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/otelpatterns/patterns/cqrs"
)

// wire returns the header block nats.go (v1.55) sends for h: each value
// trimmed of the white space around it, with its line breaks turned into
// spaces (nats.Msg's headerBytes and writeHeaderValue, which are not
// exported). It returns false for a key nats.go refuses to send.
func wire(h nats.Header) ([]byte, bool) {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for i := 0; i < len(k); i++ {
			if c := k[i]; c < 33 || c > 126 || strings.IndexByte("\"()/,:;<=>?@[\\]{}", c) >= 0 {
				return nil, false
			}
		}
		if k == "" {
			return nil, false
		}
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(strings.NewReplacer("\r", " ", "\n", " ").Replace(textproto.TrimString(v)))
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes(), true
}

// roundTrip encodes m as Publish does on subject, through the wire format
// of nats.go, and decodes it as a delivery does.
func roundTrip(t *testing.T, subject string, m cqrs.Message) cqrs.Message {
	t.Helper()
	h := encodeHeaders(subject, m, m.Metadata)
	raw, ok := wire(h)
	if !ok {
		t.Fatalf("encodeHeaders(%q) = %q: a key nats.go refuses", m.ID, h)
	}
	h2, err := nats.DecodeHeadersMsg(raw)
	if err != nil {
		t.Fatalf("nats.DecodeHeadersMsg(%q) = %v, encoding %+v", raw, err, m)
	}
	var got cqrs.Message
	if !decodeHeaders(h2, &got) {
		t.Fatalf("decodeHeaders(%q) found no ID, encoding %+v", h2, m)
	}
	if id := h2.Get(nats.MsgIdHdr); id != dedupKey(subject, m.ID) {
		t.Errorf("Nats-Msg-Id = %q; want %q", id, dedupKey(subject, m.ID))
	}
	return got
}

// FuzzMessageRoundTrip publishes messages with any ID, type, key (v1's
// value) and metadata through the header format: each reaches the handler
// as it was.
func FuzzMessageRoundTrip(f *testing.F) {
	f.Add("0192e4a8-7c1e-7b7a-9d3f-3c0e8f1a2b4c", "order.placed.v1", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant", "acme")
	f.Add(" padded id ", "type\r\nwith break", "with space", " lead", "a:b", "trail ")
	f.Add("100%", "%41", "Nats-Msg-Id", "x", "Cqrs-Type", "y")
	f.Add("\xff\x00", "ü", "", "", "k=v&x", "a=b&c")
	f.Add("a%2", "%zz", "cqrs-metadata", "a=b", "Cqrs-Id", "%41")
	f.Add("k", "t", "Cqrs-Key", " order 1 ", "cqrs-key", "x")
	f.Fuzz(func(t *testing.T, id, typ, k1, v1, k2, v2 string) {
		if id == "" {
			return // Publish refuses it
		}
		m := cqrs.Message{ID: id, Type: typ, Key: v1, Metadata: map[string]string{k1: v1, k2: v2}}
		got := roundTrip(t, "cqrs.orders", m)
		if got.ID != m.ID || got.Type != m.Type || got.Key != m.Key || !maps.Equal(got.Metadata, m.Metadata) {
			t.Errorf("round trip of {ID:%q Type:%q Key:%q Metadata:%q} = {ID:%q Type:%q Key:%q Metadata:%q}",
				m.ID, m.Type, m.Key, m.Metadata, got.ID, got.Type, got.Key, got.Metadata)
		}
	})
}

// FuzzDecodeHeaders decodes any header block a delivery may carry
// (written by any publisher, or garbled): no panic, and whatever decodes
// survives being published again as it is.
func FuzzDecodeHeaders(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nNats-Msg-Id: cqrs.t a\r\nCqrs-Id: a\r\nCqrs-Type: t.v1\r\ntenant: acme\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nNats-Msg-Id: legacy-1\r\nCqrs-Type: t%v1\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nCqrs-Id: a\r\nCqrs-Key: order%201%0A\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nCqrs-Id: %20x%0A\r\nCqrs-Metadata: =&a=b&%ZZ=1&k%3Av=v+w&x\r\n\r\n"))
	f.Add([]byte("NATS/1.0 503\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nno colon here\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\n: empty key\r\nk:\r\nk: twice\r\n\r\n"))
	f.Add([]byte("HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := nats.DecodeHeadersMsg(raw)
		if err != nil {
			h = nil // as the client delivers it
		}
		var m cqrs.Message
		if !decodeHeaders(h, &m) {
			if m.ID != "" {
				t.Fatalf("decodeHeaders(%q) reported no ID but set %q", raw, m.ID)
			}
			return
		}
		got := roundTrip(t, "cqrs.t", m)
		if got.ID != m.ID || got.Type != m.Type || got.Key != m.Key || !maps.Equal(got.Metadata, m.Metadata) {
			t.Errorf("published again, {ID:%q Type:%q Key:%q Metadata:%q} came back as {ID:%q Type:%q Key:%q Metadata:%q}",
				m.ID, m.Type, m.Key, m.Metadata, got.ID, got.Type, got.Key, got.Metadata)
		}
	})
}

// The escaping of IDs and types leaves usual values as they are and
// allocates nothing for them.
func TestEscapeKeepsUsualValues(t *testing.T) {
	for _, s := range []string{"0192e4a8-7c1e-7b7a-9d3f-3c0e8f1a2b4c", "order.placed.v1", "a b", ""} {
		if got := escape(s); got != s {
			t.Errorf("escape(%q) = %q; want it unchanged", s, got)
		}
		if n := testing.AllocsPerRun(10, func() { _ = unescape(escape(s)) }); n != 0 {
			t.Errorf("escape and unescape of %q allocate %v times; want 0", s, n)
		}
	}
	for in, want := range map[string]string{" a ": "%20a%20", "a%b": "a%25b", "\n": "%0A", "é": "%C3%A9"} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q; want %q", in, got, want)
		}
	}
}
