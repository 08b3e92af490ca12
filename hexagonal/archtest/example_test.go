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

// The dependency rule of a small hexagonal module (testdata/clean:
// domain, app, adapters/pg, adapters/web and cmd/server), checked as a
// test would check it. Its code keeps the rule; one of the domain's test
// files imports net/http/httptest, which counts only with Tests.
// archtest loads packages from directories, through the go command, so
// the module is a fixture on disk rather than a description in memory.
func Example() {
	rules := archtest.Rules{
		Dir: "testdata/clean",
		Layers: []archtest.Layer{
			{Name: "domain", Packages: []string{"./domain/..."},
				Allow: []string{"std"},
				Deny:  []string{"database/sql", "net/http/..."}},
			{Name: "application", Packages: []string{"./app/..."},
				Deny: []string{"database/sql", "net/http/..."}},
			{Name: "adapter", Packages: []string{"./adapters/..."}},
		},
	}
	fmt.Println("code:")
	archtest.CheckDependencies(printer{}, rules)
	rules.Tests = true
	fmt.Println("code and tests:")
	archtest.CheckDependencies(printer{}, rules)
	// Output:
	// code:
	// code and tests:
	// archtest: domain/order_test.go:4: example.com/clean/domain (layer domain) imports "net/http/httptest": layer domain denies "net/http/..."
}
