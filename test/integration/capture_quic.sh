#!/bin/sh
# QUIC through the whole chain (docs/quic.md): a captured client's first
# flight (real Initials built by quicclient.py with python3-cryptography:
# v1, v2, IPv4 and IPv6, the ClientHello in one datagram or split over
# three) to a UDP server on another "host".
#   --quic fallback (the default): the client gets a Version Negotiation
#     at once, the server sees nothing, and the flow store has a refused
#     `quic` flow with the SNI; a host matching --ignore-hosts is let
#     through; a UDP flow that is not QUIC is relayed as ever.
#   --quic pass: the datagrams reach the server unchanged and come back,
#     and the flow is recorded as `quic` with SNI and ALPN.
# Two network namespaces this script creates (client: the daemons and the
# captured program, in a child cgroup of our own; server: the UDP echo
# server), joined by a veth pair; removed on every exit path.
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "capture_quic: needs root (namespaces, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "capture_quic: kernel has no BTF; skipped"
	exit 77
fi
if ! /usr/bin/python3 -c 'import cryptography' 2>/dev/null; then
	echo "capture_quic: python3-cryptography missing (make deps); skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
capture_test_env quic
QC="$top/test/integration/quicclient.py"
PXD=""
cleanup() { pids="$pids $PXD"; capture_test_cleanup; }

NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
incg() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lcq0 netns "$NS" type veth peer name lcq1 netns "$NS2" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.97.0.1/24 dev lcq0
ip -n "$NS2" addr add 10.97.0.2/24 dev lcq1
ip -n "$NS" addr add fd97::1/64 dev lcq0 nodad
ip -n "$NS2" addr add fd97::2/64 dev lcq1 nodad
ip -n "$NS" link set lcq0 up
ip -n "$NS2" link set lcq1 up

# The "QUIC server": logs every datagram's length and SHA-256, echoes it.
: >"$T/echo.log"
ip netns exec "$NS2" "$PY" "$QC" echo 10.97.0.2 fd97::2 --port 443,4433 \
    --log "$T/echo.log" >"$T/echo.out" 2>&1 &
pids="$pids $!"

$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"

# start_proxyd LOGNAME ARGS...: (re)start proxyd and wait until it serves.
start_proxyd() {
	_log=$1; shift
	if [ -n "$PXD" ]; then
		kill "$PXD"
		wait "$PXD" 2>/dev/null
	fi
	$NSE "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --udp-timeout 2 "$@" \
	    >"$T/$_log.log" 2>&1 &
	PXD=$!
	# (status names proxyd's pid once netstackd is connected to it)
	_i=0
	until ctl --json status 2>/dev/null |
	    grep -q "\"name\":\"proxyd\",\"running\":true,\"pid\":$PXD,"; do
		_i=$((_i + 1))
		[ $_i -gt 200 ] && return 1
		sleep 0.05
	done
}

start_proxyd proxyd-fallback --ignore-hosts 'ignored\.example:443$,^10\.97\.0\.2:4433$' &&
    grep -q serving "$T/echo.out"
check "daemons and the UDP server up (proxyd in its default --quic mode)" test $? -eq 0
check "proxyd says what it does with QUIC" \
    grep -q 'QUIC attempts: refused so that clients fall back to TCP' "$T/proxyd-fallback.log"

# The captured client: python3 under a name of its own, captured by name.
ln -s "$PY" "$T/lc-quic"
ctl attach lc-quic >/dev/null
_i=0
until ctl --json status 2>/dev/null | grep -q '"capturing":true' || [ $_i -gt 100 ]; do
	_i=$((_i + 1))
	sleep 0.05
