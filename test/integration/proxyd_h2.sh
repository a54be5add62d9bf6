#!/bin/sh
# HTTP/2 through the whole chain with the real proxyd: h2-only and h2
# clients captured with `localcapctl run` (TUN, netstackd, proxyd), and the
# same through proxyd's explicit proxy (--listen, inside CONNECT; nghttp and
# h2load, which speak to no proxy, through a socat CONNECT shim).  The
# origins: nghttpd (h2 over TLS, response trailers, request bodies echoed),
# one shaped like gRPC (grpc-status/grpc-message trailers), two in python3-h2
# (h2connect.py: one offering extended CONNECT, one not), an h2c one
# (nghttpd --no-tls, prior knowledge) and an HTTP/1.1-only TLS origin
# (python3, no ALPN).  Checked, captured and again inside CONNECT: nghttp
# -nv gets its 200 over h2 (nghttp only warns about certificates: it is
# pointed at the address, with the name in :authority); curl --http2
# reports HTTP/2; h2load's 2000 requests all succeed and the store holds
# 2000 HTTP/2.0 exchanges (attributed to h2load when captured); a 256 MiB
# h2 download is SHA-256-identical; trailers round-trip both ways; the
# h1-only origin still serves curl --http2 (over 1.1).  Captured only: the
# h1-only origin gives an h2-only client a no_application_protocol alert
# and the flow says why; a gRPC call's messages and status reach flows
# --json, show and the HAR; extended CONNECT is offered to the client only
# when the origin offers it, and a websocket tunnel through it echoes and
# is recorded; floods and bombs (h2attack.py: PING, SETTINGS,
# empty DATA, rapid reset, CONTINUATION, HPACK bomb, too many fields; some
# inside CONNECT too) are refused with a GOAWAY (or a 431), the store says
# why, proxyd's peak RSS during each stays within 16 MB of where it was,
# and proxyd still serves; h2c with prior knowledge (curl, nghttp, h2load)
# goes through the same layer, captured and inside CONNECT, and is
# recorded even when the origin's SETTINGS reach proxyd before the
# client's preface (a python3 client that waits 200 ms before sending it).
#
# Two network namespaces this script creates ("client": the daemons and the
# captured programs, in a child cgroup of our own; "server": the origins),
# joined by a veth pair.  Root only; removes everything it made on every
# exit path (KEEP=1 keeps the temp dir with the logs).
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "proxyd_h2: needs root (namespaces, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "proxyd_h2: kernel has no BTF; skipped"
	exit 77
fi
for tool in nghttp nghttpd h2load curl openssl python3 sha256sum socat; do
	command -v $tool >/dev/null 2>&1 || { echo "proxyd_h2: $tool not installed; skipped"; exit 77; }
done
/usr/bin/python3 -c 'import h2' 2>/dev/null ||
    { echo "proxyd_h2: python3-h2 not installed; skipped"; exit 77; }

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
capture_test_env h2

NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
# CMD in the client namespace and in our cgroup, under localcapctl run.
run() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" \
    "$B/bin/localcapctl" -r "$T" run -- "$@"; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
