#!/usr/bin/env bash
# compare.sh runs the peer-comparison benchmarks and prints, for each
# BenchmarkBreaker/<scenario>/<impl> row, the median ns/op, B/op and
# allocs/op over the runs, and its ns/op as a multiple of the gobreaker row
# of the same scenario.
#
# Usage: ./compare.sh [go test flags]   e.g. ./compare.sh -benchtime 2s
# COUNT sets the number of runs per row (default 6); BENCH the -bench
# pattern (default Breaker). The raw go test output is echoed to stderr and
# kept in a temporary file, whose name is printed at the end; if benchstat
# (go install golang.org/x/perf/cmd/benchstat@latest) is installed, its
# time summary with confidence intervals is printed too. Nothing else is needed:
# the medians come from ./internal/medians.
set -euo pipefail
cd "$(dirname "$0")"

count=${COUNT:-6}
bench=${BENCH:-Breaker}
raw=$(mktemp -t otelpatterns-bench.XXXXXX)

go test -run '^$' -bench "$bench" -benchmem -count "$count" "$@" . | tee "$raw" >&2

echo
go run ./internal/medians -ref gobreaker <"$raw"

benchstat=$(command -v benchstat || true)
if [[ -z $benchstat && -x "$(go env GOPATH)/bin/benchstat" ]]; then
	benchstat="$(go env GOPATH)/bin/benchstat"
fi
if [[ -n $benchstat ]]; then
	echo
	"$benchstat" -filter '.unit:sec/op' "$raw"
fi

echo >&2
echo "raw results: $raw" >&2
