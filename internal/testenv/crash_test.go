package testenv_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/otelpatterns/patterns/internal/testenv"
)

// TestCrashChildOfTheTest is not a test: it is the child process of
// TestKillAtCrashPoint, selected by TESTENV_CRASH_CHILD.
func TestCrashChildOfTheTest(t *testing.T) {
	if os.Getenv("TESTENV_CRASH_CHILD") != "1" {
		t.Skip("the child process of TestKillAtCrashPoint")
	}
	fmt.Println("working")
	fmt.Println(testenv.CrashMarker)
	time.Sleep(time.Minute) // until killed
	t.Fatal("not killed")
}

func TestKillAtCrashPoint(t *testing.T) {
	start := time.Now()
	testenv.KillAtCrashPoint(t, "TestCrashChildOfTheTest", []string{"TESTENV_CRASH_CHILD=1"}, 20*time.Second)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v: the child was not killed at its crash point", d)
	}
}
