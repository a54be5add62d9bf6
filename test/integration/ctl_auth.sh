#!/bin/sh
# The privilege boundaries around the daemons (issue 12), with the three
# running as they do under `localcapctl up` and the units: netstackd and
# proxyd each as a user of their own, reconnecting after any of the three
# restarts without root; ctl.sock admitting root and members of the
# localcap-admin group by their real (kernel) groups, refusing the service
# users whatever their groups, and bounding control connections in number
# and time.
#
# Root only (redirectord makes a TUN, in a network namespace of its own);
# capture attaches to a child cgroup of ours.  It creates the system users
# localcap and localcap-netstack and the group localcap-admin if missing,
# as `localcapctl up` does.
set -u
if [ "$(id -u)" -ne 0 ]; then
	echo "ctl_auth: needs root; skipped"
	exit 77
fi
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "ctl_auth: no $PY (run as another user); skipped"; exit 77; }
for t in setpriv useradd groupadd; do
	command -v $t >/dev/null 2>&1 || { echo "ctl_auth: no $t; skipped"; exit 77; }
done

top=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$top/${BUILD:-build}/bin"
. "$top/test/lib.sh"
T=$(mktemp -d /tmp/lc-auth.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-test-auth-$$") || { echo "no cgroup v2"; exit 1; }
PXU=localcap NSU=localcap-netstack ADM=localcap-admin
PROXYD_PID="" REDIRECTORD_PID="" NETSTACKD_PID="" HOLD_PID="" TICK_PID=""
passed=0 failed=0

cleanup() {
	for p in $TICK_PID $HOLD_PID $PROXYD_PID $REDIRECTORD_PID $NETSTACKD_PID; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for u in $PXU $NSU; do
	getent passwd $u >/dev/null || useradd --system --user-group --no-create-home \
	    --home-dir /nonexistent --shell /usr/sbin/nologin $u 2>/dev/null ||
	    getent passwd $u >/dev/null || { echo "cannot create user $u"; exit 1; }
done
getent group $ADM >/dev/null || groupadd --system $ADM 2>/dev/null ||
    getent group $ADM >/dev/null || { echo "cannot create group $ADM"; exit 1; }
ADM_GID=$(getent group $ADM | cut -d: -f3)
PX_UID=$(id -u $PXU) NS_UID=$(id -u $NSU)
PX_GID=$(id -g $PXU)

start() {
	case $1 in
	proxyd) "$BIN/proxyd" -f -r "$T" -s "$T/state" -u $PXU --netstack-user $NSU \
		    >>"$T/proxyd.log" 2>&1 &
		PROXYD_PID=$! ;;
	redirectord) unshare --net -- "$BIN/redirectord" -f -r "$T" -g "$CG" \
		    --netstack-user $NSU >>"$T/redirectord.log" 2>&1 &
		REDIRECTORD_PID=$! ;;
	netstackd) "$BIN/netstackd" -f -r "$T" -u $NSU >>"$T/netstackd.log" 2>&1 &
		NETSTACKD_PID=$! ;;
	esac
}
status() { "$BIN/localcapctl" -r "$T" --json status 2>&1; }
running() { status | grep -q "\"name\":\"$1\",\"running\":true,\"pid\":$2,\"uid\":$3,"; }
all_up() {
	running redirectord "$REDIRECTORD_PID" 0 &&
	    running netstackd "$NETSTACKD_PID" "$NS_UID" &&
	    running proxyd "$PROXYD_PID" "$PX_UID"
}
wait_for() {
	desc=$1; shift
	i=0
	while [ $i -lt 100 ]; do
		if "$@"; then ok "$desc"; return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	not_ok "$desc"
	echo "  last status: $(status)"
	tail -n 3 "$T"/*.log | sed 's/^/  /'
	return 1
}
fds() { ls "/proc/$REDIRECTORD_PID/fd" | wc -l; }

start proxyd
start netstackd
start redirectord
wait_for "netstackd (uid $NS_UID) and proxyd (uid $PX_UID) up as their users" all_up

# Nothing needs root after start: each side reconnects as its user.
for d in proxyd netstackd redirectord; do
	eval "pid=\$$(echo $d | tr a-z A-Z)_PID"
	kill -9 "$pid"; wait "$pid" 2>/dev/null
	start $d
	wait_for "after $d restarts, the chain reconnects as the users" all_up
done

# ctl.sock: real groups decide, service users never.
as() { _u=$1 _g=$2 _groups=$3; shift 3
	if [ -n "$_groups" ]; then
		setpriv --reuid="$_u" --regid="$_g" --groups="$_groups" "$@"
	else
		setpriv --reuid="$_u" --regid="$_g" --clear-groups "$@"
	fi
}
out=$(as 65534 65534 "$ADM_GID" "$BIN/localcapctl" -r "$T" status 2>&1); rc=$?
check "a member of $ADM by its real groups may use ctl.sock (exit $rc)" \
    sh -c "[ $rc -eq 0 ] && echo \"\$1\" | grep -q '^redirectord *running'" sh "$out"
out=$(as 65534 65534 "" "$BIN/localcapctl" -r "$T" status 2>&1); rc=$?
check "a uid outside $ADM is refused (exit $rc)" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'may not use ctl.sock'" sh "$out"
out=$(as 65534 "$PX_GID" "" "$BIN/localcapctl" -r "$T" status 2>&1); rc=$?
check "proxyd's group ($PX_GID) as primary gid is refused (exit $rc)" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'may not use ctl.sock'" sh "$out"
out=$(as "$NS_UID" "$NS_UID" "$ADM_GID" "$BIN/localcapctl" -r "$T" attach uid:0 2>&1); rc=$?
check "netstackd's user is refused even in $ADM (exit $rc)" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'may not use ctl.sock'" sh "$out"
out=$(as "$PX_UID" "$PX_GID" "$ADM_GID" "$BIN/localcapctl" -r "$T" attach uid:0 2>&1); rc=$?
check "proxyd's user is refused even in $ADM (exit $rc)" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'may not use ctl.sock'" sh "$out"
check "...and redirectord logged why" grep -q "refused uid $PX_UID .*a localcap service user" \
    "$T/redirectord.log"
check "...and nothing was attached" sh -c "! \"$BIN/localcapctl\" -r \"$T\" --json status | grep -q '\"spec\":\"uid:0\"'"

# run: the run cgroup is made inside the caller's own cgroup, so the
# caller's limits hold for what it runs (it used to go right under the
# attach point, shedding MemoryMax and the rest); a caller outside the
# attach point is refused.
mkdir "$CG/limited"
# shellcheck disable=SC2016
out=$(sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -r "$3" run -- cat /proc/self/cgroup' \
    sh "$CG/limited" "$BIN/localcapctl" "$T" 2>&1 | grep '^0::')
check "run's cgroup is inside the caller's ($out)" sh -c \
    "echo '$out' | grep -q '^0::.*/localcap-test-auth-$$/limited/localcap-run\.[0-9]*\$'"
# Freezing the caller's cgroup (a control every cgroup v2 has, with no
# controller needed) stops what it runs.
# shellcheck disable=SC2016
sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -r "$3" run -- sh -c "while :; do date +%s%N >\"\$0.new\" && mv \"\$0.new\" \"\$0\"; sleep 0.05; done" "$4"' \
    sh "$CG/limited" "$BIN/localcapctl" "$T" "$T/ticks" >/dev/null 2>&1 &
TICK_PID=$!
# Ticking first, then frozen: the kernel freezes asynchronously and says
# so in cgroup.events ("frozen 1"); both waits are bounded (5 s).
i=0
while [ ! -s "$T/ticks" ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
echo 1 >"$CG/limited/cgroup.freeze"
i=0
while ! grep -q '^frozen 1' "$CG/limited/cgroup.events" && [ $i -lt 100 ]; do
	i=$((i + 1)); sleep 0.05
done
a=$(cat "$T/ticks" 2>/dev/null); sleep 0.5; b=$(cat "$T/ticks" 2>/dev/null)
check "freezing the caller's cgroup freezes the command run started ($a = $b)" \
    sh -c "[ -n '$a' ] && [ '$a' = '$b' ]"
echo 0 >"$CG/limited/cgroup.freeze"
kill -9 "$TICK_PID" 2>/dev/null
for p in $(cat "$CG"/limited/localcap-run.*/cgroup.procs 2>/dev/null); do kill -9 "$p"; done
wait "$TICK_PID" 2>/dev/null
# And MemoryMax, where cgroup v2 has the memory controller (not on a
# hybrid hierarchy, where it is v1's).
if grep -qw memory "$(cgroup2_root)/cgroup.subtree_control" &&
    echo +memory >"$CG/cgroup.subtree_control" &&
    echo 64M >"$CG/limited/memory.max"; then
	echo 0 >"$CG/limited/memory.swap.max" 2>/dev/null
	# shellcheck disable=SC2016
	sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -r "$3" run -- "$4" -c "b = bytearray(256 << 20); b[::4096] = b\"x\" * len(b[::4096])"' \
	    sh "$CG/limited" "$BIN/localcapctl" "$T" "$PY" >/dev/null 2>&1
	rc=$?
	check "the caller's MemoryMax (64M) still holds in run: 256 MiB is refused (exit $rc)" \
	    [ $rc -ne 0 ]
else
	echo "# skipped: no cgroup v2 memory controller here; MemoryMax in run not checked"
fi
if OUT=$(make_cgroup "localcap-test-auth-out-$$"); then
	# shellcheck disable=SC2016
	out=$(sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -r "$3" run -- true' \
	    sh "$OUT" "$BIN/localcapctl" "$T" 2>&1); rc=$?
	check "run from outside the attach point is refused, saying so (exit $rc)" \
	    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'outside the attach point'" sh "$out"
	check "...and made no cgroup there" sh -c "! ls -d '$OUT'/localcap-run.* >/dev/null 2>&1"
	remove_cgroup "$OUT"
fi

# Idle control connections: at most 64 held, never root locked out, and
# those that never finish a handshake are closed within seconds.
base=$(fds)
as 65534 65534 "$ADM_GID" "$PY" -c '
import socket, sys, time
held = []
for i in range(300):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
print("ready", flush=True)
time.sleep(30)
' "$T/ctl.sock" >"$T/hold.out" 2>&1 &
HOLD_PID=$!
i=0
while [ $i -lt 100 ] && ! grep -q ready "$T/hold.out"; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
held=$(fds)
echo "# redirectord fds: $base before, $held with 300 idle connections open"
check "300 idle connections cost redirectord at most 64 fds ($base -> $held)" \
    [ "$held" -le $((base + 64)) ]
out=$("$BIN/localcapctl" -r "$T" status 2>&1); rc=$?
check "root still gets status meanwhile (exit $rc)" [ $rc -eq 0 ]
check "...and the excess was refused, logged" grep -q "64 control connections open" \
    "$T/redirectord.log"
wait_for "connections without a handshake are closed within ~6 s" sh -c \
    "sleep 0.1; [ \$(ls /proc/$REDIRECTORD_PID/fd | wc -l) -le $((base + 2)) ]" ||
    echo "  fds now: $(fds)"
kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null; HOLD_PID=""

echo "ctl_auth: $passed passed, $failed failed"
[ $failed -eq 0 ]
