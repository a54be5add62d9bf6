#!/bin/sh
# netstackd against the real Linux TCP/IP stack, end to end through the TUN.
#
# In a network namespace this script creates: redirectord makes its TUN,
# hands it to netstackd; a test subnet (10.99.0.0/24, fd99::/64) is routed
# to the TUN (no eBPF needed); echo_consumer stands in for proxyd and echoes
# every flow.  Real Linux sockets (test/integration/netclient.py) then talk
# to "remote" addresses through our stack: transfers from 1 KiB to 256 MiB,
# IPv4 and IPv6, many connections at once, half-close both ways, abort,
# and UDP.  Every byte is checked with SHA-256.
#
# With IMPAIR=SPEC (netstack_impair.sh sets it) netstackd drops, duplicates,
# reorders and delays packets at the TUN both ways, and the same transfers
# must still complete byte for byte.
#
# Root only; everything it makes (namespace, TUN, processes) it removes on
# every exit path.
set -u
IMPAIR=${IMPAIR:-}
name=${IMPAIR:+netstack_impair}
name=${name:-netstack_interop}

if [ "$(id -u)" -ne 0 ]; then
	echo "$name: needs root (network namespace, TUN); skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
NS="lc-interop-$$"
T=$(mktemp -d /tmp/lc-interop.XXXXXX)
chmod 755 "$T"
CLIENT="python3 $top/test/integration/netclient.py"
pids=""
passed=0 failed=0
. "$top/test/lib.sh"
# redirectord attaches its (here idle) capture programs to our own child
# cgroup; this test routes to the TUN instead of capturing.
CG=$(make_cgroup "localcap-test-interop-$$") || { echo "no cgroup v2"; exit 1; }

cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

inns() { ip netns exec "$NS" "$@"; }

# run DESC CMD...: the client must exit 0 within its own timeout.
run() {
	desc=$1; shift
	if out=$(inns timeout 300 "$@" 2>&1); then
		ok "$desc: $out"
	else
		not_ok "$desc: $out"
	fi
}

ip netns add "$NS" || exit 1
inns ip link set lo up

# nsenter, not ip netns exec: the latter remounts /sys, hiding cgroup v2.
nsenter --net="/run/netns/$NS" "$B/bin/redirectord" -f -r "$T" -g "$CG" \
    >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
# Started directly (not through a shell function) so $! is the daemon.
ip netns exec "$NS" "$B/bin/netstackd" -f -r "$T" ${IMPAIR:+--impair "$IMPAIR"} \
    >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
ip netns exec "$NS" "$B/test/integration/echo_consumer" "$T" >"$T/echo.log" 2>&1 &
pids="$pids $!"

i=0
until grep -q "stack running" "$T/netstackd.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		not_ok "netstackd never got the TUN"
		cat "$T"/*.log
		exit 1
	fi
	sleep 0.05
done
inns ip route add 10.99.0.0/24 dev localcap0
inns ip -6 route add fd99::/64 dev localcap0
ok "TUN handed to netstackd, test subnets routed to it"

# Under impairment every loss costs a retransmission timeout: smaller sizes.
if [ -n "$IMPAIR" ]; then
	BIG=4194304 CONNS=50
else
	BIG=268435456 CONNS=500
fi
run "IPv4, 1 KiB" $CLIENT tcp 10.99.0.1 7 --size 1024
run "IPv6, 1 KiB" $CLIENT tcp fd99::1 7 --size 1024
run "IPv4, 1 MiB" $CLIENT tcp 10.99.0.1 7 --size 1048576
run "IPv6, 1 MiB" $CLIENT tcp fd99::1 7 --size 1048576
run "IPv4, $BIG bytes each way" $CLIENT tcp 10.99.0.2 8080 --size $BIG
run "IPv6, $BIG bytes each way" $CLIENT tcp fd99::2 8080 --size $BIG
run "IPv4, $CONNS connections at once, 64 KiB each" \
    $CLIENT tcp 10.99.0.3 443 --size 65536 --conns $CONNS
run "IPv6, $CONNS connections at once, 64 KiB each" \
    $CLIENT tcp fd99::3 443 --size 65536 --conns $CONNS
run "abort (RST) then a new connection" $CLIENT abort 10.99.0.4 9
run "UDP IPv4, 100 datagrams" $CLIENT udp 10.99.0.5 53 --count 100 --size 512
run "UDP IPv6, 100 datagrams" $CLIENT udp fd99::5 53 --count 100 --size 1200

# What netstackd reported to the consumer matches what the clients did.
sleep 0.5
if grep -q "^new .* tcp 10.99.0.2 port 8080" "$T/echo.log" &&
    grep -q "^new .* tcp fd99::2 port 8080" "$T/echo.log" &&
    grep -q "^new .* udp 10.99.0.5 port 53" "$T/echo.log"; then
	ok "NewFlow carried the original destinations"
else
	not_ok "NewFlow carried the original destinations"
fi
if grep -q "from_app $BIG to_app $BIG" "$T/echo.log"; then
	ok "FlowClosed counted $BIG bytes each way"
else
	not_ok "FlowClosed counted $BIG bytes each way"
fi
if [ -n "$IMPAIR" ]; then
	if grep -E -q "retransmits [1-9]" "$T/echo.log"; then
		ok "the impairment really cost retransmissions"
	else
		not_ok "the impairment really cost retransmissions"
	fi
fi
# (A RST is sent once and never retransmitted: on the impaired path it may
# be lost, and then the flow ends later by timeout, as it would on a wire.)
if [ -z "$IMPAIR" ]; then
	if grep -q "reason reset by the application" "$T/echo.log"; then
		ok "the RST reached proxyd's side as a reset"
	else
		not_ok "the RST reached proxyd's side as a reset"
	fi
fi
for p in $pids; do
	if ! kill -0 "$p" 2>/dev/null; then
		not_ok "a daemon died (pid $p)"
	fi
done

if [ $failed -ne 0 ]; then
	for f in netstackd redirectord echo; do
		echo "--- $f.log"; tail -n 20 "$T/$f.log"
	done
fi
echo "$name: $passed passed, $failed failed"
[ $failed -eq 0 ]
