package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// expr is one PromQL expression to check, and where it comes from.
type expr struct {
	Source string // "dashboard cache.json, panel 'Hit ratio per level' (A)" or "rule CircuitBreakerOpen"
	Query  string // what is sent to Prometheus
	Rule   bool   // an alert or recording rule: Query is its signal (see signal)
}

// grafanaVars are the values given to Grafana's built-in variables, which
// Prometheus does not know, for a query at the end of a short run:
// $__rate_interval must span a few scrapes of the smoke's 1s interval.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"${__rate_interval}", "1m",
	"$__interval", "15s",
	"${__interval}", "15s",
	"$__range", "5m",
	"${__range}", "5m",
)

// dashboardExprs returns the PromQL of every Prometheus target of every
// dashboard (*.json) in dir, rows' nested panels included. A file that is
// not JSON, or a Prometheus target without an expression, is an error.
func dashboardExprs(dir string) ([]expr, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboards (*.json) in %s", dir)
	}
	sort.Strings(files)
	var out []expr
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if d.UID == "" || d.Title == "" {
			return nil, fmt.Errorf("%s: a dashboard needs a uid and a title", f)
		}
		n := 0
		var walk func(ps []panel) error
		walk = func(ps []panel) error {
			for _, p := range ps {
				if err := walk(p.Panels); err != nil {
					return err
				}
				for _, t := range p.Targets {
					ds := t.Datasource
					if ds == nil {
						ds = p.Datasource
					}
					if ds == nil || ds.Type != "prometheus" {
						continue
					}
					if strings.TrimSpace(t.Expr) == "" {
						return fmt.Errorf("%s: panel %q (%s): no expression", f, p.Title, t.RefID)
					}
					n++
					out = append(out, expr{
						Source: fmt.Sprintf("dashboard %s, panel %q (%s)", filepath.Base(f), p.Title, t.RefID),
						Query:  grafanaVars.Replace(t.Expr),
					})
				}
			}
			return nil
		}
		if err := walk(d.Panels); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no Prometheus query", f)
		}
	}
	return out, nil
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// ruleExprs returns the signal of every rule in a Prometheus rule file.
func ruleExprs(file string) ([]expr, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []expr
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			q, err := signal(r.Expr)
			if err != nil {
				return nil, fmt.Errorf("%s: rule %s: %w", file, name, err)
			}
			out = append(out, expr{Source: "rule " + name, Query: q, Rule: true})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no rules", file)
	}
	return out, nil
}

// signal returns an alert expression with its thresholds taken off: every
// filtering comparison (>, <, ==, ... without bool) is replaced by its left
// operand. An alert rule returns data only while it fires, which a healthy
// run should not make it do; its signal returns data whenever the metrics
// it reads exist with the names and labels it expects, which is what a
// smoke test can check. "a > 1 and b < 2" becomes "a and b".
func signal(q string) (string, error) {
	e, err := parser.ParseExpr(q)
	if err != nil {
		return "", err
	}
	return stripComparisons(e).String(), nil
}

func stripComparisons(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.BinaryExpr:
		if n.Op.IsComparisonOperator() && !n.ReturnBool {
			return stripComparisons(n.LHS)
		}
		n.LHS = stripComparisons(n.LHS)
		n.RHS = stripComparisons(n.RHS)
		return n
	case *parser.ParenExpr:
		n.Expr = stripComparisons(n.Expr)
		return n
	case *parser.AggregateExpr:
		n.Expr = stripComparisons(n.Expr)
		return n
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = stripComparisons(a)
		}
		return n
	case *parser.SubqueryExpr:
		n.Expr = stripComparisons(n.Expr)
		return n
	case *parser.UnaryExpr:
		n.Expr = stripComparisons(n.Expr)
		return n
	}
	return e
}

// allExprs reads the dashboards and the rules, and checks that every
// expression parses as PromQL.
func allExprs(dir, rules string) ([]expr, error) {
	if dir == "" || rules == "" {
		return nil, errors.New("-dashboards and -rules are required")
	}
	d, err := dashboardExprs(dir)
	if err != nil {
		return nil, err
	}
	r, err := ruleExprs(rules)
	if err != nil {
		return nil, err
	}
	all := append(d, r...)
	for _, e := range all {
		if _, err := parser.ParseExpr(e.Query); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", e.Source, e.Query, err)
		}
	}
	return all, nil
}

func runExprs(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("exprs", flag.ExitOnError)
	dir := fs.String("dashboards", "", "the folder of the Grafana dashboards (*.json)")
	rules := fs.String("rules", "", "the Prometheus rule file")
	_ = fs.Parse(args)
	all, err := allExprs(*dir, *rules)
	if err != nil {
		return err
	}
	for _, e := range all {
		fmt.Fprintf(w, "%s\n\t%s\n", e.Source, e.Query)
	}
	return nil
}
