#!/usr/bin/env bash
# compare.sh runs the peer-comparison benchmarks and prints, for each
# Benchmark<Family>/<scenario>/<impl> row, the median ns/op, B/op and
# allocs/op over the runs, and its ns/op as a multiple of the family's
# reference row of the same scenario: gobreaker for BenchmarkBreaker, backoff
# (cenkalti/backoff/v4) for BenchmarkRetry, raw ristretto for BenchmarkCache,
# no interceptor (bare) for BenchmarkGRPC.
# Each family gets its own table. When the cache rows run, the hit ratios of
# the cache implementations on one Zipf trace (TestHitRatio) follow.
# The cache rows run one after another in one process, so a row pays some
# of the background work (ristretto's goroutine, garbage) the row before it
# left: they are a quick look; cache.sh, a process per measurement, gives
# the cache's figures of record.
#
# Usage: ./compare.sh [go test flags]   e.g. ./compare.sh -benchtime 2s
# COUNT sets the number of runs per row (default 6); BENCH the -bench
# pattern (default 'Breaker|Retry|Cache'; BENCH=Retry runs only the retry
# rows); REF the reference per family (default
# Breaker=gobreaker,Retry=backoff,Cache=ristretto).
# The runs are interleaved: the test binary is built once and run COUNT
# times, each run taking every row once (go test -count would run each row
# COUNT times in a row), so that a change in the machine's load during the
# run weighs on every row of a scenario alike instead of on the rows that
# happened to run then.
# The raw go test output is echoed to stderr and kept in a temporary file,
# whose name is printed at the end; if benchstat
# (go install golang.org/x/perf/cmd/benchstat@latest) is installed, its
# time summary with confidence intervals is printed too. Nothing else is needed:
# the medians come from ./internal/medians.
set -euo pipefail
cd "$(dirname "$0")"

count=${COUNT:-6}
bench=${BENCH:-Breaker|Retry|Cache}
ref=${REF:-Breaker=gobreaker,Retry=backoff,Cache=ristretto,GRPC=bare,GRPCInterceptors=bare}
raw=$(mktemp -t otelpatterns-bench.XXXXXX)

# go test flags, as the test binary spells them: -benchtime 2s is
# -test.benchtime 2s.
args=()
for a in "$@"; do
	case $a in
	-test.* | --test.*) args+=("$a") ;;
	--*) args+=("-test.${a#--}") ;;
	-*) args+=("-test.${a#-}") ;;
	*) args+=("$a") ;;
	esac
done
bin=$(mktemp -d -t otelpatterns-bench-bin.XXXXXX)/benchmarks.test
go test -c -o "$bin" .
for ((i = 1; i <= count; i++)); do
	"$bin" -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 1 "${args[@]}"
done | tee "$raw" >&2
rm -r "$(dirname "$bin")"

echo
go run ./internal/medians -ref "$ref" <"$raw"

if [[ $bench == *Cache* ]]; then
	# Hit ratios are not timings: TestHitRatio replays a trace once and
	# prints its table with -v.
	echo
	go test -run '^TestHitRatio$' -count 1 -v . | sed -n '/^Cache hit ratio/,/^$/p' ||
		echo "TestHitRatio failed: run go test -run TestHitRatio -v . for why" >&2
fi

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
