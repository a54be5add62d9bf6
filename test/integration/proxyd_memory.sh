#!/bin/sh
# proxyd's memory is bounded (issue 12, item 4): 500 captured programs'
# connections each upload 1 MiB of HTTP request body to a server that
# reads it all and never answers, at once, through the whole chain
# (redirectord, netstackd, proxyd with --memory-budget 64M).  Without the
# budget proxyd would keep every body (500 MiB); with it, its peak RSS
# (VmHWM) stays under the budget, every byte still reaches the server (no
# flow dropped), a normal request completes during the load, and the store
# marks the bodies cut by the budget (req_body_truncated = 2).  (Without
# the budget: 601 MB peak on the same machine, 2026-12-07; with it 53 MB.)
# Then the same over HTTP/2: 100 prior-knowledge h2c connections with 4
# unanswered 1 MiB uploads each (h2upload.py, raw frames) through the same
# proxyd: its peak RSS, measured again from there, stays under the budget
# (the HTTP/2 layer's memory, nghttp2's included, is charged to it), every
# upload reaches the origin whole, a normal h2c request (curl
# --http2-prior-knowledge to nghttpd) completes during the load, and the
# bodies cut by the budget are marked so; and 60 h2c uploads into an
# origin that grants no window until told wait in proxyd within the budget
# (it stops reading those clients), then all reach the origin whole once
# it grants its window.  (Without the HTTP/2 layer in the budget: 502 MB
# and 151 MB peaks, 2026-12-07; with it 53 and 57-59 MB.)  Then a flow
# cap: with --max-flows-per-addr 2, a third connection at once is refused
# and recorded as such.
#
# Two network namespaces this script creates ("client": daemons and the
# captured programs, in a child cgroup of our own; "server"), joined by a
# veth pair, as in capture_proxyd.sh.  Bounded in time (about 10 s here,
# a minute at most).
# Root only; removes everything it made on every exit path (KEEP=1 keeps
# the temp dir with the daemons' logs).
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "proxyd_memory: needs root (namespaces, cgroup, BPF); skipped"
	exit 77
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "proxyd_memory: kernel has no BTF; skipped"
	exit 77
fi

command -v nghttpd >/dev/null 2>&1 || { echo "proxyd_memory: nghttpd not installed; skipped"; exit 77; }

top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
. "$top/test/lib.sh"
capture_test_env pxmem
N=500
BODY=1048576
BUDGET_MB=64
H2C=100		# h2c connections...
H2S=4		# ...of so many uploads each

NSE="nsenter --net=/run/netns/$NS"
ctl() { "$B/bin/localcapctl" -r "$T" "$@"; }
incg() { $NSE sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"; }
field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# The number in file $1, 0 while there is none.
num() { _v=$(cat "$1" 2>/dev/null); case $_v in ''|*[!0-9]*) echo 0 ;; *) echo "$_v" ;; esac; }

ip netns add "$NS" && ip netns add "$NS2" || exit 1
ip link add lcv0 netns "$NS" type veth peer name lcv1 netns "$NS2" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS2" link set lo up
ip -n "$NS" addr add 10.98.0.1/24 dev lcv0
ip -n "$NS2" addr add 10.98.0.2/24 dev lcv1
ip -n "$NS" link set lcv0 up
ip -n "$NS2" link set lcv1 up

# The silent server: reads every upload to its end and never answers;
# closes a connection once the client has closed its side.  Writes how
# many connections delivered their whole request (a file, rewritten as
# the count grows).
cat >"$T/silent.py" <<'EOF'
import asyncio, os, sys
want, out = int(sys.argv[1]), sys.argv[2]
full = 0
async def conn(r, w):
    global full
    got = 0
    counted = False
    while True:
        b = await r.read(1 << 16)
        if not b:
            break
        got += len(b)
        if got >= want and not counted:
            counted = True
            full += 1
            with open(out + ".tmp", "w") as f:
                f.write("%d\n" % full)
            os.rename(out + ".tmp", out)
    w.close()
