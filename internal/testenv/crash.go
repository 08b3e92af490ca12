package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CrashMarker is the line a crash test's child process prints to stdout
// when it has reached its crash point and waits to be killed.
const CrashMarker = "AT CRASH POINT"

// KillAtCrashPoint runs this test binary again as a child process that
// runs only the test called child, with env added to its environment,
// waits (up to limit) until the child prints [CrashMarker] and kills it
// with SIGKILL, giving it no chance to clean up. It fails the test, with
// the child's output, if the child ends or times out before its crash
// point.
func KillAtCrashPoint(t testing.TB, child string, env []string, limit time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan bool, 1)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == CrashMarker {
				reached <- true
				return
			}
			out.WriteString(sc.Text() + "\n")
		}
		reached <- false
	}()
	var ok bool
	select {
	case ok = <-reached:
	case <-time.After(limit):
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Errorf("killing the child: %v", err)
	}
	_ = cmd.Wait() // closes stdout, which ends the reader
	if !ok {
		t.Fatalf("the child %s did not reach its crash point within %v; stdout:\n%s\nstderr:\n%s", child, limit, out.String(), stderr.String())
	}
}