rss() { awk '$1 == "VmRSS:" { print $2 " kB" }' "/proc/$PXD/status"; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$PXD/status"; }
# proxyd's peak RSS since the last peak_reset (VmHWM, reset through
# /proc/PID/clear_refs).
hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$PXD/status"; }
peak_reset() { echo 5 >"/proc/$PXD/clear_refs"; }
flows_json() { sleep 0.5; "$B/bin/localcapctl" -s "$T/state" flows --json >"$T/flows.json" 2>&1; }
# count_rows WANT PATTERN...: lines of flows --json with every PATTERN,
# polled for up to 10 s until there are WANT (the store commits in
# batches, and under load a flow's last exchanges take a moment).
count_rows() {
	_want=$1; shift
	for _i in $(seq 1 20); do
		flows_json
		_n=$(cat "$T/flows.json")
		for _p in "$@"; do _n=$(printf '%s\n' "$_n" | grep -F -- "$_p"); done
		_n=$(printf '%s' "$_n" | grep -c .)
		[ "$_n" -ge "$_want" ] && break
	done
	echo "$_n"
}
# newest_flow: the highest flow id in the store so far (0 if none).
newest_flow() { flows_json; "$PY" "$T/errs.py" "$T/flows.json" max; }
# flow_errors MIN DST ERE: the errors recorded for the flows to DST newer
# than MIN, one a line ("VERSION STATUS ERROR" for an exchange, "flow:
# ERROR" for the flow), polled for up to 10 s until one matches ERE.
flow_errors() {
	for _i in $(seq 1 20); do
		flows_json
		_e=$("$PY" "$T/errs.py" "$T/flows.json" "$1" "$2")
		printf '%s\n' "$_e" | grep -E -q -- "$3" && break
	done
	printf '%s\n' "$_e"
}

cat >"$T/errs.py" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
if sys.argv[2] == "max":
    print(max([r["flow"] for r in rows] or [0]))
    sys.exit(0)
if sys.argv[2] == "after":
    # what the store has of the flows newer than MIN, when a check fails
    for f in sorted({(r["flow"], r["conn"]["dst"], r["conn"]["end_reason"],
                      r["conn"]["error"]) for r in rows
                     if r["flow"] > int(sys.argv[3])}, key=str):
        print("  flow %s to %s: ended %s, error %s" % f)
    sys.exit(0)
lo, dst, out = int(sys.argv[2]), sys.argv[3], set()
for r in rows:
    if r["flow"] <= lo or r["conn"]["dst"] != dst:
        continue
    if r["seq"] is not None and r["error"]:
        st = r["status"]
        out.add("%s %s %s" % (r["http_version"], "-" if st is None else st,
                              r["error"]))
    if r["conn"]["error"]:
        out.add("flow: " + r["conn"]["error"])
print("\n".join(sorted(out)))
EOF

ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lch0 netns "$NS" type veth peer name lch1 netns "$NS2" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.97.0.1/24 dev lch0
ip -n "$NS2" addr add 10.97.0.2/24 dev lch1
ip -n "$NS" link set lch0 up
ip -n "$NS2" link set lch1 up

# --- origins ----------------------------------------------------------------
mkdir "$T/pki" "$T/www"
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
( cd "$T/pki" &&
  openssl req -x509 $EC -keyout oca.key -out oca.pem -subj '/CN=Origin Test CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -new $EC -keyout origin.key -out origin.csr -subj '/CN=origin.test' &&
  printf 'subjectAltName=DNS:origin.test,DNS:h1.test,IP:10.97.0.2\n' >san &&
  openssl x509 -req -in origin.csr -CA oca.pem -CAkey oca.key -CAcreateserial \
      -days 2 -extfile san -out origin.pem ) >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; exit 1; }
BIG=268435456
head -c $BIG /dev/urandom >"$T/www/big"
want=$(sha "$T/www/big")
echo "hello over h2" >"$T/www/index.html"
# nghttpd: h2 only (ALPN h2), a response trailer on every body, uploads
# echoed back.
ip netns exec "$NS2" nghttpd -d "$T/www" --trailer 'x-trailer: end' \
    --echo-upload 8443 "$T/pki/origin.key" "$T/pki/origin.pem" \
    >"$T/nghttpd.log" 2>&1 &
pids="$pids $!"
# h2c with prior knowledge (no TLS) on 8080.
ip netns exec "$NS2" nghttpd -d "$T/www" --no-tls 8080 >"$T/nghttpd-h2c.log" 2>&1 &
pids="$pids $!"
# The same, verbose (every frame in its log), for the trailer checks.
ip netns exec "$NS2" nghttpd -v -d "$T/www" --trailer 'x-trailer: end' \
    --echo-upload 8445 "$T/pki/origin.key" "$T/pki/origin.pem" \
    >"$T/nghttpd-v.log" 2>&1 &
