package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failures is a testing.TB that records Errorf and Fatalf instead of
// failing the test, so that CheckExample's failures can be checked.
type failures struct {
	testing.TB
	errors, fatals []string
}

func (r *failures) Helper() {}
func (r *failures) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *failures) Fatalf(format string, args ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
}

// exampleFile writes an example file declaring body as func Example and
// returns its path.
func exampleFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "example_test.go")
	src := "package x_test\n\nimport \"fmt\"\n\n// The doc comment.\n//\n//\tWith Redis, it prints:\n//\tnot this\nfunc Example() {\n" + body + "}\n"
	require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
	return path
}

const exampleBody = `	fmt.Println("a")
	fmt.Println()
	fmt.Println("  b c")
	// With PostgreSQL, it prints:
	//
	// a
	//
	//   b c
`

func printABC() {
	fmt.Println("a")
	fmt.Println()
	fmt.Println("  b c")
}

func TestCheckExample(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		fn         string
		f          func()
		wantErrors []string // substrings of the one Errorf, if any
		wantFatal  string   // substring of the one Fatalf, if any
	}{
		{name: "same output", body: exampleBody, f: printABC},
		{name: "no empty line after the first", f: printABC,
			body: "\t// With NATS, it prints:\n\t// a\n\t//\n\t//   b c\n"},
		{name: "space around the whole output ignored", body: exampleBody, f: func() {
			fmt.Print("\n\n")
			printABC()
			fmt.Print("\n")
		}},
		{name: "a line differs", body: exampleBody,
			f:          func() { fmt.Println("a"); fmt.Println(); fmt.Println("  b d") },
			wantErrors: []string{"-  b c", "+  b d", "Example printed (+) other than"}},
		{name: "a line missing", body: exampleBody,
			f:          func() { fmt.Println("a") },
			wantErrors: []string{"-  b c"}},
		{name: "space inside a line counts", body: exampleBody,
			f:          func() { fmt.Println("a"); fmt.Println(); fmt.Println("b c") },
			wantErrors: []string{"-  b c", "+b c"}},
		{name: "no such function", body: exampleBody, fn: "ExampleNew", f: printABC,
			wantFatal: "declares no function ExampleNew"},
		{name: "no comment in the body", body: "\tfmt.Println(\"a\")\n", f: printABC,
			wantFatal: "has no comment in its body"},
		{name: "comment before the last statement", f: printABC,
			body:      "\t// With PostgreSQL, it prints:\n\t//\n\t// a\n\tfmt.Println(\"a\")\n",
			wantFatal: "ends with a statement, not a comment"},
		{name: "another first line", f: printABC,
			body:      "\tfmt.Println(\"a\")\n\t// It prints:\n\t//\n\t// a\n",
			wantFatal: `starts with "It prints:"`},
		{name: "block comment", f: printABC,
			body:      "\tfmt.Println(\"a\")\n\t/* With PostgreSQL, it prints:\n\ta */\n",
			wantFatal: "want line comments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := exampleFile(t, tt.body)
			fn := tt.fn
			if fn == "" {
				fn = "Example"
			}
			r := &failures{TB: t}
			CheckExample(r, file, fn, tt.f)
			if tt.wantFatal != "" {
				require.Len(t, r.fatals, 1, "CheckExample() Fatalf calls")
				assert.Contains(t, r.fatals[0], tt.wantFatal)
				if tt.fn == "" { // a failure to find the comment shows its form
					assert.Contains(t, r.fatals[0], "With <backend>, it prints:")
				}
				assert.Empty(t, r.errors)
				return
			}
			assert.Empty(t, r.fatals, "CheckExample() Fatalf calls")
			if tt.wantErrors == nil {
				assert.Empty(t, r.errors, "CheckExample() Errorf calls")
				return
			}
			require.Len(t, r.errors, 1, "CheckExample() Errorf calls")
			for _, s := range tt.wantErrors {
				assert.Contains(t, r.errors[0], s)
			}
		})
	}
}

// The file is found relative to the package directory, as the packages'
// tests name their example files.
func TestCheckExampleThisPackage(t *testing.T) {
	CheckExample(t, "example_test.go", "printBalance", printBalance)
}

// printBalance is written in the form CheckExample reads.
func printBalance() {
	fmt.Println("balance 120")
	fmt.Println("1 account-7 1")
	// With PostgreSQL, it prints:
	//
	// balance 120
	// 1 account-7 1
}

func TestCaptureStdout(t *testing.T) {
	stdout := os.Stdout
	t.Run("returns what f printed", func(t *testing.T) {
		assert.Equal(t, "a\nb\n", captureStdout(t, func() { fmt.Println("a"); fmt.Print("b\n") }))
		assert.Same(t, stdout, os.Stdout)
	})
	t.Run("more than a pipe holds", func(t *testing.T) {
		line := strings.Repeat("x", 1023) + "\n"
		got := captureStdout(t, func() {
			for range 1024 {
				fmt.Print(line)
			}
		})
		assert.Equal(t, strings.Repeat(line, 1024), got)
		assert.Same(t, stdout, os.Stdout)
	})
	t.Run("restored when f panics", func(t *testing.T) {
		assert.PanicsWithValue(t, "boom", func() {
			captureStdout(t, func() { fmt.Println("a"); panic("boom") })
		})
		assert.Same(t, stdout, os.Stdout)
	})
	t.Run("restored when f stops its goroutine", func(t *testing.T) {
		done := make(chan struct{})
		go func() { // as t.FailNow does, from a test's goroutine
			defer close(done)
			captureStdout(t, func() { fmt.Println("a"); runtime.Goexit() })
		}()
		<-done
		assert.Same(t, stdout, os.Stdout)
	})
}
