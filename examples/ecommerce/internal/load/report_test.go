package load

import (
	"bytes"
	"testing"
	"time"
)

func TestPrint(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want string
	}{
		{
			name: "full",
			rep: Report{
				Sent: 15000, Errors: 3, Dropped: 12,
				Status:     map[int]int{429: 500, 200: 14000, 202: 497},
				ErrorKinds: map[string]int{"timeout": 1, "connection reset": 2},
				P50:        1234567 * time.Nanosecond, P90: 3456 * time.Microsecond, P99: 12345678 * time.Nanosecond, Max: 81234567 * time.Nanosecond,
				Achieved: 499.97, Elapsed: 30003 * time.Millisecond,
				Patterns: Patterns{
					Measured: true, BreakerRejections: 12, Retries: 40, RateLimited: 500,
					BreakerRejectionsByName: map[string]float64{"shipping": 12},
					RetriesByName:           map[string]float64{"saga.step": 30, "inventory": 10},
					CacheHitRatio:           map[string]float64{"l2": 0.5, "l1": 0.975},
					SagasCompleted:          480, SagasCompensated: 17,
				},
			},
			want: `load: 15000 requests in 30.003s (500.0/s), 12 dropped at the in-flight cap
  latency: p50 1.23ms, p90 3.46ms, p99 12.3ms, max 81.2ms
  answers: 200 × 14000, 202 × 497, 429 × 500
  errors: 3 (connection reset × 2, timeout × 1)
  breaker rejections: 12 (shipping 12)
  retries: 40 (inventory 10, saga.step 30)
  rate-limited (429): 500
  sagas: 480 completed, 17 compensated
  cache hit ratio: l1 97.5%, l2 50.0%
`,
		},
		{
			name: "nothing answered, no metrics",
			rep:  Report{Sent: 10, Errors: 10, ErrorKinds: map[string]int{"connection refused": 10}, Achieved: 20, Elapsed: 500 * time.Millisecond},
			want: `load: 10 requests in 500ms (20.0/s), 0 dropped at the in-flight cap
  latency: p50 0s, p90 0s, p99 0s, max 0s
  answers: none
  errors: 10 (connection refused × 10)
`,
		},
		{
			name: "measured, no cache lookups",
			rep:  Report{Sent: 1, Status: map[int]int{200: 1}, P50: time.Millisecond, P90: time.Millisecond, P99: time.Millisecond, Max: time.Millisecond, Achieved: 1, Elapsed: time.Second, Patterns: Patterns{Measured: true}},
			want: `load: 1 requests in 1s (1.0/s), 0 dropped at the in-flight cap
  latency: p50 1ms, p90 1ms, p99 1ms, max 1ms
  answers: 200 × 1
  errors: 0
  breaker rejections: 0
  retries: 0
  rate-limited (429): 0
  sagas: 0 completed, 0 compensated
  cache hit ratio: no lookups
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.rep.Print(&b)
			if got := b.String(); got != tt.want {
				t.Errorf("Print() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
