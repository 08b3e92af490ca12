package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestInOwnProcess: the body runs in the child only, with the env given.
func TestInOwnProcess(t *testing.T) {
	if !InOwnProcess(t, "TESTENV_CHILD_VALUE=42") {
		return
	}
	if got := os.Getenv("TESTENV_CHILD_VALUE"); got != "42" {
		t.Fatalf("TESTENV_CHILD_VALUE = %q in the child; want 42", got)
	}
}

// TestChildFailure fails when TestInOwnProcessFailsWithTheChild runs it
// as a child, and is skipped otherwise.
func TestChildFailure(t *testing.T) {
	if os.Getenv(childEnv) != t.Name() {
		t.Skip("run as a child by TestInOwnProcessFailsWithTheChild")
	}
	t.Fatal("the child fails")
}

// fatalRecorder is a testing.TB named as another test, whose Fatalf is
// recorded rather than ending the test.
type fatalRecorder struct {
	testing.TB
	name    string
	failure string
}

func (r *fatalRecorder) Name() string { return r.name }
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
}

// TestInOwnProcessFailsWithTheChild: a failing child fails its parent,
// with the child's output.
func TestInOwnProcessFailsWithTheChild(t *testing.T) {
	r := &fatalRecorder{TB: t, name: "TestChildFailure"}
	if InOwnProcess(r) {
		t.Fatal("InOwnProcess() = true in the parent")
	}
	if !strings.Contains(r.failure, "the child fails") {
		t.Fatalf("the parent's failure = %q; want the child's output", r.failure)
	}
}

// TestInOwnProcessSubtest: a subtest, with characters -test.run reads
// as a regular expression in its name, runs alone in its child.
func TestInOwnProcessSubtest(t *testing.T) {
	t.Run("a+b (c)", func(t *testing.T) {
		if !InOwnProcess(t) {
			return
		}
		if got := os.Getenv(childEnv); got != t.Name() {
			t.Fatalf("%s = %q in the child; want %q", childEnv, got, t.Name())
		}
	})
}

// TestInOwnProcessFailsWhenNoTestRan: a name the child does not find
// (there, the test would pass having run nothing) fails the parent.
func TestInOwnProcessFailsWhenNoTestRan(t *testing.T) {
	r := &fatalRecorder{TB: t, name: "TestNoSuchTest"}
	InOwnProcess(r)
	if !strings.Contains(r.failure, "did not run it") {
		t.Fatalf("the parent's failure = %q; want it to say the child ran nothing", r.failure)
	}
}

// TestInOwnProcessNested: a test and its subtest that both run in a
// process of their own: the subtest's child runs the test on its way to
// the subtest, which used to start a child again, without end.
func TestInOwnProcessNested(t *testing.T) {
	if !InOwnProcess(t) {
		return
	}
	t.Run("inner", func(t *testing.T) {
		if !InOwnProcess(t) {
			return
		}
		if got := os.Getenv(childEnv); got != t.Name() {
			t.Fatalf("%s = %q in the child; want %q", childEnv, got, t.Name())
		}
	})
}
