#!/bin/sh
# The viewer's API on a big store: how long the newest page, filtered pages
# and one exchange in full take through webd (HTTP, token check, JSON), on
# the 500,000-exchange store bench_store builds, beside the same questions
# asked of storeread directly and of localcapctl (bench_store prints those:
# the baseline).  Best of 5, each a fresh keep-alive-less curl.  Not a
# test: nothing fails on a number.  Loopback only; the store is removed at
# the end.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
N=${BENCH_STORE_EXCHANGES:-500000}

if [ ! -x "$B/bench/bench_store" ]; then
	echo "webd_bench: no $B/bench/bench_store (the store benchmark builds the store); skipped"
	exit 0
fi
out=$(BENCH_STORE_KEEP=1 "$B/bench/bench_store" "$N" "$B/bin/localcapctl") || {
	echo "webd_bench: bench_store failed"; exit 0; }
echo "$out"
dir=$(echo "$out" | sed -n 's/^kept: //p')
[ -d "$dir" ] || { echo "webd_bench: bench_store kept no store"; exit 0; }
W=$(mktemp -d /tmp/lc-webd-bench.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$W" "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$B/bin/webd" --standalone -l 127.0.0.1:0 -s "$dir" -r "$W" >"$W/out" 2>"$W/log" &
pid=$!
i=0
until grep -qs '^localcap viewer: ' "$W/out"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "webd_bench: webd did not start"; cat "$W/log"; exit 0; }
	sleep 0.05
done
url=$(sed -n 's/^localcap viewer: //p' "$W/out")
base=${url%%\?*}
auth="Authorization: Bearer ${url##*token=}"

# best PATH: the fastest of 5 answers, in ms, and the answer's size.
best() {
	b=""
	for _ in 1 2 3 4 5; do
		t=$(curl -sS -o "$W/body" -w '%{time_total}' -H "$auth" "$base$1") || return
		b=$(echo "$b $t" | awk '{ m = $1; for (i = 2; i <= NF; i++) if ($i < m) m = $i; print m }')
	done
	printf '  %-44s %8.2f ms  (%s bytes)\n' "$1" "$(echo "$b" | awk '{ print $1 * 1000 }')" \
	    "$(wc -c <"$W/body")"
}
echo "webd on the same store (HTTP on loopback, token checked, JSON built):"
best "api/flows?limit=20"
best "api/flows?limit=100"
best "api/flows?limit=100&filter=status:404"
best "api/flows?limit=100&filter=process:wget"
best "api/flows?limit=100&filter=example"
best "api/flows?limit=100&before=2.500"
best "api/flows/2.500"
best "api/flows/2.500/body?side=resp"
best "api/export.har?limit=100"
