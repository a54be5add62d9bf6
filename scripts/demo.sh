#!/bin/sh
# The README's first command (via `make demo`): capture a program's traffic
# with no proxy settings in it, and show what localcap saw.
#
# It builds a tiny network of its own so it touches nothing of the host's:
# two network namespaces ("laptop" and "server") joined by a veth pair, an
# HTTP server on the server side, and localcap's three daemons on the laptop
# side with capture attached to a child cgroup made for the demo.  Then it
# runs `localcapctl run -- curl ...` and shows the flows localcap recorded,
# attributed to curl.  Everything is removed on exit.
#
# Root only (namespaces, TUN, BPF).  TLS interception and HTTP parsing are
# still being built: today proxyd relays each flow raw and records it in the
# flow store, which `localcapctl flows` and `show` read.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
B="$top/${BUILD:-build}"
if [ "$(id -u)" -ne 0 ]; then
	echo "make demo needs root: it creates network namespaces, a TUN and BPF programs" >&2
	exit 1
fi
. "$top/test/lib.sh"
NS="lc-demo-laptop-$$"
NS2="lc-demo-server-$$"
T=$(mktemp -d /tmp/localcap-demo.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-demo-$$")
pids=""

cleanup() {
	set +e
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	kill_netns "$NS"
	kill_netns "$NS2"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
# On the laptop, inside the demo's cgroup (where capture applies).
laptop() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }

say "A laptop and a server, in network namespaces of the demo's own"
ip netns add "$NS"
ip netns add "$NS2"
ip link add lcd0 netns "$NS" type veth peer name lcd1 netns "$NS2"
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.97.0.1/24 dev lcd0
ip -n "$NS2" addr add 10.97.0.2/24 dev lcd1
ip -n "$NS" link set lcd0 up
ip -n "$NS2" link set lcd1 up
mkdir "$T/www"
echo "Hello from the server. localcap saw this page on its way to you." >"$T/www/index.html"
head -c 4194304 /dev/urandom >"$T/www/data.bin"
ip netns exec "$NS2" "$(readlink -f /usr/bin/python3)" -m http.server \
    --bind 10.97.0.2 --directory "$T/www" 8080 >"$T/server.log" 2>&1 &
pids="$pids $!"
echo "laptop 10.97.0.1  <-- veth -->  server 10.97.0.2 (HTTP on port 8080)"

say "localcap's daemons start on the laptop"
$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" >"$T/proxyd.log" 2>&1 &
pids="$pids $!"
i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    $NSE curl -s -o /dev/null http://10.97.0.2:8080/; do
	i=$((i + 1))
	if [ $i -gt 200 ]; then
		echo "demo: the daemons did not come up; their logs:" >&2
		tail -n 20 "$T"/*.log >&2
		exit 1
	fi
	sleep 0.05
done
show "localcapctl status"
ctl status

say "Capture curl and everything it starts — curl itself knows nothing of it"
show "localcapctl run -- curl http://10.97.0.2:8080/"
laptop "$B/bin/localcapctl" -r "$T" run -- curl -sS http://10.97.0.2:8080/
show "localcapctl run -- sh -c 'curl -s .../data.bin | sha256sum'"
laptop "$B/bin/localcapctl" -r "$T" run -- sh -c \
    'curl -sS http://10.97.0.2:8080/data.bin | sha256sum'
echo "(the server's copy: $(sha256sum <"$T/www/data.bin"))"

say "Or capture by name, for every curl from now on"
show "localcapctl attach curl"
ctl attach curl
laptop curl -sS -o /dev/null -w 'curl: HTTP %{http_code}, %{size_download} bytes\n' \
    http://10.97.0.2:8080/data.bin
sleep 1.2	# netstackd reports its counters once a second
show "localcapctl status"
ctl status

say "What localcap recorded: each flow, with the process that opened it"
sleep 0.5	# the flow store commits every 200 ms
show "localcapctl flows"
"$B/bin/localcapctl" -s "$T/state" flows
show "localcapctl show 1"
"$B/bin/localcapctl" -s "$T/state" show 1 | head -n 12

say "And a program not in the spec goes direct, untouched"
show "wget http://10.97.0.2:8080/ (not captured)"
if command -v wget >/dev/null; then
	laptop wget -q -O /dev/null http://10.97.0.2:8080/ && echo "wget: fine"
else
	laptop "$(readlink -f /usr/bin/python3)" -c \
	    'import urllib.request; urllib.request.urlopen("http://10.97.0.2:8080/").read(); print("python3: fine")'
fi
sleep 0.5
show "localcapctl flows --process wget"
"$B/bin/localcapctl" -s "$T/state" flows --process wget
echo "(none: wget was not captured)"

echo
echo "Next for localcap: TLS interception with the CA proxyd made on its first"
echo "start (localcapctl ca path), and HTTP/DNS parsing into the flow store."
echo "See README.md, 'Status'."
