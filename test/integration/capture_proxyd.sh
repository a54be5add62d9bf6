#!/bin/sh
# The whole chain with the real proxyd: a captured curl downloads from an
# HTTP server on another "host", through the TUN, netstackd, and proxyd's
# relay to the original destination; and HTTPS to an openssl s_server there,
# decrypted by proxyd with a certificate forged by the localcap CA, then
# passed through once a client has refused that certificate.  Two network namespaces this script
# creates: "client" (the daemons and the captured programs, in a child
# cgroup of our own) and "server" (python3's http.server), joined by a veth
# pair.  The same downloads work uncaptured; what proves capture is that
# netstackd and proxyd saw the flows, with the right process attributed.
#
# Root only; removes everything it made on every exit path (KEEP=1 keeps the
# temp dir with the daemons' logs, for a person debugging a failure).
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "capture_proxyd: needs root (namespaces, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "capture_proxyd: kernel has no BTF; skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
NS="lc-cli-$$"
NS2="lc-srv-$$"
T=$(mktemp -d /tmp/lc-proxyd.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-test-proxyd-$$") || { echo "no cgroup v2"; exit 1; }
CGREL=${CG#$(cgroup2_root)}
PY=$(readlink -f /usr/bin/python3)
pids=""
passed=0 failed=0

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	kill_netns "$NS"
	kill_netns "$NS2"
	remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
# CMD in the client namespace and in our cgroup (where capture applies).
incg() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
counter() { _v=$(ctl --json status | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"); echo "${_v:-0}"; }

# Two hosts joined by a veth pair.
ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lcv0 netns "$NS" type veth peer name lcv1 netns "$NS2" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.98.0.1/24 dev lcv0
ip -n "$NS2" addr add 10.98.0.2/24 dev lcv1
ip -n "$NS" addr add fd98::1/64 dev lcv0 nodad
ip -n "$NS2" addr add fd98::2/64 dev lcv1 nodad
ip -n "$NS" link set lcv0 up
ip -n "$NS2" link set lcv1 up

# The origin: 16 MiB of random bytes and a small page.
mkdir "$T/www"
head -c 16777216 /dev/urandom >"$T/www/big"
echo "hello from the origin" >"$T/www/index.html"
want=$(sha256sum <"$T/www/big" | cut -d' ' -f1)
ip netns exec "$NS2" "$PY" -m http.server --bind :: --directory "$T/www" 8080 \
    >"$T/origin.log" 2>&1 &
pids="$pids $!"

# The HTTPS origin: origin.test on 10.98.0.2:8443, its certificate from a
# test CA made here, which proxyd is told to trust (--upstream-ca) and
# nothing else does.
mkdir "$T/pki"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
( cd "$T/pki" &&
  openssl req -x509 $EC -keyout oca.key -out oca.pem -subj '/CN=Origin Test CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -new $EC -keyout origin.key -out origin.csr -subj '/CN=origin.test' &&
  printf 'subjectAltName=DNS:origin.test\n' >san &&
  openssl x509 -req -in origin.csr -CA oca.pem -CAkey oca.key -CAcreateserial \
      -days 2 -extfile san -out origin.pem ) >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; exit 1; }
( cd "$T/www" && exec ip netns exec "$NS2" openssl s_server -quiet -WWW -accept 8443 \
    -cert "$T/pki/origin.pem" -key "$T/pki/origin.key" ) >"$T/s_server.log" 2>&1 &
pids="$pids $!"

# A keep-alive HTTPS origin (HTTP/1.1, several requests per connection):
# python3's http.server over TLS with the same certificate, on 8444.
ip netns exec "$NS2" "$PY" -c '
import functools, http.server, ssl, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("10.98.0.2", 8444),
    functools.partial(H, directory=sys.argv[3]))
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()' "$T/pki/origin.pem" "$T/pki/origin.key" "$T/www" \
    >"$T/origin-ka.log" 2>&1 &
pids="$pids $!"

$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --upstream-ca "$T/pki/oca.pem" \
    >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    $NSE curl -s -o /dev/null http://10.98.0.2:8080/index.html; do
	i=$((i + 1))
	[ $i -gt 100 ] && { not_ok "daemons and origin up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "daemons and origin up"

field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
want_seccomp=2; [ "${SANITIZE:-}" = 1 ] && want_seccomp=0
check "proxyd runs with no capabilities, no_new_privs and its seccomp filter" \
    sh -c "[ '$(field $PXD CapEff)' = 0000000000000000 ] &&
           [ '$(field $PXD NoNewPrivs)' = 1 ] && [ '$(field $PXD Seccomp)' = $want_seccomp ]"
SGN=$(cat "/proc/$PXD/task/$PXD/children" 2>/dev/null | awk '{ print $1 }')
check "proxyd's CA signer process ($SGN) runs with no capabilities, no_new_privs, its own seccomp filter" \
    sh -c "[ -n '$SGN' ] && [ '$(field "${SGN:-0}" CapEff)' = 0000000000000000 ] &&
           [ '$(field "${SGN:-0}" NoNewPrivs)' = 1 ] &&
           [ '$(field "${SGN:-0}" Seccomp)' = $want_seccomp ] &&
           grep -q 'CA key handed to the signer process' '$T/proxyd.log'"

flows0=$(counter tcp_flows_created)
out=$(incg "$B/bin/localcapctl" -r "$T" run -- curl -sS -o "$T/got4" \
    http://10.98.0.2:8080/big 2>&1)
check "run -- curl over IPv4: 16 MiB download ($out)" \
    test "$(sha256sum <"$T/got4" | cut -d' ' -f1)" = "$want"
out=$(incg "$B/bin/localcapctl" -r "$T" run -- curl -sS -o "$T/got6" \
    'http://[fd98::2]:8080/big' 2>&1)
check "run -- curl over IPv6: 16 MiB download ($out)" \
    test "$(sha256sum <"$T/got6" | cut -d' ' -f1)" = "$want"
sleep 1.2	# status reports are at most a second old
flows1=$(counter tcp_flows_created)
check "both went through netstackd ($flows0 -> $flows1 TCP flows)" \
    test "$flows1" -ge $((flows0 + 2))
check "proxyd relayed them to the original destinations" sh -c \
    "grep -q '10.98.0.2:8080' '$T/proxyd.log' && grep -q 'fd98::2' '$T/proxyd.log'"
check "proxyd knew the process (curl, its pid) and counted 16 MiB to it" \
    grep -E -q -- "-> 10.98.0.2:8080 \(curl pid [1-9][0-9]*\): closed, [0-9]+ bytes out, 167774[0-9]{2} in" \
    "$T/proxyd.log"

PY3=$(readlink -f /usr/bin/python3)

# Many at once, by name.
ctl attach curl >/dev/null
out=$(incg sh -c "seq 1 100 | xargs -P 100 -I{} curl -sS -o /dev/null \
    -w '%{http_code}\n' http://10.98.0.2:8080/index.html" 2>&1)
check "100 curls at once, captured by name: all 200" \
    test "$(echo "$out" | grep -c '^200$')" -eq 100
sleep 1.2
flows2=$(counter tcp_flows_created)
check "...each one a flow through netstackd ($flows1 -> $flows2)" \
    test "$flows2" -ge $((flows1 + 100))

# 64 MiB upload through the chain: the server hashes what it received.
ip netns exec "$NS2" "$PY3" -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.98.0.2", 9090)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); h = hashlib.sha256()
while True:
    b = c.recv(1 << 20)
    if not b: break
    h.update(b)
c.sendall(h.hexdigest().encode()); c.close()' &
UP_SRV=$!
sleep 0.5
head -c 67108864 /dev/urandom >"$T/up.bin"
want_up=$(sha256sum <"$T/up.bin" | cut -d' ' -f1)
got_up=$(incg "$B/bin/localcapctl" -r "$T" run -- "$PY3" -c '
import socket, sys
s = socket.create_connection(("10.98.0.2", 9090), timeout=30)
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b: break
        s.sendall(b)
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(100)
    if not b: break
    out += b
print(out.decode())' "$T/up.bin" 2>&1)
wait "$UP_SRV" 2>/dev/null
check "64 MiB upload through the chain arrives intact (SHA-256)" test "$got_up" = "$want_up"
rm -f "$T/up.bin"
sleep 1.2
flows2=$(counter tcp_flows_created)

# Not captured: the same download goes direct and still works.
ctl detach curl >/dev/null
incg curl -sS -o "$T/direct" http://10.98.0.2:8080/big
sleep 1.2
check "after detach curl goes direct (same bytes, no new flow)" sh -c \
    "[ \"\$(sha256sum <'$T/direct' | cut -d' ' -f1)\" = '$want' ] &&
     [ \"\$(\"$B/bin/localcapctl\" -r '$T' --json status |
        sed -n 's/.*\"tcp_flows_created\":\([0-9]*\).*/\1/p')\" = '$flows2' ]"

# An upstream that refuses: the captured client sees the connection fail.
ctl attach curl >/dev/null
incg curl -sS -m 10 -o /dev/null http://10.98.0.2:9/ 2>"$T/refused"
rc=$?
# (The reset may reach curl before or after it sees its connect complete.)
check "upstream refuses: curl sees a reset at once, not a hang or an empty reply (exit $rc: $(cat "$T/refused"))" \
    sh -c "{ [ $rc -eq 56 ] && grep -q -i 'reset' '$T/refused'; } ||
           { [ $rc -eq 7 ] && grep -q \"Couldn't connect\" '$T/refused'; }"

# A client that sends nothing and waits: the refusal must arrive as a
# reset (proxyd's out-of-band marker, turned into a RST by netstackd), not
# as an orderly end of stream.
out=$(incg "$B/bin/localcapctl" -r "$T" run -- "$(readlink -f /usr/bin/python3)" -c '
import socket
try:
    s = socket.create_connection(("10.98.0.2", 9), timeout=5)
    print("eof" if s.recv(10) == b"" else "data")
except ConnectionResetError:
    print("reset")
except Exception as e:
    print(type(e).__name__, e)' 2>&1)
check "a silent client sees the upstream refusal as a reset ($out)" test "$out" = reset

# HTTPS, intercepted: the client trusts the localcap CA and gets the page
# over a leaf proxyd forged; proxyd verified origin.test against the test CA.
LCA=$("$B/bin/localcapctl" -s "$T/state" ca path 2>&1)
RES="--resolve origin.test:8443:10.98.0.2"
out=$(incg curl -sS -m 10 --cacert "$LCA" $RES https://origin.test:8443/index.html 2>&1)
check "HTTPS through proxyd with the localcap CA: the origin's page ($out)" \
    test "$out" = "hello from the origin"
out=$(incg curl -sS -m 60 --cacert "$LCA" $RES -o "$T/gots" \
    -w '%{time_total}' https://origin.test:8443/big 2>&1)
check "...and the 16 MiB file, decrypted and re-encrypted intact ($out s)" \
    test "$(sha256sum <"$T/gots" | cut -d' ' -f1)" = "$want"
# Two requests on one connection: two exchanges of one flow.
out=$(incg curl -sS -m 10 --cacert "$LCA" --resolve origin.test:8444:10.98.0.2 \
    https://origin.test:8444/index.html https://origin.test:8444/big \
    -o /dev/null -o "$T/gotka" -w '%{num_connects} ' 2>&1)
check "HTTPS keep-alive through proxyd: two requests, one connection ($out)" \
    sh -c "[ '$out' = '1 0 ' ] &&
           [ \"\$(sha256sum <'$T/gotka' | cut -d' ' -f1)\" = '$want' ]"
issuer=$(incg curl -sS -m 10 -v --cacert "$LCA" $RES -o /dev/null \
    https://origin.test:8443/index.html 2>&1 | sed -n 's/^\*  *issuer: //p')
check "...on a leaf issued by the localcap CA ($issuer)" \
    sh -c "echo \"\$0\" | grep -q 'localcap CA'" "$issuer"
# Without our CA (the system store only): a certificate error, and proxyd
# learns that this host's clients refuse its certificate.
incg curl -sS -m 10 $RES -o /dev/null https://origin.test:8443/index.html 2>"$T/nocacert"
rc=$?
check "curl without the localcap CA refuses the forged leaf (exit $rc)" test $rc -eq 60
grep -q 'passing origin.test through' "$T/proxyd.log"
check "...and proxyd passes origin.test through from now on" test $? -eq 0
# Passed through: the client now sees the origin's own certificate, which
# only the origin's test CA verifies.
out=$(incg curl -sS -m 10 --cacert "$T/pki/oca.pem" $RES https://origin.test:8443/index.html 2>&1)
check "a later curl trusting only the origin's CA gets the page (passthrough: $out)" \
    test "$out" = "hello from the origin"
incg curl -sS -m 10 --cacert "$LCA" $RES -o /dev/null https://origin.test:8443/index.html 2>/dev/null
rc=$?
check "...while one trusting only the localcap CA now fails (exit $rc)" test $rc -eq 60

# The flow store, as localcapctl reads it while proxyd writes.
sleep 0.5	# the store commits every 200 ms
"$B/bin/localcapctl" -s "$T/state" flows --json >"$T/flows.json" 2>&1
# Plain HTTP is observed: a flow with exchanges is listed as its exchanges.
check "flows --json lists the 16 MiB download as an exchange: GET /big, 200, by curl with its pid" \
    "$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in rows if r["process"] == "curl" and r["dst"] == "10.98.0.2:8080"
      and r["kind"] == "http" and r["proto"] == "http" and r["method"] == "GET"
      and r["host"] == "10.98.0.2:8080" and r["path"] == "/big"
      and r["status"] == 200 and r["pid"] and r["bytes_down"] == 16777216]
sys.exit(0 if ok else 1)' "$T/flows.json"
check "...and the IPv6 one, with the Host curl sent" "$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in rows if r["kind"] == "http" and r["host"] == "[fd98::2]:8080"
      and r["url"] == "http://[fd98::2]:8080/big" and r["status"] == 200]
sys.exit(0 if ok else 1)' "$T/flows.json"
xid=$("$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print([r["id"] for r in rows if r["kind"] == "http" and r["path"] == "/big"
       and r["host"] == "10.98.0.2:8080"][0])' "$T/flows.json" 2>/dev/null)
"$B/bin/localcapctl" -s "$T/state" show "$xid" >"$T/show-x.txt" 2>&1
check "show $xid: the request's and the response's headers" sh -c "
    grep -q 'User-Agent: curl' '$T/show-x.txt' &&
    grep -q 'Host: 10.98.0.2:8080' '$T/show-x.txt' &&
    grep -q 'Content-Length: 16777216' '$T/show-x.txt' &&
    grep -q '200' '$T/show-x.txt'"
check "flows --json lists the decrypted HTTPS exchanges with https://origin.test URLs" \
    "$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in rows if r["kind"] == "http" and r["proto"] == "https"
      and r["url"] == "https://origin.test:8443/index.html" and r["status"] == 200
      and r["process"] == "curl"]
big = [r for r in rows if r["kind"] == "http" and r["proto"] == "https"
       and r["url"] == "https://origin.test:8443/big" and r["bytes_down"] == 16777216]
sys.exit(0 if len(ok) >= 2 and big else 1)' "$T/flows.json"
check "...and the keep-alive HTTPS flow as its two exchanges, 1 and 2, in order" \
    "$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ka = [r for r in rows if r["kind"] == "http" and r["dst"] == "10.98.0.2:8444"]
ka.sort(key=lambda r: r["seq"])
ok = (len(ka) == 2 and ka[0]["flow"] == ka[1]["flow"]
      and [r["seq"] for r in ka] == [1, 2]
      and [r["url"] for r in ka] == ["https://origin.test:8444/index.html",
                                     "https://origin.test:8444/big"]
      and [r["status"] for r in ka] == [200, 200]
      and ka[1]["bytes_down"] == 16777216)
sys.exit(0 if ok else 1)' "$T/flows.json"
check "...and the refused connection, as such" \
    grep -q '"result":"connect failed".*"dst":"10.98.0.2:9"' "$T/flows.json"
tls_ids=$("$PY3" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join(str(r["flow"]) for r in rows
      if r["dst"] == "10.98.0.2:8443" and ((r["proto"] == "tls" and r["host"] == "origin.test")
      or (r["proto"] == "https" and r["host"] == "origin.test:8443"))))' \
    "$T/flows.json")
check "flows --json lists the HTTPS flows (tls, or their https exchanges) to origin.test ($tls_ids)" \
    test "$(echo $tls_ids | wc -w)" -ge 6
for id in $tls_ids; do "$B/bin/localcapctl" -s "$T/state" show "$id"; done \
    >"$T/tls-show.txt" 2>&1
check "show: a decrypted flow with both legs' TLS version, SNI and the verified origin" \
    sh -c "grep -q '^tls  *client TLSv1.[23] .* sni origin.test' '$T/tls-show.txt' &&
           grep -q 'upstream TLSv1.[23]' '$T/tls-show.txt' &&
           grep -q '^server cert .*origin.test.*, verified' '$T/tls-show.txt'"
check "show: the passed-through flows say why" \
    grep -q '^passthrough client refused our certificate' "$T/tls-show.txt"
id=$("$PY3" -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][0]["id"])' "$T/flows.json")
check "show $id prints the flow with its process" sh -c \
    "'$B/bin/localcapctl' -s '$T/state' show $id | grep -q '^process  *curl (pid'"
"$B/bin/localcapctl" -s "$T/state" export --har "$T/out.har"
check "export --har writes HAR 1.2" "$PY3" -c '
import json, sys
h = json.load(open(sys.argv[1]))
sys.exit(0 if h["log"]["version"] == "1.2" and "entries" in h["log"] else 1)' "$T/out.har"
check "...whose entries have the exchanges: URL and status" "$PY3" -c '
import json, sys
e = json.load(open(sys.argv[1]))["log"]["entries"]
got = {(x["request"]["method"], x["request"]["url"], x["response"]["status"]) for x in e}
want = {("GET", "http://10.98.0.2:8080/big", 200),
        ("GET", "http://10.98.0.2:8080/index.html", 200),
        ("GET", "https://origin.test:8443/index.html", 200),
        ("GET", "https://origin.test:8443/big", 200)}
sys.exit(0 if want <= got else 1)' "$T/out.har"

for p in $pids; do
	kill -0 "$p" 2>/dev/null || not_ok "a daemon died (pid $p)"
done
if [ $failed -ne 0 ]; then
	for f in redirectord netstackd proxyd; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log"
	done
fi
echo "capture_proxyd: $passed passed, $failed failed"
[ $failed -eq 0 ]
