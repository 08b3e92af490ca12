package archtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelpatterns/patterns/hexagonal/archtest"
)

// recorder is a TB that keeps the failures.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// hexagonalRules are the rules of the fixtures, a hexagonal layout.
func hexagonalRules(dir string) archtest.Rules {
	return archtest.Rules{
		Dir: dir,
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."},
				Allow: []string{"std"},
				Deny:  []string{"database/sql", "net/http/...", "./driver/..."}},
			{Name: "application", Packages: []string{"./app/..."},
				Deny: []string{"database/sql", "net/http/..."}},
			{Name: "adapter", Packages: []string{"./adapters/..."}},
		},
	}
}

func TestCleanFixturePasses(t *testing.T) {
	for _, tests := range []bool{false, true} {
		r := &recorder{}
		rules := hexagonalRules("testdata/clean")
		rules.Tests = tests
		if tests {
			// The domain's tests may use net/http/httptest.
			rules.Layers[0].Deny = []string{"database/sql", "net/http"}
		}
		archtest.CheckDependencies(r, rules)
		if len(r.errs) > 0 {
			t.Errorf("CheckDependencies(clean, tests %v) failed:\n%s", tests, strings.Join(r.errs, "\n"))
		}
	}
	// And the check passes a real *testing.T.
	archtest.CheckDependencies(t, hexagonalRules("testdata/clean"))
}

func TestViolatingFixtureFails(t *testing.T) {
	r := &recorder{}
	archtest.CheckDependencies(r, hexagonalRules("testdata/violating"))
	want := []string{
		`archtest: domain/money.go:6: example.com/violating/domain (layer domain) imports "example.com/violating/driver/fakepq": layer domain denies "./driver/..."`,
		`archtest: domain/order.go:5: example.com/violating/domain (layer domain) imports "database/sql": layer domain denies "database/sql"`,
		`archtest: domain/order.go:8: example.com/violating/domain (layer domain) imports "example.com/violating/adapters/pg": it is in layer adapter, outside layer domain: an inner layer must not import an outer one`,
		`archtest: app/place.go:4: example.com/violating/app (layer application) imports "example.com/violating/adapters/web": it is in layer adapter, outside layer application: an inner layer must not import an outer one`,
	}
	got := slices.Sorted(slices.Values(r.errs))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("CheckDependencies(violating) failures:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTestFilesChecked(t *testing.T) {
	r := &recorder{}
	rules := hexagonalRules("testdata/violating")
	rules.Tests = true
	archtest.CheckDependencies(r, rules)
	const want = `archtest: domain/order_test.go:4: example.com/violating/domain (layer domain) imports "net/http/httptest": layer domain denies "net/http/..."`
	if !slices.Contains(r.errs, want) {
		t.Errorf("CheckDependencies(violating, tests) failures:\n%s\nwant among them:\n%s", strings.Join(r.errs, "\n"), want)
	}
	if n := len(r.errs); n != 5 {
		t.Errorf("%d failures; want 5, each offending import once:\n%s", n, strings.Join(r.errs, "\n"))
	}
}

func TestAllowList(t *testing.T) {
	r := &recorder{}
	archtest.CheckDependencies(r, archtest.Rules{
		Dir: "testdata/clean",
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain"}, Allow: []string{"errors"}},
			{Name: "rest", Packages: []string{"./app", "./adapters/..."}},
		},
	})
	const want = `archtest: domain/order.go:7: example.com/clean/domain (layer domain) imports "time": layer domain allows only errors and its own and inner layers' packages`
	if !slices.Equal(r.errs, []string{want}) {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.errs, "\n"), want)
	}
}

func TestBadRules(t *testing.T) {
	tests := []struct {
		name  string
		rules archtest.Rules
		want  []string
	}{
		{"no layers", archtest.Rules{Dir: "testdata/clean"}, []string{"Rules.Layers is empty"}},
		{"malformed", archtest.Rules{Dir: "testdata/clean", Layers: []archtest.Layer{
			{Name: "", Packages: []string{"./domain"}},
			{Name: "a", Packages: []string{"./app"}},
			{Name: "a"},
			{Name: "b", Packages: []string{"./x y"}, Deny: []string{""}},
		}}, []string{"layer 0 has no name", `layer "a" is named twice`, `layer "a" has no Packages`, `layer "b": bad pattern "./x y"`, `layer "b": bad pattern ""`}},
		{"a mistyped layer checks nothing: it fails", archtest.Rules{Dir: "testdata/clean", Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domian/..."}},
		}}, []string{"layer domain matches none of the packages loaded"}},
		{"a package in two layers", archtest.Rules{Dir: "testdata/clean", Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."}},
			{Name: "everything", Packages: []string{"./..."}},
		}}, []string{"package example.com/clean/domain is in layers domain and everything"}},
		{"no such directory", archtest.Rules{Dir: "testdata/nope", Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."}},
		}}, []string{"archtest: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			archtest.CheckDependencies(r, tt.rules)
			all := strings.Join(r.errs, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("failures:\n%s\nwant one mentioning %q", all, w)
				}
			}
		})
	}
}

