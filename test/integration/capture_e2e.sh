#!/bin/sh
# Capture end to end, as a person drives it: the three daemons (proxyd's
# place taken by echo_consumer, which echoes every flow and logs its
# NewFlow), localcapctl attach/detach/run, and real processes whose sockets
# are captured by the eBPF programs — or not.
#
# The destinations (10.99.0.0/24, fd99::/64) have no route in the test's
# network namespace: a connection there only works if it is captured (it then
# reaches the echo through the TUN and netstackd).  So "works" proves
# "captured", and "network unreachable" proves "not captured".
#
# Root only; everything it creates (namespace, child cgroup, processes) it
# removes on every exit path.  Capture attaches to that child cgroup.
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "capture_e2e: needs root (namespace, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "capture_e2e: kernel has no BTF; skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
NS="lc-e2e-$$"
T=$(mktemp -d /tmp/lc-e2e.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-test-e2e-$$") || { echo "no cgroup v2"; exit 1; }
CGREL=${CG#$(cgroup2_root)}
PY=$(readlink -f /usr/bin/python3)
CLIENT="$top/test/integration/netclient.py"
RD_PID="" NS_PID="" EC_PID=""
passed=0 failed=0

cleanup() {
	for p in $RD_PID $NS_PID $EC_PID; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in $RD_PID $NS_PID $EC_PID; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	kill_netns "$NS"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# nsenter keeps /sys (and so the cgroup v2 mount) visible; ip netns exec not.
inns() { nsenter --net="/run/netns/$NS" "$@"; }
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
# In the namespace and in our cgroup (the attach point): CMD as a process
# capture may apply to.
incg() { inns sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
# The client under another name: comm is the name it was executed by.
ln -s "$PY" "$T/lc-client"
ln -s "$PY" "$T/lc-other"
echo_ok() { incg "$T/$1" "$CLIENT" tcp "$2" 7 --size 65536 --timeout 10 >"$T/out" 2>&1; }
unreachable() {
	! incg "$T/$1" "$CLIENT" tcp "$2" 7 --size 1024 --timeout 5 >"$T/out" 2>&1 &&
	    grep -q "unreachable" "$T/out"
}
status_has() { ctl --json status | grep -q "$1"; }

wait_for() {
	d=$1; shift
	i=0
	while [ $i -lt 100 ]; do
		if "$@"; then ok "$d"; return 0; fi
		sleep 0.05; i=$((i + 1))
	done
	not_ok "$d"
	return 1
}

ip netns add "$NS" || exit 1
inns ip link set lo up
# Started directly (not through a shell function) so $! is the daemon.
NSE="nsenter --net=/run/netns/$NS"
$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
RD_PID=$!
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
NS_PID=$!
$NSE "$B/test/integration/echo_consumer" "$T" >"$T/echo.log" 2>&1 &
EC_PID=$!
wait_for "daemons up, nothing attached yet" status_has '"note":"nothing attached'

# The sandbox, as the kernel sees it.
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
check "redirectord keeps only CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON (effective, bounding)" \
    sh -c "[ '$(field $RD_PID CapEff)' = 000000c000001000 ] &&
           [ '$(field $RD_PID CapBnd)' = 000000c000001000 ] &&
           [ '$(field $RD_PID NoNewPrivs)' = 1 ]"
# (A sanitizer build runs without the seccomp filter: ASan needs more calls.)
want_seccomp=2; [ "${SANITIZE:-}" = 1 ] && want_seccomp=0
check "netstackd: no capabilities, no_new_privs, seccomp filter on" \
    sh -c "[ '$(field $NS_PID CapEff)' = 0000000000000000 ] &&
           [ '$(field $NS_PID CapBnd)' = 0000000000000000 ] &&
           [ '$(field $NS_PID NoNewPrivs)' = 1 ] &&
           [ '$(field $NS_PID Seccomp)' = $want_seccomp ]"

check "not attached: a connection to an unrouted address fails" \
    unreachable lc-client 10.99.0.1

out=$(ctl attach lc-client)
check "attach lc-client ($out)" test "$out" = "capturing: lc-client"
check "status says capturing" status_has '"capturing":true,"fail_closed":false,"spec":"lc-client"'
check "status names the attach point and the TUN" \
    status_has "\"attach_point\":\"$CG\",\"tun\":\"localcap0\",\"tun_mtu\":65535"
check "lc-client is captured: IPv4 echo through the TUN" echo_ok lc-client 10.99.0.1
check "lc-client is captured: IPv6 echo through the TUN" echo_ok lc-client fd99::1
check "lc-other is not captured" unreachable lc-other 10.99.0.2
check "owner attributed: name, uid and cgroup of the process" \
    grep -q "^new .* tcp 10.99.0.1 port 7 owner pid [1-9][0-9]* name lc-client uid 0 cgroup $CGREL\$" "$T/echo.log"

# An address the host gains after start-up is the host's own too: a captured
# program reaches a server on it directly, not through the TUN.
inns ip addr add 10.99.0.50/32 dev lo
$NSE "$PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.50", 7070)); s.listen(4); s.settimeout(20)
c, _ = s.accept(); c.sendall(b"local server\n"); c.close()' &
LOCAL_PID=$!
sleep 0.5
out=$(incg "$T/lc-client" -c '
import socket
s = socket.create_connection(("10.99.0.50", 7070), timeout=5)
print(s.recv(100).decode().strip())' 2>&1)
check "a host address added after start-up is reached directly ($out)" \
    test "$out" = "local server"
kill "$LOCAL_PID" 2>/dev/null; wait "$LOCAL_PID" 2>/dev/null

# A bad spec is refused, pointing at the bad item; the old spec stays.
out=$(ctl attach 'lc-x,uid:nobody-at-all' 2>&1); rc=$?
check "bad spec refused with exit 1 and the item named ($out)" \
    sh -c "[ $rc -eq 1 ] && echo \"\$1\" | grep -q 'item 2 at offset 5'" sh "$out"
check "...and the active spec is unchanged" status_has '"spec":"lc-client"'

# run: the command and everything it starts, in a cgroup of its own.
out=$(incg "$B/bin/localcapctl" -r "$T" run -- sh -c \
    "\"$T/lc-other\" \"$CLIENT\" tcp 10.99.0.3 7 --size 65536 --timeout 10" 2>&1)
rc=$?
check "run -- sh -c 'lc-other ...': a child of CMD is captured ($out)" test $rc -eq 0
check "run's flow is attributed to its run cgroup" \
    grep -q "^new .* tcp 10.99.0.3 port 7 owner .* name lc-other .* cgroup $CGREL/localcap-run\." "$T/echo.log"
incg "$B/bin/localcapctl" -r "$T" run -- sh -c 'exit 7'
check "run exits with the command's status" test $? -eq 7
# attach echoes the spec as written; a run session's cgroup item is counted.
out=$(incg "$B/bin/localcapctl" -r "$T" run -- "$B/bin/localcapctl" -r "$T" \
    attach lc-third 2>&1)
# (The earlier runs' cgroups may not be reaped yet: at least this one.)
check "attach during a run echoes what was written ($out)" sh -c \
    "echo \"\$1\" | grep -Eqx 'capturing: lc-client,lc-third \(and [1-9][0-9]* run sessions?\)'" \
    sh "$out"
ctl detach lc-third >/dev/null
# Several children at once, each its own process, all captured.
out=$(incg "$B/bin/localcapctl" -r "$T" run -- sh -c "
    \"$T/lc-other\" \"$CLIENT\" tcp 10.99.0.11 7 --size 8192 --timeout 10 &
    \"$T/lc-other\" \"$CLIENT\" tcp 10.99.0.12 7 --size 8192 --timeout 10 &
    \"$T/lc-other\" \"$CLIENT\" udp 10.99.0.13 53 --count 3 --size 64 &
    wait" 2>&1)
check "run -- sh -c with three children in parallel: all captured ($out)" sh -c \
    "[ \$(echo \"\$1\" | grep -c ' ok') -eq 3 ]" sh "$out"
pids_seen=$(grep -E "^new .* (10.99.0.1[123]) port (7|53) owner pid [0-9]+ name lc-other .*localcap-run\." \
    "$T/echo.log" | sed 's/.* owner pid \([0-9]*\) .*/\1/' | sort -u | wc -l)
check "...each flow attributed to its own child process ($pids_seen pids)" test "$pids_seen" -eq 3
check "a DNS query (UDP/53) is captured and attributed like TCP" \
    grep -q "^new .* udp 10.99.0.13 port 53 owner pid [1-9][0-9]* name lc-other" "$T/echo.log"
wait_for "the run cgroups are removed once empty" sh -c \
    "! ls -d '$CG'/localcap-run.* >/dev/null 2>&1"
check "...and their items left the spec" status_has '"spec":"lc-client"'

# A cgroup item follows the cgroup when it is made again (a restarted
# service: same path, new cgroup id).
mkdir "$CG/svc"
ctl attach "cgroup:$CGREL/svc" >/dev/null
insvc() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/svc" "$@"; }
svc_echo() { insvc "$T/lc-other" "$CLIENT" tcp "$1" 7 --size 4096 --timeout 10 >"$T/out" 2>&1; }
check "cgroup:PATH captures a process in that cgroup" svc_echo 10.99.0.20
rmdir "$CG/svc" && mkdir "$CG/svc"
sleep 1.5	# redirectord looks once a second
check "...and still after the cgroup was made again (new id)" svc_echo 10.99.0.21
ctl detach "cgroup:$CGREL/svc" >/dev/null
rmdir "$CG/svc"

# Detach.
out=$(ctl detach lc-other 2>&1); rc=$?
check "detaching what is not attached: exit 1, clear ($out)" \
    sh -c "[ $rc -eq 1 ] && echo \"\$1\" | grep -q 'is not attached'" sh "$out"
out=$(ctl detach lc-client)
check "detach lc-client ($out)" test "$out" = "capturing: nothing"
check "after detach lc-client goes direct again" unreachable lc-client 10.99.0.4

# Owner attribution looks the cgroup path up in a cache (cgcache.c): the
# tree is walked once per new cgroup at most, not once per flow.
flows=$(grep -c "^new " "$T/echo.log")
walks=$(ctl --json status | grep -o '"owner_cgroup_walks":[0-9]*' | cut -d: -f2)
hits=$(ctl --json status | grep -o '"owner_cgroup_hits":[0-9]*' | cut -d: -f2)
check "owner cgroups: $flows flows, ${walks:-?} tree walks, ${hits:-?} cache hits" \
    sh -c "[ -n '$walks' ] && [ -n '$hits' ] && [ '$walks' -lt '$flows' ] && [ '$hits' -gt 0 ]"

# Fail-open: with proxyd gone, captured sockets go direct instead of hanging.
ctl attach lc-client >/dev/null
kill -9 "$EC_PID"; wait "$EC_PID" 2>/dev/null; EC_PID=""
wait_for "status: proxyd down, fail-open" status_has 'fail-open'
check "while proxyd is down lc-client goes direct (no hang)" unreachable lc-client 10.99.0.5
$NSE "$B/test/integration/echo_consumer" "$T" >>"$T/echo.log" 2>&1 &
EC_PID=$!
wait_for "proxyd back: capturing again" status_has '"capturing":true'
check "lc-client captured again" echo_ok lc-client 10.99.0.6

# kill -9 redirectord: its bpf_links die with it.
links_before=$(bpftool cgroup show "$CG" 2>/dev/null | grep -c -v '^ID')
kill -9 "$RD_PID"; wait "$RD_PID" 2>/dev/null; RD_PID=""
sleep 0.3
links_after=$(bpftool cgroup show "$CG" 2>/dev/null | grep -c -v '^ID')
check "kill -9 redirectord: no program left on the cgroup ($links_before -> $links_after)" \
    test "$links_before" -gt 0 -a "$links_after" -eq 0
check "...and lc-client goes direct" unreachable lc-client 10.99.0.7

if [ $failed -ne 0 ]; then
	for f in redirectord netstackd echo; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log"
	done
fi
echo "capture_e2e: $passed passed, $failed failed"
[ $failed -eq 0 ]
