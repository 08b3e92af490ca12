package testenv

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// printsRx matches the first line of the comment that gives the expected
// output of an example needing a backend.
var printsRx = regexp.MustCompile(`^With [^,]+, it prints:$`)

// CheckExample runs f, the example function name declared in file (a path
// relative to the test's package directory, such as "example_test.go"),
// and checks that what it prints on os.Stdout is the output written in the
// comment at the end of its body.
//
// It is for the examples that need a backend: they return at once without
// it, so they carry no Output comment and go test only compiles them. A
// test calls the backend's getter of this package first, which skips it
// (or fails it, see [Required]) without the backend, then CheckExample:
//
//	func TestExample(t *testing.T) {
//		testenv.PostgresURL(t)
//		testenv.CheckExample(t, "example_test.go", "Example", Example)
//	}
//
// The expected output is the last comment in the function's body, after
// its last statement, made of line comments: a first line "With <backend>,
// it prints:", then the output, one comment line for each line printed,
// each after "// " (a bare "//" is an empty line). An empty comment line
// may separate the first line from the output. So the readers of the
// documentation see it at the end of the example's code, where an Output
// comment would be:
//
//	func Example() {
//		// ...
//		fmt.Println("balance", balance)
//		// With PostgreSQL, it prints:
//		//
//		// balance 120
//	}
//
// As for an Output comment, space at the start and end of the whole output
// is ignored. A mismatch is reported with [testing.TB.Errorf] and a diff; a
// missing function or comment stops the test with [testing.TB.Fatalf].
//
// os.Stdout is replaced while f runs, and restored when f returns, panics
// or stops its goroutine (with [testing.TB.FailNow], say); so no other
// test that prints may run in parallel with it.
func CheckExample(t testing.TB, file, name string, f func()) {
	t.Helper()
	want, err := expectedOutput(file, name)
	if err != nil {
		t.Fatalf("CheckExample: %v", err)
		return
	}
	got := captureStdout(t, f)
	assert.Equal(t, strings.TrimSpace(want), strings.TrimSpace(got),
		"%s printed (+) other than what the comment ending its body in %s says (-)", name, file)
}

// expectedOutput returns the output written at the end of the body of the
// function name declared in file, in the form [CheckExample] describes.
func expectedOutput(file, name string) (string, error) {
	fset := token.NewFileSet()
	src, err := parser.ParseFile(fset, file, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return "", err
	}
	var fn *ast.FuncDecl
	for _, d := range src.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Recv == nil && d.Name.Name == name && d.Body != nil {
			fn = d
		}
	}
	if fn == nil {
		return "", fmt.Errorf("%s declares no function %s", file, name)
	}
	form := `a comment at the end of its body whose first line is "// With <backend>, it prints:"`
	var last *ast.CommentGroup
	for _, g := range src.Comments {
		if g.Pos() > fn.Body.Lbrace && g.End() < fn.Body.Rbrace {
			last = g
		}
	}
	if last == nil {
		return "", fmt.Errorf("%s: %s has no comment in its body; want %s", fset.Position(fn.Pos()), name, form)
	}
	if n := len(fn.Body.List); n > 0 && fn.Body.List[n-1].End() > last.Pos() {
		return "", fmt.Errorf("%s: %s ends with a statement, not a comment; want %s", fset.Position(fn.Body.Rbrace), name, form)
	}
	var lines []string
	for _, c := range last.List {
		text, ok := strings.CutPrefix(c.Text, "//")
		if !ok {
			return "", fmt.Errorf("%s: a /* */ comment; want line comments, %s", fset.Position(c.Pos()), form)
		}
		text, _ = strings.CutPrefix(text, " ")
		lines = append(lines, text)
	}
	if !printsRx.MatchString(lines[0]) {
		return "", fmt.Errorf("%s: %s's last comment starts with %q; want %s", fset.Position(last.Pos()), name, lines[0], form)
	}
	return strings.Join(lines[1:], "\n") + "\n", nil
}

// captureStdout returns what f prints on os.Stdout. os.Stdout is restored
// when f returns, panics (the panic goes on) or stops its goroutine.
func captureStdout(t testing.TB, f func()) (printed string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("CheckExample: capturing os.Stdout: %v", err)
		return ""
	}
	out := make(chan string, 1)
	go func() { // reads as f writes, so that a full pipe does not block f
		b, _ := io.ReadAll(r)
		_ = r.Close()
		out <- string(b)
	}()
	saved := os.Stdout
	os.Stdout = w
	defer func() {
		os.Stdout = saved
		_ = w.Close()
		printed = <-out
	}()
	f()
	return "" // replaced by the deferred function
}
