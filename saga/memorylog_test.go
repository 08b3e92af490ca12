package saga_test

import (
	"testing"

	"github.com/otelpatterns/patterns/saga"
	"github.com/otelpatterns/patterns/saga/logtest"
)

func TestMemoryLog(t *testing.T) {
	t.Parallel()
	logtest.Run(t, func(t *testing.T) saga.Log { return &saga.MemoryLog{} })
}
