package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"
)

// TB is what [CheckDependencies] needs of a test: a *testing.T, or a
// recorder of its own in a test that checks a check.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Rules are the dependency rules of a code base: its layers, inner to
// outer, each with the imports it allows and denies.
//
// A pattern names import paths: an exact path ("database/sql"); a path
// ending in "/..." for the package and everything below it
// ("github.com/jackc/pgx/..."); "..." elsewhere for any text
// ("example.com/shop/.../internal"); a path starting with "./" for the
// module's own packages, relative to the module's path
// ("./domain/..."); or "std" for the standard library (the paths whose
// first element has no dot, but for the module's own).
type Rules struct {
	// Dir is the directory the packages are loaded from, inside the
	// module; "" is the current directory, which in a test is the test's
	// package.
	Dir string
	// Packages are the patterns of the packages to load and check, as
	// the go command takes them, relative to Dir; none means "./...".
	Packages []string
	// Layers are the layers, innermost (the domain) first. A package
	// belongs to the layer whose Packages match it; to none, and so is
	// not checked, when no layer's do.
	Layers []Layer
	// Tests checks the imports of test files too.
	Tests bool
}

// Layer is a ring of the architecture and what it may import.
type Layer struct {
	// Name names the layer in failures.
	Name string
	// Packages are the patterns of the layer's packages.
	Packages []string
	// Allow, when not empty, lists all the layer may import besides its
	// own layer's and inner layers' packages: an import of anything else
	// fails. Empty allows whatever Deny does not deny.
	Allow []string
	// Deny lists what the layer must not import, even when Allow allows
	// it: "database/sql", "net/http/...", a driver.
	Deny []string
}

// CheckDependencies loads the packages of rules and fails t (with
// t.Errorf, once per offending import, naming the importing file and
// line, the package and layer, the import and the rule it breaks) when a
// layer's package imports a package of an outer layer, an import its
// layer denies, or, when its layer has an Allow list, one it does not
// allow. It fails t too when the rules are malformed, the packages do
// not load, or a layer, or one of its Packages patterns, matches none of
// the packages loaded (a mistyped pattern would otherwise leave the
// packages it meant unchecked).
//
// Files that build constraints leave out of the current build (for
// another OS, or behind a tag such as integration) are checked too: the
// rule holds in every build.
//
// It runs the go command (through golang.org/x/tools/go/packages), so it
// belongs in a test, which is why it lives in a package of its own.
func CheckDependencies(t TB, rules Rules) {
	if t == nil {
		panic("archtest: CheckDependencies: t is nil")
	}
	t.Helper()
	if err := rules.validate(); err != nil {
		t.Errorf("archtest: %v", err)
		return
	}
	dir, err := filepath.Abs(rules.Dir)
	if err != nil {
		t.Errorf("archtest: %v", err)
		return
	}
	patterns := rules.Packages
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	cfg := &packages.Config{
		Mode:  packages.NeedName | packages.NeedFiles | packages.NeedImports | packages.NeedModule,
		Dir:   dir,
		Tests: rules.Tests,
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		t.Errorf("archtest: loading %v in %s: %v", patterns, dir, err)
		return
	}
	if len(pkgs) == 0 {
		t.Errorf("archtest: %v in %s matches no package", patterns, dir)
		return
	}
	modPath := ""
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Main {
			modPath = p.Module.Path
			break
		}
	}
	c := newChecker(rules.Layers, modPath)
	used := make([]bool, len(c.layers))
	usedPattern := make([][]bool, len(c.layers)) // of each layer's Packages
	for i, l := range c.layers {
		usedPattern[i] = make([]bool, len(l.packages))
	}
	seen := map[string]bool{} // file and import, across a package's test variants
	fset := token.NewFileSet()
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Errorf("archtest: package %s: %v", p.PkgPath, e)
		}
		path := strings.TrimSuffix(p.PkgPath, "_test") // an external test is its package's
		if strings.HasSuffix(p.ID, ".test") {
			continue // the generated test main
		}
		li := c.layerOf(path)
		if li < 0 {
			continue
		}
		if amb := c.ambiguous(path); amb != "" {
			t.Errorf("archtest: package %s is in layers %s", path, amb)
			continue
		}
		used[li] = true
		for j, pat := range c.layers[li].packages {
			if pat.match(path) {
				usedPattern[li][j] = true
			}
		}
		for _, file := range slices.Concat(p.GoFiles, p.IgnoredFiles) {
			if !strings.HasSuffix(file, ".go") {
				continue // an ignored assembly or C file
			}
			f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
			if err != nil {
				t.Errorf("archtest: %v", err)
				continue
			}
			if !partOf(f.Name.Name, file, p.Name, rules.Tests) {
				continue
			}
			for _, spec := range f.Imports {
				imp, err := strconv.Unquote(spec.Path.Value)
				if err != nil || imp == "C" || imp == path {
					continue
				}
				key := file + "\x00" + imp
				if seen[key] {
					continue
				}
				seen[key] = true
				why := c.violation(li, imp)
				if why == "" {
					continue
				}
				pos := fset.Position(spec.Pos())
				name := pos.Filename
				if rel, err := filepath.Rel(dir, name); err == nil && !strings.HasPrefix(rel, "..") {
					name = rel
				}
				t.Errorf("archtest: %s:%d: %s (layer %s) imports %q: %s", name, pos.Line, path, c.layers[li].Name, imp, why)
			}
		}
	}
	for i, u := range used {
		if !u {
			t.Errorf("archtest: layer %s matches none of the packages loaded (%v in %s)", c.layers[i].Name, patterns, dir)
			continue
		}
		for j, pu := range usedPattern[i] {
			if !pu {
				t.Errorf("archtest: layer %s: pattern %q matches none of the packages loaded (%v in %s)", c.layers[i].Name, c.layers[i].packages[j].text, patterns, dir)
			}
		}
	}
}

