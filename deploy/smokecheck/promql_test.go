package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A Prometheus API that answers every query with one series, but those
// whose text contains empty, and reports the given rules' health.
func fakePrometheus(t *testing.T, empty string, rules map[string]string) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var data any
		switch r.URL.Path {
		case "/api/v1/query":
			res := []any{map[string]any{"metric": map[string]string{}, "value": []any{1, "1"}}}
			if strings.Contains(r.URL.Query().Get("query"), empty) {
				res = []any{}
			}
			data = map[string]any{"resultType": "vector", "result": res}
		case "/api/v1/rules":
			var rs []any
			for name, health := range rules {
				rs = append(rs, map[string]any{"name": name, "health": health, "lastError": "boom", "lastEvaluation": "2026-01-01T00:00:00Z"})
			}
			data = map[string]any{"groups": []any{map[string]any{"rules": rs}}}
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	}))
}

func writeFixtures(t *testing.T) (dir, rules string) {
	t.Helper()
	dir = t.TempDir()
	d := `{"uid": "x", "title": "x", "panels": [{"title": "p", "datasource": {"type": "prometheus"},
		"targets": [{"refId": "A", "expr": "sum(rate(present_total[$__rate_interval]))"}, {"refId": "B", "expr": "absent_metric"}]}]}`
	if err := os.WriteFile(filepath.Join(dir, "d.json"), []byte(d), 0o600); err != nil {
		t.Fatal(err)
	}
	rules = filepath.Join(dir, "rules.yml")
	r := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: present_total > 1\n"
	if err := os.WriteFile(rules, []byte(r), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, rules
}

func TestPromQL(t *testing.T) {
	dir, rules := writeFixtures(t)
	wait := (100 * time.Millisecond).String()
	for _, c := range []struct {
		name, empty string
		rules       map[string]string
		wantErr     string
	}{
		{"all data", "nothing is empty", map[string]string{"A": "ok"}, ""},
		{"a panel without data", "absent_metric", map[string]string{"A": "ok"}, `panel "p" (B)`},
		{"a rule that fails", "nothing is empty", map[string]string{"A": "err"}, "rule A (evaluation)"},
		{"a rule not loaded", "nothing is empty", map[string]string{}, "rule A (evaluation)"},
	} {
		srv := fakePrometheus(t, c.empty, c.rules)
		err := runPromQL([]string{"-prometheus", srv.URL, "-dashboards", dir, "-rules", rules, "-wait", wait}, io.Discard)
		srv.Close()
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.wantErr)
		}
	}
}
