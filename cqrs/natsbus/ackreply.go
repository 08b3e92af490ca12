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
	if !strings.HasPrefix(reply, prefix) {
		return ackReply{}, false
	}
	rest := reply[len(prefix):]
	// One pass over the subject: where its first dots are, and how many
	// there are (a pass per token cost a third of a delivery's own work).
	var dots [6]int
	n := 0
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			if n < len(dots) {
				dots[n] = i
			}
			n++
		}
	}
	tokens := n + 3 // with $JS and ACK
	if tokens < 9 || tokens > 9 && tokens < 11 {
		return ackReply{}, false
	}
	// token returns the i-th token of rest (i < len(dots)).
	token := func(i int) string {
		from := 0
		if i > 0 {
			from = dots[i-1] + 1
		}
		return rest[from:dots[i]]
	}
	first := 0 // the stream's token
	if tokens > 9 {
		first = 2 // after the domain and the account hash
	}
	var r ackReply
	r.stream = token(first)
	var ok1, ok2 bool
	r.delivered, ok1 = parseUint(token(first + 2))
	r.streamSeq, ok2 = parseUint(token(first + 3))
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
