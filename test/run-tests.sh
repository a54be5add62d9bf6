#!/bin/sh
# Run every test localcap has: each unit-test binary in $BUILD/test/ and each
# executable script in test/integration/.  A script exiting 77 is skipped
# (it says why).  Logs go to $BUILD/test-logs/; a failure prints its tail.
# The last line is "check: N passed, N failed, N skipped".
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
export BUILD
logs="$BUILD/test-logs"
rm -rf "$logs"
mkdir -p "$logs/unit" "$logs/integration"

if [ "${SANITIZE:-}" = 1 ]; then
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

passed=0 failed=0 skipped=0 failures=""

run() {
	name=$1
	shift
	start=$(date +%s)
	"$@" >"$logs/$name.log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-40s %3ss\n' "$name" "$secs"
	elif [ $rc -eq 77 ]; then
		skipped=$((skipped + 1))
		printf 'SKIP  %-40s %s\n' "$name" "$(tail -n 1 "$logs/$name.log")"
	else
		failed=$((failed + 1))
		failures="$failures $name"
		printf 'FAIL  %-40s (exit %d)\n' "$name" "$rc"
		tail -n 40 "$logs/$name.log" | sed 's/^/      | /'
	fi
}

for t in "$BUILD"/test/test_*; do
	[ -x "$t" ] || continue
	run "unit/$(basename "$t")" "$t"
done
for t in test/integration/*.sh; do
	[ -x "$t" ] || continue
	run "integration/$(basename "$t" .sh)" "$t"
done

[ -n "$failures" ] && echo "failed:$failures"
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
