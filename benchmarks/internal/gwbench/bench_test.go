package gwbench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/benchmarks/internal/gwbench"
)

// BenchmarkVariants is the in-process counterpart of gateway.sh: each
// variant in front of the same upstream, driven by a Go client in the
// same process, so that time and allocations per request can be compared
// in one run (go test -bench Variants -benchmem). The client's and the
// upstream's costs are in every variant's figures; the differences are
// the proxies'.
func BenchmarkVariants(b *testing.B) {
	up := httptest.NewServer(gwbench.Upstream())
	defer up.Close()
	for _, v := range gwbench.Variants {
		b.Run(v, func(b *testing.B) {
			token := "Bearer " + gwbench.TokenFor(v, time.Hour)
			s, err := gwbench.New(v, up.URL)
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(s)
			defer func() {
				srv.Close()
				_ = s.Close(context.Background())
			}()
			client := &http.Client{Transport: gwbench.Transport()}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+gwbench.Path, nil)
			req.Header.Set("Authorization", token)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := gwbench.Drain(resp); err != nil || resp.StatusCode != http.StatusOK {
						b.Errorf("status %d, %v", resp.StatusCode, err)
						return
					}
				}
			})
		})
	}
}
