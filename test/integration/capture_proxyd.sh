#!/bin/sh
# The whole chain with the real proxyd: captured programs reach servers on
# another "host" through the TUN, netstackd, and proxyd's relay to the
# original destination.  HTTP and HTTPS (decrypted by proxyd with a
# certificate forged by the localcap CA, then passed through once a client
# has refused that certificate), over IPv4 and IPv6; 64 MiB down and up,
# checked by SHA-256; 100 clients at once; raw TCP; DNS over UDP/53 to a
# server of the test's own, malformed messages included.  Capture by name,
# by pid and by run; a process not in the spec, and any after detach, goes
# direct.  Two network namespaces this script creates: "client" (the
# daemons and the captured programs, in a child cgroup of our own) and
# "server" (the origins), joined by a veth pair.  The same requests work
# uncaptured; what proves capture is what netstackd and proxyd saw, and the
# flow store (read back through localcapctl flows/show/export --har), with
# the right process attributed.
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
capture_test_env proxyd
CGREL=${CG#$(cgroup2_root)}

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

# The origin: 64 MiB of random bytes and a small page.
BIG=67108864
mkdir "$T/www"
head -c $BIG /dev/urandom >"$T/www/big"
echo "hello from the origin" >"$T/www/index.html"
sha() { sha256sum <"$1" | cut -d' ' -f1; }
want=$(sha "$T/www/big")
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

# A DNS server on both of the server's addresses: www.origin.test has an A
# and an AAAA record, other names do not exist, and what is not a query
# comes back as it was.
ip netns exec "$NS2" "$PY" "$top/test/integration/dnstool.py" serve \
    10.98.0.2 fd98::2 --name www.origin.test --a 10.98.0.2 --aaaa fd98::2 \
    >"$T/dns.log" 2>&1 &
pids="$pids $!"

$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
NSD=$!
pids="$pids $NSD"
$NSE "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --upstream-ca "$T/pki/oca.pem" \
    >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    $NSE curl -s -o /dev/null http://10.98.0.2:8080/index.html &&
    grep -q serving "$T/dns.log"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { not_ok "daemons and origin up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "daemons and origin up"

field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
want_seccomp=2; [ "${SANITIZE:-}" = 1 ] && want_seccomp=0
check "proxyd's sandbox hides the CA key file from it (it tried)" \
    grep -q "the CA key file is out of proxyd's reach (Permission denied)" "$T/proxyd.log"
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
check "run -- curl over IPv4: 64 MiB download, SHA-256 intact ($out)" \
    test "$(sha "$T/got4")" = "$want"
out=$(incg "$B/bin/localcapctl" -r "$T" run -- curl -sS -o "$T/got6" \
    'http://[fd98::2]:8080/big' 2>&1)
check "run -- curl over IPv6: 64 MiB download, SHA-256 intact ($out)" \
    test "$(sha "$T/got6")" = "$want"
rm -f "$T/got4" "$T/got6"
# run -- sh -c with three children at once: each exchange is its child's.
out=$(incg "$B/bin/localcapctl" -r "$T" run -- sh -c '
	curl -sS -o /dev/null "http://10.98.0.2:8080/index.html?child=1" & echo $! >"$1/c1"
	curl -sS -o /dev/null "http://[fd98::2]:8080/index.html?child=2" & echo $! >"$1/c2"
	wget -q -O /dev/null "http://10.98.0.2:8080/index.html?child=3" & echo $! >"$1/c3"
	wait' sh "$T" 2>&1)
check "run -- sh -c with three children: all done ($out)" test -z "$out"
sleep 1.2	# status reports are at most a second old
flows1=$(counter tcp_flows_created)
check "both went through netstackd ($flows0 -> $flows1 TCP flows)" \
    test "$flows1" -ge $((flows0 + 2))
check "proxyd relayed them to the original destinations" sh -c \
    "grep -q '10.98.0.2:8080' '$T/proxyd.log' && grep -q 'fd98::2' '$T/proxyd.log'"
# (What came in is the body and the response's header, a few hundred bytes.)
check "proxyd knew the process (curl, its pid) and counted 64 MiB to it" sh -c "
    grep -E -o -- '-> 10.98.0.2:8080 \(curl pid [1-9][0-9]*\): closed, [0-9]+ bytes out, [0-9]+ in' \
        '$T/proxyd.log' | awk '\$(NF-1) > $BIG && \$(NF-1) < $BIG + 1000 { f = 1 } END { exit !f }'"

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

# By pid: one python3 is captured, and another one, the same program but
# not in the spec, goes direct.  Each prints its pid, waits for a file if
# told (bounded), and fetches the page.
fetch='import os, sys, time, urllib.request
print(os.getpid(), flush=True)
for _ in range(200 if len(sys.argv) > 1 else 0):
    if os.path.exists(sys.argv[1]): break
    time.sleep(0.05)
u = urllib.request.urlopen("http://10.98.0.2:8080/index.html", timeout=10)
print(u.read().decode().strip())'
incg "$PY" -c "$fetch" "$T/go" >"$T/bypid.out" 2>&1 &
BG=$!
i=0
until [ -s "$T/bypid.out" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
bypid=$(head -n 1 "$T/bypid.out")
out=$(ctl attach "$bypid" 2>&1)
check "attach by pid ($out)" test "$out" = "capturing: curl,$bypid"
touch "$T/go"
wait $BG
check "...that process fetches the page through the capture" \
    test "$(sed -n 2p "$T/bypid.out")" = "hello from the origin"
out=$(incg "$PY" -c "$fetch" 2>&1)
notpid=$(echo "$out" | head -n 1)
check "another $(basename "$PY") (pid $notpid), not in the spec, fetches it directly" \
    test "$(echo "$out" | sed -n 2p)" = "hello from the origin"
ctl detach "$bypid" >/dev/null

# 64 MiB upload through the chain: the server hashes what it received.
ip netns exec "$NS2" "$PY" -c '
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
head -c $BIG /dev/urandom >"$T/up.bin"
want_up=$(sha "$T/up.bin")
got_up=$(incg "$B/bin/localcapctl" -r "$T" run -- "$PY" -c '
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

# A raw 64 MiB download (the server speaks first, nothing to parse): proxyd
# moves it to netstackd's socket with splice(2), not through its buffers.
ip netns exec "$NS2" "$PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.98.0.2", 9091)); s.listen(1); s.settimeout(60)
c, _ = s.accept()
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b: break
        c.sendall(b)
c.close()' "$T/www/big" &
DOWN_SRV=$!
sleep 0.5
spliced0=$(counter bytes_spliced)
got_down=$(incg "$B/bin/localcapctl" -r "$T" run -- "$PY" -c '
import socket, hashlib
s = socket.create_connection(("10.98.0.2", 9091), timeout=30)
h = hashlib.sha256()
while True:
    b = s.recv(1 << 20)
    if not b: break
    h.update(b)
print(h.hexdigest())' 2>&1)
wait "$DOWN_SRV"
check "a raw 64 MiB download through the chain arrives intact" \
    test "$got_down" = "$want"
# proxyd's figures reach status through netstackd's next report (each
# holds back up to a second): wait up to 10 s for them.
i=0
while [ $i -lt 50 ]; do
	spliced1=$(counter bytes_spliced)
	[ "$spliced1" -ge $((spliced0 + BIG * 9 / 10)) ] && break
	i=$((i + 1))
	sleep 0.2
done
check "... spliced by proxyd, not copied ($spliced0 -> $spliced1 bytes)" \
    test "$spliced1" -ge $((spliced0 + BIG * 9 / 10))

# DNS over UDP/53, as a resolver asks: A and AAAA on one socket, a name that
# does not exist over IPv6, and then bytes that are not DNS at all — all by
# one process captured by name.
ln -s "$PY" "$T/lc-dig"
ctl attach lc-dig >/dev/null
out=$(incg "$T/lc-dig" "$top/test/integration/dnstool.py" query \
    10.98.0.2 fd98::2 www.origin.test 2>&1)
check "DNS through the capture: answers, NXDOMAIN, and junk relayed unchanged ($out)" \
    sh -c "echo \"\$1\" | grep -q -x 'pid=[1-9][0-9]* a=10.98.0.2/0 aaaa=fd98::2/0 nx=3 junk=echoed'" sh "$out"
dnspid=${out%% *}
dnspid=${dnspid#pid=}
ctl detach lc-dig >/dev/null
sleep 1.2
flows2=$(counter tcp_flows_created)

# Not captured: the same download goes direct and still works.
ctl detach curl >/dev/null
incg curl -sS -o "$T/direct" http://10.98.0.2:8080/big
sleep 1.2
check "after detach curl goes direct (same bytes, no new flow)" sh -c \
    "[ \"\$(sha256sum <'$T/direct' | cut -d' ' -f1)\" = '$want' ] && rm '$T/direct' &&
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
out=$(incg "$B/bin/localcapctl" -r "$T" run -- "$PY" -c '
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
out=$(incg curl -sS -m 10 --cacert "$LCA" --resolve 'origin.test:8443:[fd98::2]' \
    https://origin.test:8443/index.html 2>&1)
check "...and over IPv6 ($out)" test "$out" = "hello from the origin"
out=$(incg curl -sS -m 60 --cacert "$LCA" $RES -o "$T/gots" \
    -w '%{time_total}' https://origin.test:8443/big 2>&1)
check "...and the 64 MiB file, decrypted and re-encrypted intact ($out s)" \
    test "$(sha "$T/gots")" = "$want"
rm -f "$T/gots"
# Two requests on one connection: two exchanges of one flow.
out=$(incg curl -sS -m 10 --cacert "$LCA" --resolve origin.test:8444:10.98.0.2 \
    https://origin.test:8444/index.html https://origin.test:8444/big \
    -o /dev/null -o "$T/gotka" -w '%{num_connects} ' 2>&1)
check "HTTPS keep-alive through proxyd: two requests, one connection ($out)" \
    sh -c "[ '$out' = '1 0 ' ] &&
           [ \"\$(sha256sum <'$T/gotka' | cut -d' ' -f1)\" = '$want' ]"
rm -f "$T/gotka"
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
PROC=$(basename "$PY" | cut -c1-15)	# python's name as a process (comm)
# rows_py EXPR [ARG...]: prints the Python expression EXPR, where rows are
# the entries flows --json listed, some(k=v, ...) those with all of these
# values, and arg the ARGs.  rows_check DESC EXPR [ARG...]: ok if EXPR holds.
rows_py() {
	_e=$1; shift
	"$PY" -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
arg = sys.argv[2:]
BIG, PROC = $BIG, '$PROC'
def some(**want):
    return [r for r in rows if all(r.get(k) == v for k, v in want.items())]
print($_e)" "$T/flows.json" "$@"
}
rows_check() {
	_d=$1 _e=$2; shift 2
	check "$_d" test "$(rows_py "bool($_e)" "$@" 2>&1)" = True
}
rows_check "run -- sh -c: each child's exchange has that child's pid and name" \
    'all(some(kind="http", path="/index.html?child=%d" % i, process=p,
        pid=int(open(arg[0] + "/c%d" % i).read())) for i, p in
        ((1, "curl"), (2, "curl"), (3, "wget")))' "$T"
# Plain HTTP is observed: a flow with exchanges is listed as its exchanges.
rows_check "flows --json lists the 64 MiB download as an exchange: GET /big, 200, by curl with its pid" \
    'any(r["pid"] for r in some(kind="http", proto="http", method="GET",
        process="curl", dst="10.98.0.2:8080", host="10.98.0.2:8080",
        path="/big", status=200, bytes_down=BIG))'
rows_check "...and the IPv6 one, to [fd98::2]:8080 by curl, with the Host curl sent" \
    'any(r["pid"] for r in some(kind="http", proto="http", process="curl",
        dst="[fd98::2]:8080", host="[fd98::2]:8080",
        url="http://[fd98::2]:8080/big", status=200, bytes_down=BIG))'
xid=$(rows_py 'some(kind="http", path="/big", host="10.98.0.2:8080")[0]["id"]' 2>/dev/null)
"$B/bin/localcapctl" -s "$T/state" show "$xid" >"$T/show-x.txt" 2>&1
check "show $xid: the request's and the response's headers" sh -c "
    grep -q 'User-Agent: curl' '$T/show-x.txt' &&
    grep -q 'Host: 10.98.0.2:8080' '$T/show-x.txt' &&
    grep -q 'Content-Length: $BIG' '$T/show-x.txt' &&
    grep -q '200' '$T/show-x.txt'"
rows_check "flows --json lists the decrypted HTTPS exchanges with https://origin.test URLs" \
    'len(some(kind="http", proto="https", process="curl", dst="10.98.0.2:8443",
        url="https://origin.test:8443/index.html", status=200)) >= 2 and
     some(kind="http", proto="https", url="https://origin.test:8443/big",
        bytes_down=BIG)'
rows_check "...and the one over IPv6, to [fd98::2]:8443 by curl" \
    'some(kind="http", proto="https", process="curl", dst="[fd98::2]:8443",
        url="https://origin.test:8443/index.html", status=200)'
