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
# Root only (namespaces, TUN, BPF).  HTTPS is intercepted with a certificate
# forged by localcap's own CA (curl is told to trust it); every flow lands in
# the flow store, which `localcapctl flows` and `show` read.
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
	stop_pids $pids
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
# An HTTPS site too: demo.test, with a certificate from a CA of the demo's
# own that proxyd is told to trust (a real site's would be in the system store).
mkdir "$T/pki"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
( cd "$T/pki" &&
  openssl req -x509 $EC -keyout ca.key -out ca.pem -subj '/CN=Demo Server CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -new $EC -keyout site.key -out site.csr -subj '/CN=demo.test' &&
  printf 'subjectAltName=DNS:demo.test\n' >san &&
  openssl x509 -req -in site.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -days 2 -extfile san -out site.pem ) >"$T/pki.log" 2>&1
( cd "$T/www" && exec ip netns exec "$NS2" openssl s_server -quiet -WWW -accept 8443 \
    -cert "$T/pki/site.pem" -key "$T/pki/site.key" ) >"$T/s_server.log" 2>&1 &
pids="$pids $!"
echo "laptop 10.97.0.1  <-- veth -->  server 10.97.0.2 (HTTP on 8080, HTTPS demo.test on 8443)"

say "localcap's daemons start on the laptop"
$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --upstream-ca "$T/pki/ca.pem" \
    >"$T/proxyd.log" 2>&1 &
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

say "HTTPS: localcap decrypts it with a certificate its own CA forged on the fly"
show "localcapctl ca path"
"$B/bin/localcapctl" -s "$T/state" ca path
show "localcapctl run -- curl --cacert \$(localcapctl ca path) https://demo.test:8443/"
laptop "$B/bin/localcapctl" -r "$T" run -- curl -sS \
    --cacert "$("$B/bin/localcapctl" -s "$T/state" ca path)" \
    --resolve demo.test:8443:10.97.0.2 https://demo.test:8443/index.html
laptop "$B/bin/localcapctl" -r "$T" run -- curl -sS -v \
    --cacert "$("$B/bin/localcapctl" -s "$T/state" ca path)" \
    --resolve demo.test:8443:10.97.0.2 -o /dev/null \
    https://demo.test:8443/index.html 2>&1 | sed -n 's/^\*  *\(issuer: .*\)/  curl saw the \1/p'

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
tls_id=$("$B/bin/localcapctl" -s "$T/state" flows --json |
    sed -n 's/.*"id":"\([0-9.]*\)".*"url":"https:.*/\1/p' | head -n 1)
show "localcapctl show $tls_id    (the HTTPS exchange, decrypted; hex dumps left out)"
"$B/bin/localcapctl" -s "$T/state" show "$tls_id" |
    grep -v -e '^  [0-9a-f]\{8\}  ' -e '^first bytes' 

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
echo "See README.md ('Status') for what localcap does today and what comes next."
