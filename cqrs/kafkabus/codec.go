package kafkabus

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/otelpatterns/patterns/cqrs"
)

// The record headers of a message, besides its metadata entries (see
// encodeHeaders).
const (
	idHeader   = "cqrs-id"   // [cqrs.Message.ID]
	typeHeader = "cqrs-type" // [cqrs.Message.Type]
	keyHeader  = "cqrs-key"  // [cqrs.Message.Key], when not empty
	// ownPrefix starts the bus's header keys; a metadata entry whose key
	// starts with it travels under escapedPrefix+key.
	ownPrefix     = "cqrs-"
	escapedPrefix = "cqrs-md-"
)

// encodeHeaders appends to h the headers of a record that carries m,
// whose record key is key, its bytes keyBytes; the header values are
// copies in buf.
//
// Kafka headers are byte strings: every ID, type, key and value travels as
// it is. The ID and type are the headers cqrs-id and cqrs-type, each
// metadata entry a header of its own, under its key, or under "cqrs-md-"
// and its key when the key starts with "cqrs-", so that no entry is taken
// for the bus's own.
func encodeHeaders(h []kgo.RecordHeader, m cqrs.Message, buf *arena, key string, keyBytes []byte) []kgo.RecordHeader {
	h = append(h, kgo.RecordHeader{Key: idHeader, Value: buf.bytes(m.ID)})
	if m.Type != "" {
		h = append(h, kgo.RecordHeader{Key: typeHeader, Value: buf.bytes(m.Type)})
	}
	if m.Key != "" {
		v := keyBytes
		if m.Key != key {
			v = buf.bytes(m.Key)
		}
		h = append(h, kgo.RecordHeader{Key: keyHeader, Value: v})
	}
	for k, v := range m.Metadata {
		if strings.HasPrefix(k, ownPrefix) {
			k = escapedPrefix + k
		}
		h = append(h, kgo.RecordHeader{Key: k, Value: buf.bytes(v)})
	}
	return h
}

// arena hands out copies of strings in one buffer, so that the header
// values of a publication are one allocation. The copies are read only.
type arena []byte

// bytes returns a copy of s.
func (a *arena) bytes(s string) []byte {
	n := len(*a)
	*a = append(*a, s...)
	return (*a)[n:len(*a):len(*a)]
}

// decodeRecord returns the message that r carries on topic. A record
// without a cqrs-id header (from another producer) gets the ID
// "kafka:" + Kafka topic + ":" + partition + ":" + offset, the same on
// every delivery, and its record key as Key; identified reports whether it
// had one.
func decodeRecord(topic string, r *kgo.Record) (m cqrs.Message, identified bool) {
	m = cqrs.Message{Topic: topic, Data: r.Value}
	var id, typ, key []byte
	for _, h := range r.Headers {
		switch {
		case h.Key == idHeader:
			id, identified = h.Value, true
		case h.Key == typeHeader:
			typ = h.Value
		case h.Key == keyHeader:
			key = h.Value
		default:
			k := h.Key
			if strings.HasPrefix(k, escapedPrefix) {
				k = k[len(escapedPrefix):]
			} else if strings.HasPrefix(k, ownPrefix) {
				continue // a header of a later version of the bus
			}
			if m.Metadata == nil {
				m.Metadata = make(map[string]string, len(r.Headers))
			}
			m.Metadata[k] = string(h.Value)
		}
	}
	// The ID, type and key are cut from one string: one allocation, not
	// three.
	var sb strings.Builder
	sb.Grow(len(id) + len(typ) + len(key))
	sb.Write(id)
	sb.Write(typ)
	sb.Write(key)
	all := sb.String()
	m.ID, m.Type, m.Key = all[:len(id)], all[len(id):len(id)+len(typ)], all[len(id)+len(typ):]
	if !identified {
		m.ID = derivedID(r)
		m.Key = string(r.Key)
	}
	return m, identified
}

// derivedID returns the ID of a record that carries none.
func derivedID(r *kgo.Record) string {
	return "kafka:" + r.Topic + ":" + strconv.FormatInt(int64(r.Partition), 10) + ":" + strconv.FormatInt(r.Offset, 10)
}

// headerCarrier is a propagation.TextMapCarrier on the headers of a record
// that encodeHeaders made: an entry set by the propagator is a metadata
// entry, replacing one of the same key.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	if strings.HasPrefix(key, ownPrefix) {
		key = escapedPrefix + key
	}
	h := c.r.Headers
	for i := range h {
		if h[i].Key == key {
			h[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(h, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c.r.Headers))
	for _, h := range c.r.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}
