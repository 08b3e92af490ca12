package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
)

var callRE = regexp.MustCompile(`(?m)^  call +(\d+): (ok|failed|rejected) .*\[attempts reaching the server: (\d+)\](.*)$`)

type callLine struct {
	outcome  string
	attempts string
	breaker  string
}

// TestRun plays the whole script and checks what it printed: the retry
// hiding one failure, retries failing while the server is down, the
// breaker opening and rejecting calls without sending them, closing after
// recovery, the health following the fault, a span tree with two
// attempts, and the REST answers through the gateway.
func TestRun(t *testing.T) {
	out, tel := exampletest.Run(t, 60*time.Second, run)

	var calls []callLine
	for _, m := range callRE.FindAllStringSubmatch(out, -1) {
		calls = append(calls, callLine{m[2], m[3], strings.TrimSpace(m[4])})
	}
	if len(calls) != 10 {
		t.Fatalf("calls = %v; want 10 lines", calls)
	}
	if c := calls[0]; c.outcome != "ok" || c.attempts != "1" {
		t.Errorf("call 1 = %+v; want ok in one attempt", c)
	}
	if c := calls[1]; c.outcome != "ok" || c.attempts != "2" {
		t.Errorf("call 2 = %+v; want ok after a retry (2 attempts)", c)
	}
	// While down: the first call fails after its 3 attempts; the breaker
	// opens at the 4th failure in a row; then calls are rejected unsent.
	sawOpen, rejected := false, 0
	for i, c := range calls[2:7] {
		if c.outcome == "ok" {
			t.Errorf("call %d = %+v while the server is down", i+3, c)
		}
		if strings.Contains(c.breaker, "closed → open") {
			sawOpen = true
		}
		if c.outcome == "rejected" && c.attempts == "0" {
			rejected++ // rejected before anything was sent
		}
	}
	if c := calls[2]; c.outcome != "failed" || c.attempts != "3" {
		t.Errorf("call 3 = %+v; want failed after 3 attempts", c)
	}
	if !sawOpen || rejected == 0 {
		t.Errorf("calls while down = %+v; want the breaker to open and reject calls", calls[2:7])
	}
	for i, c := range calls[7:] {
		if c.outcome != "ok" {
			t.Errorf("call %d = %+v after recovery; want ok", i+8, c)
		}
	}
	if !strings.Contains(calls[7].breaker, "half-open → closed") {
		t.Errorf("call 8 = %+v; want the probe to close the breaker", calls[7])
	}

	health := regexp.MustCompile(`health inventory\.v1\.InventoryService: (\S+)`).FindAllStringSubmatch(out, -1)
	var hs []string
	for _, h := range health {
		hs = append(hs, h[1])
	}
	if strings.Join(hs, ",") != "SERVING,NOT_SERVING,SERVING" {
		t.Errorf("health = %v; want SERVING, NOT_SERVING while down, SERVING", hs)
	}

	// The tree of the retried call: two client attempts under the retry,
	// each with the server's span under it.
	tree := out[strings.Index(out, "5. the span tree"):strings.Index(out, "6. the same service")]
	if n := strings.Count(tree, "inventory.v1.InventoryService/GetItem"); n < 4 {
		t.Errorf("span tree has %d GetItem spans; want 2 attempts and their 2 server spans:\n%s", n, tree)
	}
	if !strings.Contains(tree, "rpc.response.status_code=UNAVAILABLE") || !strings.Contains(tree, "rpc.response.status_code=OK") {
		t.Errorf("span tree does not show the failed attempt:\n%s", tree)
	}

	for _, want := range []string{
		`"name":"Espresso cup"`,
		`"remaining":"1"`,
		"HTTP/1.1 200 OK",
		"HTTP/1.1 400 Bad Request",
		"HTTP/1.1 404 Not Found",
	} {
		if !strings.Contains(strings.ReplaceAll(out, " ", ""), strings.ReplaceAll(want, " ", "")) {
			t.Errorf("output does not contain %s", want)
		}
	}
	_ = tel
}
