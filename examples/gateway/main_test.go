package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/examples/internal/exampletest"
)

// TestRun runs the whole program and checks each scene's lines: the even
// spread, the auth answers, the 429 with its headers, the fallbacks
// after the breaker opened (seen and counted alike), and the span tree
// of the retried request, whose trace context reached the upstream.
func TestRun(t *testing.T) {
	got, tel := exampletest.Run(t, 30*time.Second, run)

	for _, want := range []string{
		"  catalog-a, 200: 5 requests\n",
		"  catalog-b, 200: 5 requests\n",
		"  no token:               401, WWW-Authenticate: Bearer\n",
		"  alice (customer):       200 \"catalog-",
		"  mallory (guest):        403 {\"error\":\"insufficient_scope\"}\n",
		"  tampered signature:     401, WWW-Authenticate: Bearer error=\"invalid_token\"\n",
		"  request 3: 200  RateLimit: \"per-client\";r=0;",
		"  fallbacks: 3 seen by the client, 3 counted by gateway.fallbacks\n",
		"(the trace above, parent: the last client span)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output does not contain %q", want)
		}
	}
	for _, re := range []string{
		`(?m)^  request 4: 429  RateLimit: "per-client";r=0;t=\d+  Retry-After: \d+  RateLimit-Policy: "per-client";q=3;w=60$`,
		`(?m)^  request [345]: 500 recommendations: database down$`,
		`(?m)^  breaker recommendations/127\.0\.0\.1:\d+: closed → open$`,
		`(?m)^  request 6: 200 \{"items":\[\]\}  \(Gateway-Fallback: unavailable\)$`,
		`(?m)^    GET /api/items/\{id\} +server .*http\.route=/api/items/\{id\} .*http\.response\.status_code=200`,
		`(?m)^      GET +client .*http\.response\.status_code=503 .*\(catalog-[ab]\)$`,
		`(?m)^      retry +internal .*retry\.outcome=success_after_retry`,
		`(?m)^        GET +client .*http\.response\.status_code=200 http\.request\.resend_count=1 \(catalog-[ab]\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("output does not match %s", re)
		}
	}
	if strings.Contains(got, `"Name"`) {
		t.Errorf("stdout contains telemetry JSON; want it on the telemetry writer only")
	}
	for _, want := range []string{`"Name":"GET /api/items/{id}"`, `"Name":"gateway.fallbacks"`, `"Name":"http.server.request.duration"`} {
		if !strings.Contains(tel, want) {
			t.Errorf("telemetry output does not contain %s", want)
		}
	}
}
