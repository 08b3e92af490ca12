package saga

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultRetryDocs derives, from the default retry policies the
// orchestrator builds, how long they try a step or a compensation that
// keeps failing, and checks that the docs of Step.Retry and
// WithCompensationRetry say so: a change of a default without its docs
// fails here. (The docs said "about 8 minutes" and "about 2 minutes" for
// at most 5m51s and 51s. Issue 18.) TestDefaultRetryDurations checks, by
// running sagas, that the policies behave as computed.
func TestDefaultRetryDocs(t *testing.T) {
	docs := docsOf(t)
	tests := []struct {
		name string
		p    policy
		doc  string
	}{
		{"step", defaultStepPolicy, docs["Step.Retry"]},
		{"retriable", defaultRetriablePolicy, docs["Step.Retry"]},
		{"compensation", defaultCompensationPolicy, docs["WithCompensationRetry"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NotEmpty(t, tt.doc)
			// Full jitter draws each wait uniformly up to the backoff's:
			// the waits sum to half the backoff's on average, to all of it
			// at most.
			sum := tt.p.waits()
			want := []string{
				fmt.Sprintf("%d attempts, backing off exponentially from %v to %v", tt.p.attempts, tt.p.initial, tt.p.max),
				fmt.Sprintf("after %v on average, %v at most", roughly(sum/2), roughly(sum)),
			}
			for _, w := range want {
				assert.Contains(t, tt.doc, w, "the doc of the default %s policy", tt.name)
			}
		})
	}
}

// TestPolicyWaits checks the sums the docs are derived from against sums
// worked out by hand.
func TestPolicyWaits(t *testing.T) {
	assert.Equal(t, 300*time.Millisecond, defaultStepPolicy.waits())                      // 100ms + 200ms
	assert.Equal(t, 51100*time.Millisecond, defaultCompensationPolicy.waits())            // 100ms·(2⁹−1)
	assert.Equal(t, 5*time.Minute+51100*time.Millisecond, defaultRetriablePolicy.waits()) // that, and 10 waits of 30s
}

// roughly rounds d as the docs give durations: to 10ms under a second,
// to 100ms under a minute, else to the second.
func roughly(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// docsOf returns the doc comments of Step.Retry and WithCompensationRetry,
// their lines joined by single spaces.
func docsOf(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	docs := map[string]string{}
	flat := func(g *ast.CommentGroup) string { return strings.Join(strings.Fields(g.Text()), " ") }
	for _, file := range []string{"definition.go", "options.go"} {
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Name.Name == "WithCompensationRetry" {
					docs[n.Name.Name] = flat(n.Doc)
				}
			case *ast.TypeSpec:
				if st, ok := n.Type.(*ast.StructType); ok && n.Name.Name == "Step" {
					for _, fld := range st.Fields.List {
						if len(fld.Names) == 1 && fld.Names[0].Name == "Retry" {
							docs["Step.Retry"] = flat(fld.Doc)
						}
					}
				}
			}
			return true
		})
	}
	return docs
}
