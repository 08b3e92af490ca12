package main

import (
	"fmt"
	"io"
	"net"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelpatterns/patterns/examples/internal/exampleotel"
)

// shownAttrs are the attributes printed for each span, when it has them.
var shownAttrs = []attribute.Key{
	"http.route", "client.address", "server.address", "server.port",
	"http.response.status_code", "http.request.resend_count", "error.type",
	"retry.outcome",
}

// printTree writes spans (those of one request) as a tree (see
// exampleotel.Tree): each span's name, kind, duration and chosen
// attributes, children indented under their parent in the order they
// started. names gives the services' names by address, to name the
// target of client spans.
func printTree(w io.Writer, spans []sdktrace.ReadOnlySpan, names map[string]string) {
	if len(spans) == 0 {
		return
	}
	fmt.Fprintf(w, "  trace %s\n", spans[0].SpanContext().TraceID())
	exampleotel.Tree{
		AllKinds: true,
		Attrs:    shownAttrs,
		Note: func(s sdktrace.ReadOnlySpan) string {
			if s.SpanKind() != trace.SpanKindClient {
				return ""
			}
			var host, port string
			for _, kv := range s.Attributes() {
				switch kv.Key {
				case "server.address":
					host = kv.Value.String()
				case "server.port":
					port = kv.Value.String()
				}
			}
			if name, ok := names[net.JoinHostPort(host, port)]; ok {
				return "(" + name + ")"
			}
			return ""
		},
	}.Print(w, "    ", spans)
}
