#!/usr/bin/env bash
# cache.sh measures the cache against its peers with TestCacheRounds: every
# measurement in a process of its own, in interleaved rounds, medians of
# per-round ratios to plain ristretto (see TestCacheRounds). It also builds
# the same test binary against the cache package of BEFORE (a git revision,
# default main) and adds that as the "before" row of every round, so that a
# change is measured against the code it replaces in the same run.
#
# Usage: ./cache.sh
# ROUNDS sets the number of rounds (default 15); SCENARIOS a comma-separated
# subset of hit,hit-parallel,miss,set; BEFORE the revision of the "before"
# row (BEFORE= leaves it out); IMPLS a comma-separated subset of the rows
# otelpatterns,before,ristretto-ttl,otter (plain ristretto, the reference,
# always runs).
set -euo pipefail
cd "$(dirname "$0")"

rounds=${ROUNDS:-15}
before=${BEFORE-main}
tmp=$(mktemp -d -t otelpatterns-cache.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/after.test" .
env=()
if [[ -n $before ]]; then
	# This tree, with the cache package as it was at $before.
	root=$(git rev-parse --show-toplevel)
	mkdir "$tmp/tree"
	(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar -c --null -T - 2>/dev/null) | tar -x -C "$tmp/tree"
	rm -rf "$tmp/tree/cache"
	git -C "$root" archive "$before" cache | tar -x -C "$tmp/tree"
	(cd "$tmp/tree/benchmarks" && go test -c -o "$tmp/before.test" .)
	env+=("CACHE_ROUNDS_BEFORE=$tmp/before.test")
	echo "before: cache/ at $(git -C "$root" rev-parse --short "$before")" >&2
fi
env "${env[@]}" CACHE_ROUNDS="$rounds" CACHE_ROUNDS_SCENARIOS="${SCENARIOS:-}" CACHE_ROUNDS_IMPLS="${IMPLS:-}" \
	"$tmp/after.test" -test.run '^TestCacheRounds$' -test.v -test.timeout 2h |
	grep -v '^=== RUN\|^--- \|^PASS\|^ok '