rows_check "...and the keep-alive HTTPS flow as its two exchanges, 1 and 2, in order" \
    'len({r["flow"] for r in some(kind="http", dst="10.98.0.2:8444")}) == 1 and
     [(r["seq"], r["url"], r["status"], r["bytes_down"]) for r in
        sorted(some(kind="http", dst="10.98.0.2:8444"), key=lambda r: r["seq"])] ==
     [(1, "https://origin.test:8444/index.html", 200, 22),
      (2, "https://origin.test:8444/big", 200, BIG)]'
check "...and the refused connection, as such" \
    grep -q '"result":"connect failed".*"dst":"10.98.0.2:9"' "$T/flows.json"
# Raw TCP: the upload is a flow of python's with nothing recognised in it.
rows_check "the 64 MiB upload: a TCP flow to 10.98.0.2:9090 by $PROC with its pid, $BIG bytes up" \
    'any(r["pid"] for r in some(kind="tcp", process=PROC, dst="10.98.0.2:9090",
        bytes_up=BIG))'
rows_check "attached by pid: the exchange is pid $bypid's" \
    'some(kind="http", pid=int(arg[0]), process=PROC, status=200,
        url="http://10.98.0.2:8080/index.html")' "$bypid"
rows_check "not in the spec: nothing of pid $notpid's is in the store" \
    'arg[0].isdigit() and not some(pid=int(arg[0]))' "$notpid"
