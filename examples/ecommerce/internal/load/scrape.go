package load

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// acceptText asks for the Prometheus text format, version 0.0.4, which
// every Prometheus handler can serve, rather than the protobuf or
// OpenMetrics formats it might pick otherwise.
const acceptText = "text/plain;version=0.0.4"

// maxScrape bounds the /metrics page read, so that a wrong URL serving a
// large file does not fill memory.
const maxScrape = 32 << 20

// scrape fetches a Prometheus text page and returns its counters.
func scrape(ctx context.Context, client *http.Client, url string) (metricSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", acceptText)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxScrape))
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt != "text/plain" {
		return nil, fmt.Errorf("GET %s: content type %q; want Prometheus text (text/plain)", url, mt)
	}
	ms, err := parseMetrics(io.LimitReader(resp.Body, maxScrape))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return ms, nil
}

// parseMetrics reads the counters of a page in the Prometheus text format.
// Names are checked as UTF-8, the laxer rule, which also accepts every
// classic name.
func parseMetrics(r io.Reader) (metricSet, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	ms := metricSet{}
	for name, f := range families {
		if f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			ms[name] = append(ms[name], series{labels: labels, value: m.GetCounter().GetValue()})
		}
	}
	return ms, nil
}
