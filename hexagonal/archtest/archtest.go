package archtest

import (
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
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
// rule holds in every build. So are the packages all of whose files they
// leave out, which the go command does not load: CheckDependencies finds
// them in the directories the patterns name in the module, walked as the
// go command walks them, and gives them the import path of their
// directory. Patterns of other modules' packages name no directory here.
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
	modPath, modDir := "", ""
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Main {
			modPath, modDir = p.Module.Path, p.Module.Dir
			break
		}
	}
	c := newChecker(rules.Layers, modPath)
	used := make([]bool, len(c.layers))
	usedPattern := make([][]bool, len(c.layers)) // of each layer's Packages
	for i, l := range c.layers {
		usedPattern[i] = make([]bool, len(l.packages))
	}
	var (
		units   []unit
		covered = map[string]bool{} // the directories of the packages loaded
	)
	for _, p := range pkgs {
		if p.Name == "" && len(p.GoFiles) == 0 && len(p.IgnoredFiles) > 0 {
			// Named by a pattern without "...", a package whose every
			// file build constraints leave out, which the go command
			// fails to load, is found by leftOut as those it drops.
			continue
		}
		for _, e := range p.Errors {
			t.Errorf("archtest: package %s: %v", p.PkgPath, e)
		}
		if strings.HasSuffix(p.ID, ".test") {
			continue // the generated test main
		}
		covered[p.Dir] = true
		units = append(units, unit{
			path:  strings.TrimSuffix(p.PkgPath, "_test"), // an external test is its package's
			name:  p.Name,
			files: slices.Concat(p.GoFiles, p.IgnoredFiles),
		})
	}
	if modDir != "" {
		for _, d := range leftOut(dir, modDir, modPath, patterns, covered) {
			u, err := dirUnit(d, modDir, modPath)
			if err != nil {
				t.Errorf("archtest: %v", err)
				continue
			}
			units = append(units, u)
		}
	}
	seen := map[string]bool{} // file and import, across a package's test variants
	fset := token.NewFileSet()
	for _, u := range units {
		path := u.path
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
		for _, file := range u.files {
			if !strings.HasSuffix(file, ".go") {
				continue // an ignored assembly or C file
			}
			f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
			if err != nil {
				t.Errorf("archtest: %v", err)
				continue
			}
			if !partOf(f.Name.Name, file, u.name, rules.Tests) {
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

// unit is a package to check: its import path, its name, and its files,
// those of the current build and those that build constraints leave out.
type unit struct {
	path, name string
	files      []string
}

// leftOut returns the directories that patterns, relative to dir, name
// in the main module (at modDir, of path modPath) and that hold Go files
// but no package loaded (covered): those whose every Go file build
// constraints leave out, which the go command drops from a pattern's
// packages, since it lists only the packages of the current build. It
// walks a pattern with "..." as the go command does: past directories
// named testdata or vendor or whose names begin with "." or "_", and
// past other modules. Patterns of other modules' packages, or of the
// standard library's, name no directory here: they are not checked.
func leftOut(dir, modDir, modPath string, patterns []string, covered map[string]bool) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, pat := range patterns {
		var fsPat string // the pattern as a slash-separated absolute path
		switch {
		case modPath != "" && (pat == modPath || strings.HasPrefix(pat, modPath+"/")):
			fsPat = filepath.ToSlash(modDir) + pat[len(modPath):]
		case filepath.IsAbs(pat):
			fsPat = filepath.ToSlash(filepath.Clean(pat))
		case build.IsLocalImport(filepath.ToSlash(pat)):
			fsPat = filepath.ToSlash(filepath.Join(dir, pat))
		default:
			continue
		}
		// The walk starts at the directory before the first "...", as
		// the go command's does: "./dom..." walks ".".
		start := fsPat
		i := strings.Index(fsPat, "...")
		wild := i >= 0
		if wild {
			start = fsPat[:strings.LastIndex(fsPat[:i], "/")+1]
		}
		start = filepath.Clean(filepath.FromSlash(start))
		if !inModule(start, modDir) {
			continue // the go command has failed the pattern
		}
		match := compilePattern(fsPat, "").match
		_ = filepath.WalkDir(start, func(d string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil // unreadable, or a file
			}
			if d != start {
				if !wild {
					return filepath.SkipDir // the pattern names start alone
				}
				name := e.Name()
				if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || isFile(filepath.Join(d, "go.mod")) {
					return filepath.SkipDir
				}
			}
			if !covered[d] && !seen[d] && match(filepath.ToSlash(d)) && len(goFiles(d)) > 0 {
				seen[d] = true
				dirs = append(dirs, d)
			}
			return nil
		})
	}
	return dirs
}

// inModule reports whether directory d is in the module whose root is
// modDir: below it, and in no module nested in it.
func inModule(d, modDir string) bool {
	rel, err := filepath.Rel(modDir, d)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	for ; d != modDir; d = filepath.Dir(d) {
		if isFile(filepath.Join(d, "go.mod")) {
			return false
		}
	}
	return true
}

func isFile(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

// goFiles returns the Go files of directory d, but for those whose names
// begin with "." or "_", which the go command ignores.
func goFiles(d string) []string {
	entries, _ := os.ReadDir(d)
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".go") && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") && e.Type().IsRegular() {
			files = append(files, filepath.Join(d, name))
		}
	}
	return files
}

// dirUnit returns the package in directory d of the module at modDir,
// which the go command did not load. Its name, which the go command
// takes from the files of the current build, is that of its files: of
// those not tests, the first not named main, since a program of its own
// (a generator behind an "ignore" constraint) may lie beside a package's
// files.
func dirUnit(d, modDir, modPath string) (unit, error) {
	rel, err := filepath.Rel(modDir, d)
	if err != nil {
		return unit{}, err
	}
	u := unit{path: modPath, files: goFiles(d)}
	if rel != "." {
		u.path += "/" + filepath.ToSlash(rel)
	}
	fset := token.NewFileSet()
	testName := ""
	for _, file := range u.files {
		f, err := parser.ParseFile(fset, file, nil, parser.PackageClauseOnly)
		if err != nil {
			return unit{}, err
		}
		if strings.HasSuffix(file, "_test.go") {
			testName = strings.TrimSuffix(f.Name.Name, "_test")
		} else if u.name == "" || u.name == "main" {
			u.name = f.Name.Name
		}
	}
	if u.name == "" {
		u.name = testName // a package of tests alone
	}
	return u, nil
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
