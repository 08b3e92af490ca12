package main

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

var sink [][]byte

//go:noinline
func allocMarker() {
	for range 1000 {
		sink = append(sink, make([]byte, 48))
	}
}

// TestWriteAllocsCountsRecent: -memprofile wrote the profile as of the
// last garbage collection, so the allocations made since (the end of a
// run under load) were not counted. Allocations made just before it
// must be in the profile.
func TestWriteAllocsCountsRecent(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old; sink = nil }()
	runtime.GC()
	allocMarker()
	var b bytes.Buffer
	if err := writeAllocs(&b, 1); err != nil {
		t.Fatal(err)
	}
	if n := allocsOf(b.String(), "allocMarker"); n < 1000 {
		t.Errorf("the allocations profile counts %d of allocMarker's 1000 allocations, made just before it was written", n)
	}
}

// allocsOf sums the allocated objects of the records of a debug=1 heap
// profile whose stack has fn ("A: B [allocs: bytes] @ pcs", then a "#"
// line per frame).
func allocsOf(profile, fn string) int {
	total, cur := 0, 0
	for line := range strings.Lines(profile) {
		if head, _, ok := strings.Cut(line, "] @"); ok {
			cur = 0
			if _, counts, ok := strings.Cut(head, "["); ok {
				allocs, _, _ := strings.Cut(counts, ":")
				cur, _ = strconv.Atoi(strings.TrimSpace(allocs))
			}
			continue
		}
		if strings.HasPrefix(line, "#") && strings.Contains(line, "."+fn+"+") {
			total += cur
			cur = 0
		}
	}
	return total
}
