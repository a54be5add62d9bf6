#!/bin/bash
# ebpf_capture.sh — the capture programs (ebpf/capture.bpf.c, loaded by
# redirectord/bpf.c through build/test/ebpf-attach-helper) against real
# processes and real sockets.
#
# Everything happens inside what this script creates and removes on every
# exit path: two network namespaces, a child cgroup of the cgroup v2 root
# (never the root itself), a TUN device (owned by build/test/tun-reader,
# which logs every packet it reads) and a veth pair (dum0/dum1) standing for
# "the network".  A captured connect shows up in the TUN log; an uncaptured one
# leaves through dum0 (its TX counter) and not the TUN.
#
# Needs root and kernel BTF (otherwise exit 77, skipped).  Prints
# "ebpf_capture: N passed, M failed"; exits non-zero on any failure.
set -u

BUILD=${BUILD:-build}
HELPER=$BUILD/test/ebpf-attach-helper
TUNR=$BUILD/test/tun-reader
# The real interpreter (not a pyenv shim), readable by uid 65534.
PY=$(readlink -f /usr/bin/python3 2>/dev/null)
NAME=ebpf_capture

skip() { echo "$NAME: skipped: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -r /sys/kernel/btf/vmlinux ] || skip "no kernel BTF (/sys/kernel/btf/vmlinux)"
for f in "$HELPER" "$TUNR"; do
	[ -x "$f" ] || { echo "$NAME: missing $f (make test-bins)"; exit 1; }
done
[ -x "$PY" ] || { echo "$NAME: needs python3"; exit 1; }

# The cgroup v2 mount: hybrid hosts have it at /sys/fs/cgroup/unified.
CGROOT=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2") print $5; break } }' \
	/proc/self/mountinfo | head -n 1)
[ -n "$CGROOT" ] || { echo "$NAME: no cgroup v2 hierarchy mounted"; exit 1; }

NS=lc-ebpf-$$
NS2=lc-ebpf2-$$
CGNAME=localcap-test-$$
CG=$CGROOT/$CGNAME
TMP=$(mktemp -d /tmp/lc-ebpf.XXXXXX)
chmod 755 "$TMP"	# the uid tests run the client as nobody
HELPER_PID=
TUNR_PID=
LISTEN_PIDS=
PASS=0
FAIL=0

cleanup() {
	local pid d
	exec 3>&- 2>/dev/null
	for pid in $HELPER_PID $TUNR_PID $LISTEN_PIDS; do
		kill "$pid" 2>/dev/null
	done
	# Anything left in our cgroups was started by this script.
	for d in "$CG"/*/ "$CG"; do
		[ -f "$d/cgroup.procs" ] || continue
		for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do
			kill -9 "$pid" 2>/dev/null
		done
	done
	for pid in $HELPER_PID $TUNR_PID $LISTEN_PIDS; do
		wait "$pid" 2>/dev/null
	done
	for d in "$CG"/*/ "$CG"; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	ip netns del "$NS" 2>/dev/null
	ip netns del "$NS2" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

pass() { PASS=$((PASS + 1)); echo "ok   $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1${2:+: $2}"; }
die() { echo "$NAME: setup failed: $*"; echo "$NAME: $PASS passed, $((FAIL + 1)) failed"; exit 1; }

nsx() { nsenter --net=/run/netns/"$NS" "$@"; }
ns2x() { nsenter --net=/run/netns/"$NS2" "$@"; }

# Wait (bounded: 5 s) for a line matching $2 in file $1.
wait_for() {
	local _
	for _ in $(seq 1 100); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# The same for a fixed string, 2 s: packet loggers may lag under load.
wait_for_fixed() {
	local _
	for _ in $(seq 1 40); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# --- namespaces, cgroups, devices ---------------------------------------------

ip netns add "$NS" || die "ip netns add"
ip netns add "$NS2" || die "ip netns add"
UNIT=lc-unit-$$.service
mkdir "$CG" "$CG/sub" "$CG/daemon" "$CG/$UNIT" || die "mkdir $CG"

for x in nsx ns2x; do
	$x ip link set lo up
	# dum0's peer just swallows; static neighbours so that a connect
	# puts its SYN on the wire at once (no ARP/ND in the way).
	$x ip link add dum0 type veth peer name dum1 &&
	$x ip link set dum0 up && $x ip link set dum1 up &&
	$x ip addr add 10.77.0.1/24 dev dum0 &&
	$x ip -6 addr add fd77::1/64 dev dum0 nodad &&
	$x ip neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev dum0 nud permanent &&
	$x ip -6 neigh add fd77::9 lladdr 02:00:00:00:00:09 dev dum0 nud permanent
done || die "network devices"

# Background processes are started with nsenter itself (not through a
# shell function), so that $! is the process to kill.
nsenter --net=/run/netns/"$NS" "$TUNR" lct0 >"$TMP/tun.log" 2>&1 &
TUNR_PID=$!
wait_for "$TMP/tun.log" '^ready' || die "tun-reader: $(cat "$TMP/tun.log")"
nsx ip link set lct0 up
nsx ip addr add 10.100.0.1/24 dev lct0
nsx ip -6 addr add fd00:100::1/64 dev lct0 nodad
nsx sysctl -qw net.ipv4.conf.lct0.rp_filter=0
# IPv6 sockets bound to the TUN still need a route through it.
nsx ip -6 rule add oif lct0 lookup 100 || die "ip -6 rule"
nsx ip -6 route add default dev lct0 table 100 || die "ip -6 route"

# What leaves through dum0 arrives at dum1: log it as tun-reader logs the
# TUN, from a packet socket (cooked: IP header first).
cat >"$TMP/sniff.py" <<'EOF'
import ipaddress, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
s.settimeout(1.0)
print("ready", flush=True)
deadline = time.time() + 600
while time.time() < deadline:
    try:
        p = s.recv(65536)
    except socket.timeout:
        continue
    v = p[0] >> 4
    if v == 4 and len(p) >= 24:
        ihl = (p[0] & 15) * 4
        src, dst = ipaddress.ip_address(p[12:16]), ipaddress.ip_address(p[16:20])
        proto, l4, fmt = p[9], p[ihl:], "v4 %s %s:%d > %s:%d "
    elif v == 6 and len(p) >= 44:
        src, dst = ipaddress.ip_address(p[8:24]), ipaddress.ip_address(p[24:40])
        proto, l4, fmt = p[6], p[40:], "v6 %s [%s]:%d > [%s]:%d "
    else:
        continue
    if proto in (6, 17) and len(l4) >= 4:
        print(fmt % ("tcp" if proto == 6 else "udp", src, l4[0] << 8 | l4[1],
                     dst, l4[2] << 8 | l4[3]), flush=True)
EOF
for n in "$NS" "$NS2"; do
	nsenter --net=/run/netns/"$n" "$PY" "$TMP/sniff.py" dum1 >"$TMP/wire-$n.log" 2>&1 &
	LISTEN_PIDS="$LISTEN_PIDS $!"
	wait_for "$TMP/wire-$n.log" '^ready' || die "sniffer: $(cat "$TMP/wire-$n.log")"
done

# Uncaptured listeners on loopback and on the namespace's own address.
cat >"$TMP/listen.py" <<'EOF'
import socket, sys, time
fam, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
udp = len(sys.argv) > 4 and sys.argv[4] == "udp"
s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET,
                  socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
if not udp:
    s.listen(64)
s.settimeout(1.0)
deadline = time.time() + 600
while time.time() < deadline:
    try:
        if udp:
            data, peer = s.recvfrom(100)
            s.sendto(data, peer)
        else:
            c, _ = s.accept()
            c.close()
    except socket.timeout:
        pass
EOF
for l in "4 127.0.0.1 9001" "6 ::1 9002" "4 10.77.0.1 9003" \
	"4 127.0.0.1 9006 udp" "6 ::1 9007 udp"; do
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS" "$PY" "$TMP/listen.py" $l &
	LISTEN_PIDS="$LISTEN_PIDS $!"
done

# The client: comm is the basename it is executed under (a symlink).
cat >"$TMP/client.py" <<'EOF'
import ctypes, os, socket, sys, threading, time
proto, fam, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
opts = sys.argv[5:]
print("pid", os.getpid(), flush=True)
if "--wait" in opts:
    go = opts[opts.index("--wait") + 1]
    deadline = time.time() + 10
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.02)

af = socket.AF_INET6 if fam == 6 else socket.AF_INET
if proto.startswith("serve-"):
    # A server in a captured process: answer one peer, then exit.
    tcp = proto == "serve-tcp"
    s = socket.socket(af, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    if tcp:
        s.listen(4)
    s.settimeout(5)
    print("listening", s.getsockname()[1], flush=True)
    try:
        if tcp:
            c, _ = s.accept()
            c.sendall(b"hi")
            c.close()
        else:
            _, peer = s.recvfrom(100)
            s.sendto(b"hi", peer)
        print("result served", flush=True)
    except socket.timeout:
        print("result timeout", flush=True)
    sys.exit(0)

if proto in ("tcp-after-local", "udp-after-local"):
    # One socket, first to a local address, then to the remote one: it must
    # not leave capture that way.  TCP: a blocking connect to loopback that
    # is refused, retried elsewhere.  UDP (unconnected): a datagram to a
    # local resolver, then two to the remote address, port and port + 1;
    # the kernel picks the first one's device before the hook rebinds the
    # socket, so the second is the one that must be captured.
    tcp = proto == "tcp-after-local"
    s = socket.socket(af, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    local = "::1" if fam == 6 else "127.0.0.1"
    try:
        if tcp:
            try:
                s.connect((local, 9))	# nothing listens: refused
            except OSError:
                pass
            s.settimeout(0.3)
            s.connect((host, port))
        else:
            s.sendto(b"dns?", (local, 9))
            s.sendto(b"ping", (host, port))
            s.sendto(b"ping", (host, port + 1))
        print("result connected", flush=True)
    except socket.timeout:
        print("result timeout", flush=True)
    except OSError as e:
        print("result error %d" % e.errno, flush=True)
    sys.exit(0)

def attempt():
    s = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(0.3 if proto in ("tcp", "udp") else 2)
    try:
        if proto == "udp-sendto":
            # Unconnected, as many UDP clients are.  The kernel reads the
            # socket's device before the sendmsg hook can unbind it, so
            # the first datagram is lost; the retry must get through.
            s.settimeout(0.5)
            s.sendto(b"ping", (host, port))
            try:
                s.recvfrom(100)
                return "connected"
            except socket.timeout:
                s.settimeout(2)
                s.sendto(b"ping", (host, port))
                s.recvfrom(100)
                return "connected-after-retry"
        s.connect((host, port))
        if proto == "udp":
            s.send(b"ping")
        if proto == "udp-echo":
            s.send(b"ping")
            s.recv(100)
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error %d" % e.errno
    finally:
        s.close()

if proto == "tcp-loop":
    # One connect per port, port .. port+count-1, each at most 0.1 s.
    count = int(opts[0])
    for i in range(count):
        s = socket.socket(af, socket.SOCK_STREAM)
        s.settimeout(0.1)
        try:
            s.connect((host, port + i))
            r = "connected"
        except socket.timeout:
            r = "timeout"
        except OSError as e:
            r = "error %d" % e.errno
        s.close()
        print("try", port + i, r, flush=True)
    sys.exit(0)

result = []
def worker():
    # A thread's comm is its own: rename it, as thread pools do.
    ctypes.CDLL(None).prctl(15, b"lc-worker", 0, 0, 0)
    result.append(attempt())
if "--thread" in opts:
    t = threading.Thread(target=worker)
    t.start()
    t.join()
else:
    result.append(attempt())
print("result", result[0], flush=True)
EOF
mkdir "$TMP/bin"
for c in lc-curl lc-other lc-a-very-long-program-name; do
	ln -s "$PY" "$TMP/bin/$c"
done

# run_client NETNS-FN CGROUP-DIR COMM [setpriv args --] CLIENT-ARGS...
# Joins the cgroup first, then execs the client (same pid).
run_client() {
	local x=$1 cg=$2 comm=$3
	shift 3
	local pre=()
	if [ "${1:-}" = "--as" ]; then
		pre=(setpriv --reuid="$2" --regid="$2" --clear-groups)
		shift 2
	fi
	$x sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
		"${pre[@]}" "$TMP/bin/$comm" "$TMP/client.py" "$@"
}


# --- the helper: load, attach to the child cgroup, serve commands ------------

mkfifo "$TMP/cmd"
exec 3<>"$TMP/cmd"
start_helper() {
	: >"$TMP/helper.log"
	"$HELPER" --cgroup "$CG" --netns "$NS" --tun lct0 --spec "$1" \
		--exclude-uid 65533 --exclude-cgroup "$CG/daemon" \
		<"$TMP/cmd" >"$TMP/helper.log" 2>&1 &
	HELPER_PID=$!
	wait_for "$TMP/helper.log" '^ready' || die "helper: $(cat "$TMP/helper.log")"
}

# hcmd CMD...: send one command, print its answer.
hcmd() {
	local before after _
	before=$(grep -c '^done$' "$TMP/helper.log")
	echo "$*" >&3
	for _ in $(seq 1 100); do
		after=$(grep -c '^done$' "$TMP/helper.log")
		[ "$after" -gt "$before" ] && break
		sleep 0.05
	done
	awk -v n="$before" '/^done$/ { d++; next } d == n { print }' "$TMP/helper.log"
}

set_spec() {
	local out
	out=$(hcmd "spec $1")
	case "$out" in
	*ok*) return 0 ;;
	*) fail "set spec '$1'" "$out"; return 1 ;;
	esac
}

counter() { hcmd counters | awk -v c="$1" '$1 == "counter" && $2 == c { print $3 }'; }

# captured LABEL PATTERN NS-FN -- client invocation...
#   the client's packet must appear on the TUN (PATTERN in tun.log), not
#   on the wire
# direct LABEL PATTERN NS-FN -- ...
#   the other way round
check() {
	local want=$1 label=$2 pat=$3 x=$4 wire out on_tun on_wire
	shift 5
	wire=$TMP/wire-$NS.log
	[ "$x" = ns2x ] && wire=$TMP/wire-$NS2.log
	out=$(run_client "$x" "$@" 2>&1)
	if ! grep -q '^result \(timeout\|connected\)' <<<"$out"; then
		fail "$label" "client: $out"
		return
	fi
	# wait for the expected side, then look at the other
	if [ "$want" = tun ]; then
		wait_for_fixed "$TMP/tun.log" "$pat"
	else
		wait_for_fixed "$wire" "$pat"
	fi
	on_tun=no
	on_wire=no
	grep -qF -- "$pat" "$TMP/tun.log" && on_tun=yes
	grep -qF -- "$pat" "$wire" && on_wire=yes
	if [ "$want" = tun ] && [ $on_tun = yes ] && [ $on_wire = no ]; then
		pass "$label"
	elif [ "$want" = direct ] && [ $on_tun = no ] && [ $on_wire = yes ]; then
		pass "$label"
	else
		fail "$label" "on the TUN: $on_tun, on the wire: $on_wire ($out)"
	fi
}
captured() { check tun "$@"; }
direct() { check direct "$@"; }

start_helper "lc-curl"

# --- by name -------------------------------------------------------------------
captured "name match: connect goes out the TUN" "> 10.77.0.9:8001 " nsx -- \
	"$CG" lc-curl tcp 4 10.77.0.9 8001
direct "name mismatch: connect goes direct" "> 10.77.0.9:8002 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8002
captured "worker thread with its own comm: leader's name decides" \
	"> 10.77.0.9:8003 " nsx -- "$CG" lc-curl tcp 4 10.77.0.9 8003 --thread
captured "udp from a matched process" "v4 udp 10.100.0.1:" nsx -- \
	"$CG" lc-curl udp 4 10.77.0.9 8004
wait_for_fixed "$TMP/tun.log" "> 10.77.0.9:8004 " ||
	fail "udp destination port" "$(grep udp "$TMP/tun.log")"

# --- IPv6 ----------------------------------------------------------------------
captured "ipv6 name match: out the TUN" "> [fd77::9]:8011 " nsx -- \
	"$CG" lc-curl tcp 6 fd77::9 8011
direct "ipv6 mismatch: direct" "> [fd77::9]:8012 " nsx -- \
	"$CG" lc-other tcp 6 fd77::9 8012

# --- loopback and the host's own addresses stay reachable -----------------------
for t in "4 127.0.0.1 9001" "6 ::1 9002" "4 10.77.0.1 9003"; do
	# shellcheck disable=SC2086
	out=$(run_client nsx "$CG" lc-curl tcp $t 2>&1)
	if grep -q 'result connected' <<<"$out"; then
		pass "captured process reaches local $t"
	else
		fail "captured process reaches local $t" "$out"
	fi
done
for t in "udp-echo 4 127.0.0.1 9006" "udp-echo 6 ::1 9007"; do
	# shellcheck disable=SC2086
	out=$(run_client nsx "$CG" lc-curl $t 2>&1)
	if grep -q 'result connected$' <<<"$out"; then
		pass "captured process gets a local UDP answer: $t"
	else
		fail "captured process gets a local UDP answer: $t" "$out"
	fi
done
for t in "udp-sendto 4 127.0.0.1 9006" "udp-sendto 6 ::1 9007"; do
	# shellcheck disable=SC2086
	out=$(run_client nsx "$CG" lc-curl $t 2>&1)
	if grep -q 'result connected' <<<"$out"; then
		pass "unconnected UDP to loopback answered from the 2nd datagram: $t"
	else
		fail "unconnected UDP to loopback answered from the 2nd datagram: $t" "$out"
	fi
done
# unbound sockets leave no owner behind, so no loopback flow is recorded
if hcmd flows | grep -qE ' (127\.0\.0\.1|::1|10\.77\.0\.1) [0-9]+ pid='; then
	fail "no flow recorded for local destinations" "$(hcmd flows)"
else
	pass "no flow recorded for local destinations"
fi
[ "$(counter connects_local_unbound)" -ge 3 ] && pass "connect hook counted the local connects" ||
	fail "connect hook counted the local connects" "$(counter connects_local_unbound)"

# A socket unbound for a local destination and then pointed at a remote
# one is bound to the TUN again: a refused loopback connect retried
# elsewhere, a UDP socket that talked to a local resolver first.
captured "TCP: a refused loopback connect retried to a remote address is captured" \
	"> 10.77.0.9:8021 " nsx -- "$CG" lc-curl tcp-after-local 4 10.77.0.9 8021
captured "UDP: a datagram to loopback, then to a remote address: captured (from the 2nd)" \
	"> 10.77.0.9:8023 " nsx -- "$CG" lc-curl udp-after-local 4 10.77.0.9 8022
captured "IPv6 TCP: [::1] refused, then a remote address: captured" \
	"> [fd77::9]:8025 " nsx -- "$CG" lc-curl tcp-after-local 6 fd77::9 8025
[ "$(counter sockets_rebound)" -ge 3 ] && pass "the connect hook counted the rebinds" ||
	fail "the connect hook counted the rebinds" "$(counter sockets_rebound)"

# --- a captured process can still serve ---------------------------------------------
# Its listening socket (TCP, explicit or ephemeral port) and its UDP socket
# bound to a port are unbound from the TUN; an uncaptured peer reaches them.
for t in "serve-tcp 4 127.0.0.1 9101" "serve-tcp 4 127.0.0.1 0" \
	"serve-tcp 6 ::1 0" "serve-udp 4 127.0.0.1 9104" "serve-udp 6 ::1 9105"; do
	# shellcheck disable=SC2086
	run_client nsx "$CG" lc-curl $t >"$TMP/srv.out" 2>&1 &
	spid=$!
	if ! wait_for "$TMP/srv.out" '^listening [0-9]'; then
		fail "captured server $t" "$(cat "$TMP/srv.out")"
		wait "$spid"
		continue
	fi
	# shellcheck disable=SC2086
	set -- $t
	port=$(awk '$1 == "listening" { print $2 }' "$TMP/srv.out")
	cproto=tcp
	[ "$1" = serve-udp ] && cproto=udp-echo
	out=$(run_client nsx "$CG" lc-other "$cproto" "$2" "$3" "$port" 2>&1)
	wait "$spid"
	if grep -q 'result connected' <<<"$out" && grep -q 'result served' "$TMP/srv.out"; then
		pass "captured process serves: $t"
	else
		fail "captured process serves: $t" "client: $out; server: $(cat "$TMP/srv.out")"
	fi
done
set --

# --- owner attribution ------------------------------------------------------------
out=$(run_client nsx "$CG" lc-curl tcp 4 10.77.0.9 8021 --thread 2>&1)
cpid=$(awk '$1 == "pid" { print $2 }' <<<"$out")
flow=$(hcmd flows | grep " 10.77.0.9 8021 ")
if grep -q "pid=$cpid uid=0 gid=0 cgroup=[1-9][0-9]* cgpath=/$CGNAME comm=lc-curl$" <<<"$flow"; then
	pass "owner of a flow: pid, uid, cgroup and leader's comm"
else
	fail "owner of a flow" "client pid $cpid, flow: '$flow'"
fi
out=$(run_client nsx "$CG" lc-curl udp 6 fd77::9 8022 2>&1)
cpid=$(awk '$1 == "pid" { print $2 }' <<<"$out")
hcmd flows | grep -q "^flow v6 udp .* fd77::9 8022 pid=$cpid " &&
	pass "owner of an ipv6 udp flow (process already exited)" ||
	fail "owner of an ipv6 udp flow" "$(hcmd flows)"

# --- exclusion, pid, uid, cgroup: spec changes without reloading ------------------
set_spec "!lc-curl"
direct "'!name' first: the named process is not captured" "> 10.77.0.9:8031 " nsx -- \
	"$CG" lc-curl tcp 4 10.77.0.9 8031
captured "'!name' first: everything else is" "> 10.77.0.9:8032 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8032

set_spec "lc-a-very-long-p"
captured "long name: compared on its first 15 bytes" "> 10.77.0.9:8035 " nsx -- \
	"$CG" lc-a-very-long-program-name tcp 4 10.77.0.9 8035

# pid by tgid: the spec names the process once it runs; a thread connects.
rm -f "$TMP/go"
run_client nsx "$CG" lc-other tcp 4 10.77.0.9 8041 --thread --wait "$TMP/go" >"$TMP/pidclient.out" 2>&1 &
cpid_bg=$!
wait_for "$TMP/pidclient.out" '^pid' || fail "pid client start"
cpid=$(awk '$1 == "pid" { print $2 }' "$TMP/pidclient.out")
set_spec "lc-nomatch,$cpid"
touch "$TMP/go"
wait "$cpid_bg"
wait_for_fixed "$TMP/tun.log" "> 10.77.0.9:8041 " && pass "pid match by tgid, from a worker thread" ||
	fail "pid match by tgid, from a worker thread" "$(cat "$TMP/pidclient.out")"

set_spec "uid:65534"
captured "uid match" "> 10.77.0.9:8051 " nsx -- \
	"$CG" lc-other --as 65534 tcp 4 10.77.0.9 8051
direct "uid mismatch" "> 10.77.0.9:8052 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8052

set_spec "cgroup:/$CGNAME/sub"
captured "cgroup match (child of the attach point)" "> 10.77.0.9:8061 " nsx -- \
	"$CG/sub" lc-other tcp 4 10.77.0.9 8061
direct "cgroup mismatch (the parent)" "> 10.77.0.9:8062 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8062

# unit:NAME: not under system.slice, so found by searching the tree
set_spec "unit:$UNIT"
captured "unit match (found by name under the attach point)" "> 10.77.0.9:8063 " nsx -- \
	"$CG/$UNIT" lc-other tcp 4 10.77.0.9 8063
direct "unit mismatch" "> 10.77.0.9:8064 " nsx -- \
	"$CG/sub" lc-other tcp 4 10.77.0.9 8064

# --- the daemons are never captured --------------------------------------------------
set_spec "!lc-nomatch"
captured "capture-everything spec" "> 10.77.0.9:8071 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8071
direct "excluded daemon uid, even when everything is captured" "> 10.77.0.9:8072 " nsx -- \
	"$CG" lc-other --as 65533 tcp 4 10.77.0.9 8072
direct "excluded daemon cgroup, even when everything is captured" "> 10.77.0.9:8073 " nsx -- \
	"$CG/daemon" lc-other tcp 4 10.77.0.9 8073

# --- paused (fail-open) -------------------------------------------------------------
hcmd "enable 0" >/dev/null
direct "paused: nothing new captured" "> 10.77.0.9:8081 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8081
hcmd "enable 1" >/dev/null
captured "resumed" "> 10.77.0.9:8082 " nsx -- "$CG" lc-other tcp 4 10.77.0.9 8082

# --- another network namespace is left alone -------------------------------------------
n_other=$(counter sockets_other_netns)
direct "socket in another netns: untouched" "> 10.77.0.9:8091 " ns2x -- \
	"$CG" lc-curl tcp 4 10.77.0.9 8091
[ "$(counter sockets_other_netns)" -gt "$n_other" ] && pass "other-netns socket counted" ||
	fail "other-netns socket counted"

# --- a refused spec leaves the old one in force ----------------------------------------
out=$(hcmd "spec lc-curl,,x")
grep -q "error.*item 2.*empty item" <<<"$out" && pass "bad spec refused with the item named" ||
	fail "bad spec refused" "$out"
captured "old spec still in force after a refused one" "> 10.77.0.9:8095 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8095

# --- detach and attach again while a process keeps connecting --------------------------
set_spec "lc-curl"
run_client nsx "$CG" lc-curl tcp-loop 4 10.77.0.9 8200 40 >"$TMP/loop.out" 2>&1 &
lpid=$!
# Paced by the client's progress, not by the clock: a loaded machine only
# makes it slower.  (Bounded: each wait gives up after 5 s.)
tries() { grep -c '^try ' "$TMP/loop.out" 2>/dev/null; }
wait_tries() {
	local _
	for _ in $(seq 1 100); do
		[ "$(tries)" -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
wait_tries 8
hcmd detach | grep -q "ok detached" || fail "detach while traffic runs"
wait_tries 20
hcmd attach | grep -q "ok attached links=" || fail "attach again while traffic runs"
wait "$lpid"
wait_for_fixed "$TMP/tun.log" "> 10.77.0.9:8239 "
n_tun=0; n_wire=0; bad=
for p in $(seq 8200 8239); do
	t=0; w=0
	grep -qF "> 10.77.0.9:$p " "$TMP/tun.log" && t=1
	grep -qF "> 10.77.0.9:$p " "$TMP/wire-$NS.log" && w=1
	n_tun=$((n_tun + t)); n_wire=$((n_wire + w))
	[ $((t + w)) -eq 1 ] || bad="$bad $p"
done
errs=$(grep -c 'error' "$TMP/loop.out")
# expected: tun first, direct while detached, tun again; all 40 accounted
if [ -z "$bad" ] && [ "$errs" -eq 0 ] && [ $n_tun -gt 0 ] && [ $n_wire -gt 0 ] &&
	grep -qF "> 10.77.0.9:8239 " "$TMP/tun.log"; then
	pass "detach/attach under traffic: $n_tun via TUN, $n_wire direct, none lost or failed"
else
	fail "detach/attach under traffic" "tun $n_tun wire $n_wire errors $errs unaccounted:$bad"
fi

# --- SIGKILL: the links go with the process ---------------------------------------------
# the ids of the latest attachment (re-attached above)
links=$(grep -o 'links=[0-9,]*' "$TMP/helper.log" | tail -n 1 | sed 's/links=//' | tr ',' ' ')
[ -n "$links" ] || fail "link ids reported"
for id in $links; do
	bpftool link show id "$id" >/dev/null 2>&1 || fail "link $id present while attached"
done
{ kill -9 "$HELPER_PID"; wait "$HELPER_PID"; } 2>/dev/null
HELPER_PID=
sleep 0.2
left=
for id in $links; do
	bpftool link show id "$id" >/dev/null 2>&1 && left="$left $id"
done
[ -z "$left" ] && pass "kill -9: no link left (ids $links)" || fail "kill -9: links left:$left"
direct "after kill -9: new connections go direct" "> 10.77.0.9:8099 " nsx -- \
	"$CG" lc-other tcp 4 10.77.0.9 8099

# --- too many host addresses: refused, not silently cut -------------------------------
for i in $(seq 1 260); do
	echo "addr add 10.88.$((i / 200)).$((i % 200 + 1))/32 dev lo"
done | ns2x ip -batch - || fail "adding 260 addresses in $NS2"
out=$("$HELPER" --cgroup "$CG" --netns "$NS2" --tun lo --spec "" </dev/null 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "more than 256 host addresses" <<<"$out"; then
	pass "more host addresses than the map holds: refused"
else
	fail "more host addresses than the map holds: refused" "rc $rc: $out"
fi

echo "$NAME: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
