#!/bin/sh
# Run each libFuzzer harness in $BUILD/fuzz/ for FUZZ_SECONDS, starting from
# its committed seed corpus test/fuzz/corpus/<name>/ (copied, so new inputs
# never dirty the tree).  A crash leaves its input in $BUILD/fuzz-artifacts/
# and fails the run.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
secs=${FUZZ_SECONDS:-30}
art="$BUILD/fuzz-artifacts"
mkdir -p "$art"
passed=0 failed=0

for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f" | sed 's/^fuzz_//')
	work=$(mktemp -d)
	if [ -d "test/fuzz/corpus/$name" ]; then
		cp -r "test/fuzz/corpus/$name/." "$work/"
	fi
	echo "fuzz $name for ${secs}s ($(ls "$work" | wc -l) seeds)"
	if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix="$art/$name-" -print_final_stats=1 "$work" \
	    >"$BUILD/fuzz-$name.log" 2>&1; then
		passed=$((passed + 1))
		grep -E 'stat::number_of_executed_units|cov:' "$BUILD/fuzz-$name.log" | tail -n 2 | sed 's/^/  /'
	else
		failed=$((failed + 1))
		echo "  CRASH: see $BUILD/fuzz-$name.log and $art/"
		tail -n 30 "$BUILD/fuzz-$name.log" | sed 's/^/  | /'
	fi
	rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
