#!/bin/sh
# The macOS extension's core, driven by the simulated platform (mx_sim), into
# the real proxyd: what the Objective-C shim does on a Mac, checked here.
#   - 10,000 TCP flows closed every way (orderly with SHA-256 both ways, app
#     read error, app write error, upstream reset while the app sends and
#     after its end (proxyd's reset marker on flow.sock, as on macOS),
#     server closing first, open failure); the platform contract kept on each; the fd count back to its
#     baseline; every flow in proxyd's store with the simulated pid and name;
#   - a stalled proxyd (SIGSTOP) against the core's byte credit;
#   - one UDP socket to 3 remotes -> 3 flows, all answered; remotes that
#     proxyd ended reopened, more than 64 remotes (LRU); DNS recorded as DNS;
#   - malformed and oversized frames on flow.sock close that peer only;
#   - proxyd killed under 50 running flows: each ends as an error, fds back.
# Everything runs in a network namespace of its own (DNS needs port 53 on
# its loopback); nothing touches the host's network.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
BIN="$top/$BUILD/bin"
SIM="$top/$BUILD/test/integration/mx_sim"
FLOWS=${MX_SIM_FLOWS:-10000}
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (a network namespace)"; exit 77; }
command -v ip >/dev/null 2>&1 || { echo "skip: ip not installed"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "skip: python3 not installed"; exit 77; }
[ -x "$SIM" ] || { echo "skip: $SIM not built (make test-bins)"; exit 77; }

NS=lc-mx-$$
T=$(mktemp -d /tmp/lc-mx.XXXXXX)
chmod 755 "$T"
PIDS=""
PROXYD_PID=""
passed=0 failed=0

cleanup() {
	[ -n "$PROXYD_PID" ] && kill -CONT "$PROXYD_PID" 2>/dev/null
	stop_pids $PIDS
	kill_netns "$NS"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up || exit 1
NSE="ip netns exec $NS"

# wait_for DESC COMMAND...: up to 30 s of wall time (sanitizer builds are slow).
wait_for() {
	desc=$1; shift
	end=$(( $(date +%s) + 30 ))
	while [ "$(date +%s)" -le $end ]; do
		if "$@"; then ok "$desc"; return 0; fi
		sleep 0.1
	done
	not_ok "$desc"
	return 1
}
logged() { grep -qs -- "$2" "$T/$1"; }

$NSE python3 -u "$top/test/integration/dnstool.py" serve 127.0.0.1 \
    --name mx.test --a 10.1.2.3 --aaaa 2001:db8::3 --timeout 120 \
    >"$T/dns.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "the DNS server in the namespace is up" logged dns.log "^serving"

start_proxyd() {
	# --udp-timeout 1: mx_sim's churn phase waits for proxyd to end idle
	# UDP flows
	$NSE "$BIN/proxyd" -f -r "$T" -s "$T/state" --connect-timeout 3 \
	    --udp-timeout 1 \
	    >>"$T/proxyd.log" 2>&1 &
	PROXYD_PID=$!
	PIDS="$PIDS $PROXYD_PID"
	wait_for "proxyd listens on flow.sock" test -S "$T/flow.sock"
}
start_proxyd

start=$(date +%s)
$NSE "$SIM" -m main -r "$T" -P "$PROXYD_PID" -n "$FLOWS" -c 64 \
    -D 127.0.0.1 >"$T/sim-main.out" 2>&1
rc=$?
sed 's/^/  /' "$T/sim-main.out"
check "mx_sim main: every check passed ($(( $(date +%s) - start )) s)" test $rc -eq 0

# --- proxyd's store: every flow with the simulated process ------------------------
DB="$T/state/store/flows.db"
q() {
	python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
print("|".join(str(v) for v in db.execute(sys.argv[2]).fetchone()))
PY
}
store_has() { [ "$(q "$1" 2>/dev/null)" = "$2" ]; }
wait_for "the store holds all $FLOWS TCP flows, each with its app's pid and name (simN = pid 40000+N)" \
    store_has "SELECT count(*) FROM flows WHERE transport='tcp' AND process='sim'||(pid-40000) AND pid BETWEEN 40000 AND 40049" "$FLOWS"
check "the stalled flow is recorded as stallapp, pid 41000" \
    store_has "SELECT count(*) FROM flows WHERE transport='tcp' AND pid=41000 AND process='stallapp'" 1
check "the UDP socket's 3 remotes are 3 UDP flows of udpapp, pid 42000, to 3 ports" \
    store_has "SELECT count(*), count(DISTINCT dst_port) FROM flows WHERE transport='udp' AND pid=42000 AND process='udpapp'" "3|3"
check "the DNS query is a DNS flow of dnsapp, pid 43000, with its question recorded" \
    store_has "SELECT count(*) FROM flows f JOIN dns d ON d.flow_id=f.id WHERE f.protocol='dns' AND f.pid=43000 AND f.process='dnsapp' AND d.qname='mx.test'" 1
check "every flow carries its executable's path (NewFlow.owner.exe -> flows.exe)" \
    store_has "SELECT count(*) >= $FLOWS, sum(exe IS NOT '/Applications/Sim.app/Contents/MacOS/'||process) FROM flows" "1|0"
check "no flow of another process reached the store" \
    store_has "SELECT count(*) FROM flows WHERE pid NOT BETWEEN 40000 AND 44000" 0
check "proxyd refused no flow (ProxyStatus refusals come from bad frames only)" \
    sh -c "! grep -q 'refused:' '$T/proxyd.log'"
check "proxyd is still running after the malformed frames" kill -0 "$PROXYD_PID"

# --- proxyd killed under running flows --------------------------------------------
$NSE "$SIM" -m gone -r "$T" -P "$PROXYD_PID" >"$T/sim-gone.out" 2>&1
rc=$?
sed 's/^/  /' "$T/sim-gone.out"
check "mx_sim gone: every check passed" test $rc -eq 0

echo "macos_sim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
