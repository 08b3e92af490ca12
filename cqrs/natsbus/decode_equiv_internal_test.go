package natsbus

import (
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/otelpatterns/patterns/cqrs"
)

// decodeHeadersByWalk is decodeHeaders as it was before it looked up the
// known headers: one walk over the map. decodeHeaders must decode every
// header block as it does.
func decodeHeadersByWalk(h nats.Header, m *cqrs.Message) bool {
	var legacyID, odd string
	for k, v := range h {
		switch {
		case k == idHeader:
			m.ID = unescape(firstOf(v))
		case k == nats.MsgIdHdr:
			legacyID = firstOf(v)
		case k == typeHeader:
			m.Type = unescape(firstOf(v))
		case k == metadataHeader:
			odd = firstOf(v)
		case len(k) >= 5 && strings.EqualFold(k[:5], "Nats-"):
		default:
			if m.Metadata == nil {
				m.Metadata = make(map[string]string, len(h))
			}
			m.Metadata[k] = firstOf(v)
		}
	}
	if m.ID == "" {
		m.ID = legacyID
	}
	for odd != "" {
		var entry string
		entry, odd, _ = strings.Cut(odd, "&")
		ek, ev, _ := strings.Cut(entry, "=")
		k, err1 := url.QueryUnescape(ek)
		v, err2 := url.QueryUnescape(ev)
		if entry == "" || err1 != nil || err2 != nil {
			continue
		}
		if m.Metadata == nil {
			m.Metadata = make(map[string]string, len(h))
		}
		m.Metadata[k] = v
	}
	return m.ID != ""
}

func FuzzDecodeHeadersAsWalk(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nNats-Msg-Id: cqrs.t a\r\nNats-Expected-Stream: S\r\nCqrs-Id: a\r\nCqrs-Type: t.v1\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nNats-Msg-Id: legacy-1\r\nnats-expected-stream: S\r\ntenant: acme\r\n\r\n"))
	f.Add([]byte("NATS/1.0\r\nCqrs-Id: %20x%0A\r\ncqrs-id: y\r\nCqrs-Metadata: =&a=b&%ZZ=1&k%3Av=v+w&x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := nats.DecodeHeadersMsg(raw)
		if err != nil {
			h = nil
		}
		var got, want cqrs.Message
		okGot, okWant := decodeHeaders(h, &got), decodeHeadersByWalk(h, &want)
		if okGot != okWant || got.ID != want.ID || got.Type != want.Type || !maps.Equal(got.Metadata, want.Metadata) {
			t.Fatalf("decodeHeaders(%q) = %+v, %v; the walk gives %+v, %v", raw, got, okGot, want, okWant)
		}
	})
}
