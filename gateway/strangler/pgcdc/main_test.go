package pgcdc_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/otelpatterns/patterns/internal/testenv"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(testenv.PostgresURLVar); url != "" {
		if err := sweep(url); err != nil {
			fmt.Fprintln(os.Stderr, "pgcdc tests: sweeping the slots of killed runs:", err)
		}
	}
	goleak.VerifyTestMain(m)
}
