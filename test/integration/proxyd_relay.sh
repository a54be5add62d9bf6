#!/bin/sh
# proxyd relays real flows end to end, on loopback only:
#   curl -> px_flow_source (a stand-in for netstackd: NewFlow + socketpair over
#   flow.sock) -> proxyd (raw relay) -> python3 -m http.server on 127.0.0.1.
# Checks that responses arrive intact (SHA-256 of a 4 MiB file, parallel
# clients, forty concurrent small flows), that a malformed NewFlow is refused without dropping the source,
# that a refused upstream reaches the client as a TCP reset, that each flow
# is logged and ProxyStatus goes back to the source, and that proxyd stops
# cleanly.  Needs no privileges; touches no network outside 127.0.0.1.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
BIN="$top/$BUILD/bin"
HELPER="$top/$BUILD/test/integration/px_flow_source"
for tool in curl python3 sha256sum; do
	command -v $tool >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done
[ -x "$HELPER" ] || { echo "skip: $HELPER not built (make test-bins)"; exit 77; }

T=$(mktemp -d /tmp/lc-relay.XXXXXX)
chmod 755 "$T"
PIDS=""
passed=0 failed=0

cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	sleep 0.1
	for p in $PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for DESC COMMAND...: poll up to 30 s (sanitizer builds are slow).
wait_for() {
	desc=$1; shift
	i=0
	while [ $i -lt 600 ]; do
		if "$@"; then ok "$desc"; return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	not_ok "$desc"
	return 1
}
logged() { grep -qs -- "$2" "$T/$1"; }
first_line_port() { sed -n "s/^$2 \([0-9]*\).*/\1/p" "$T/$1" | head -n 1; }

# --- the origin -----------------------------------------------------------------
mkdir "$T/www"
head -c 4194304 /dev/urandom >"$T/www/big.bin"
echo "hello from the origin" >"$T/www/index.txt"
want_sha=$(sha256sum <"$T/www/big.bin" | cut -d' ' -f1)
(cd "$T/www" && exec python3 -u -m http.server --bind 127.0.0.1 0) \
    >"$T/origin.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "origin http.server is up" logged origin.log "Serving HTTP on"
ORIGIN_PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$T/origin.log" | head -n 1)

# --- proxyd and the flow source ---------------------------------------------------
"$BIN/proxyd" -f -v -r "$T" -s "$T/state" --connect-timeout 3 \
    >"$T/proxyd.log" 2>&1 &
PROXYD_PID=$!
PIDS="$PIDS $PROXYD_PID"
"$HELPER" -b -r "$T" -d "127.0.0.1:$ORIGIN_PORT" -t 120 >"$T/source.out" 2>&1 &
SOURCE_PID=$!
PIDS="$PIDS $SOURCE_PID"
wait_for "flow source connected to proxyd and listening" logged source.out "^listening "
APP_PORT=$(first_line_port source.out listening)

# --- flows ---------------------------------------------------------------------------
wait_for "the malformed NewFlow is refused and logged" \
    logged proxyd.log "NewFlow 1 refused: destination port 0"
check "the source is kept after the refusal" kill -0 "$SOURCE_PID"
check "ProxyStatus reports the refusal to the source" \
    logged source.out "refused=1"

out=$(curl -sS --max-time 20 "http://127.0.0.1:$APP_PORT/index.txt" 2>&1)
check "a small response arrives through proxyd" \
    test "$out" = "hello from the origin"

got_sha=$(curl -sS --max-time 30 "http://127.0.0.1:$APP_PORT/big.bin" | sha256sum | cut -d' ' -f1)
check "a 4 MiB response arrives intact (SHA-256)" test "$got_sha" = "$want_sha"

i=0 curls=""
while [ $i -lt 6 ]; do
	curl -sS --max-time 30 -o "$T/par.$i" "http://127.0.0.1:$APP_PORT/big.bin" &
	curls="$curls $!"
	i=$((i + 1))
done
wait $curls
all_intact() { n=0; for f in "$T"/par.*; do [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want_sha" ] && n=$((n + 1)); done; [ $n -eq 6 ]; }
check "six parallel 4 MiB responses arrive intact" all_intact

wait_for "every flow is logged with its byte counts" \
    logged proxyd.log "flow 8 tcp 127.0.0.1:[0-9]* -> 127.0.0.1:$ORIGIN_PORT (px_flow_source pid $SOURCE_PID): closed, [0-9]* bytes out, 41[0-9]* in"
wait_for "ProxyStatus goes back to no active flows" \
    sh -c "tail -n 1 '$T/source.out' | grep -q 'status active=0 total=8 refused=1'"

i=0 curls=""
while [ $i -lt 40 ]; do
	curl -sS --max-time 30 -o "$T/small.$i" "http://127.0.0.1:$APP_PORT/index.txt" &
	curls="$curls $!"
	i=$((i + 1))
done
wait $curls
all_small() { n=0; for f in "$T"/small.*; do [ "$(cat "$f")" = "hello from the origin" ] && n=$((n + 1)); done; [ $n -eq 40 ]; }
check "forty concurrent flows all answered" all_small
wait_for "ProxyStatus counts them all and none left running" \
    sh -c "tail -n 1 '$T/source.out' | grep -q 'status active=0 total=48 refused=1'"

# --- an upstream that refuses ----------------------------------------------------------
CLOSED_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HELPER" -r "$T" -d "127.0.0.1:$CLOSED_PORT" -t 60 >"$T/source2.out" 2>&1 &
PIDS="$PIDS $!"
wait_for "second flow source listening" logged source2.out "^listening "
APP2_PORT=$(first_line_port source2.out listening)
curl -sS --max-time 10 "http://127.0.0.1:$APP2_PORT/" >"$T/refused.out" 2>&1
rc=$?
# A reset reads as 56 ("Connection reset by peer") or, when it beats curl's
# own connect bookkeeping, 7; an orderly close would be 52 ("Empty reply").
check "a refused upstream reaches the client as a reset (curl: $(head -c 100 "$T/refused.out"))" \
    test $rc -eq 56 -o $rc -eq 7
wait_for "the refusal is recorded with its reason" \
    logged proxyd.log "connect failed (Connection refused)"

# --- shutdown ------------------------------------------------------------------------------
kill -TERM "$PROXYD_PID"
wait "$PROXYD_PID"
prc=$?
check "proxyd stops on SIGTERM with status 0 (got $prc; 23 is a sanitizer report)" \
    test "$prc" -eq 0
wait_for "the flow source sees proxyd go" logged source.out "proxyd gone"
check "proxyd logged no warning about a flow" \
    sh -c "! grep -E 'warn: (relay|refusal|tcp|udp|flow)' '$T/proxyd.log' | grep -v 'NewFlow 1 refused'"

echo "proxyd_relay: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
	echo "--- proxyd.log (tail)"; tail -n 30 "$T/proxyd.log"
	echo "--- source.out (tail)"; tail -n 10 "$T/source.out"
fi
[ "$failed" -eq 0 ]
