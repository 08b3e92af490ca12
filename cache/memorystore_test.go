package cache_test

import (
	"testing"

	"github.com/otelpatterns/patterns/cache"
	"github.com/otelpatterns/patterns/cache/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cache.Store { return new(cache.MemoryStore) })
}
