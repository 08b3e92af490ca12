package natsbus

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// parseAckReply reads the reply subjects of both formats, and what it
// reads is what nats.go's Metadata reads; where it declines, the
// subscription asks Metadata.
func TestParseAckReply(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  ackReply
		ok    bool
	}{
		{"$JS.ACK.ORDERS.billing-orders.3.1042.17.1733500000000000000.5", ackReply{"ORDERS", 3, 1042}, true},
		{"$JS.ACK._.AHASH.ORDERS.billing-orders.1.7.7.1733500000000000000.0.rNd", ackReply{"ORDERS", 1, 7}, true},
		{"$JS.ACK.hub.AHASH.ORDERS.c.2.9.9.1.0", ackReply{"ORDERS", 2, 9}, true}, // 11 tokens
		{"$JS.ACK.ORDERS.c.x.9.9.1.0", ackReply{}, false},                        // not a number
		{"$JS.ACK.ORDERS.c.2..9.1.0", ackReply{}, false},                         // empty number
		{"$JS.ACK.ORDERS.c.2.9.9.1", ackReply{}, false},                          // 8 tokens
		{"$JS.ACK.a.b.ORDERS.c.2.9.9.1", ackReply{}, false},                      // 10 tokens
		{"$JS.NAK.ORDERS.c.2.9.9.1.0", ackReply{}, false},
		{"", ackReply{}, false},
	} {
		got, ok := parseAckReply(tc.reply)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseAckReply(%q) = %+v, %v; want %+v, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
		checkAgainstMetadata(t, tc.reply)
	}
}

func FuzzParseAckReply(f *testing.F) {
	f.Add("$JS.ACK.ORDERS.billing-orders.3.1042.17.1733500000000000000.5")
	f.Add("$JS.ACK._.AHASH.ORDERS.billing-orders.1.7.7.1733500000000000000.0.rNd")
	f.Add("$JS.ACK.S.c.18446744073709551615.1.1.1.1")
	f.Fuzz(checkAgainstMetadata)
}

// checkAgainstMetadata fails the test when parseAckReply reads reply and
// nats.go's Metadata reads it otherwise, or cannot read it.
func checkAgainstMetadata(t *testing.T, reply string) {
	got, ok := parseAckReply(reply)
	if !ok {
		return
	}
	meta, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata()
	if err != nil {
		t.Fatalf("parseAckReply(%q) = %+v; Metadata fails: %v", reply, got, err)
	}
	if want := (ackReply{meta.Stream, meta.NumDelivered, meta.Sequence.Stream}); got != want {
		t.Fatalf("parseAckReply(%q) = %+v; Metadata reads %+v", reply, got, want)
	}
}
