package archtest_test

import (
	"fmt"

	"github.com/otelpatterns/patterns/hexagonal/archtest"
)

// printer is a TB that prints the failures, where a test passes its
// *testing.T.
type printer struct{}

func (printer) Helper() {}

func (printer) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// The rules of a hexagonal layout, applied to a fixture whose
// application imports an adapter.
func ExampleCheckDependencies() {
	archtest.CheckDependencies(printer{}, archtest.Rules{
		Dir:      "testdata/violating",
		Packages: []string{"./app/...", "./adapters/..."},
		Layers: []archtest.Layer{
			{Name: "application", Packages: []string{"./app/..."},
				Deny: []string{"database/sql", "net/http/..."}},
			{Name: "adapter", Packages: []string{"./adapters/..."}},
		},
	})
	// Output:
	// archtest: app/place.go:4: example.com/violating/app (layer application) imports "example.com/violating/adapters/web": it is in layer adapter, outside layer application: an inner layer must not import an outer one
}
