#!/bin/sh
# localcapctl up / status / logs / down: the three daemons as an instance
# without systemd, in a network namespace and with capture attached to a
# child cgroup this script creates.  Then the same from an "installed"
# tree (make install DESTDIR=...), where localcapctl finds the daemons in
# ../libexec/localcap.  Root only; everything is removed on every exit path.
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "ctl_up_down: needs root (TUN, BPF); skipped"
	exit 77
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
NS="lc-up-$$"
T=$(mktemp -d /tmp/lc-up.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-test-up-$$") || { echo "no cgroup v2"; exit 1; }
passed=0 failed=0

cleanup() {
	nsenter --net="/run/netns/$NS" "$B/bin/localcapctl" -r "$T/run" down >/dev/null 2>&1
	nsenter --net="/run/netns/$NS" "$T/inst/usr/bin/localcapctl" -r "$T/run2" down \
	    >/dev/null 2>&1
	kill_netns "$NS"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

NSE="nsenter --net=/run/netns/$NS"

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up

# The global options may follow the command, where people type them.
out=$($NSE "$B/bin/localcapctl" up --runtime-dir "$T/run" --state-dir "$T/state" --cgroup "$CG" \
    --listen 127.0.0.1:3128 --ignore-hosts 'example\.org' --ignore-hosts '^pinned\.' \
    --web 127.0.0.1:0 --quic pass --memory-budget 48M --max-flows 100 \
    --max-flows-per-addr 50 2>&1)
rc=$?
upout=$out
check "up starts the three daemons and says where things are" \
    sh -c "[ $rc -eq 0 ] && echo \"\$1\" | grep -q 'localcap is up' &&
           echo \"\$1\" | grep -q 'logs  *$T/run/logs'" sh "$out"
check "status: all three running" sh -c \
    "[ \$('$B/bin/localcapctl' -r '$T/run' --json status | grep -o '\"running\":true' | wc -l) -eq 3 ]"
# netstackd and proxyd parse untrusted bytes: each runs as a user of its
# own, not root (issue 12), and status says which.
st=$("$B/bin/localcapctl" status --json -r "$T/run")
ns_uid=$(awk '/^Uid:/ { print $3 }' "/proc/$(cat "$T/run/netstackd.pid")/status")
px_uid=$(awk '/^Uid:/ { print $3 }' "/proc/$(cat "$T/run/proxyd.pid")/status")
check "netstackd ($ns_uid) and proxyd ($px_uid) run as distinct non-root users" \
    sh -c "[ -n '$ns_uid' ] && [ -n '$px_uid' ] && [ '$ns_uid' -ne 0 ] &&
           [ '$px_uid' -ne 0 ] && [ '$ns_uid' -ne '$px_uid' ]"
check "up says which users it used" sh -c \
    "echo \"\$1\" | grep -q 'users  *proxyd as localcap (uid $px_uid, [a-z]*), netstackd as localcap-netstack (uid $ns_uid'" sh "$out"
check "status shows each daemon's uid" sh -c \
    "echo '$st' | grep -q '\"name\":\"netstackd\",\"running\":true,\"pid\":[0-9]*,\"uid\":$ns_uid,' &&
     echo '$st' | grep -q '\"name\":\"proxyd\",\"running\":true,\"pid\":[0-9]*,\"uid\":$px_uid,' &&
     echo '$st' | grep -q '\"name\":\"redirectord\",\"running\":true,\"pid\":[0-9]*,\"uid\":0,'"
out2=$("$B/bin/localcapctl" status --runtime-dir="$T/run")
check "status (text) names the users" sh -c \
    "echo \"\$1\" | grep -q '^proxyd .*user localcap($px_uid)' &&
     echo \"\$1\" | grep -q '^netstackd .*user localcap-netstack($ns_uid)'" sh "$out2"
check "the state dir belongs to proxyd's user" test "$(stat -c %u "$T/state")" = "$px_uid"
rd_cg=$(sed -n 's/^0:://p' "/proc/$(cat "$T/run/redirectord.pid")/cgroup")
px_cg=$(sed -n 's/^0:://p' "/proc/$(cat "$T/run/proxyd.pid")/cgroup")
check "the daemons run in a cgroup of their own ($rd_cg)" sh -c \
    "echo '$rd_cg' | grep -q '^/localcap-daemons\.[0-9a-f]*\$' && [ '$rd_cg' = '$px_cg' ]"
out=$($NSE curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3128/ 2>&1)
check "up --listen: proxyd answers as a proxy there ($out)" test "$out" = 400
check "up --ignore-hosts: proxyd took both patterns" \
    grep -q 'not looking inside connections to 2 host patterns' "$T/run/logs/proxyd.log"
# up --web: the viewer beside them; up and status print its URL.
url=$(echo "$upout" | sed -n 's/^  viewer  *//p')
st=$("$B/bin/localcapctl" -r "$T/run" status 2>&1 | sed -n 's/^viewer  *//p')
code=$($NSE curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${url##*token=}" \
    "${url%%\?*}api/flows" 2>&1)
check "up --web: the viewer's URL in up's output and in status, and it answers ($code)" sh -c \
    "echo '$url' | grep -q '^http://127.0.0.1:[0-9]*/?token=[0-9a-f]\{64\}\$' &&
     [ '$st' = '$url' ] && [ '$code' = 200 ] && [ \"\$(stat -c %a '$T/run/webd.url')\" = 600 ]"
check "up --quic pass: proxyd passes QUIC attempts" \
    grep -q 'QUIC attempts: passed undecrypted and recorded' "$T/run/logs/proxyd.log"
check "up --memory-budget, --max-flows, --max-flows-per-addr: proxyd took them" \
    grep -q 'memory budget 48 MiB (32 MiB for buffers and bodies), at most 100 flows, 50 per address' \
    "$T/run/logs/proxyd.log"
out=$($NSE "$B/bin/localcapctl" -r "$T/run" up --state-dir "$T/state" --cgroup "$CG" 2>&1)
check "up again: already up, exit 0 ($out)" sh -c \
    "echo \"\$1\" | grep -q 'already up'" sh "$out"
out=$("$B/bin/localcapctl" -r "$T/run" logs -n 5 --daemon netstackd 2>&1)
check "logs --daemon netstackd shows its log" sh -c \
    "echo \"\$1\" | grep -q 'netstackd.*stack running'" sh "$out"
out=$("$B/bin/localcapctl" -r "$T/run" logs --daemon nosuchd 2>&1); rc=$?
check "logs of an unknown daemon: exit 2, clear" sh -c \
    "[ $rc -eq 2 ] && echo \"\$1\" | grep -q \"no daemon called 'nosuchd'\"" sh "$out"
pids=$(cat "$T/run/"*.pid)
out=$("$B/bin/localcapctl" -r "$T/run" down 2>&1); rc=$?
check "down stops all three and the viewer ($out)" sh -c \
    "[ $rc -eq 0 ] && [ \$(echo \"\$1\" | grep -c '^stopped') -eq 4 ] &&
     echo \"\$1\" | grep -q '^stopped webd'" sh "$out"
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
check "...their processes are gone" test $alive -eq 0
check "...and so are their sockets and pid files" sh -c \
    "! ls '$T/run/'*.sock '$T/run/'*.pid >/dev/null 2>&1"
check "...and the viewer's pid and URL files" sh -c \
    "[ ! -e '$T/run/webd.pid' ] && [ ! -e '$T/run/webd.url' ]"
check "...and their cgroup" test ! -d "$(cgroup2_root)$rd_cg"
out=$("$B/bin/localcapctl" -r "$T/run" down 2>&1)
check "down again: not running, exit 0" sh -c \
    "echo \"\$1\" | grep -q 'not running'" sh "$out"
out=$($NSE "$B/bin/localcapctl" -r "$T/run" up --state-dir "$T/state" --cgroup "$CG" \
    --ignore-hosts 'a(b' 2>&1); rc=$?
check "up with a bad --ignore-hosts pattern fails and says why ($out)" sh -c \
    "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'bad pattern'" sh "$out"
check "...and leaves no cgroup behind" test ! -d "$(cgroup2_root)$rd_cg"
$NSE "$B/bin/localcapctl" -r "$T/run" down >/dev/null 2>&1
out=$("$B/bin/localcapctl" -r "$T/run3" up --state-dir "$T/state3" --quic refuse 2>&1); rc=$?
check "up --quic with neither fallback nor pass: exit 2, says why, starts nothing ($out)" \
    sh -c "[ $rc -eq 2 ] && echo \"\$1\" | grep -q 'neither fallback nor pass' &&
           [ ! -e '$T/run3' ] && [ ! -e '$T/state3' ]" sh "$out"
out=$("$B/bin/localcapctl" -r "$T/run3" up --state-dir "$T/state3" --memory-budget 10M 2>&1); rc=$?
check "up --memory-budget under 32M: exit 2, says why, starts nothing ($out)" \
    sh -c "[ $rc -eq 2 ] && echo \"\$1\" | grep -q 'at least 32M' &&
           [ ! -e '$T/run3' ] && [ ! -e '$T/state3' ]" sh "$out"
out=$("$B/bin/localcapctl" -r "$T/run3" up --state-dir "$T/state3" --max-flows lots 2>&1); rc=$?
check "up --max-flows that is not a number: exit 2, says why, starts nothing ($out)" \
    sh -c "[ $rc -eq 2 ] && echo \"\$1\" | grep -q \"'lots' is not a number\" &&
           [ ! -e '$T/run3' ] && [ ! -e '$T/state3' ]" sh "$out"

# Installed: localcapctl in $PREFIX/bin finds $PREFIX/libexec/localcap.
make -s -C "$top" install DESTDIR="$T/inst" PREFIX=/usr BUILD="${BUILD:-build}" \
    SANITIZE="${SANITIZE:-}" >/dev/null 2>&1
check "make install puts the CLI in bin and the daemons in libexec" sh -c \
    "[ -x '$T/inst/usr/bin/localcapctl' ] && [ -x '$T/inst/usr/libexec/localcap/redirectord' ] &&
     [ -x '$T/inst/usr/libexec/localcap/netstackd' ] && [ -x '$T/inst/usr/libexec/localcap/proxyd' ]"
out=$($NSE "$T/inst/usr/bin/localcapctl" -r "$T/run2" up --state-dir "$T/state2" \
    --cgroup "$CG" 2>&1); rc=$?
check "the installed localcapctl starts the installed daemons ($rc)" sh -c \
    "[ $rc -eq 0 ] && [ \"\$(readlink /proc/\$(cat '$T/run2/redirectord.pid')/exe)\" = \
        '$T/inst/usr/libexec/localcap/redirectord' ]"
out=$("$T/inst/usr/bin/localcapctl" -r "$T/run2" down 2>&1)
check "...and stops them" sh -c "[ \$(echo \"\$1\" | grep -c '^stopped') -eq 3 ]" sh "$out"

echo "ctl_up_down: $passed passed, $failed failed"
[ $failed -eq 0 ]
