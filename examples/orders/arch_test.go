package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/otelpatterns/patterns/hexagonal/archtest"
)

// pkg is the import path of this example's package rel, as an archtest
// pattern: relative to the module, which is the repository's.
func pkg(rel string) string { return "./examples/orders/" + rel }

// rules are the example's dependency rules, inner to outer: the domain
// (standard library only, and not net/http or database/sql even so),
// the ports (the domain and the standard library), the use cases (which
// may also use package hexagonal to trace the layers), the adapters, and
// main, which wires them.
func rules(dir string, layer func(string) string) archtest.Rules {
	noIO := []string{"net/http/...", "database/sql/...", "github.com/jackc/...", "github.com/otelpatterns/patterns/eventsource/..."}
	return archtest.Rules{
		Dir:   dir,
		Tests: true,
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{layer("domain/...")}, Allow: []string{"std"}, Deny: noIO},
			{Name: "ports", Packages: []string{layer("ports/...")}, Allow: []string{"std"}, Deny: noIO},
			{Name: "application", Packages: []string{layer("app/...")},
				Allow: []string{"std", "github.com/otelpatterns/patterns/hexagonal"}, Deny: noIO},
			{Name: "adapters", Packages: []string{layer("adapters/...")}},
			{Name: "main", Packages: []string{layer("")}},
		},
	}
}

// TestDependencies checks that the example keeps its own layout's rules.
func TestDependencies(t *testing.T) {
	archtest.CheckDependencies(t, rules(".", func(rel string) string {
		return strings.TrimSuffix(pkg(rel), "/")
	}))
}

// recorder is a TB that keeps the failures, where a test passes its
// *testing.T, to check that the check fails.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestDependenciesViolated applies the same rules to a fixture module
// whose domain imports net/http, and checks that the check fails, naming
// the file, the line and the import.
func TestDependenciesViolated(t *testing.T) {
	r := &recorder{}
	rs := rules("testdata/violating", func(rel string) string { return strings.TrimSuffix("./"+rel, "/") })
	// The fixture has only a domain and an application.
	rs.Layers = []archtest.Layer{rs.Layers[0], rs.Layers[2]}
	archtest.CheckDependencies(r, rs)
	want := regexp.MustCompile(`^archtest: domain/order\.go:7: example\.com/orders-violating/domain \(layer domain\) imports "net/http": layer domain denies "net/http/\.\.\."$`)
	if len(r.errs) != 1 || !want.MatchString(r.errs[0]) {
		t.Errorf("CheckDependencies(violating) failures:\n%s\nwant one matching %s", strings.Join(r.errs, "\n"), want)
	}
}
