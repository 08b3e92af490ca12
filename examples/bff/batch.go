package main

import (
	"context"
	"errors"
	"sync"
)

var errFetchPanicked = errors.New("bff: the batch fetch panicked")

// batcher loads values by key in batches, for one GraphQL request, so
// that resolving a field on every element of a list makes one upstream
// call rather than one per element (the N+1 problem).
//
// Batching by waiting a few milliseconds for keys to come in, as most
// dataloaders do, makes the batches depend on timing. Here each level
// announces the keys its children will ask for instead: the resolver of
// a list primes the batcher with the keys its elements hold (every
// order's customer id), and the first child resolver that loads a key
// fetches all the primed keys not fetched yet in one call; the others
// wait for that call. Priming costs nothing: a batch no resolver asks
// for is never fetched, so a query that does not select a field makes no
// call for it.
//
// The batches are deterministic within one list. Two lists resolved at
// the same time (two aliased root fields, say) prime the same batcher
// concurrently: their keys are fetched in one call or two, depending on
// which list's children load first. The answer is the same either way.
//
// A batcher is safe for concurrent use, as graphql-go resolves sibling
// fields and list elements concurrently.
type batcher[K comparable, V any] struct {
	// fetch returns the values of keys that exist; a key it leaves out
	// has no value (null in the response).
	fetch func(ctx context.Context, keys []K) (map[K]V, error)

	mu      sync.Mutex
	pending []K                // primed, not fetched yet, in priming order
	batches map[K]*batch[K, V] // the batch each key was (or is being) fetched in
}

// batch is one fetch: done is closed when vals and err are set.
type batch[K comparable, V any] struct {
	done chan struct{}
	vals map[K]V
	err  error
}

func newBatcher[K comparable, V any](fetch func(ctx context.Context, keys []K) (map[K]V, error)) *batcher[K, V] {
	return &batcher[K, V]{fetch: fetch, batches: map[K]*batch[K, V]{}}
}

// prime announces keys that resolvers may load; duplicates and keys
// already fetched are ignored.
func (b *batcher[K, V]) prime(keys ...K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if _, ok := b.batches[k]; !ok {
			b.batches[k] = nil // primed
			b.pending = append(b.pending, k)
		}
	}
}

// load returns the value of key, and whether it has one. If key has not
// been fetched yet, it fetches it with every other primed key, on ctx
// (whose span is the parent of the upstream call); if it is being
// fetched, it waits for that fetch, or for ctx to be done.
func (b *batcher[K, V]) load(ctx context.Context, key K) (V, bool, error) {
	b.mu.Lock()
	bt := b.batches[key]
	if bt == nil {
		if _, primed := b.batches[key]; !primed {
			b.pending = append(b.pending, key)
		}
		bt = &batch[K, V]{done: make(chan struct{})}
		keys := b.pending
		b.pending = nil
		for _, k := range keys {
			b.batches[k] = bt
		}
		b.mu.Unlock()
		func() {
			// Closed, with an error, even if fetch panics (graphql-go
			// turns a resolver's panic into an error), so that no waiter
			// hangs or takes the missing values for absent ones.
			defer close(bt.done)
			bt.err = errFetchPanicked
			bt.vals, bt.err = b.fetch(ctx, keys)
		}()
	} else {
		b.mu.Unlock()
	}
	var zero V
	select {
	case <-bt.done:
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
	if bt.err != nil {
		return zero, false, bt.err
	}
	v, ok := bt.vals[key]
	return v, ok, nil
}
