// Package archtest checks a code base's dependency rule in a test: in a
// hexagonal or onion architecture, dependencies point inwards, so the
// domain imports neither the application nor the adapters, and no layer
// but the outermost imports a database driver or net/http.
//
// [CheckDependencies] loads the packages, assigns each to a layer by its
// import path, and fails the test at every import that breaks a rule,
// naming the file, the line and the import:
//
//	func TestDependencies(t *testing.T) {
//		archtest.CheckDependencies(t, archtest.Rules{
//			Dir: "..", // the module's root, from this test's package
//			Layers: []archtest.Layer{
//				{Name: "domain", Packages: []string{"./domain/..."},
//					Allow: []string{"std"},
//					Deny:  []string{"database/sql", "net/http/..."}},
//				{Name: "application", Packages: []string{"./app/..."}},
//				{Name: "adapter", Packages: []string{"./adapters/..."}},
//			},
//		})
//	}
//
// It is what ArchUnit does for Java, kept to imports: Go has no
// reflection-free way to see calls across packages that do not import
// each other, and imports are what the dependency rule is about.
//
// The package runs the go command through
// [golang.org/x/tools/go/packages], which is why it is apart from
// [github.com/otelpatterns/patterns/hexagonal]: importing it from tests
// keeps both out of the service's binary.
package archtest
