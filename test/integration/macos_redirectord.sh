#!/bin/sh
# redirectord's macOS side, run here: `make portable-run` links redirectord
# as macOS builds it (the process, redirectord/backend.c and
# backend_macos.c; no BPF, TUN or netlink) and it runs against the
# simulated extension (mx_sim -m ctl: the real core, the real proxyd).
# A stand-in localcap-host passes `spec TEXT` to the simulator's control
# socket, as the real host app passes it to the provider as a message.
#   - redirectord starts by handing the extension the empty spec: a flow
#     of appx is not intercepted; then it confines itself (macos_confine:
#     Seatbelt's redirectord.sb on a Mac, a log line here);
#   - `localcapctl attach name:appx` through ctl.sock reaches the core: a
#     flow of appx is intercepted (echoed through proxyd, SHA-256 both
#     ways) and recorded with its pid and name, one of appy is not;
#   - a spec the extension would refuse (cgroup:) is refused by
#     redirectord, nothing handed over, capture unchanged;
#   - `localcapctl run` is refused with a clear reason (cgroups are Linux's);
#   - status shows the spec, the extension row and capturing;
#   - `localcapctl detach name:appx`: appx is no longer intercepted;
#   - localcapctl, too, is portable-run's (as macOS links it: no
#     cgroup_linux.c, no ps_linux.c): it imports no cgroup call, and its
#     `ps` refuses clearly.
# What stays Linux here: ipc_linux.c (SO_PEERCRED; ipc_darwin.c needs
# macOS).  In a network namespace of its own; nothing touches the host's
# network.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
BIN="$top/$BUILD/bin"
RD="$top/$BUILD/portable-run/bin/redirectord"
CTL="$top/$BUILD/portable-run/bin/localcapctl"
SIM="$top/$BUILD/test/integration/mx_sim"
passed=0 failed=0
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (a network namespace)"; exit 77; }
for tool in ip python3 nm; do
	command -v $tool >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done
[ -x "$SIM" ] && [ -x "$BIN/proxyd" ] || { echo "skip: not built (make test-bins)"; exit 77; }

# (Links an older macos_proxyd.sh left there would pass for what make builds.)
find "$BUILD/portable-run/bin" -type l -exec rm -f {} + 2>/dev/null
if ! make --no-print-directory ${SANITIZE:+SANITIZE=$SANITIZE} BUILD="$BUILD" \
    "$BUILD/portable-run/bin/redirectord" "$BUILD/portable-run/bin/localcapctl" \
    >"$BUILD/portable-run-rd.log" 2>&1; then
	tail -n 30 "$BUILD/portable-run-rd.log"
	echo "not ok - make portable-run (redirectord)"
	exit 1
fi
ok "make portable-run builds redirectord with its macOS backend"
imports=$(nm -D --undefined-only "$RD" | awk '{ print $2 }' | sed 's/@.*//')
# (accept4 stays: ipc_linux.c is ipc's side here, ipc_darwin.c needs macOS.)
linux_only=$(echo "$imports" | grep -xE 'bpf_[a-z_]+|mnl_[a-z_]+|cap_[a-z_]+|seccomp_[a-z_]+|prctl|getrandom' | tr '\n' ' ')
check "it imports nothing of libbpf, libmnl, libcap, libseccomp, prctl ($linux_only)" \
    test -z "$linux_only"
real=$(nm -D --undefined-only "$BIN/redirectord" | grep -cE ' (bpf_[a-z_]+|cap_[a-z_]+)(@|$)')
check "...which the Linux build does import ($real of libbpf's and libcap's: the check can fail)" \
    test "$real" -gt 0
cimports=$(nm -D --undefined-only "$CTL" | awk '{ print $2 }' | sed 's/@.*//')
cg_calls=$(printf '%s\n' "$cimports" | grep -xE 'name_to_handle_at|statfs' | tr '\n' ' ')
check "localcapctl (portable-run) imports no cgroup call: name_to_handle_at, statfs ($cg_calls)" \
    test -z "$cg_calls"
real=$(nm -D --undefined-only "$BIN/localcapctl" | grep -cE ' (name_to_handle_at|statfs)(@|$)')
check "...which the Linux build does import ($real of 2: the check can fail)" \
    test "$real" -eq 2
out=$("$CTL" -r /nonexistent ps 2>&1)
rc=$?
ps_refused() { [ "$1" -eq 1 ] && printf '%s\n' "$2" | grep -q 'not supported yet'; }
check "its ps refuses clearly on macOS's build (exit $rc): $out" \
    ps_refused "$rc" "$out"

