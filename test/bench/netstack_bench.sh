#!/bin/sh
# netstackd's benchmark (issue 3): figures and ratios against a baseline
# measured in the same run, in namespaces this script creates and removes.
#
#   baseline   iperf3 straight over a veth pair between two namespaces
#   captured   the same iperf3, captured by name: TUN -> netstackd -> flow
#              socket -> proxyd's raw relay -> the same veth
#   single stream and 8 parallel streams, 5 s each, both directions (-R)
#   CPU seconds per GB of netstackd and proxyd (from /proc/PID/stat)
#   netstackd's RSS with 1,000 idle captured connections (bytes each)
#
# Root only.  Durations are bounded (iperf3 -t, 1,000 connections).
set -u

if [ "$(id -u)" -ne 0 ] || ! command -v iperf3 >/dev/null; then
	echo "netstack_bench: needs root and iperf3 (apt-get install iperf3); skipped"
	exit 0
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
NS="lc-bench-c-$$"
NS2="lc-bench-s-$$"
T=$(mktemp -d /tmp/lc-bench.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-bench-$$") || exit 1
SECS=${BENCH_SECONDS:-5}
pids=""

cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	kill_netns "$NS2"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

NSE="nsenter --net=/run/netns/$NS"
incg() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lcb0 netns "$NS" type veth peer name lcb1 netns "$NS2"
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.96.0.1/24 dev lcb0
ip -n "$NS2" addr add 10.96.0.2/24 dev lcb1
ip -n "$NS" link set lcb0 up
ip -n "$NS2" link set lcb1 up
ip netns exec "$NS2" iperf3 -s -B 10.96.0.2 >/dev/null 2>&1 &
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
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true'; do
	i=$((i + 1)); [ $i -gt 200 ] && { echo "daemons did not come up"; exit 1; }
	sleep 0.05
done
sleep 0.5

# iperf3 ARGS...: prints "Gbit/s bytes" of the receiver side.
iperf() {
	incg iperf3 -c 10.96.0.2 -t "$SECS" -J "$@" 2>/dev/null | "$(readlink -f /usr/bin/python3)" -c '
import json, sys
d = json.load(sys.stdin)
e = d["end"]["sum_received"]
print("%.2f %d" % (e["bits_per_second"] / 1e9, e["bytes"]))'
}

run_case() {	# label, iperf3 arguments (one word list)
	label=$1 a=$2
	ctl detach --all >/dev/null
	set -- $(iperf $a); base=${1:-0}
	ctl attach iperf3 >/dev/null
	n0=$(cpu_ticks $NSD) p0=$(cpu_ticks $PXD)
	set -- $(iperf $a); cap=${1:-0} bytes=${2:-1}
	n1=$(cpu_ticks $NSD) p1=$(cpu_ticks $PXD)
	ctl detach --all >/dev/null
	awk -v l="$label" -v b="$base" -v c="$cap" -v by="$bytes" -v nt=$((n1 - n0)) \
	    -v pt=$((p1 - p0)) -v hz="$hz" 'BEGIN {
		gb = by / 1e9
		printf "%-20s direct %6.2f Gbit/s  captured %6.2f Gbit/s  = %5.1f %%  CPU s/GB: netstackd %.2f, proxyd %.2f\n",
		    l, b, c, (b > 0 ? 100 * c / b : 0), nt / hz / gb, pt / hz / gb }'
}

echo "netstackd throughput: iperf3 ${SECS} s, direct veth vs captured (TUN + netstackd + proxyd relay)"
run_case "1 stream, upload" ""
run_case "1 stream, download" "-R"
run_case "8 streams, upload" "-P 8"
run_case "8 streams, download" "-P 8 -R"

# 1,000 idle captured connections: netstackd's memory per connection.
ctl attach lc-idle >/dev/null
ln -s "$(readlink -f /usr/bin/python3)" "$T/lc-idle"
ip netns exec "$NS2" "$(readlink -f /usr/bin/python3)" -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.96.0.2", 7000)); s.listen(2048)
conns = []
end = time.time() + 120
s.settimeout(1)
while time.time() < end:
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
' &
pids="$pids $!"
sleep 0.5
before=$(rss_kib $NSD)
incg "$T/lc-idle" -c '
import socket, sys, time
socks = []
for i in range(1000):
    c = socket.create_connection(("10.96.0.2", 7000), timeout=5)
    socks.append(c)
open(sys.argv[1], "w").write("up\n")
time.sleep(4)
' "$T/idle-up" &
idle=$!
i=0
while [ ! -s "$T/idle-up" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 1
after=$(rss_kib $NSD)
wait $idle
echo "netstackd RSS: $before KiB idle, $after KiB with 1,000 idle captured connections:" \
    "$(( (after - before) * 1024 / 1000 )) bytes per connection"