# DNS: one entry per query, with its answer, on the flows the client used.
rows_check "DNS: A and AAAA for www.origin.test, NOERROR, one flow, by lc-dig (pid $dnspid)" \
    '[(r["seq"], r["qtype"], r["result"]) for r in sorted(some(kind="dns",
        proto="dns", pid=int(arg[0]), process="lc-dig", dst="10.98.0.2:53",
        host="www.origin.test"), key=lambda r: r["seq"])] ==
     [(1, "A", "NOERROR"), (2, "AAAA", "NOERROR")] and
     len({r["flow"] for r in some(kind="dns", host="www.origin.test")}) == 1' \
    "$dnspid"
rows_check "...the name that does not exist, over IPv6: NXDOMAIN" \
    'some(kind="dns", pid=int(arg[0]), process="lc-dig", dst="[fd98::2]:53",
        host="nx.www.origin.test", qtype="A", result="NXDOMAIN")' "$dnspid"
rows_check "...and the junk, both ways, as malformed" \
    'len([r for r in some(kind="dns", pid=int(arg[0]), dst="10.98.0.2:53",
        host=None) if r["result"].startswith("malformed: ")]) == 2' "$dnspid"
for e in 'some(kind="dns", qtype="A", host="www.origin.test")[0]["flow"]' \
    'some(kind="dns", host="nx.www.origin.test")[0]["flow"]' \
    'some(kind="dns", host=None)[0]["flow"]'; do
	"$B/bin/localcapctl" -s "$T/state" show "$(rows_py "$e" 2>/dev/null)"
