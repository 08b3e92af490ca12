package pglog_test

import (
	"testing"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/logtest"
)

// TestConformance runs the suite every saga.Log passes, each subtest
// against a schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) saga.Log {
		l, _, _ := newLog(t, 10)
		return l
	})
}

// TestConformanceSharedSchema runs the suite with every subtest on one
// schema, as the services sharing a database do: the subtests' sagas sit
// side by side.
func TestConformanceSharedSchema(t *testing.T) {
	t.Parallel()
	l, _, _ := newLog(t, 10)
	logtest.Run(t, func(t *testing.T) saga.Log { return l })
}