// partOf reports whether a file of package fileName is part of package
// pkgName, whose files, besides those of the build, include those that
// build constraints leave out (p.IgnoredFiles): the dependency rule holds
// in every build. It is not when it is a program of its own (a program
// run by go generate, in package main, with an "ignore" build
// constraint), or a test file when tests are not checked.
func partOf(fileName, file, pkgName string, tests bool) bool {
	if strings.HasSuffix(file, "_test.go") {
		return tests && (fileName == pkgName || fileName+"_test" == pkgName || fileName == pkgName+"_test")
	}
	return fileName == pkgName
}

func (r *Rules) validate() error {
	var bad []string
	if len(r.Layers) == 0 {
		bad = append(bad, "Rules.Layers is empty")
	}
	names := map[string]bool{}
	for i, l := range r.Layers {
		switch {
		case l.Name == "":
			bad = append(bad, fmt.Sprintf("layer %d has no name", i))
		case names[l.Name]:
			bad = append(bad, fmt.Sprintf("layer %q is named twice", l.Name))
		}
		names[l.Name] = true
		if len(l.Packages) == 0 {
			bad = append(bad, fmt.Sprintf("layer %q has no Packages", l.Name))
		}
		for _, list := range [][]string{l.Packages, l.Allow, l.Deny} {
			for _, p := range list {
				if p == "" || strings.ContainsAny(p, " \t\n") {
					bad = append(bad, fmt.Sprintf("layer %q: bad pattern %q", l.Name, p))
				}
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("bad rules: %s", strings.Join(bad, "; "))
	}
	return nil
}

// checker holds the rules with their patterns compiled.
type checker struct {
	layers []layer
}

type layer struct {
	Layer
	packages, allow, deny []pattern
}

type pattern struct {
	text string
	std  bool
	mod  string // the module's path, whose packages are not std ones
	re   *regexp.Regexp
}

func newChecker(layers []Layer, modPath string) *checker {
	c := &checker{}
	compile := func(list []string) []pattern {
		out := make([]pattern, 0, len(list))
		for _, p := range list {
			out = append(out, compilePattern(p, modPath))
		}
		return out
	}
	for _, l := range layers {
		c.layers = append(c.layers, layer{Layer: l, packages: compile(l.Packages), allow: compile(l.Allow), deny: compile(l.Deny)})
	}
	return c
}

func compilePattern(p, modPath string) pattern {
	if p == "std" {
		return pattern{text: p, std: true, mod: modPath}
	}
	full := p
	if rest, ok := strings.CutPrefix(p, "./"); ok {
		full = modPath + "/" + rest
	} else if p == "." {
		full = modPath
	}
	// As the go command matches: "x/..." also matches x itself.
	re := regexp.QuoteMeta(full)
	if strings.HasSuffix(re, `/\.\.\.`) {
		re = strings.TrimSuffix(re, `/\.\.\.`) + `(/.*)?`
	}
	re = strings.ReplaceAll(re, `\.\.\.`, `.*`)
	return pattern{text: p, re: regexp.MustCompile("^" + re + "$")}
}

func (p pattern) match(path string) bool {
	if p.std {
		if p.mod != "" && (path == p.mod || strings.HasPrefix(path, p.mod+"/")) {
			return false // a module whose path has no dot, such as "shop"
		}
		first, _, _ := strings.Cut(path, "/")
		return !strings.Contains(first, ".")
	}
	return p.re.MatchString(path)
}

func matchAny(ps []pattern, path string) (pattern, bool) {
	for _, p := range ps {
		if p.match(path) {
			return p, true
		}
	}
	return pattern{}, false
}

// layerOf returns the index of the first layer whose packages match
// path, or -1.
func (c *checker) layerOf(path string) int {
	for i, l := range c.layers {
		if _, ok := matchAny(l.packages, path); ok {
			return i
		}
	}
	return -1
}

// ambiguous returns the names of the layers that match path when there
// are several, or "".
func (c *checker) ambiguous(path string) string {
	var names []string
	for _, l := range c.layers {
		if _, ok := matchAny(l.packages, path); ok {
			names = append(names, l.Name)
		}
	}
	if len(names) < 2 {
		return ""
	}
	return strings.Join(names, " and ")
}

// violation returns why the layer li may not import imp, or "".
func (c *checker) violation(li int, imp string) string {
	l := c.layers[li]
	lj := c.layerOf(imp)
	if lj > li {
		return fmt.Sprintf("it is in layer %s, outside layer %s: an inner layer must not import an outer one", c.layers[lj].Name, l.Name)
	}
	if p, ok := matchAny(l.deny, imp); ok {
		return fmt.Sprintf("layer %s denies %q", l.Name, p.text)
	}
	if lj >= 0 || len(l.allow) == 0 {
		return ""
	}
	if _, ok := matchAny(l.allow, imp); !ok {
		return fmt.Sprintf("layer %s allows only %s and its own and inner layers' packages", l.Name, strings.Join(slices.Collect(patternTexts(l.allow)), ", "))
	}
	return ""
}

func patternTexts(ps []pattern) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, p := range ps {
			if !yield(p.text) {
				return
			}
		}
	}
}
