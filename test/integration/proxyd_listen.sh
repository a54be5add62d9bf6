#!/bin/sh
# proxyd as an explicit HTTP proxy (--listen), against real clients and
# origins, without capture: curl, wget, python3 and openssl s_client, through
# CONNECT and absolute-form requests, to test/integration/origin.py over HTTP
# and HTTPS (a certificate from a test CA that only proxyd trusts) and to
# openssl s_server.  Host names come from /etc/hosts and from a small DNS
# server, both private to the test (a mount namespace).  Every exchange is
# checked in the flow store through localcapctl.
#
# Everything runs in a network namespace the script creates, on its
# loopback; root only; removed on every exit path (KEEP=1 keeps the logs).
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "proxyd_listen: needs root (a network and a mount namespace); skipped"
	exit 77
fi
for tool in curl wget openssl python3 sha256sum unshare; do
	command -v $tool >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
NS="lc-listen-$$"
T=$(mktemp -d /tmp/lc-listen.XXXXXX)
chmod 755 "$T"
PY=$(readlink -f /usr/bin/python3)
pids=""
passed=0 failed=0

cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
# In the namespace, with its own /etc/hosts and /etc/resolv.conf.
cat >"$T/hosts" <<EOF
127.0.0.1	localhost
::1		localhost
127.0.0.1	origin.test ignored.test selfsigned.test
EOF
echo "nameserver 127.0.0.53" >"$T/resolv.conf"
# Only in the background (cmd &): it replaces the subshell, so $! is the program.
bg_private_etc() {
	exec ip netns exec "$NS" unshare -m sh -c 'mount --bind "$0" /etc/hosts &&
	    mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' \
	    "$T/hosts" "$T/resolv.conf" "$@"
}
ctl() { LOCALCAP_STATE_DIR="$T/state" "$B/bin/localcapctl" -r "$T" "$@"; }
# has A [B]: a flow's JSON line contains A (and B); the store commits
# within moments of an exchange's end, so give it a few.
has() {
	for _i in 1 2 3 4 5 6 7 8 9 10; do
		ctl flows --json 2>/dev/null | grep -F -- "$1" |
		    grep -q -F -- "${2:-$1}" && return 0
		sleep 0.2
	done
	return 1
}
# show_last A B: `show` of the last flow whose JSON line has A and B.
show_last() {
	_id=$(ctl flows --json | grep -F -- "$1" | grep -F -- "$2" | tail -n 1 |
	    sed 's/.*"id":"\([^"]*\)".*/\1/')
	[ -n "$_id" ] && ctl show "$_id"
}
P=http://127.0.0.1:3128

# --- test PKI: the origins' CA and leaves, one self-signed ----------------------
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
( cd "$T" &&
  openssl req -x509 $EC -keyout oca.key -out oca.pem -subj '/CN=Origin Test CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -new $EC -keyout origin.key -out origin.csr -subj '/CN=origin.test' &&
  printf 'subjectAltName=DNS:origin.test,DNS:ignored.test,DNS:dns.test,IP:127.0.0.1\n' >san &&
  openssl x509 -req -in origin.csr -CA oca.pem -CAkey oca.key -CAcreateserial \
      -days 2 -extfile san -out origin.pem &&
  openssl req -x509 $EC -keyout self.key -out self.pem -subj '/CN=selfsigned.test' \
      -days 2 -addext subjectAltName=DNS:selfsigned.test ) >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; exit 1; }

# --- origins and a DNS server -----------------------------------------------------
mkdir "$T/www"
head -c 4194304 /dev/urandom >"$T/www/blob"
want=$(sha256sum <"$T/www/blob" | cut -d' ' -f1)
ip netns exec "$NS" "$PY" "$top/test/integration/origin.py" --port 8080 \
    --dir "$T/www" >"$T/origin.log" 2>&1 &
pids="$pids $!"
ip netns exec "$NS" "$PY" "$top/test/integration/origin.py" --port 8443 \
    --dir "$T/www" --cert "$T/origin.pem" --key "$T/origin.key" \
    >"$T/origin-tls.log" 2>&1 &
pids="$pids $!"
( cd "$T/www" && exec ip netns exec "$NS" openssl s_server -quiet -WWW \
    -accept 9443 -cert "$T/self.pem" -key "$T/self.key" ) >"$T/s_server.log" 2>&1 &