done >"$T/show-dns.txt" 2>&1
check "show: the DNS flows (IPv6 addresses in brackets), answers record by record" sh -c "
    grep -q '^question  *www.origin.test A\$' '$T/show-dns.txt' &&
    grep -q '^question  *www.origin.test AAAA\$' '$T/show-dns.txt' &&
    grep -q '^  www.origin.test 60 A 10.98.0.2\$' '$T/show-dns.txt' &&
    grep -q '^  www.origin.test 60 AAAA fd98::2\$' '$T/show-dns.txt' &&
    grep -q '^answer  *NXDOMAIN' '$T/show-dns.txt' &&
    grep -q '^flow .* udp  \\[fd6c:.*\\]:[0-9]* -> \\[fd98::2\\]:53\$' '$T/show-dns.txt' &&
    grep -q '^malformed: message shorter than the DNS header\$' '$T/show-dns.txt'"
tls_ids=$(rows_py '" ".join(str(r["flow"]) for r in rows
      if r["dst"] == "10.98.0.2:8443" and ((r["proto"] == "tls" and r["host"] == "origin.test")
      or (r["proto"] == "https" and r["host"] == "origin.test:8443")))')
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
id=$(rows_py 'rows[0]["id"]')
check "show $id prints the flow with its process" sh -c \
    "'$B/bin/localcapctl' -s '$T/state' show $id | grep -q '^process  *curl (pid'"
