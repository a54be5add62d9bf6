#!/bin/sh
# The README's first command (via `make demo`): start localcap's three
# daemons in a private runtime dir, show them connected, show that losing one
# leaves the others running and that it reconnects on restart, and stop.
#
# This is what the current build does end to end.  Capturing a program's
# traffic needs the capture path (redirectord's eBPF + TUN, netstackd's
# TCP/IP stack, proxyd's flow handling), which is being built in issues 3-6;
# the demo grows into `localcapctl run -- curl ...` as they land.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BIN="$top/${BUILD:-build}/bin"
T=$(mktemp -d /tmp/localcap-demo.XXXXXX)
chmod 755 "$T"
pids=""
. "$top/test/lib.sh"
CG=$(make_cgroup "localcap-demo-$$")

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
start() {
	# redirectord's TUN goes in a network namespace of its own.
	ns=""; [ "$1" = redirectord ] && ns="unshare --net --"
	$ns "$BIN/$1" -f -r "$T" ${2:-} >>"$T/$1.log" 2>&1 &
	eval "$1_pid=$!"
	pids="$pids $!"
}
wait_up() {
	i=0
	while [ $i -lt 100 ]; do
		if "$BIN/localcapctl" -r "$T" --json status 2>/dev/null |
		    grep -q "\"name\":\"$1\",\"running\":true"; then
			return 0
		fi
		sleep 0.05; i=$((i + 1))
	done
	echo "demo: $1 did not come up; logs in $T" >&2
	exit 1
}

say "localcap $(cat "$top/VERSION"): starting redirectord, netstackd and proxyd in $T"
start redirectord "-g $CG"
start netstackd
start proxyd "-s $T/state"
wait_up netstackd; wait_up proxyd
"$BIN/localcapctl" -r "$T" status

say "kill -9 proxyd: the others keep running and notice"
kill -9 "$proxyd_pid"; wait "$proxyd_pid" 2>/dev/null || true
sleep 0.3
"$BIN/localcapctl" -r "$T" status
grep -h "lost proxyd\|proxyd unreachable" "$T"/*.log | sed 's/^/  log: /'

say "start proxyd again: netstackd reconnects by itself"
start proxyd "-s $T/state"
wait_up proxyd
"$BIN/localcapctl" -r "$T" status

say "SIGTERM: clean shutdown"
kill $pids 2>/dev/null || true
wait 2>/dev/null || true
pids=""
grep -h "stopped" "$T"/*.log | sed 's/^/  log: /'
echo
echo "Capture of a program's traffic (localcapctl run -- CMD) is not built yet;"
echo "see README.md, 'Status'."
