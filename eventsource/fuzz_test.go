package eventsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/eventsource"
	"github.com/otelpatterns/patterns/eventsource/storekit"
)

type depositedV2 struct {
	Account string `json:"account"`
	Cents   int64  `json:"cents"`
}

// fuzzRegistry has a registered type with two old versions upcast into
// it (v0 → v1 → v2), an upcaster that fails on what it cannot read, and a
// cycle (a → b → a) that Decode must stop.
func fuzzRegistry() *eventsource.Registry {
	r := eventsource.NewRegistry()
	eventsource.Register[depositedV2](r, "deposited.v2")
	r.Upcast("deposited.v1", func(e eventsource.Event) (eventsource.Event, error) {
		var v1 struct {
			Account string  `json:"account"`
			Amount  float64 `json:"amount"`
		}
		if err := json.Unmarshal(e.Data, &v1); err != nil {
			return eventsource.Event{}, err
		}
		e.Type = "deposited.v2"
		e.Data, _ = json.Marshal(depositedV2{Account: v1.Account, Cents: int64(v1.Amount * 100)})
		return e, nil
	})
	r.Upcast("deposited.v0", func(e eventsource.Event) (eventsource.Event, error) {
		e.Type = "deposited.v1"
		return e, nil
	})
	r.Upcast("cycle.a", func(e eventsource.Event) (eventsource.Event, error) { e.Type = "cycle.b"; return e, nil })
	r.Upcast("cycle.b", func(e eventsource.Event) (eventsource.Event, error) { e.Type = "cycle.a"; return e, nil })
	return r
}

// FuzzDecode feeds Decode stored events of any type and data, as a
// database that another version of the service wrote may hold: it must
// never panic, must give a value of the registered type or an error, and
// every error must name the event's stream and version so that an
// operator can find it.
func FuzzDecode(f *testing.F) {
	f.Add("deposited.v2", []byte(`{"account":"a","cents":5}`))
	f.Add("deposited.v1", []byte(`{"account":"a","amount":1.5}`))
	f.Add("deposited.v0", []byte(`{"account":"a","amount":"x"}`))
	f.Add("deposited.v2", []byte(`null`))
	f.Add("cycle.a", []byte(`{}`))
	f.Add("unknown", []byte{0xff, 0x00})
	r := fuzzRegistry()
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		e := eventsource.Event{ID: uuid.New(), StreamID: "account-7", Version: 42, Type: typ, Data: data}
		v, err := r.Decode(e)
		if err != nil {
			if !strings.Contains(err.Error(), `"account-7"`) || !strings.Contains(err.Error(), "42") {
				t.Fatalf("Decode(%q, %q) error %q does not name the stream and version", typ, data, err)
			}
			if !errors.Is(err, eventsource.ErrUnknownEventType) && typ != "deposited.v2" && !strings.HasPrefix(typ, "deposited.") && !strings.HasPrefix(typ, "cycle.") {
				t.Fatalf("Decode of unknown type %q = %v; want ErrUnknownEventType", typ, err)
			}
			return
		}
		if _, ok := v.(depositedV2); !ok {
			t.Fatalf("Decode(%q, %q) = %T; want depositedV2", typ, data, v)
		}
	})
}

// FuzzTraceContext feeds the trace context reader and PrepareAppend
// arbitrary metadata, as stored events and other writers may carry: no
// panic, the caller's keys are kept as they were, and a trace context
// read back is either invalid or well formed.
func FuzzTraceContext(f *testing.F) {
	f.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate", "a=b")
	f.Add("traceparent", "00-00000000000000000000000000000000-0000000000000000-01", "k", "v")
	f.Add("traceparent", "zz", "traceparent", "")
	f.Add("", "", "\x00", "\xff")
	prop := propagation.TraceContext{}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		md := map[string]string{k1: v1, k2: v2}
		ctx := prop.Extract(context.Background(), propagation.MapCarrier(md))
		sc := trace.SpanContextFromContext(ctx)
		if sc.IsValid() && (!sc.TraceID().IsValid() || !sc.SpanID().IsValid()) {
			t.Fatalf("metadata %q gives a valid span context with invalid ids: %v", md, sc)
		}
		_ = eventsource.TraceContext(context.Background(), eventsource.Event{Metadata: md})
		out := storekit.PrepareAppend(ctx, []eventsource.NewEvent{{Type: "t", Metadata: md}})
		for k, v := range md {
			if out[0].Metadata[k] != v {
				t.Fatalf("PrepareAppend changed metadata %q from %q to %q", k, v, out[0].Metadata[k])
			}
		}
		if md[k1] != v1 && k1 != k2 {
			t.Fatal("PrepareAppend changed the caller's map")
		}
	})
}