done
send() { incg "$T/lc-quic" "$QC" send "$@" 2>&1; }
jget() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
# got_all JSON: every datagram the client sent is in the server's log.
got_all() { "$PY" -c '
import json, sys
log = open(sys.argv[2]).read()
sys.exit(0 if all(h in log for h in json.loads(sys.argv[1])["sha256"]) else 1)' "$1" "$T/echo.log"; }
got_none() { "$PY" -c '
import json, sys
log = open(sys.argv[2]).read()
sys.exit(1 if any(h in log for h in json.loads(sys.argv[1])["sha256"]) else 0)' "$1" "$T/echo.log"; }

out=$(send 10.97.0.2 443 --sni www.refused.example --wait 3)
check "fallback: a v1 Initial gets a Version Negotiation ($(jget "$out" result) after $(jget "$out" ms) ms)" \
    sh -c "[ '$(jget "$out" result)' = version_negotiation ] &&
           [ \"\$(echo '$(jget "$out" ms)' | cut -d. -f1)\" -lt 500 ]"
check "...and nothing of it reached the server" got_none "$out"
out=$(send fd97::2 443 --sni split.refused.example --split 3 --version 2 --wait 3)
check "fallback over IPv6: a v2 ClientHello split over three Initials, refused too ($(jget "$out" result), $(jget "$out" ms) ms)" \
    test "$(jget "$out" result)" = version_negotiation
check "...nothing reached the server" got_none "$out"
out=$(send 10.97.0.2 443 --sni www.ignored.example --split 2 --wait 3)
check "fallback: a host matching --ignore-hosts is let through (the server's echo: $(jget "$out" result))" \
    test "$(jget "$out" result)" = initial
check "...every datagram reached the server unchanged" got_all "$out"
out=$(send 10.97.0.2 4433 --sni www.refused.example --wait 3)
check "fallback: an address matching --ignore-hosts is not looked into (the server's echo: $(jget "$out" result))" \
    sh -c "[ '$(jget "$out" result)' = initial ]"
out=$(incg "$T/lc-quic" -c '
import socket
s = socket.socket(); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3); s.connect(("10.97.0.2", 443)); s.send(b"not quic at all")
print(s.recv(100).decode())' 2>&1)
check "fallback: UDP to port 443 that is not QUIC is relayed as ever ($out)" \
    test "$out" = "not quic at all"

# The store: refused flows are complete at once, the passed ones once idle
# (--udp-timeout 2).
sleep 3
"$B/bin/localcapctl" -s "$T/state" flows --json >"$T/flows.json" 2>&1
rows() { "$PY" -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def some(**want):
    return [r for r in rows if all(r.get(k) == v for k, v in want.items())]
sys.exit(0 if ($1) else 1)" "$T/flows.json"; }
check "flows: the refused attempt as a quic flow of lc-quic with its SNI, result refused" \
    rows 'some(kind="udp", proto="quic", process="lc-quic", host="www.refused.example",
        result="refused", dst="10.97.0.2:443")'
check "...the split IPv6 one too, SNI read from three Initials" \
    rows 'some(kind="udp", proto="quic", host="split.refused.example", result="refused",
        dst="[fd97::2]:443")'
check "...the ignored host's, as quic, ended idle" \
    rows 'some(kind="udp", proto="quic", host="www.ignored.example", dst="10.97.0.2:443")'
check "...the ignored address's flow, not looked into: raw" \
    rows 'some(kind="udp", proto="raw", dst="10.97.0.2:4433")'
check "...and the plain UDP flow as plain UDP" \
    rows 'some(kind="udp", proto="udp", process="lc-quic", dst="10.97.0.2:443")'
id=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("host") == "www.refused.example": print(r["flow"]); break' "$T/flows.json")
"$B/bin/localcapctl" -s "$T/state" show "${id:-0}" >"$T/show-refused.txt" 2>&1
check "show $id: SNI, ALPN offered (h3) and why it was refused" sh -c "
    grep -q 'sni www.refused.example' '$T/show-refused.txt' &&
    grep -q 'offered h3' '$T/show-refused.txt' &&
    grep -q 'Version Negotiation' '$T/show-refused.txt'"
id=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("host") == "www.ignored.example": print(r["flow"]); break' "$T/flows.json")
"$B/bin/localcapctl" -s "$T/state" show "${id:-0}" >"$T/show-ignored.txt" 2>&1
check "show $id: the ignored host's flow says why it passed" \
    grep -q "^passthrough matches --ignore-hosts 'ignored" "$T/show-ignored.txt"

# status: proxyd's QUIC figures (reports hold back up to a second a hop)
_i=0
until ctl status 2>/dev/null | grep -E -q '^proxyd .*; QUIC 2 refused, 1 passed' ||
    [ $_i -gt 50 ]; do
	_i=$((_i + 1))
	sleep 0.2
done
check "status: $(ctl status 2>/dev/null | grep -o 'QUIC [0-9]* refused, [0-9]* passed')" \
    sh -c "'$B/bin/localcapctl' -r '$T' status | grep -E -q '^proxyd .*; QUIC 2 refused, 1 passed'"

# The mode from localcap.conf's [proxyd] quic key: a value that is neither
# mode stops proxyd before it creates anything, saying which key; "pass"
# is what the rest runs with (localcapctl up --quic pass, which passes
# --quic, is in ctl_up_down.sh).
printf '[proxyd]\nquic = refuse\n' >"$T/badquic.conf"
mkdir "$T/badrun"
out=$($NSE "$B/bin/proxyd" -f -r "$T/badrun" -s "$T/badstate" -c "$T/badquic.conf" 2>&1); rc=$?
check "quic = refuse in the config: proxyd exits 1 and says why ($(echo "$out" | tail -n 1))" sh -c "
    [ $rc -eq 1 ] && echo \"\$1\" | grep -q \"quic (localcap.conf): 'refuse' is neither fallback nor pass\" &&
    [ ! -e '$T/badstate' ]" sh "$out"
printf '[proxyd]\nquic = pass\n' >"$T/pass.conf"
start_proxyd proxyd-pass -c "$T/pass.conf"
check "proxyd restarted with quic = pass in its config" \
    grep -q 'QUIC attempts: passed undecrypted and recorded' "$T/proxyd-pass.log"
out=$(send 10.97.0.2 443 --sni www.passed.example --alpn h3,h3-29 --split 2 --wait 3)
check "pass: the server answers the client (its echo: $(jget "$out" result))" \
    test "$(jget "$out" result)" = initial
check "...and got every datagram unchanged (SHA-256)" got_all "$out"
out6=$(send fd97::2 443 --sni v6.passed.example --version draft-29 --wait 3)
check "pass over IPv6, draft-29: through and back ($(jget "$out6" result))" \
    sh -c "[ '$(jget "$out6" result)' = initial ]"
sleep 3
"$B/bin/localcapctl" -s "$T/state" flows --json >"$T/flows.json" 2>&1
check "flows: the passed attempt as quic with its SNI" \
    rows 'some(kind="udp", proto="quic", process="lc-quic", host="www.passed.example",
        dst="10.97.0.2:443")'
check "...and the IPv6 draft-29 one" \
    rows 'some(kind="udp", proto="quic", host="v6.passed.example", dst="[fd97::2]:443")'
id=$("$PY" -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("host") == "www.passed.example": print(r["flow"]); break' "$T/flows.json")
"$B/bin/localcapctl" -s "$T/state" show "${id:-0}" >"$T/show-pass.txt" 2>&1
check "show $id: SNI, the ALPN offer (h3,h3-29), passed by --quic pass" sh -c "
    grep -q 'sni www.passed.example' '$T/show-pass.txt' &&
    grep -q 'offered h3,h3-29' '$T/show-pass.txt' &&
    grep -q '^passthrough --quic pass' '$T/show-pass.txt'"

for p in $pids $PXD; do
	kill -0 "$p" 2>/dev/null || not_ok "a daemon died (pid $p)"
done
if [ $failed -ne 0 ]; then
	for f in redirectord netstackd proxyd-fallback proxyd-pass; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log" 2>/dev/null
	done
	echo "--- flows"; cat "$T/flows.json"
fi
echo "capture_quic: $passed passed, $failed failed"
[ $failed -eq 0 ]