// A file left out of the build by a build constraint still imports what
// it imports: the rule holds in every build. A file of another package
// (a go:generate program, package main) is no part of the package.
func TestBuildTaggedFilesChecked(t *testing.T) {
	r := &recorder{}
	archtest.CheckDependencies(r, archtest.Rules{
		Dir: "testdata/tagged",
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."}, Deny: []string{"database/sql", "net/http/..."}},
		},
	})
	want := []string{`archtest: domain/order_pg.go:5: example.com/tagged/domain (layer domain) imports "database/sql": layer domain denies "database/sql"`}
	if !slices.Equal(r.errs, want) {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.errs, "\n"), strings.Join(want, "\n"))
	}
}

// A package every file of which is behind a build constraint is checked
// too, though the go command, which lists the packages of the current
// build, leaves it out of "./...". A generator beside its files (package
// main, behind "ignore") is no part of it.
func TestPackageWhollyBehindABuildTagChecked(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":                      "module example.com/shop\n\ngo 1.26\n",
		"domain/order.go":             "package domain\n\nimport \"errors\"\n\nvar ErrEmpty = errors.New(\"empty\")\n",
		"domain/pgfixture/fixture.go": "//go:build integration\n\npackage pgfixture\n\nimport \"database/sql\"\n\nvar DB *sql.DB\n",
		"domain/pgfixture/gen.go":     "//go:build ignore\n\npackage main\n\nimport \"database/sql\"\n\nvar _ sql.DB\n",
	})
	r := &recorder{}
	archtest.CheckDependencies(r, archtest.Rules{
		Dir: dir,
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."}, Deny: []string{"database/sql"}},
		},
	})
	want := []string{`archtest: domain/pgfixture/fixture.go:5: example.com/shop/domain/pgfixture (layer domain) imports "database/sql": layer domain denies "database/sql"`}
	if !slices.Equal(r.errs, want) {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.errs, "\n"), strings.Join(want, "\n"))
	}
}

// writeModule writes files (path: content) under a new temporary
// directory, a module of its own.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// In a module whose path has no dot (module shop), the module's own
// packages are not standard ones.
func TestStdExcludesTheModule(t *testing.T) {
	r := &recorder{}
	archtest.CheckDependencies(r, archtest.Rules{
		Dir:    "testdata/dotless",
		Layers: []archtest.Layer{{Name: "domain", Packages: []string{"./domain"}, Allow: []string{"std"}}},
	})
	want := []string{`archtest: domain/order.go:5: shop/domain (layer domain) imports "shop/internal/sqlx": layer domain allows only std and its own and inner layers' packages`}
	if !slices.Equal(r.errs, want) {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.errs, "\n"), strings.Join(want, "\n"))
	}
}

// A mistyped pattern in a layer that has others matching is reported:
// the packages it meant would be in no layer, and so not checked.
func TestLayerPatternMatchingNothing(t *testing.T) {
	r := &recorder{}
	rules := hexagonalRules("testdata/clean")
	rules.Layers[1].Packages = append(rules.Layers[1].Packages, "./aplication/...")
	archtest.CheckDependencies(r, rules)
	want := []string{`archtest: layer application: pattern "./aplication/..." matches none of the packages loaded ([./...] in ` + absDir(t, "testdata/clean") + `)`}
	if !slices.Equal(r.errs, want) {
		t.Errorf("failures:\n%s\nwant:\n%s", strings.Join(r.errs, "\n"), strings.Join(want, "\n"))
	}
}

func absDir(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// A nil TB is a programming error, named, not a nil dereference.
func TestCheckDependenciesNilTB(t *testing.T) {
	assert.PanicsWithValue(t, "archtest: CheckDependencies: t is nil", func() {
		archtest.CheckDependencies(nil, archtest.Rules{Dir: "testdata/clean"})
	})
}
