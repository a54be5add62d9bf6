#!/bin/sh
# localcapctl ps against a running capture: a curl the spec names is listed
# as captured, with the item that decided and its flow in the store; a wget
# outside the spec as not captured, with the systemd unit its cgroup names;
# an exclusion names its item; the captured ones come first, then those
# with flows; localcap's daemons are never captured; --json has the same
# facts; kernel threads only with --all.  Two network namespaces this script creates ("client": the
# daemons and the programs, in a child cgroup of our own; "server": a TCP
# server that holds each connection open for a while), joined by a veth
# pair, so the programs stay alive while ps looks at them.
#
# Root only; removes everything it made on every exit path (KEEP=1 keeps the
# temp dir with the daemons' logs).
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "ps_capture: needs root (namespaces, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "ps_capture: kernel has no BTF; skipped"
	exit 77
fi
for p in curl wget python3; do
	command -v $p >/dev/null || { echo "ps_capture: no $p; skipped"; exit 77; }
done

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
capture_test_env ps

NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
incg() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lcv0 netns "$NS" type veth peer name lcv1 netns "$NS2" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.97.0.1/24 dev lcv0
ip -n "$NS2" addr add 10.97.0.2/24 dev lcv1
ip -n "$NS" link set lcv0 up
ip -n "$NS2" link set lcv1 up

# A server that reads the request and holds the connection (at most 30 s).
ip netns exec "$NS2" "$PY" -c '
import socket, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.97.0.2", 8080)); s.listen(16)
def hold(c):
    c.settimeout(30)
    try:
        c.recv(4096); time.sleep(30)
    except Exception:
        pass
    c.close()
print("serving", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=hold, args=(c,), daemon=True).start()' \
    >"$T/server.log" 2>&1 &
pids="$pids $!"