async def main():
    srv = await asyncio.start_server(conn, "10.98.0.2", 9191, backlog=1024)
    print("serving", flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
ip netns exec "$NS2" "$PY" "$T/silent.py" $BODY "$T/full" >"$T/silent.log" 2>&1 &
pids="$pids $!"
mkdir "$T/www"
echo "hello from the origin" >"$T/www/index.html"
ip netns exec "$NS2" "$PY" -m http.server --bind 10.98.0.2 --directory "$T/www" \
    8080 >"$T/origin.log" 2>&1 &
pids="$pids $!"
# The silent h2c origin (reads every upload, never answers), and nghttpd
# for a normal h2c request (prior knowledge).
ip netns exec "$NS2" "$PY" "$top/test/integration/h2upload.py" server \
    10.98.0.2 9292 $BODY "$T/h2full" >"$T/h2silent.log" 2>&1 &
pids="$pids $!"
ip netns exec "$NS2" nghttpd -d "$T/www" --no-tls 9393 >"$T/nghttpd.log" 2>&1 &
pids="$pids $!"
# An h2c origin that grants no window until told (h2stall): uploads wait
# in proxyd.
ip netns exec "$NS2" "$PY" "$top/test/integration/h2upload.py" server \
    10.98.0.2 9294 $BODY "$T/h2sfull" "$T/h2release" >"$T/h2stall.log" 2>&1 &
pids="$pids $!"

# The uploader: N connections at once, each a POST of BODY bytes with no
# answer expected; it says when all are sent, then holds them until told.
cat >"$T/upload.py" <<'EOF'
import asyncio, os, sys
n, size, go, sent = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = os.urandom(size)
done = 0
async def one(i):
    global done
    r, w = await asyncio.open_connection("10.98.0.2", 9191)
    w.write(b"POST /up/%d HTTP/1.1\r\nHost: 10.98.0.2:9191\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (i, size))
    w.write(body)
    await w.drain()
    done += 1
    with open(sent + ".tmp", "w") as f:
        f.write("%d\n" % done)
    os.rename(sent + ".tmp", sent)
    while not os.path.exists(go):
        await asyncio.sleep(0.1)
    w.close()
async def main():
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 90)
asyncio.run(main())
EOF

$NSE "$B/bin/redirectord" -f -r "$T" -g "$CG" >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
pids="$pids $!"
$NSE "$B/bin/proxyd" -f -r "$T" -s "$T/state" --memory-budget ${BUDGET_MB}M \
    >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"

i=0
until ctl --json status 2>/dev/null | grep -q '"name":"proxyd","running":true' &&
    grep -q serving "$T/silent.log" && grep -q serving "$T/h2silent.log" &&
    grep -q serving "$T/h2stall.log" &&
    $NSE curl -s -o /dev/null http://10.98.0.2:8080/index.html; do
	i=$((i + 1))
	[ $i -gt 200 ] && { not_ok "daemons and servers up"; cat "$T"/*.log; exit 1; }
	sleep 0.05
done
ok "daemons and servers up"
rss0=$(field $PXD VmRSS)
check "proxyd took its budget ($(grep -o 'memory budget.*' "$T/proxyd.log"))" \
    grep -q "memory budget $BUDGET_MB MiB" "$T/proxyd.log"

ulimit -n 4096
crun() { incg "$B/bin/localcapctl" -r "$T" run -- "$@"; }
crun "$PY" "$T/upload.py" $N $BODY "$T/go" "$T/sent" >"$T/upload.log" 2>&1 &
UP=$!
pids="$pids $UP"

# Under the load: a normal request goes through (and is recorded).
sleep 1
out=$(crun curl -sS -m 20 http://10.98.0.2:8080/index.html 2>&1)
check "a normal request completes during the load ($out)" \
    test "$out" = "hello from the origin"

# Wait (at most 60 s) until the server has had every byte of every upload.
i=0
while [ "$(num "$T/full")" -lt $N ] && [ $i -lt 600 ]; do
	kill -0 $UP 2>/dev/null || break
	i=$((i + 1))
	sleep 0.1
done
full=$(num "$T/full")
sent=$(num "$T/sent")
rss=$(field $PXD VmRSS)
hwm=$(field $PXD VmHWM)
[ "$rss" -gt "$hwm" ] && hwm=$rss
echo "# proxyd RSS: $rss0 kB at start, $rss kB under the load, peak (VmHWM) $hwm kB; budget $((BUDGET_MB * 1024)) kB"
check "$N uploads of $BODY bytes all reached the server whole, no flow dropped ($full of $N, $sent sent)" \
    test "$full" -eq $N
if [ "${SANITIZE:-}" = 1 ]; then
	# ASan's shadow memory and quarantine are not proxyd's to budget.
	ok "proxyd's peak RSS not checked under ASan ($hwm kB)"
else
	check "proxyd's peak RSS $hwm kB stayed under its budget of $((BUDGET_MB * 1024)) kB" \
	    test "$hwm" -lt $((BUDGET_MB * 1024))
fi

# Let them end: the uploader closes, the server closes, the flows end and
# their exchanges (unanswered) are written.
touch "$T/go"
i=0
while kill -0 $UP 2>/dev/null && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
count_rows() {
	"$PY" - "$T/state/store/flows.db" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
print(db.execute(sys.argv[2]).fetchone()[0])
EOF
}
i=0
while [ "$(count_rows "SELECT count(*) FROM http_exchanges WHERE target LIKE '/up/%'" 2>/dev/null || echo 0)" -lt $N ] &&
    [ $i -lt 150 ]; do
	i=$((i + 1))
	sleep 0.2
done
rows=$(count_rows "SELECT count(*) FROM http_exchanges WHERE target LIKE '/up/%'")
cut=$(count_rows "SELECT count(*) FROM http_exchanges WHERE target LIKE '/up/%' AND req_body_truncated = 2")
whole=$(count_rows "SELECT count(*) FROM http_exchanges WHERE target LIKE '/up/%' AND req_body_size = $BODY")
check "the store has all $N uploads ($rows), each with its full size seen ($whole)" \
    sh -c "[ '$rows' -eq $N ] && [ '$whole' -eq $N ]"
check "bodies cut by the budget are marked so in the store ($cut of $N: req_body_truncated = 2)" \
    test "$cut" -gt 0
check "the normal request is in the store too" \
    test "$(count_rows "SELECT count(*) FROM http_exchanges WHERE target = '/index.html' AND status = 200")" -ge 1

# --- the same over HTTP/2 ----------------------------------------------------
# Peak RSS from here on (writing 5 to clear_refs resets VmHWM).
H2N=$((H2C * H2S))
echo 5 >"/proc/$PXD/clear_refs"
rss0=$(field $PXD VmRSS)
h2start=$(date +%s)
crun "$PY" "$top/test/integration/h2upload.py" client 10.98.0.2 9292 $H2C $H2S \
    $BODY "$T/h2go" "$T/h2sent" >"$T/h2upload.log" 2>&1 &
UP=$!
pids="$pids $UP"
sleep 1
out=$(crun curl -sS -m 20 --http2-prior-knowledge -o "$T/h2normal" \
    -w 'HTTP/%{http_version} %{http_code}' http://10.98.0.2:9393/index.html 2>&1)
check "h2: a normal h2c request completes during the load ($out)" \
    sh -c "[ '$out' = 'HTTP/2 200' ] && grep -qx 'hello from the origin' '$T/h2normal'"
i=0
while [ "$(num "$T/h2full")" -lt $H2N ] && [ $i -lt 400 ]; do
	kill -0 $UP 2>/dev/null || break
	i=$((i + 1))
	sleep 0.1
done
full=$(num "$T/h2full")
sent=$(num "$T/h2sent")
rss=$(field $PXD VmRSS)
hwm=$(field $PXD VmHWM)
[ "$rss" -gt "$hwm" ] && hwm=$rss
echo "# h2: $H2N uploads in $(($(date +%s) - h2start)) s; proxyd RSS: $rss0 kB before, $rss kB under the load, peak (VmHWM) $hwm kB; budget $((BUDGET_MB * 1024)) kB"
check "h2: $H2N uploads ($H2C connections x $H2S streams) of $BODY bytes all reached the origin whole ($full of $H2N, $sent sent)" \
    test "$full" -eq $H2N
if [ "${SANITIZE:-}" = 1 ]; then
	ok "h2: proxyd's peak RSS not checked under ASan ($hwm kB)"
else
	check "h2: proxyd's peak RSS $hwm kB stayed under its budget of $((BUDGET_MB * 1024)) kB" \
	    test "$hwm" -lt $((BUDGET_MB * 1024))
fi
touch "$T/h2go"
i=0
while kill -0 $UP 2>/dev/null && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
H2Q="FROM http_exchanges WHERE target LIKE '/h2up/%' AND http_version = 'HTTP/2.0'"
i=0
while [ "$(count_rows "SELECT count(*) $H2Q" 2>/dev/null || echo 0)" -lt $H2N ] &&
    [ $i -lt 150 ]; do
	i=$((i + 1))
	sleep 0.2
done
rows=$(count_rows "SELECT count(*) $H2Q")
whole=$(count_rows "SELECT count(*) $H2Q AND req_body_size = $BODY")
cut=$(count_rows "SELECT count(*) $H2Q AND req_body_truncated = 2")
check "h2: the store has all $H2N uploads as HTTP/2.0 ($rows), each with its full size seen ($whole)" \
    sh -c "[ '$rows' -eq $H2N ] && [ '$whole' -eq $H2N ]"
check "h2: bodies cut by the budget are marked so in the store ($cut of $H2N: req_body_truncated = 2)" \
    test "$cut" -gt 0
check "h2: the normal h2c request is in the store too" \
    test "$(count_rows "SELECT count(*) FROM http_exchanges WHERE target = '/index.html' AND http_version = 'HTTP/2.0' AND status = 200")" -ge 1

# Back-pressure: uploads to an origin that grants no window wait in
# proxyd (up to the 1 MiB stream window it gives each client); 60 of
# them would hold 60 MiB, and their records as much again.  With the
# budget spent proxyd stops reading a client whose DATA waits, so its RSS
# stays under the budget; once the origin grants its window every upload
# goes through whole (slowed, not dropped).
H2W=60
echo 5 >"/proc/$PXD/clear_refs"
rss0=$(field $PXD VmRSS)
crun "$PY" "$top/test/integration/h2upload.py" client 10.98.0.2 9294 $H2W 1 \
    $BODY "$T/h2sgo" "$T/h2ssent" >"$T/h2supload.log" 2>&1 &
UP=$!
pids="$pids $UP"
# Until what proxyd holds has stopped growing for a second (at most 10 s).
i=0 last=0 still=0
while [ $i -lt 20 ] && [ $still -lt 2 ]; do
	sleep 0.5
	now=$(field $PXD VmRSS)
	if [ "$now" -le "$last" ]; then still=$((still + 1)); else still=0; fi
	last=$now
	i=$((i + 1))
done
rss=$(field $PXD VmRSS)
hwm=$(field $PXD VmHWM)
[ "$rss" -gt "$hwm" ] && hwm=$rss
echo "# h2, origin granting no window: $H2W uploads waiting; proxyd RSS: $rss0 kB before, $rss kB while they wait, peak (VmHWM) $hwm kB; budget $((BUDGET_MB * 1024)) kB"
check "h2: nothing reached the stalled origin beyond its window yet ($(num "$T/h2sfull") uploads whole)" \
    test "$(num "$T/h2sfull")" -eq 0
if [ "${SANITIZE:-}" = 1 ]; then
	ok "h2: proxyd's peak RSS not checked under ASan ($hwm kB)"
else
	check "h2: proxyd's peak RSS $hwm kB stayed under its budget of $((BUDGET_MB * 1024)) kB while uploads waited" \
	    test "$hwm" -lt $((BUDGET_MB * 1024))
fi
touch "$T/h2release"
i=0
while [ "$(num "$T/h2sfull")" -lt $H2W ] && [ $i -lt 200 ]; do
	kill -0 $UP 2>/dev/null || break
	i=$((i + 1))
	sleep 0.1
done
check "h2: once the origin grants its window, all $H2W waiting uploads reach it whole ($(num "$T/h2sfull"))" \
    test "$(num "$T/h2sfull")" -eq $H2W
touch "$T/h2sgo"
i=0
while kill -0 $UP 2>/dev/null && [ $i -lt 300 ]; do i=$((i + 1)); sleep 0.1; done

# Flow caps: proxyd again with --max-flows-per-addr 2; three connections
# held open at once: the third is refused, and recorded as such.
kill $PXD
wait $PXD 2>/dev/null
echo "# proxyd at its end: $(grep -o 'memory budget: .*' "$T/proxyd.log")"
$NSE "$B/bin/proxyd" -f -r "$T" -s "$T/state" --max-flows-per-addr 2 \
    >"$T/proxyd2.log" 2>&1 &
PXD=$!
pids="$pids $PXD"
# netstackd reconnects to the new proxyd: a captured request gets through
# and is recorded by it.  (Reaching the origin is not enough: until the
# chain is whole again capture is paused, fail-open, and requests go direct.)
i=0
until crun curl -s -m 2 "http://10.98.0.2:8080/index.html?probe=$i" >/dev/null 2>&1 &&
    sleep 0.3 &&
    [ "$(count_rows "SELECT count(*) FROM http_exchanges WHERE target = '/index.html?probe=$i'" 2>/dev/null || echo 0)" -ge 1 ]; do
	i=$((i + 1))
	[ $i -gt 50 ] && break
	sleep 0.2
done
rm -f "$T/go" "$T/sent"
crun "$PY" "$T/upload.py" 3 1000 "$T/go" "$T/sent" >"$T/upload2.log" 2>&1 &
UP2=$!
pids="$pids $UP2"
i=0
while [ "$(count_rows "SELECT count(*) FROM flows WHERE end_reason = 'refused'" 2>/dev/null || echo 0)" -lt 1 ] &&
    [ $i -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done
touch "$T/go"
refused=$(count_rows "SELECT count(*) FROM flows WHERE end_reason = 'refused' AND error LIKE '%max_flows_per_addr%'")
check "a third flow at once from one address is refused and recorded with the cap ($refused)" \
    test "$refused" -ge 1
wait $UP2 2>/dev/null

for p in $PXD; do
	kill -0 "$p" 2>/dev/null || not_ok "proxyd died"
done
if [ $failed -ne 0 ]; then
	for f in netstackd proxyd proxyd2 upload silent h2upload h2silent h2supload h2stall; do
		echo "--- $f.log"; tail -n 25 "$T/$f.log" 2>/dev/null
	done
fi
echo "proxyd_memory: $passed passed, $failed failed"
[ $failed -eq 0 ]
