package natsbus

import "strings"

// ackReply holds what a subscription needs of the reply subject of a
// JetStream delivery: the stream, the delivery count and the stream
// sequence.
type ackReply struct {
	stream    string
	delivered uint64
	streamSeq uint64
}

// parseAckReply reads the reply subject of a delivery as nats.go's
// jetstream.Msg.Metadata does (same token positions, same checks), without
// the allocation of the metadata it returns: the process path reads it for
// every message. It reports false where Metadata would fail, or where a
// number does not parse (Metadata would read 0): the caller then falls back
// to Metadata.
//
// The subject is, from servers before 2.9:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//
// and from 2.9 on, with at least 11 tokens:
//
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
func parseAckReply(reply string) (ackReply, bool) {
	const prefix = "$JS.ACK."
	n := strings.Count(reply, ".") + 1
	if n < 9 || n > 9 && n < 11 || !strings.HasPrefix(reply, prefix) {
		return ackReply{}, false
	}
	rest := reply[len(prefix):]
	if n > 9 {
		// skip the domain and the account hash
		_, rest, _ = strings.Cut(rest, ".")
		_, rest, _ = strings.Cut(rest, ".")
	}
	var r ackReply
	var delivered, seq string
	r.stream, rest, _ = strings.Cut(rest, ".")
	_, rest, _ = strings.Cut(rest, ".") // the consumer
	delivered, rest, _ = strings.Cut(rest, ".")
	seq, _, _ = strings.Cut(rest, ".")
	var ok1, ok2 bool
	r.delivered, ok1 = parseUint(delivered)
	r.streamSeq, ok2 = parseUint(seq)
	if !ok1 || !ok2 {
		return ackReply{}, false
	}
	return r, true
}

// parseUint parses a non-empty run of decimal digits that fits 64 bits.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