$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
NSD=$!
pids="$pids $NSD"
$NSE "$B/bin/proxyd" -f -r "$T" -s "$T/state" >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    grep -q serving "$T/server.log"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { not_ok "daemons and server up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "daemons and server up"

out=$(ctl attach curl 2>&1)
check "attach curl ($out)" test "$out" = "capturing: curl"

# Both wait on the server; curl is captured by name, wget is in no item.
# wget runs in a child cgroup named as systemd names a scope unit (capture
# applies there too: the programs are attached to our cgroup).
UNIT="lc-ps-$$.scope"
mkdir "$CG/$UNIT" || exit 1
incg curl -sS --max-time 25 -o /dev/null http://10.97.0.2:8080/held \
    >"$T/curl.out" 2>&1 &
pids="$pids $!"
$NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/$UNIT" \
    wget -q -T 25 -t 1 -O /dev/null http://10.97.0.2:8080/held >"$T/wget.out" 2>&1 &
pids="$pids $!"
# Their pids: the process of that name in a cgroup ($! is a subshell).
in_cg() {
	for _p in $(cat "$2/cgroup.procs"); do
		[ "$(cat "/proc/$_p/comm" 2>/dev/null)" = "$1" ] && echo "$_p"
	done | head -n 1
}
i=0
until CURL=$(in_cg curl "$CG") && WGET=$(in_cg wget "$CG/$UNIT") && [ -n "$CURL" ] &&
    [ -n "$WGET" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { not_ok "curl and wget started"; exit 1; }
	sleep 0.05
done
pids="$pids $CURL $WGET"

# Until curl's flow is in the store (proxyd commits within 200 ms).
i=0
until "$B/bin/localcapctl" -s "$T/state" flows --process curl 2>/dev/null |
    grep -q 10.97.0.2; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.1
done

ctl -s "$T/state" ps >"$T/ps.txt" 2>"$T/ps.err"
check "ps ran (exit 0, nothing on stderr: $(cat "$T/ps.err"))" \
    test ! -s "$T/ps.err"
line() { awk -v p="$1" '$1 == p' "$T/ps.txt"; }
check "ps: curl (pid $CURL) captured, by the item 'curl', 1 flow: $(line $CURL)" \
    sh -c "line=\$(awk -v p=$CURL '\$1 == p' '$T/ps.txt');
        echo \"\$line\" | grep -E -q '^$CURL +[^ ]+ +curl +yes +curl +1 '"
check "ps: wget (pid $WGET) not captured, no item, no flow, its unit: $(line $WGET)" \
    sh -c "awk -v p=$WGET '\$1 == p' '$T/ps.txt' |
        grep -E -q '^$WGET +root +wget +no +0 +$UNIT +/usr/bin/wget\$'"
check "ps: the captured ones first (curl above wget)" \
    test "$(grep -n "^$CURL " "$T/ps.txt" | cut -d: -f1)" -lt \
        "$(grep -n "^$WGET " "$T/ps.txt" | cut -d: -f1)"
check "ps: proxyd (pid $PXD) is never captured" \
    sh -c "awk -v p=$PXD '\$1 == p' '$T/ps.txt' | grep -E -q ' proxyd +no '"

ctl -s "$T/state" ps --json >"$T/ps.json" 2>/dev/null
check "ps --json: the same facts" "$PY" -c '
import json, sys
rows = {r["pid"]: r for r in map(json.loads, open(sys.argv[1]))}
c, w, p = rows[int(sys.argv[2])], rows[int(sys.argv[3])], rows[int(sys.argv[4])]
assert c["name"] == "curl" and c["captured"] is True, c
assert c["decided_by"] == "curl" and c["flows"] == 1, c
assert c["exe"].endswith("/curl") and c["cgroup"].endswith(sys.argv[5]), c
assert c["uid"] == 0 and c["user"] == "root" and c["unit"] is None, c
assert w["name"] == "wget" and w["captured"] is False, w
assert w["decided_by"] is None and w["flows"] == 0, w
assert w["reason"] == "no item of the spec matches", w
assert w["exe"].endswith("/wget") and w["uid"] == 0 and w["user"] == "root", w
assert w["cgroup"].endswith(sys.argv[5] + "/" + sys.argv[6]), w
assert w["unit"] == sys.argv[6], w
assert p["captured"] is False and "daemon" in p["reason"], p
assert not any(r["kernel_thread"] for r in rows.values())
' "$T/ps.json" "$CURL" "$WGET" "$PXD" "localcap-test-ps-$$" "$UNIT"

# An exclusion decides too: curl,!PID names the item that excluded it.
ctl attach "!$CURL" >/dev/null
ctl -s "$T/state" ps --json >"$T/ps2.json" 2>/dev/null
check "ps --json after attach !$CURL: curl excluded by that item" "$PY" -c '
import json, sys
rows = {r["pid"]: r for r in map(json.loads, open(sys.argv[1]))}
c = rows[int(sys.argv[2])]
assert c["captured"] is False and c["decided_by"] == "!" + sys.argv[2], c
assert c["reason"] == "excluded by this item", c
' "$T/ps2.json" "$CURL"
# The order: captured ones first, then those with flows in the store (curl,
# excluded now but with its flow, above wget and every process without).
check "ps --json: sorted captured first, then those with flows (curl above wget)" "$PY" -c '
import json, sys
rows = list(map(json.loads, open(sys.argv[1])))
key = [(not r["captured"], not r["flows"]) for r in rows]
pos = {r["pid"]: i for i, r in enumerate(rows)}
assert key == sorted(key), key
assert rows[pos[int(sys.argv[2])]]["flows"] == 1
assert pos[int(sys.argv[2])] < pos[int(sys.argv[3])]
' "$T/ps2.json" "$CURL" "$WGET"

ctl -s "$T/state" ps --all --json >"$T/ps-all.json" 2>/dev/null
check "ps --all adds the kernel threads ($(wc -l <"$T/ps-all.json") vs $(wc -l <"$T/ps2.json") processes), never captured" "$PY" -c '
import json, sys
every = list(map(json.loads, open(sys.argv[1])))
some = list(map(json.loads, open(sys.argv[2])))
import os
k = [r for r in every if r["kernel_thread"]]
assert k, "no kernel thread listed"
# What the plain list showed is in --all too, unless it ended in between
# (other processes come and go while the test runs).
users = {r["pid"] for r in every if not r["kernel_thread"]}
gone = [r["pid"] for r in some
        if r["pid"] not in users and os.path.exists("/proc/%d" % r["pid"])]
assert not gone, gone
assert not any(r["kernel_thread"] for r in some)
assert not any(r["captured"] for r in k)
' "$T/ps-all.json" "$T/ps2.json"

# Without redirectord: the list still comes, capture unknown, one line why.
ctl -r "$T/nowhere" -s "$T/state" ps >"$T/ps3.txt" 2>"$T/ps3.err"
check "ps without redirectord: listed, capture '?', one line on stderr" \
    sh -c "grep -E -q '^$CURL +[^ ]+ +curl +\\? ' '$T/ps3.txt' &&
        [ \$(wc -l <'$T/ps3.err') -eq 1 ]"

for p in $pids; do
	case " $CURL $WGET " in *" $p "*) continue ;; esac
	kill -0 "$p" 2>/dev/null || not_ok "a daemon died (pid $p)"
done
if [ $failed -ne 0 ]; then
	cat "$T/ps.txt"
	for f in redirectord netstackd proxyd; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log"
	done
fi
echo "ps_capture: $passed passed, $failed failed"
[ $failed -eq 0 ]
