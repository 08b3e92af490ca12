package cache_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionTypes type-checks uses of the options with go/types, against
// the compiled package: those that mix typed and untyped options must
// compile, and a typed option of another value type than the cache's
// must not. It needs the go command (for the export data).
func TestOptionTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the export data of the package with the go command")
	}
	imp := exportImporter(t)
	const header = `package p

import (
	"context"
	"time"

	"github.com/otelpatterns/patterns/cache"
)

var (
	_ = time.Second
	_ context.Context
)

type Product struct{ SKU string }

func loadProduct(context.Context, string) (Product, error) { return Product{}, nil }
func loadInt(context.Context, string) (int, error)         { return 0, nil }
func writeInt(context.Context, string, int) error         { return nil }
func flushInt(context.Context, []cache.Write[int]) error   { return nil }
func deadInt(context.Context, []cache.Write[int], error)   {}

func f() {
`
	tests := []struct {
		name string
		code string
		want string // a part of the first type error; empty if the code must compile
	}{
		{"untyped options alone", `cache.New[Product](cache.WithTTL(time.Minute), cache.WithName("p"))`, ""},
		{"V inferred from the loader", `var c *cache.Cache[Product]; c, _ = cache.New(cache.WithTTL(time.Minute), cache.WithLoader(loadProduct)); _ = c`, ""},
		{"V given and the loader's", `cache.New[Product](cache.WithLoader(loadProduct), cache.WithStore(&cache.MemoryStore{}))`, ""},
		{"a list of options", `opts := []cache.Option[Product]{cache.WithTTL(time.Minute), cache.WithCodec(cache.JSON[Product]{})}; cache.New(opts...)`, ""},
		{"a setting kept in a variable", `s := cache.WithTTL(time.Minute); cache.New[Product](s); cache.New[int](s)`, ""},
		{"nil, rejected by New at run time", `cache.New[Product](nil)`, ""},
		{"a typed option kept in a Setting, rejected by New at run time", `var s cache.Setting = cache.WithLoader(loadInt); cache.New[Product](s)`, ""},

		{"loader of another type", `cache.New[string](cache.WithLoader(loadInt))`, "cache.Option[int]) as cache.Option[string] value"},
		{"loader of another type, inferred", `cache.New(cache.WithLoader(loadProduct), cache.WithWriter(writeInt))`, "cache.Option[int]"},
		{"writer of another type", `cache.New[string](cache.WithWriter(writeInt))`, "as cache.Option[string] value"},
		{"write-behind of another type", `cache.New[string](cache.WithWriteBehind(flushInt))`, "as cache.Option[string] value"},
		{"dead letter of another type", `cache.New[string](cache.WithWriteBehindDeadLetter(deadInt))`, "as cache.Option[string] value"},
		{"codec of another type", `cache.New[string](cache.WithCodec(cache.JSON[int]{}))`, "as cache.Option[string] value"},
		{"in a list of options", `_ = []cache.Option[string]{cache.WithTTL(0), cache.WithLoader(loadInt)}`, "as cache.Option[string] value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := header + "\t" + tt.code + "\n}\n"
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, "p.go", src, 0)
			require.NoError(t, err)
			var errs []string
			conf := types.Config{Importer: imp, Error: func(err error) { errs = append(errs, err.Error()) }}
			_, _ = conf.Check("p", fset, []*ast.File{file}, nil)
			if tt.want == "" {
				assert.Empty(t, errs, "%s does not compile", tt.code)
				return
			}
			require.NotEmpty(t, errs, "%s compiles; want a type error", tt.code)
			assert.Contains(t, errs[0], tt.want)
		})
	}
}

// exportImporter returns an importer that reads the export data the go
// command builds for this package and its dependencies.
func exportImporter(t *testing.T) types.Importer {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	cmd := exec.Command(gocmd, "list", "-export", "-deps", "-json=ImportPath,Export", "github.com/otelpatterns/patterns/cache")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list -export")
	exports := map[string]string{}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		exports[p.ImportPath] = p.Export
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})
}
