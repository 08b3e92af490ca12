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
	h := make([]kgo.RecordHeader, 0, len(md)+2)
	h = append(h, kgo.RecordHeader{Key: idHeader, Value: []byte(m.ID)})
	if m.Type != "" {
		h = append(h, kgo.RecordHeader{Key: typeHeader, Value: []byte(m.Type)})
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
// every delivery; identified reports whether it had one.
func decodeRecord(topic string, r *kgo.Record) (m cqrs.Message, identified bool) {
	m = cqrs.Message{Topic: topic, Data: r.Value}
	for _, h := range r.Headers {
		switch {
		case h.Key == idHeader:
			m.ID, identified = string(h.Value), true
		case h.Key == typeHeader:
			m.Type = string(h.Value)
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
	}
	return m, identified
}

// derivedID returns the ID of a record that carries none.
func derivedID(r *kgo.Record) string {
	return "kafka:" + r.Topic + ":" + strconv.FormatInt(int64(r.Partition), 10) + ":" + strconv.FormatInt(r.Offset, 10)
}