NS=lc-mxrd-$$
T=$(mktemp -d /tmp/lc-mxrd.XXXXXX)
chmod 755 "$T"
PIDS=""
cleanup() {
	stop_pids $PIDS
	kill_netns "$NS"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up || exit 1
NSE="ip netns exec $NS"

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

# The stand-in host app: `spec TEXT` to the simulated provider, answered
# as localcap-host answers; `status` as a running proxy.
cat >"$T/ask.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    reply += b
print(reply.decode())
PY
cat >"$T/localcap-host" <<EOF2
#!/bin/sh
case \$1 in
spec)	r=\$(python3 "$T/ask.py" "$T/ext.sock" "spec \$2") || { echo "localcap-host: no provider"; exit 1; }
	echo "\$r" >>"$T/host.log"
	[ "\$r" = ok ] && { echo "spec set"; exit 0; }
	echo "localcap-host: \$r"; exit 1 ;;
status)	echo "configuration enabled, proxy connected" ;;
*)	exit 2 ;;
esac
EOF2
chmod 755 "$T/localcap-host"
ask() { python3 "$T/ask.py" "$T/ext.sock" "$1"; }

$NSE "$BIN/proxyd" -f -r "$T" -s "$T/state" --connect-timeout 3 \
    >>"$T/proxyd.log" 2>&1 &
PX=$!
PIDS="$PIDS $PX"
wait_for "proxyd listens on flow.sock" test -S "$T/flow.sock"
$NSE "$SIM" -m ctl -r "$T" -P "$PX" -S "$T/ext.sock" >"$T/sim.out" 2>&1 &
SIMPID=$!
PIDS="$PIDS $SIMPID"
wait_for "the simulated extension connected to proxyd and listens" \
    test -S "$T/ext.sock"

mkdir -p "$T/run"
$NSE "$RD" -f -r "$T/run" --host-app "$T/localcap-host" >"$T/rd.log" 2>&1 &
PIDS="$PIDS $!"
wait_for "redirectord (macOS backend) serves ctl.sock" test -S "$T/run/ctl.sock"
check "it handed the extension the empty spec at start" grep -qx ok "$T/host.log"
check "then it confined itself with its own profile (Seatbelt on a Mac: redirectord.sb)" \
    grep -q "profile redirectord not confined" "$T/rd.log"
check "with nothing attached a flow of appx is not intercepted" \
    test "$(ask 'flow appx 51000')" = passed

out=$($NSE "$CTL" -r "$T/run" attach name:appx 2>&1)
check "localcapctl attach name:appx succeeds ($out)" test $? -eq 0
check "a flow of appx is intercepted (echoed through proxyd, SHA-256 both ways)" \
    test "$(ask 'flow appx 51000')" = intercepted
check "a flow of appy is not" test "$(ask 'flow appy 52000')" = passed

out=$($NSE "$CTL" -r "$T/run" attach 'cgroup:/x' 2>&1)
rc=$?
check "attach cgroup:/x is refused (exit $rc): $out" sh -c "[ $rc -ne 0 ] && echo '$out' | grep -q cgroup"
check "...and capture is unchanged: appx still intercepted" \
    test "$(ask 'flow appx 51001')" = intercepted

out=$($NSE "$CTL" -r "$T/run" run -- true 2>&1)
rc=$?
check "run (cgroups: Linux's) is refused clearly (exit $rc): $out" \
    sh -c "[ $rc -ne 0 ] && echo '$out' | grep -q 'not supported on macos'"

st=$($NSE "$CTL" -r "$T/run" status --json 2>&1)
check "status: the spec, the extension's row, capturing" python3 -c '
import json, sys
s = json.loads(sys.argv[1])
names = [d["name"] for d in s["daemons"]]
assert s["spec"] == "name:appx", s
assert "extension" in names, names
assert s["capturing"] is True, s
' "$st"

out=$($NSE "$CTL" -r "$T/run" detach name:appx 2>&1)
check "localcapctl detach name:appx succeeds ($out)" test $? -eq 0
check "after detach a flow of appx is not intercepted" \
    test "$(ask 'flow appx 51002')" = passed

DB="$T/state/store/flows.db"
q() {
	python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
print("|".join(str(v) for v in db.execute(sys.argv[2]).fetchone()))
PY
}
store_has() { [ "$(q "$1" 2>/dev/null)" = "$2" ]; }
wait_for "proxyd's store: the 2 intercepted flows, appx's pids and name, nothing else" \
    store_has "SELECT count(*), sum(process='appx' AND pid IN (51000, 51001)) FROM flows" "2|2"

ask quit >/dev/null
wait "$SIMPID"
rc=$?
sed 's/^/  /' "$T/sim.out"
check "mx_sim ctl: every check passed" test $rc -eq 0
echo "macos_redirectord: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
