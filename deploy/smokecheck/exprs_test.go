package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestSignal(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`max by (n) (s{state="open"}) == 1`, `max by (n) (s{state="open"})`},
		{`a > 100 and deriv(a[5m]) > 0`, `a and deriv(a[5m])`},
		{`(x or y * 0) > 0`, `(x or y * 0)`},
		{`r5 < 0.5 * r1h and t > 1`, `r5 and t`},
		{`a > bool 1`, `a > bool 1`}, // a bool comparison filters nothing
		{`sum(rate(c[1m]))`, `sum(rate(c[1m]))`},
	} {
		got, err := signal(c.in)
		if err != nil {
			t.Fatalf("signal(%q): %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("signal(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := signal(`sum(`); err == nil {
		t.Error("signal of bad PromQL: no error")
	}
}

var grafanaVar = regexp.MustCompile(`\$\{?[A-Za-z_]`)

// The repository's own dashboards and rules: every dashboard parses, has
// Prometheus queries, and every query and rule signal is valid PromQL with
// Grafana's variables replaced.
func TestRepositoryExprs(t *testing.T) {
	all, err := allExprs("../grafana/dashboards", "../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../grafana/dashboards/*.json")
	perFile := map[string]int{}
	rules := 0
	for _, e := range all {
		if grafanaVar.MatchString(e.Query) { // not label_replace's "$1"
			t.Errorf("%s: a Grafana variable is left: %s", e.Source, e.Query)
		}
		if e.Rule {
			rules++
			continue
		}
		perFile[strings.Fields(e.Source)[1]]++
	}
	if len(perFile) != len(files) || len(files) < 6 {
		t.Errorf("queries in %d of %d dashboards: %v", len(perFile), len(files), perFile)
	}
	if rules != 5 {
		t.Errorf("%d rules, want the 5 of alerts.yml (4 alerts, 1 record)", rules)
	}
}

func TestDashboardErrors(t *testing.T) {
	for name, body := range map[string]string{
		"not json":   `{"uid": "x", `,
		"no uid":     `{"title": "x", "panels": []}`,
		"no query":   `{"uid": "x", "title": "x", "panels": [{"title": "p", "datasource": {"type": "prometheus"}, "targets": []}]}`,
		"empty expr": `{"uid": "x", "title": "x", "panels": [{"title": "p", "datasource": {"type": "prometheus"}, "targets": [{"refId": "A", "expr": " "}]}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "d.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := dashboardExprs(dir); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A row's nested panels count; a Jaeger panel is not PromQL.
	dir := t.TempDir()
	body := `{"uid": "x", "title": "x", "panels": [
		{"type": "row", "title": "r", "panels": [{"title": "p", "datasource": {"type": "prometheus", "uid": "prometheus"},
			"targets": [{"refId": "A", "expr": "rate(x_total[$__rate_interval])"}]}]},
		{"title": "j", "datasource": {"type": "jaeger"}, "targets": [{"refId": "A", "query": "abc"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "d.json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := dashboardExprs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Query != "rate(x_total[1m])" {
		t.Errorf("got %+v, want the row's one query with $__rate_interval replaced", got)
	}
}
