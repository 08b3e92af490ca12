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

// encodeHeaders returns the headers of a record that carries m, whose
// metadata with the trace context added is md.
//
// Kafka headers are byte strings: every ID, type, key and value travels as
// it is. The ID and type are the headers cqrs-id and cqrs-type, each
// metadata entry a header of its own, under its key, or under "cqrs-md-"
// and its key when the key starts with "cqrs-", so that no entry is taken
// for the bus's own.
func encodeHeaders(m cqrs.Message, md map[string]string) []kgo.RecordHeader {
	h := make([]kgo.RecordHeader, 0, len(md)+4) // room for a trace context
	h = append(h, kgo.RecordHeader{Key: idHeader, Value: []byte(m.ID)})
	if m.Type != "" {
		h = append(h, kgo.RecordHeader{Key: typeHeader, Value: []byte(m.Type)})
	}
	if m.Key != "" {
		h = append(h, kgo.RecordHeader{Key: keyHeader, Value: []byte(m.Key)})
	}
	for k, v := range md {
		if strings.HasPrefix(k, ownPrefix) {
			k = escapedPrefix + k
		}
		h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return h
}

// decodeRecord returns the message that r carries on topic. A record
// without a cqrs-id header (from another producer) gets the ID
// "kafka:" + Kafka topic + ":" + partition + ":" + offset, the same on
// every delivery, and its record key as Key; identified reports whether it
// had one.
func decodeRecord(topic string, r *kgo.Record) (m cqrs.Message, identified bool) {
	m = cqrs.Message{Topic: topic, Data: r.Value}
	for _, h := range r.Headers {
		switch {
		case h.Key == idHeader:
			m.ID, identified = string(h.Value), true
		case h.Key == typeHeader:
			m.Type = string(h.Value)
		case h.Key == keyHeader:
			m.Key = string(h.Value)
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
type headerCarrier struct{ h *[]kgo.RecordHeader }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.h {
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
	for i := range *c.h {
		if (*c.h)[i].Key == key {
			(*c.h)[i].Value = []byte(value)
			return
		}
	}
	*c.h = append(*c.h, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(*c.h))
	for _, h := range *c.h {
		keys = append(keys, h.Key)
	}
	return keys
}