# HAR, written and read back.
"$B/bin/localcapctl" -s "$T/state" export --har "$T/out.har"
check "export --har writes HAR 1.2" "$PY" -c '
import json, sys
h = json.load(open(sys.argv[1]))
sys.exit(0 if h["log"]["version"] == "1.2" and "entries" in h["log"] else 1)' "$T/out.har"
check "...whose entries have the exchanges: URL and status" "$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["log"]["entries"]
got = {(x["request"]["method"], x["request"]["url"], x["response"]["status"]) for x in e}
want = {("GET", "http://10.98.0.2:8080/big", 200),
        ("GET", "http://10.98.0.2:8080/index.html", 200),
        ("GET", "https://origin.test:8443/index.html", 200),
        ("GET", "https://origin.test:8443/big", 200)}
sys.exit(0 if want <= got else 1)' "$T/out.har"
check "...the server's address (IPv6 too), the process and pid, and the body" "$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["log"]["entries"]
v6 = [x for x in e if x["serverIPAddress"] == "fd98::2"
      and x["request"]["url"] == "https://origin.test:8443/index.html"
      and x["_localcap"]["process"] == "curl"]
mine = [x for x in e if x["_localcap"]["pid"] == int(sys.argv[2])
        and x["serverIPAddress"] == "10.98.0.2"
        and x["response"]["content"]["text"] == "hello from the origin\n"]
sys.exit(0 if v6 and mine else 1)' "$T/out.har" "$bypid"

# A lossy path: netstackd restarted with its test-only impairment (5 % loss,
# 5 ms delay each way at the TUN).  The flow's record gets netstackd's
# figures: retransmissions, and a round-trip time of at least the delay.
kill "$NSD"
wait "$NSD" 2>/dev/null
pids=$(echo "$pids" | sed "s/ $NSD\b//")
$NSE "$B/bin/netstackd" -f -r "$T" --impair loss=5%,delay=5ms,seed=20261130 \
    >"$T/netstackd-impair.log" 2>&1 &