pids="$pids $!"
# dns.test A 127.0.0.1; anything else NXDOMAIN.
ip netns exec "$NS" "$PY" -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.53", 53))
while True:
    q, peer = s.recvfrom(2048)
    if len(q) < 12:
        continue
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    name = ".".join(labels).lower()
    if name == "dns.test":
        an = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1]) \
            if qtype == 1 else b""
        hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if an else 0, 0, 0)
    else:
        an = b""
        hdr = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)
    s.sendto(hdr + question + an, peer)
' >"$T/dns.log" 2>&1 &
pids="$pids $!"

bg_private_etc "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --listen 127.0.0.1:3128 \
    --upstream-ca "$T/oca.pem" --ignore-hosts '^ignored\.test:' --body-cap 64K \
    >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ip netns exec "$NS" curl -s -o /dev/null -x $P http://127.0.0.1:8080/small; do
	i=$((i + 1))
	[ $i -gt 200 ] && { not_ok "proxyd and origins up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "proxyd and origins up"
CA="$T/state/localcap-ca-cert.pem"

# --- plain HTTP: absolute-form requests -------------------------------------------
ip netns exec "$NS" curl -sS -x $P -o "$T/got" http://origin.test:8080/f/blob
check "curl -x, http://: 4 MiB download intact" \
    test "$(sha256sum <"$T/got" | cut -d' ' -f1)" = "$want"
out=$(ip netns exec "$NS" curl -sS -x $P --data-binary @"$T/www/blob" \
    http://origin.test:8080/sha256)
check "curl -x, http://: 4 MiB upload intact ($out)" test "$out" = "$want"
out=$(ip netns exec "$NS" curl -sS -x $P -H 'Transfer-Encoding: chunked' \
    --data-binary @"$T/www/blob" http://origin.test:8080/sha256)
check "curl -x, http://: 4 MiB chunked upload intact" test "$out" = "$want"
ip netns exec "$NS" curl -sS -x $P -D "$T/chunked.h" -o "$T/chunked" \
    'http://origin.test:8080/chunked?n=1000000'
check "curl -x, http://: a chunked download arrives whole" \
    test "$(stat -c %s "$T/chunked")" = 1000000
out=$(http_proxy=$P ip netns exec "$NS" wget -q -O - http://origin.test:8080/f/blob |
    sha256sum | cut -d' ' -f1)
check "wget through http_proxy: 4 MiB download intact" test "$out" = "$want"
out=$(ip netns exec "$NS" "$PY" -c '
import urllib.request, hashlib, sys
o = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
print(hashlib.sha256(o.open("http://dns.test:8080/f/blob").read()).hexdigest())' $P 2>&1)
check "python3 urllib through the proxy, dns.test from the DNS server" \
    test "$out" = "$want"
# Two hosts over what curl would reuse as one proxy connection.
ip netns exec "$NS" curl -sS -x $P -o /dev/null -o /dev/null \
    http://origin.test:8080/small http://dns.test:8080/small
check "one request per proxied connection: each went to its own host" \
    has '"url":"http://dns.test:8080/small"' '"status":200'
check "... and the first to its" has '"url":"http://origin.test:8080/small"' \
    '"status":200'

# --- HTTPS through CONNECT ----------------------------------------------------
ip netns exec "$NS" curl -sS -x $P --cacert "$CA" -o "$T/got" \
    https://origin.test:8443/f/blob
check "curl -x, https:// (CONNECT, decrypted): 4 MiB download intact" \
    test "$(sha256sum <"$T/got" | cut -d' ' -f1)" = "$want"
out=$(ip netns exec "$NS" curl -sS -x $P --cacert "$CA" \
    --data-binary @"$T/www/blob" https://origin.test:8443/sha256)
check "curl -x, https://: 4 MiB upload intact" test "$out" = "$want"
out=$(ip netns exec "$NS" curl -sS -x $P --cacert "$CA" -w '%{num_connects}' \
    -o /dev/null -o /dev/null https://origin.test:8443/small https://origin.test:8443/small)
# (curl prints num_connects per transfer: 1 for the first, 0 for the second.)
check "keep-alive inside one tunnel: two requests, one connection ($out)" \
    test "$out" = 10
out=$(https_proxy=$P ip netns exec "$NS" wget -q --ca-certificate="$CA" -O - \
    https://origin.test:8443/f/blob | sha256sum | cut -d' ' -f1)
check "wget through https_proxy: 4 MiB intact" test "$out" = "$want"
out=$(ip netns exec "$NS" "$PY" -c '
import urllib.request, ssl, hashlib, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
o = urllib.request.build_opener(urllib.request.ProxyHandler({"https": sys.argv[1]}),
    urllib.request.HTTPSHandler(context=ctx))
print(hashlib.sha256(o.open("https://origin.test:8443/f/blob").read()).hexdigest())' \
    $P "$CA" 2>&1)
check "python3 urllib over HTTPS through the proxy" test "$out" = "$want"
out=$(printf 'GET /small HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n' |
    ip netns exec "$NS" openssl s_client -quiet -proxy 127.0.0.1:3128 \
    -connect origin.test:8443 -servername origin.test -CAfile "$CA" \
    -verify_return_error -verify_hostname origin.test 2>"$T/s_client.err")
check "openssl s_client -proxy verifies the forged chain and host name" \
    sh -c "printf '%s' '$out' | grep -q '^ok'"
# A WebSocket in a tunnel: handshake and echoed frames, one flow.
out=$(ip netns exec "$NS" "$PY" -c '
import socket, ssl, os, sys, base64, struct
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT origin.test:8443 HTTP/1.1\r\nHost: origin.test:8443\r\n\r\n")
assert s.recv(4096).startswith(b"HTTP/1.1 200")
t = ssl.create_default_context(cafile=sys.argv[1]).wrap_socket(s, server_hostname="origin.test")
key = base64.b64encode(os.urandom(16))
t.sendall(b"GET /ws HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
f = t.makefile("rb")
assert f.readline().startswith(b"HTTP/1.1 101")
while f.readline() not in (b"\r\n", b""):
    pass
def send(op, data):
    m = os.urandom(4)
    t.sendall(struct.pack("!BBH", 0x80 | op, 0x80 | 126, len(data)) + m +
              bytes(b ^ m[i % 4] for i, b in enumerate(data)))
def recv():
    b0, b1 = f.read(2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    return b0 & 15, f.read(n)
ok = 0
for i in range(5):
    msg = os.urandom(300 + i)
    send(2, msg)
    ok += recv() == (2, msg)
send(8, b"")
print("echoed", ok)' "$CA" 2>&1)
check "WebSocket through CONNECT: 5 frames echoed ($out)" test "$out" = "echoed 5"
check "the WebSocket handshake recorded as 101" \
    has '"url":"https://origin.test/ws"' '"status":101'

# --- failures, passthrough, ignore-hosts ---------------------------------------
out=$(ip netns exec "$NS" curl -sS -x $P --cacert "$CA" -o "$T/bad" -w '%{http_code}' \
    https://selfsigned.test:9443/ 2>&1)
check "an origin with an untrusted certificate: the client gets 502 ($out)" \
    test "$out" = 502
check "... and the 502 says why" grep -qi "certificate" "$T/bad"
ip netns exec "$NS" curl -sS -x $P -o /dev/null https://origin.test:8443/small \
    2>"$T/reject.err"
check "a client without our CA refuses the forged certificate" \
    grep -qi "certificate" "$T/reject.err"
out=$(ip netns exec "$NS" curl -sS -x $P --cacert "$T/oca.pem" \
    https://origin.test:8443/small 2>&1)
check "next time the host passes through: the origin's own certificate ($out)" \
    test "$out" = "ok"
out=$(ip netns exec "$NS" curl -sS -x $P --cacert "$T/oca.pem" \
    https://ignored.test:8443/small 2>&1)
check "--ignore-hosts: ignored.test is not decrypted ($out)" test "$out" = "ok"
sleep 0.3
check "... and listed under the host the client asked for, unparsed" \
    has '"host":"ignored.test"' '"proto":"raw"'
show_last '"host":"ignored.test"' '"proto":"raw"' >"$T/ignored.show" 2>&1
check "... and shown as passed through, with the pattern" \
    grep -q "matches --ignore-hosts '^ignored" "$T/ignored.show"

out=$(ip netns exec "$NS" curl -sS -x $P -o /dev/null -w '%{http_code}' \
    http://nosuch.test:8080/ 2>&1)
check "an unknown host name: 502 ($out)" test "$out" = 502
out=$(ip netns exec "$NS" curl -sS -o /dev/null -w '%{http_code}' \
    http://127.0.0.1:3128/ 2>&1)
check "a request that is not for a proxy: 400 ($out)" test "$out" = 400
out=$(printf 'CONNECT origin.test HTTP/1.1\r\n\r\n' | ip netns exec "$NS" \
    curl -sS --max-time 5 telnet://127.0.0.1:3128 2>/dev/null | head -n 1)
check "CONNECT without a port: 400 ($out)" sh -c "printf '%s' '$out' | grep -q ' 400 '"
out=$(printf 'GET http://origin.test:8080/small HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' |
    ip netns exec "$NS" curl -sS --max-time 5 telnet://127.0.0.1:3128 2>/dev/null | head -n 1)
check "a request with two Content-Lengths: 400 ($out)" sh -c "printf '%s' '$out' | grep -q ' 400 '"
check "proxyd is still running" kill -0 "$PXD"

# --- the flow store -----------------------------------------------------------
check "plain exchanges recorded with host, method and status" \
    has '"url":"http://origin.test:8080/f/blob"' '"method":"GET","host":"origin.test:8080"'
check "... the upload with its size" \
    has '"url":"http://origin.test:8080/sha256"' '"bytes_up":4194304'
check "decrypted exchanges recorded as https" \
    has '"url":"https://origin.test:8443/f/blob"' '"status":200'
xid=$(ctl flows --json | grep -F '"url":"https://origin.test:8443/f/blob"' |
    head -n 1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
ctl show "$xid" >"$T/blob.show" 2>&1
check "--body-cap 64K: the 4 MiB body is recorded truncated at 64 KiB" \
    grep -q 'response body: 4.0 MiB, truncated (65536 bytes kept)' "$T/blob.show"
ctl show --body "$xid" >"$T/blob.kept" 2>"$T/blob.err"
check "... and what is kept is its first 64 KiB" \
    cmp -s "$T/blob.kept" -n 65536 "$T/www/blob"
check "... of exactly that size, and show --body says it is cut" sh -c \
    "[ \$(stat -c %s '$T/blob.kept') = 65536 ] &&
     grep -q '65536 of 4194304 bytes were recorded' '$T/blob.err'"
ctl flows >"$T/table" 2>&1
check "the client is shown as (proxy), not a process" grep -q '(proxy) ' "$T/table"

# Slowloris: 1,030 half-sent request heads from one source (127.0.0.2)
# must not keep a legitimate client out, from another address or from that
# same one; a client that sends nothing is closed within the first-byte
# deadline (5 s).  Bounded: the holder gives up after 40 s.
ip netns exec "$NS" "$PY" -c '
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
silent = socket.create_connection(("127.0.0.1", 3128))
t0 = time.time()
held = []
for i in range(1030):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", 3128))
    s.sendall(b"GET http://origin.test:8080/small HTTP/1.1\r\nHost: orig")
    held.append(s)
print("ready", flush=True)
silent.settimeout(10)
try:
    gone = silent.recv(1) == b""
except OSError:
    gone = True
print("silent closed after %.1f s" % (time.time() - t0) if gone else "silent open", flush=True)
time.sleep(40)
' >"$T/slowloris.out" 2>&1 &
SLOW=$!
pids="$pids $SLOW"
i=0
while [ $i -lt 200 ] && ! grep -q ready "$T/slowloris.out"; do sleep 0.05; i=$((i + 1)); done
check "1,030 half-sent heads sent from 127.0.0.2" grep -q ready "$T/slowloris.out"
out=$(ip netns exec "$NS" curl -s -m 5 -o /dev/null -w '%{http_code}' -x $P \
    http://127.0.0.1:8080/small 2>&1)
check "...and a client from 127.0.0.1 is still served ($out)" test "$out" = 200
out=$(ip netns exec "$NS" curl -s -m 5 --interface 127.0.0.2 -o /dev/null \
    -w '%{http_code}' -x $P http://127.0.0.1:8080/small 2>&1)
check "...and so is one from 127.0.0.2 itself ($out)" test "$out" = 200
i=0
while [ $i -lt 200 ] && ! grep -q silent "$T/slowloris.out"; do sleep 0.05; i=$((i + 1)); done
sed -n 's/^silent/# silent/p' "$T/slowloris.out"
check "a client that sends nothing is closed within the first-byte deadline" sh -c \
    "grep -q 'silent closed after [0-7]\.' '$T/slowloris.out'"
kill "$SLOW" 2>/dev/null; wait "$SLOW" 2>/dev/null

kill -TERM "$PXD"
wait "$PXD"
check "proxyd exits cleanly" test $? -eq 0
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
