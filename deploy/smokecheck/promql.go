package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// promClient queries Prometheus' HTTP API.
type promClient struct {
	base string
	http *http.Client
}

// promResponse is the envelope of every /api/v1 answer.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (c promClient) get(ctx context.Context, path string, q url.Values, into any) error {
	u := strings.TrimSuffix(c.base, "/") + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r promResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: %w", u, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", r.ErrorType, r.Error, resp.Status)
	}
	return json.Unmarshal(r.Data, into)
}

// instantQuery returns how many series (or 1 for a scalar) q returns now.
func (c promClient) instantQuery(ctx context.Context, q string) (int, error) {
	var d struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := c.get(ctx, "/api/v1/query", url.Values{"query": {q}}, &d); err != nil {
		return 0, err
	}
	if d.ResultType == "scalar" || d.ResultType == "string" {
		return 1, nil
	}
	return len(d.Result), nil
}

// ruleHealth returns the rules Prometheus has loaded, by name, with the
// error of their last evaluation ("" when healthy), and whether each has
// been evaluated at all.
func (c promClient) ruleHealth(ctx context.Context) (map[string]string, error) {
	var d struct {
		Groups []struct {
			Rules []struct {
				Name           string `json:"name"`
				Health         string `json:"health"`
				LastError      string `json:"lastError"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := c.get(ctx, "/api/v1/rules", nil, &d); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Health == "ok":
				out[r.Name] = ""
			case r.Health == "unknown" || strings.HasPrefix(r.LastEvaluation, "0001-"):
				out[r.Name] = "not evaluated yet"
			default:
				out[r.Name] = r.Health + ": " + r.LastError
			}
		}
	}
	return out, nil
}

func runPromQL(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("promql", flag.ExitOnError)
	base := fs.String("prometheus", "http://127.0.0.1:9090", "Prometheus' base URL")
	dir := fs.String("dashboards", "", "the folder of the Grafana dashboards (*.json)")
	rules := fs.String("rules", "", "the Prometheus rule file, also loaded by that Prometheus")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for every expression to return data (series appear at the next scrape)")
	_ = fs.Parse(args)

	all, err := allExprs(*dir, *rules)
	if err != nil {
		return err
	}
	c := promClient{base: *base, http: &http.Client{Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+30*time.Second)
	defer cancel()

	// Retry the empty ones until the deadline: a rate needs two scrapes of a
	// series, and a histogram_quantile a bucket that moved in the window.
	counts := make([]int, len(all))
	errs := make([]error, len(all))
	deadline := time.Now().Add(*wait)
	for {
		pending := 0
		for i, e := range all {
			if counts[i] > 0 {
				continue
			}
			counts[i], errs[i] = c.instantQuery(ctx, e.Query)
			if counts[i] == 0 {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}

	var failed []string
	for i, e := range all {
		status := fmt.Sprintf("ok  %3d series", counts[i])
		switch {
		case errs[i] != nil:
			status = "ERR " + errs[i].Error()
			failed = append(failed, e.Source)
		case counts[i] == 0:
			status = "NO DATA"
			failed = append(failed, e.Source)
		}
		fmt.Fprintf(w, "%-16s %s\n", status, e.Source)
		if counts[i] == 0 {
			fmt.Fprintf(w, "                 %s\n", e.Query)
		}
	}

	health, err := c.ruleHealth(ctx)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	for _, e := range all {
		if !e.Rule {
			continue
		}
		name := strings.TrimPrefix(e.Source, "rule ")
		msg, ok := health[name]
		switch {
		case !ok:
			msg = "not loaded by Prometheus"
		case msg == "":
			fmt.Fprintf(w, "%-16s rule %s evaluates\n", "ok", name)
			continue
		}
		fmt.Fprintf(w, "%-16s rule %s: %s\n", "ERR", name, msg)
		failed = append(failed, e.Source+" (evaluation)")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d checks failed: %s", len(failed), len(all), strings.Join(failed, "; "))
	}
	if len(all) == 0 {
		return errors.New("nothing to check")
	}
	fmt.Fprintf(w, "all %d expressions return data\n", len(all))
	return nil
}
