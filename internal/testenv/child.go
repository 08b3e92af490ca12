package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// childEnv names the test that a child process started by InOwnProcess
// runs.
const childEnv = "PATTERNS_TEST_CHILD"

// InOwnProcess runs the calling test again, alone, in a child process of
// this test binary with env added to its environment, and reports whether
// the caller is that child. A test that changes what a process holds for
// good (the global OpenTelemetry providers, the runtime's cleanup
// goroutine) starts with
//
//	if !testenv.InOwnProcess(t) {
//		return
//	}
//
// The parent fails, with the child's output, if the child fails.
func InOwnProcess(t testing.TB, env ...string) bool {
	t.Helper()
	// In the child, a test that runs the subtest that called it (whose
	// name the child has) is its way there, not a test to run apart.
	if env := os.Getenv(childEnv); env == t.Name() || strings.HasPrefix(env, t.Name()+"/") {
		return true
	}
	// -test.run matches each level of a subtest's name on its own.
	levels := strings.Split(t.Name(), "/")
	for i, l := range levels {
		levels[i] = "^" + regexp.QuoteMeta(l) + "$"
	}
	args := []string{"-test.run=" + strings.Join(levels, "/"), "-test.count=1", "-test.v"}
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		// The child stops where its parent would: a hung child must not
		// outlive the run that times its parent out.
		if deadline, ok := d.Deadline(); ok {
			args = append(args, "-test.timeout="+time.Until(deadline).String())
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), env...)
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("the child process of %s: %v\n%s", t.Name(), err, out)
	case !bytes.Contains(out, []byte("=== RUN   "+t.Name()+"\n")):
		// A child that matched no test passes, and would hide that.
		t.Fatalf("the child process of %s did not run it:\n%s", t.Name(), out)
	}
	return false
}
