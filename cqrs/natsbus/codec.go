package natsbus

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/otelpatterns/patterns/cqrs"
)

// The headers of a message, besides its metadata entries (see
// encodeHeaders).
const (
	// idHeader carries [cqrs.Message.ID], escaped (see escape).
	idHeader = "Cqrs-Id"
	// typeHeader carries [cqrs.Message.Type], escaped.
	typeHeader = "Cqrs-Type"
	// keyHeader carries [cqrs.Message.Key], escaped.
	keyHeader = "Cqrs-Key"
	// metadataHeader carries the metadata entries that cannot be headers
	// of their own, as a URL query ("k=v&k=v", keys sorted).
	metadataHeader = "Cqrs-Metadata"
)

// dedupKey returns the Nats-Msg-Id of a message with ID id published on
// subject. The stream drops a message whose Nats-Msg-Id it has seen within
// its duplicate window, whatever the subject; keying on the subject as
// well makes that a per-topic de-duplication, so that a message can be
// published again, with its ID, to another topic (parked by a dead-letter
// function, say). Subjects hold no space, so the key splits back.
func dedupKey(subject, id string) string { return subject + " " + escape(id) }

// encodeHeaders returns the headers that carry m, whose metadata with the
// trace context added is md, published on subject.
//
// NATS headers hold printable ASCII only, lose the white space around a
// value, turn line breaks into spaces (nats.go does), and take keys of
// token characters; names starting with Nats- are the server's. So a
// metadata entry is a header of its own only when it travels as it is:
// its key is a token that starts neither with Nats- nor with Cqrs- (the
// bus's own headers), and its value is printable ASCII not starting or
// ending with a space. The other entries travel in metadataHeader,
// percent-encoded. The ID, the type and the key are escaped, which leaves usual
// values (UUIDs, type names) as they are.
func encodeHeaders(subject string, m cqrs.Message, md map[string]string) nats.Header {
	h := make(nats.Header, len(md)+4)
	h[nats.MsgIdHdr] = []string{dedupKey(subject, m.ID)}
	h[idHeader] = []string{escape(m.ID)}
	if m.Type != "" {
		h[typeHeader] = []string{escape(m.Type)}
	}
	if m.Key != "" {
		h[keyHeader] = []string{escape(m.Key)}
	}
	var odd []string // keys of the entries for metadataHeader
	for k, v := range md {
		if plainKey(k) && plainValue(v) {
			h[k] = []string{v}
		} else {
			odd = append(odd, k)
		}
	}
	if len(odd) > 0 {
		slices.Sort(odd)
		var sb strings.Builder
		for i, k := range odd {
			if i > 0 {
				sb.WriteByte('&')
			}
			sb.WriteString(url.QueryEscape(k))
			sb.WriteByte('=')
			sb.WriteString(url.QueryEscape(md[k]))
		}
		h[metadataHeader] = []string{sb.String()}
	}
	return h
}

// decodeHeaders fills in m's ID, Type, Key and Metadata from the headers h of
// a delivery. It reports false when h carries no message ID (a message
// published without natsbus and without Nats-Msg-Id, or whose headers the
// client could not decode, which leaves h nil): m.ID is then empty.
//
// The ID is that of idHeader; a message without it (published by an
// earlier version of the bus, or by another publisher) has its
// Nats-Msg-Id as ID. Headers starting with Nats- are not metadata.
func decodeHeaders(h nats.Header, m *cqrs.Message) bool {
	// The bus's own headers and the server's usual ones are looked up:
	// for a message that carries nothing else (most do), that is cheaper
	// than walking the map, which only the other headers need.
	var legacyID, odd string
	known := 0
	if v, ok := h[idHeader]; ok {
		m.ID = unescape(firstOf(v))
		known++
	}
	if v, ok := h[nats.MsgIdHdr]; ok {
		legacyID = firstOf(v)
		known++
	}
	if v, ok := h[typeHeader]; ok {
		m.Type = unescape(firstOf(v))
		known++
	}
	if v, ok := h[keyHeader]; ok {
		m.Key = unescape(firstOf(v))
		known++
	}
	if v, ok := h[metadataHeader]; ok {
		odd = firstOf(v)
		known++
	}
	if _, ok := h[jetstream.ExpectedStreamHeader]; ok { // Publish sets it
		known++
	}
	if len(h) > known {
		for k, v := range h {
			switch {
			case k == idHeader, k == nats.MsgIdHdr, k == typeHeader, k == keyHeader, k == metadataHeader:
			case len(k) >= 5 && strings.EqualFold(k[:5], "Nats-"):
			default:
				if m.Metadata == nil {
					m.Metadata = make(map[string]string, len(h))
				}
				m.Metadata[k] = firstOf(v)
			}
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
			continue // not written by a bus: nothing to recover
		}
		if m.Metadata == nil {
			m.Metadata = make(map[string]string, len(h))
		}
		m.Metadata[k] = v
	}
	return m.ID != ""
}

// derivedID returns the ID of a message that carries none: stable across
// its deliveries and distinct for each message of the stream.
func derivedID(stream string, seq uint64) string {
	return "nats:" + stream + ":" + strconv.FormatUint(seq, 10)
}

// plainKey reports whether a metadata entry with key k can be a header
// of its own: a token (RFC 9110) that is none of the server's or the
// bus's header names.
func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tchar[k[i]] {
			return false
		}
	}
	return !(len(k) >= 5 && (strings.EqualFold(k[:5], "Nats-") || strings.EqualFold(k[:5], "Cqrs-")))
}

// plainValue reports whether v travels as a header value unchanged:
// printable ASCII, not starting or ending with a space.
func plainValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c > '~' {
			return false
		}
	}
	return v == "" || v[0] != ' ' && v[len(v)-1] != ' '
}

// tchar holds the token characters of RFC 9110.
var tchar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// escape returns s as a header value that travels unchanged and that
// unescape turns back into s: '%', the bytes that are not printable ASCII,
// and a space at either end become %XX. A usual ID or type name has none
// of them and is returned as it is.
func escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		if c := s[i]; escapes(s, i) {
			sb.WriteByte('%')
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if escapes(s, i) {
			return true
		}
	}
	return false
}

// escapes reports whether escape encodes byte i of s.
func escapes(s string, i int) bool {
	c := s[i]
	return c == '%' || c < ' ' || c > '~' || c == ' ' && (i == 0 || i == len(s)-1)
}

// unescape reverses escape. A '%' not followed by two hexadecimal digits
// (in a value that an earlier version of the bus sent unescaped) is kept.
func unescape(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s))
	sb.WriteString(s[:i])
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			sb.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