pids="$pids $!"
# gRPC's shape: uploads echoed back, grpc-status and grpc-message trailers.
ip netns exec "$NS2" nghttpd --echo-upload --trailer 'grpc-status: 0' \
    --trailer 'grpc-message: fine' 8446 "$T/pki/origin.key" "$T/pki/origin.pem" \
    >"$T/nghttpd-grpc.log" 2>&1 &
pids="$pids $!"
# Extended CONNECT (RFC 8441): an origin that offers it, one that does not.
for e in 1 0; do
	ip netns exec "$NS2" "$PY" "$top/test/integration/h2connect.py" server \
	    10.97.0.2 $((8448 - e)) "$T/pki/origin.pem" "$T/pki/origin.key" $e \
	    >"$T/h2connect-$e.log" 2>&1 &
	pids="$pids $!"
done
# An HTTP/1.1-only TLS origin: python3 with no ALPN at all.
ip netns exec "$NS2" "$PY" -c '
import functools, http.server, ssl, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("10.97.0.2", 8444),
    functools.partial(H, directory=sys.argv[3]))
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()' "$T/pki/origin.pem" "$T/pki/origin.key" "$T/www" \
    >"$T/origin-h1.log" 2>&1 &
pids="$pids $!"

# --- the daemons: capture, and the explicit proxy on 127.0.0.1:3128 ------------
$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
# proxyd sees its own /etc/hosts (a mount namespace): the explicit proxy
# resolves origin.test and h1.test there.
printf '127.0.0.1 localhost\n10.97.0.2 origin.test h1.test\n' >"$T/hosts"
$NSE unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$T/hosts" \
    "$B/bin/proxyd" -f -v -r "$T" -s "$T/state" --upstream-ca "$T/pki/oca.pem" \
    --listen 127.0.0.1:3128 >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    $NSE curl -s -o /dev/null --cacert "$T/pki/oca.pem" \
        --resolve origin.test:8443:10.97.0.2 https://origin.test:8443/index.html; do
	i=$((i + 1))
	[ $i -gt 200 ] && { not_ok "daemons and origins up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "daemons and origins up"
LCA=$("$B/bin/localcapctl" -s "$T/state" ca path 2>&1)
RES="--resolve origin.test:8443:10.97.0.2"
RES1="--resolve h1.test:8444:10.97.0.2"
U=https://origin.test:8443
echo "proxyd RSS at start: $(rss)"

# --- captured: localcapctl run ---------------------------------------------------
# nghttp speaks h2 only: it needs h2 on the client leg, which proxyd gives
# because the origin chose it.  (nghttp has no --resolve: the address,
# with the name for SNI and :authority.)
out=$(run nghttp -nv -H ':authority: origin.test:8443' \
    https://10.97.0.2:8443/index.html 2>&1)
check "run -- nghttp -nv (h2 only): 200 over h2" sh -c '
    echo "$0" | grep -q "negotiated protocol: h2" && echo "$0" | grep -q ":status: 200"' "$out"
out=$(run curl -sS -m 20 --http2 --cacert "$LCA" $RES -o /dev/null \
    -w '%{http_version} %{http_code}' $U/index.html 2>&1)
check "run -- curl --http2: HTTP/2 200 ($out)" test "$out" = "2 200"
issuer=$(run curl -sS -m 20 -v --http2 --cacert "$LCA" $RES -o /dev/null \
    $U/index.html 2>&1 | sed -n 's/^\*  *issuer: //p')
check "...on a leaf issued by the localcap CA ($issuer)" \
    sh -c "echo \"\$0\" | grep -q 'localcap CA'" "$issuer"

# Trailers: the origin's response trailer reaches nghttp; the request's
# trailer (nghttp --trailer with an upload) reaches the origin, which
# echoes the body back.
printf 'trailer test body' >"$T/upload"
out=$(run nghttp -nv -H ':authority: origin.test:8445' \
    -d "$T/upload" --trailer 'x-req-trailer: sent' \
    https://10.97.0.2:8445/echo 2>&1)
check "trailers round-trip: the response's x-trailer reaches the client" \
    sh -c 'echo "$0" | grep -q "x-trailer: end"' "$out"
check "...and the request's x-req-trailer reaches the origin" \
    grep -q 'x-req-trailer: sent' "$T/nghttpd-v.log"

# h2load: 2000 requests, 4 connections, 50 streams each at once.
out=$(run h2load -n 2000 -c 4 -m 50 --connect-to=10.97.0.2:8443 \
    $U/index.html 2>&1)
# (h2load has no CA option: it does not verify, which is fine here.)
echo "$out" | grep -E '^(finished|requests|status codes)' | sed 's/^/  /'
check "run -- h2load -n 2000 -c 4 -m 50: 2000 succeeded" sh -c '
    echo "$0" | grep -E -q "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded"' "$out"
n=$(count_rows 2000 '"process":"h2load"' '"status":200' '"http_version":"HTTP/2.0"')
check "the store holds 2000 HTTP/2.0 exchanges attributed to h2load ($n)" \
    test "$n" -eq 2000

# 256 MiB over h2, bounded in time.
out=$(run curl -sS -m 240 --http2 --cacert "$LCA" $RES -o "$T/got" \
    -w '%{http_version} %{time_total}' $U/big 2>&1)
check "run -- curl --http2: 256 MiB, SHA-256 intact ($out s)" \
    sh -c "[ \"\$(sha256sum <'$T/got' | cut -d' ' -f1)\" = '$want' ] &&
           [ \"\${0%% *}\" = 2 ]" "$out"
rm -f "$T/got"
echo "proxyd RSS after 256 MiB: $(rss)"

# An HTTP/1.1-only origin: curl --http2 still works, over 1.1; a client
# that speaks h2 only gets a TLS alert, promptly.
out=$(run curl -sS -m 20 --http2 --cacert "$LCA" $RES1 -o /dev/null \
    -w '%{http_version} %{http_code}' https://h1.test:8444/index.html 2>&1)
check "h1-only origin: curl --http2 gets HTTP/1.1 200 ($out)" test "$out" = "1.1 200"
t0=$(date +%s)
out=$(run timeout 20 nghttp -nv -H ':authority: h1.test:8444' \
    https://10.97.0.2:8444/index.html 2>&1)
t1=$(date +%s)
check "h1-only origin: nghttp (h2 only) is refused at once ($((t1 - t0)) s: $(echo "$out" | tail -n 1))" \
    sh -c '[ $1 -le 10 ] && ! echo "$0" | grep -q ":status: 200" &&
           ! echo "$0" | grep -q "negotiated protocol"' "$out" $((t1 - t0))
flows_json
check "...and the flow says why" sh -c "
    \"$B/bin/localcapctl\" -s '$T/state' show \$(grep -F '\"dst\":\"10.97.0.2:8444\"' '$T/flows.json' |
        tail -n 1 | sed 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/') | grep -q 'offered only h2, the server speaks HTTP/1.1 only'"
out=$(run timeout 20 openssl s_client -connect 10.97.0.2:8444 -servername h1.test \
    -alpn h2 </dev/null 2>&1)
check "...and the alert is no_application_protocol ($(echo "$out" |
    grep -o 'alert no application protocol.*alert number [0-9]*' | head -n 1))" \
    sh -c 'echo "$0" | grep -q "alert no application protocol.*SSL alert number 120"' "$out"

# Prior-knowledge h2c on plain TCP: the connection preface is detected and
# the stream goes through the same HTTP/2 layer.
out=$(run curl -sS -m 20 --http2-prior-knowledge -o /dev/null \
    -w '%{http_version} %{http_code}' http://10.97.0.2:8080/index.html 2>&1)
check "h2c: run -- curl --http2-prior-knowledge: HTTP/2 200 ($out)" test "$out" = "2 200"
out=$(run nghttp -nv http://10.97.0.2:8080/index.html 2>&1)
check "h2c: run -- nghttp -nv: 200" sh -c 'echo "$0" | grep -q ":status: 200"' "$out"
out=$(run h2load -n 200 -c 2 -m 20 http://10.97.0.2:8080/index.html 2>&1)
check "h2c: run -- h2load -n 200 -c 2 -m 20: 200 succeeded" sh -c '
    echo "$0" | grep -E -q "requests: 200 total, 200 started, 200 done, 200 succeeded"' "$out"
n=$(count_rows 2200 '"process":"h2load"' '"http_version":"HTTP/2.0"')
n=$(grep -F '"url":"http://10.97.0.2:8080/index.html"' "$T/flows.json" |
    grep -F '"process":"h2load"' | grep -c '"http_version":"HTTP/2.0"')
# All of both connections': the origin's SETTINGS, sent as soon as it
# accepts, wait in proxyd for the client's preface (docs/proxyd-h2.md).
check "h2c: the store holds h2load's 200 exchanges as HTTP/2.0 over http ($n)" \
    test "$n" -eq 200
# The same made certain: a client that waits 200 ms after connecting, so
# the origin's SETTINGS are at proxyd well before its preface.
cat >"$T/h2slow.py" <<'EOF'
import socket, sys, time
s = socket.create_connection(("10.97.0.2", 8080), timeout=10)
time.sleep(0.2)
path, auth = b"/index.html?slow=1", b"10.97.0.2:8080"
hb = bytes([0x82, 0x86, 0x04, len(path)]) + path + bytes([0x01, len(auth)]) + auth
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
    bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]) + len(hb).to_bytes(3, "big") +
    bytes([1, 5, 0, 0, 0, 1]) + hb)
buf = b""
while True:
    d = s.recv(65536)
    if not d:
        sys.exit("EOF before the answer")
    buf += d
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        t, fl, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big")
        if t == 4 and not fl & 1:
            s.sendall(bytes([0, 0, 0, 4, 1, 0, 0, 0, 0]))
        if sid == 1 and fl & 1 and t in (0, 1):
            print("answered")
            sys.exit(0)
        buf = buf[9 + n:]
EOF
out=$(run python3 "$T/h2slow.py" 2>&1)
check "h2c: a client slow to send its preface is answered ($out)" test "$out" = "answered"
n=$(count_rows 1 '"url":"http://10.97.0.2:8080/index.html?slow=1"' '"http_version":"HTTP/2.0"')
check "h2c: ...and its exchange is recorded as HTTP/2.0 ($n)" test "$n" -eq 1

# gRPC: two messages up, echoed back as two down, status in the trailers.
printf '\000\000\000\000\002hi\000\000\000\000\003abc' >"$T/grpc.bin"
out=$(run nghttp -nv -H ':authority: origin.test:8446' \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$T/grpc.bin" \
    https://10.97.0.2:8446/pkg.Svc/Get 2>&1)
check "gRPC: the call's grpc-status trailer reaches the client" \
    sh -c 'echo "$0" | grep -q "grpc-status: 0"' "$out"
n=$(count_rows 1 '"url":"https://origin.test:8446/pkg.Svc/Get"' \
    '"grpc":{"status":0,"message":"fine","request_messages":2,"response_messages":2}')
check "gRPC: flows --json has its messages each way and its status ($n)" test "$n" -eq 1
id=$(grep -F '"url":"https://origin.test:8446/pkg.Svc/Get"' "$T/flows.json" |
    tail -n 1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
"$B/bin/localcapctl" -s "$T/state" show "$id" >"$T/show-grpc.txt" 2>&1
check "gRPC: show $id prints them" sh -c "
    grep -q 'POST https://origin.test:8446/pkg.Svc/Get HTTP/2.0' '$T/show-grpc.txt' &&
    grep -q '^grpc  *2 message(s) up, 2 down; status 0 fine' '$T/show-grpc.txt' &&
    grep -q 'grpc-message: fine' '$T/show-grpc.txt'"

# Extended CONNECT: proxyd offers the client ENABLE_CONNECT_PROTOCOL only
# when the origin did, and relays a websocket tunnel opened with it.
i=0
until grep -q serving "$T/h2connect-1.log" && grep -q serving "$T/h2connect-0.log"; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
out=$(run "$PY" "$top/test/integration/h2connect.py" client 10.97.0.2 8448 \
    "$LCA" origin.test 2>&1)
check "extended CONNECT: not offered to the client when the origin does not ($(echo $out))" \
    test "$out" = "ecp 0"
out=$(run "$PY" "$top/test/integration/h2connect.py" client 10.97.0.2 8447 \
    "$LCA" origin.test 2>&1)
check "extended CONNECT: offered when it does, and a websocket tunnel echoes through ($(echo $out))" \
    test "$(echo $out)" = "ecp 1 status 200 echo hello"
n=$(count_rows 1 '"method":"CONNECT"' '"url":"https://origin.test:8447/chat"' \
    '"http_version":"HTTP/2.0"' '"request_headers":[[":protocol","websocket"]')
check "extended CONNECT: the tunnel is an HTTP/2.0 CONNECT exchange in the store ($n)" \
    test "$n" -eq 1

# --- show and HAR ----------------------------------------------------------------
id=$(grep -F '"path":"/echo"' "$T/flows.json" | tail -n 1 | sed 's/.*"id":"\([^"]*\)".*/\1/')
"$B/bin/localcapctl" -s "$T/state" show "$id" >"$T/show-echo.txt" 2>&1
check "show $id: the h2 exchange, its request and response trailers" sh -c "
    grep -q 'POST https://origin.test:8445/echo HTTP/2.0' '$T/show-echo.txt' &&
    grep -q 'x-req-trailer: sent' '$T/show-echo.txt' &&
    grep -q 'x-trailer: end' '$T/show-echo.txt'"
"$B/bin/localcapctl" -s "$T/state" export --har "$T/out.har" --process nghttp >/dev/null 2>&1
check "export --har: httpVersion HTTP/2.0, the gRPC call's status" "$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["log"]["entries"]
h2 = [x for x in e if "origin.test" in x["request"]["url"]]
assert h2 and all(x["request"]["httpVersion"] == "HTTP/2.0" and
                  x["response"]["httpVersion"] == "HTTP/2.0" for x in h2), e
g = [x["_localcap"] for x in h2 if x["request"]["url"].endswith("/pkg.Svc/Get")]
assert len(g) == 1 and g[0]["grpc_status"] == 0 and \
    g[0]["grpc_message"] == "fine", g
' "$T/out.har"

# --- floods and bombs, captured ------------------------------------------------------
# Each attack is refused (a GOAWAY; a 431 for the request alone), the
# store says why, and proxyd's peak RSS while it lasts
# (VmHWM, reset before each) stays within MARGIN kB of its RSS before the
# attacks (not checked under ASan: its shadow memory and quarantine are
# not proxyd's).
RSS0=$(rss_kb)
MARGIN=16384
# attack MODE OUTCOMES ERE [PROXY]: h2attack.py MODE against the h2
# origin, captured (or inside a CONNECT through PROXY); OUTCOMES is an ERE
# for the whole line the attacker printed, ERE what the store must say of
# it (flow_errors' lines).
attack() {
	_min=$(newest_flow)
	peak_reset
	if [ -n "${4:-}" ]; then
		_how="--listen: $1 inside CONNECT"
		_out=$($NSE "$PY" "$top/test/integration/h2attack.py" 10.97.0.2 \
		    8443 "$LCA" "$1" origin.test "$4" 2>&1 | tail -n 1)
	else
		_how=$1
		_out=$(run "$PY" "$top/test/integration/h2attack.py" 10.97.0.2 \
		    8443 "$LCA" "$1" origin.test 2>&1 | tail -n 1)
	fi
	_hwm=$(hwm_kb)
	_err=$(flow_errors "$_min" 10.97.0.2:8443 "$3")
	check "$_how: refused ($_out)" \
	    sh -c 'printf "%s\n" "$0" | grep -E -q -x -- "$1"' "$_out" "$2"
	if printf '%s\n' "$_err" | grep -E -q -- "$3"; then
		ok "$_how: the store says why ($(printf '%s\n' "$_err" |
		    grep -E -- "$3" | head -n 1))"
	else
		not_ok "$_how: the store says why (nothing like '$3' after flow $_min)"
		# What the store has, and whether proxyd's store dropped a batch.
		"$PY" "$T/errs.py" "$T/flows.json" after "$_min"
		grep -E 'store_fail|h2_layer_after' "$T/proxyd.log" | tail -n 5 |
		    sed 's/^/  proxyd: /'
	fi
	if [ "${SANITIZE:-}" = 1 ]; then
		ok "$_how: proxyd's peak RSS not checked under ASan ($_hwm kB)"
	else
		check "$_how: proxyd's peak RSS $_hwm kB, within $MARGIN kB of its $RSS0 kB before the attacks" \
		    test "$_hwm" -le $((RSS0 + MARGIN))
	fi
}
# (GOAWAY codes: 11 ENHANCE_YOUR_CALM, ours; 2 INTERNAL_ERROR, nghttp2's
# for rapid reset.)
attack ping 'goaway 11' '^flow: HTTP/2: client flooded'
attack settings 'goaway 11' '^flow: HTTP/2: client flooded control frames'
attack data 'goaway 11' '^flow: HTTP/2: client flooded control frames'
attack rapid 'goaway 2' '^flow: HTTP/2: client reset [0-9]+ streams.*rapid reset'
attack cont 'goaway 11' '^flow: HTTP/2: client broke HTTP/2: Too many CONTINUATION'
attack bomb 'status headers' '^HTTP/2.0 431 request header list over'
attack fields 'status headers' '^HTTP/2.0 431 request header list over'
grep -o 'HTTP/2: .*' "$T/proxyd.log" | sort | uniq -c | sed 's/^/  proxyd: /'
out=$(run curl -sS -m 20 --http2 --cacert "$LCA" $RES -o /dev/null \
    -w '%{http_version} %{http_code}' $U/index.html 2>&1)
check "proxyd still serves h2 after the attacks ($out; RSS $(rss))" test "$out" = "2 200"

# --- the explicit proxy: the same inside CONNECT ----------------------------------------
P=http://127.0.0.1:3128
# nghttp and h2load speak to no proxy: socat opens the CONNECT tunnel for
# them (its PROXY address), on loopback in the client namespace, outside
# the captured cgroup.
$NSE socat TCP-LISTEN:9443,bind=127.0.0.1,reuseaddr,fork \
    PROXY:127.0.0.1:origin.test:8443,proxyport=3128 >"$T/socat.log" 2>&1 &
pids="$pids $!"
$NSE socat TCP-LISTEN:9445,bind=127.0.0.1,reuseaddr,fork \
    PROXY:127.0.0.1:origin.test:8445,proxyport=3128 >>"$T/socat.log" 2>&1 &
pids="$pids $!"
i=0
until [ "$($NSE ss -Hltn | grep -c -e '127.0.0.1:9443 ' -e '127.0.0.1:9445 ')" -eq 2 ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
out=$($NSE nghttp -nv -H ':authority: origin.test:8443' \
    https://127.0.0.1:9443/index.html 2>&1)
check "--listen: nghttp -nv (h2 only) inside CONNECT: 200 over h2" sh -c '
    echo "$0" | grep -q "negotiated protocol: h2" && echo "$0" | grep -q ":status: 200"' "$out"
out=$($NSE h2load -n 2000 -c 4 -m 50 --connect-to=127.0.0.1:9443 \
    "$U/index.html?via=listen" 2>&1)
echo "$out" | grep -E '^(finished|requests|status codes)' | sed 's/^/  /'
check "--listen: h2load -n 2000 -c 4 -m 50 inside CONNECT: 2000 succeeded" sh -c '
    echo "$0" | grep -E -q "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded"' "$out"
n=$(count_rows 2000 '"process":"(proxy)"' '"status":200' '"http_version":"HTTP/2.0"' \
    '"url":"https://origin.test:8443/index.html?via=listen"')
check "--listen: the store holds those 2000 HTTP/2.0 exchanges ($n)" test "$n" -eq 2000
out=$($NSE curl -sS -m 240 -x $P --http2 --cacert "$LCA" $RES -o "$T/got" \
    -w '%{http_version} %{time_total}' $U/big 2>&1)
check "--listen: curl --http2: 256 MiB inside CONNECT, SHA-256 intact ($out s)" \
    sh -c "[ \"\$(sha256sum <'$T/got' | cut -d' ' -f1)\" = '$want' ] &&
           [ \"\${0%% *}\" = 2 ]" "$out"
rm -f "$T/got"
out=$($NSE nghttp -nv -H ':authority: origin.test:8445' -d "$T/upload" \
    --trailer 'x-req-trailer: via-listen' https://127.0.0.1:9445/echo 2>&1)
check "--listen: trailers round-trip inside CONNECT: the response's x-trailer reaches the client" \
    sh -c 'echo "$0" | grep -q "x-trailer: end"' "$out"
check "--listen: ...and the request's x-req-trailer reaches the origin" \
    grep -q 'x-req-trailer: via-listen' "$T/nghttpd-v.log"
out=$($NSE curl -sS -m 20 -x $P --http2 --cacert "$LCA" $RES -o /dev/null \
    -w '%{http_version} %{http_code}' $U/index.html 2>&1)
check "--listen: curl --http2 through CONNECT: HTTP/2 200 ($out)" test "$out" = "2 200"
out=$($NSE curl -sS -m 60 -x $P --http2 --cacert "$LCA" $RES --parallel \
    --parallel-max 50 $(for i in $(seq 1 50); do echo "-o /dev/null $U/index.html?p=$i"; done) \
    -w '%{http_version}%{http_code}\n' 2>&1 | grep -c '^2200$')
check "--listen: 50 parallel streams multiplexed, all HTTP/2 200 ($out)" test "$out" -eq 50
head -c 16777216 "$T/www/big" >"$T/up16"
out=$($NSE curl -sS -m 60 -x $P --http2 --cacert "$LCA" $RES \
    --data-binary @"$T/up16" $U/echo 2>&1 | sha256sum | cut -d' ' -f1)
check "--listen: a 16 MiB upload echoed back over h2, intact" test "$out" = "$(sha "$T/up16")"
out=$($NSE curl -sS -m 20 -x $P --http2 --cacert "$LCA" $RES1 -o /dev/null \
    -w '%{http_version} %{http_code}' https://h1.test:8444/index.html 2>&1)
check "--listen: the h1-only origin gives curl --http2 HTTP/1.1 ($out)" test "$out" = "1.1 200"
attack rapid 'goaway 2' '^flow: HTTP/2: client reset [0-9]+ streams.*rapid reset' \
    127.0.0.1:3128
attack ping 'goaway 11' '^flow: HTTP/2: client flooded' 127.0.0.1:3128
attack cont 'goaway 11' '^flow: HTTP/2: client broke HTTP/2: Too many CONTINUATION' \
    127.0.0.1:3128
flows_json
out=$($NSE curl -sS -m 20 -x $P -p --http2-prior-knowledge -o /dev/null \
    -w '%{http_version} %{http_code}' http://origin.test:8080/index.html 2>&1)
check "--listen: h2c with prior knowledge inside CONNECT: HTTP/2 200 ($out)" test "$out" = "2 200"
flows_json
check "--listen: its exchanges recorded as HTTP/2.0" sh -c "
    grep -F '\"url\":\"https://origin.test:8443/index.html?p=50\"' '$T/flows.json' |
        grep -q '\"http_version\":\"HTTP/2.0\"'"

for p in $pids; do
	kill -0 "$p" 2>/dev/null || not_ok "a daemon died (pid $p)"
done
if [ $failed -ne 0 ]; then
	for f in proxyd netstackd nghttpd; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log"
	done
fi
echo "proxyd_h2: $passed passed, $failed failed"
[ $failed -eq 0 ]