NSD=$!
pids="$pids $NSD"
i=0
until ctl --json status 2>/dev/null | grep -q '"capturing":true' &&
    ctl --json status | grep -q '"name":"netstackd","running":true'; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
# (16 MiB: some 260 segments each way even at the TUN's 64 KiB MTU, so a
# 5 % loss cannot miss them all.)
out=$(incg curl -sS -m 60 -o "$T/gotlossy" -w '%{time_total}' \
    'http://10.98.0.2:8080/big?lossy' 2>&1)
check "the 16 MiB download over a lossy TUN, captured, arrives intact ($out s)" \
    test "$(sha256sum <"$T/gotlossy" | cut -d' ' -f1)" = "$want"
# netstackd's FlowClosed comes once the app's last ACK does: wait for it.
i=0
while [ $i -lt 40 ]; do
	"$B/bin/localcapctl" -s "$T/state" flows --json >"$T/flows-loss.json" 2>&1
	grep '"path":"/big?lossy"' "$T/flows-loss.json" | grep -q '"tcp":{' && break
	i=$((i + 1))
	sleep 0.25
done
lossy=$(grep '"path":"/big?lossy"' "$T/flows-loss.json" | tail -n 1)
[ -n "$lossy" ] || lossy='{}'
check "flows --json: that flow's tcp figures show retransmits and an RTT over 10 ms ($(echo "$lossy" | sed -n 's/.*"tcp":\(.*\)}$/\1/p'))" \
    "$PY" -c '
import json, sys
t = json.loads(sys.argv[1]).get("tcp")
sys.exit(0 if t and t["retransmits"] > 0 and t["rtt_us"] >= 10000
         and t["packets_up"] > 0 and t["packets_down"] > 0 else 1)' "$lossy"
fid=$(echo "$lossy" | sed -n 's/.*"flow":\([0-9]*\).*/\1/p')
"$B/bin/localcapctl" -s "$T/state" show "${fid:-0}" >"$T/show-loss.txt" 2>&1
check "show $fid: $(grep '^tcp ' "$T/show-loss.txt")" \
    grep -E -q '^tcp +[0-9]+ packets up, [0-9]+ down, [1-9][0-9]* retransmits, rtt [0-9.]+ ms$' \
    "$T/show-loss.txt"
# Status reports hold back up to a second each hop: wait up to 10 s.
i=0
while [ $i -lt 50 ]; do
	ctl status >"$T/status-loss.txt" 2>&1
	grep -E -q '^netstackd .* [1-9][0-9]* tcp retransmits' "$T/status-loss.txt" &&
	    grep -E -q '^proxyd .* TLS [1-9][0-9]* decrypted' "$T/status-loss.txt" &&
	    break
	i=$((i + 1))
	sleep 0.2
done
check "status: netstackd's TCP retransmits in all ($(grep -o '[0-9]* tcp retransmits ([0-9]* timeouts)' "$T/status-loss.txt"))" \
    grep -E -q '^netstackd .* [1-9][0-9]* tcp retransmits' "$T/status-loss.txt"
check "status: proxyd's own figures, passed on by netstackd ($(grep -o 'TLS [0-9]* decrypted, [0-9]* passed through' "$T/status-loss.txt"))" \
    grep -E -q '^proxyd .* flows [0-9]+ open, [1-9][0-9]* in all; TLS [1-9][0-9]* decrypted, [1-9][0-9]* passed through' \
    "$T/status-loss.txt"
check "status: proxyd names its AES-GCM ($(grep -o 'AES-GCM by [A-Za-z-]*' "$T/status-loss.txt"))" \
    grep -E -q '^proxyd .*; AES-GCM by (ipsec-mb|mbedTLS)$' "$T/status-loss.txt"

for p in $pids; do
	kill -0 "$p" 2>/dev/null || not_ok "a daemon died (pid $p)"
done
if [ $failed -ne 0 ]; then
	for f in redirectord netstackd netstackd-impair proxyd; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log"
	done
fi
echo "capture_proxyd: $passed passed, $failed failed"
[ $failed -eq 0 ]
