package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// A Jaeger query API that holds the given traces.
func fakeJaeger(t *testing.T, traces []jTrace) *httptest.Server {
	t.Helper()
	reply := func(w http.ResponseWriter, v any) {
		_ = json.NewEncoder(w).Encode(map[string]any{"data": v})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/services":
			reply(w, []string{"ecommerce"})
		case strings.HasSuffix(r.URL.Path, "/operations"):
			ops := map[string]bool{}
			for _, tr := range traces {
				for _, s := range tr.Spans {
					ops[s.OperationName] = true
				}
			}
			var out []string
			for o := range ops {
				out = append(out, o)
			}
			reply(w, out)
		case r.URL.Path == "/api/traces":
			op := r.URL.Query().Get("operation")
			var out []jTrace
			for _, tr := range traces {
				for _, s := range tr.Spans {
					if s.OperationName == op {
						out = append(out, tr)
						break
					}
				}
			}
			reply(w, out)
		default:
			http.NotFound(w, r)
		}
	}))
}

func span(trace, id, parent, op string) jSpan {
	s := jSpan{TraceID: trace, SpanID: id, OperationName: op, ProcessID: "p1"}
	if parent != "" {
		s.References = append(s.References, struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		}{"CHILD_OF", trace, parent})
	}
	return s
}

func tr(id string, spans ...jSpan) jTrace {
	return jTrace{TraceID: id, Spans: spans, Processes: map[string]jProcess{"p1": {ServiceName: "ecommerce"}}}
}

func hopsOf(t *testing.T, linked string, kv ...string) []hop {
	var h []hop
	for i := 0; i < len(kv); i += 2 {
		h = append(h, hop{name: kv[i], re: regexp.MustCompile(kv[i+1]), linked: kv[i] == linked})
	}
	return h
}

func TestFindTrace(t *testing.T) {
	// t1 reaches the publication; its projection runs in t2, linked to t1.
	// t3 has the orders span outside the gateway's subtree (a second root).
	project := span("t2", "p", "", "project order_view")
	project.References = append(project.References, struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}{"FOLLOWS_FROM", "t1", "c"})
	// In t1 the processing of the message is a root linked to the
	// publication (FOLLOWS_FROM in the same trace).
	process := span("t1", "d", "", "process orders")
	process.References = append(process.References, struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}{"FOLLOWS_FROM", "t1", "c"})
	traces := []jTrace{
		tr("t1", span("t1", "a", "", "POST /api/orders"), span("t1", "b", "a", "POST /orders"),
			span("t1", "c", "b", "publish orders"), process),
		tr("t2", project),
		tr("t3", span("t3", "x", "", "POST /api/orders"), span("t3", "y", "", "POST /orders")),
	}
	srv := fakeJaeger(t, traces)
	defer srv.Close()
	c := jaegerClient{base: srv.URL, http: srv.Client()}

	hops := hopsOf(t, "projection", "gateway", "^POST /api/orders", "orders", "^POST /orders",
		"outbox", "^publish ", "consumer", "^process ", "projection", "^project ")
	best, err := findTrace(t.Context(), c, hops)
	if err != nil {
		t.Fatal(err)
	}
	if best.trace.TraceID != "t1" || len(best.hops) != 5 || !best.hops["projection"].linked {
		t.Errorf("best = %s with %v, want t1 with every hop, the projection linked", best.trace.TraceID, best.hops)
	}

	// Not linked: the projection must be in the trace, and is not.
	hops[4].linked = false
	best, err = findTrace(t.Context(), c, hops)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := best.hops["projection"]; ok {
		t.Errorf("projection met by %+v without -linked", best.hops["projection"])
	}

	// In t3 the orders span is not under the gateway's: not met.
	best = evaluate(traces[2], traces[2].Spans[0], hops[:2], nil)
	if _, ok := best.hops["orders"]; ok {
		t.Error("a span outside the gateway span's subtree met a hop")
	}
}

func TestFindTraceNoStart(t *testing.T) {
	srv := fakeJaeger(t, []jTrace{tr("t1", span("t1", "a", "", "GET /health"))})
	defer srv.Close()
	c := jaegerClient{base: srv.URL, http: srv.Client()}
	if _, err := findTrace(t.Context(), c, hopsOf(t, "", "gateway", "^POST /api/orders", "orders", "x")); err == nil {
		t.Error("no error without a trace of the first hop")
	}
}
