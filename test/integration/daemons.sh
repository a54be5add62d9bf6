#!/bin/sh
# The three daemons as a person runs them: start in a private runtime dir,
# handshake with each other, survive the loss of any one of them (the others
# keep running and log it), reconnect when it comes back, refuse a second
# instance and a bad config file, reload on SIGHUP, and stop cleanly on
# SIGTERM leaving no socket or pid file behind.
#
# Runs as root (redirectord creates its TUN), with redirectord in a network
# namespace of its own (unshare --net), so the host's network is untouched.
set -u
if [ "$(id -u)" -ne 0 ]; then
	echo "daemons: needs root (redirectord creates a TUN); skipped"
	exit 77
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$top/${BUILD:-build}/bin"
T=$(mktemp -d /tmp/lc-daemons.XXXXXX)
chmod 755 "$T"
STATE="$T/state"
mkdir -m 755 "$T/u"
PROXYD_PID="" REDIRECTORD_PID="" NETSTACKD_PID=""
passed=0 failed=0
. "$top/test/lib.sh"
# Capture attaches to a child cgroup of our own, never to the root.
CG=$(make_cgroup "localcap-test-daemons-$$") || { echo "no cgroup v2"; exit 1; }

cleanup() {
	for p in $PROXYD_PID $REDIRECTORD_PID $NETSTACKD_PID; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# check_run DESC RC PATTERN CMD...: CMD exits RC and its output matches PATTERN.
check_run() {
	desc=$1 want_rc=$2 pattern=$3; shift 3
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" -eq "$want_rc" ] && printf '%s\n' "$out" | grep -q -- "$pattern"; then
		ok "$desc"
	else
		not_ok "$desc (exit $rc: $out)"
	fi
}
count() { grep -c "$2" "$T/$1.log"; }

start() {
	case $1 in
	proxyd) "$BIN/proxyd" -f -r "$T" -s "$STATE" >>"$T/proxyd.log" 2>&1 &
		PROXYD_PID=$! ;;
	# Its TUN lives in a network namespace of its own, gone with it.
	redirectord) unshare --net -- "$BIN/redirectord" -f -r "$T" -g "$CG" \
		    >>"$T/redirectord.log" 2>&1 &
		REDIRECTORD_PID=$! ;;
	netstackd) "$BIN/netstackd" -f -r "$T" >>"$T/netstackd.log" 2>&1 &
		NETSTACKD_PID=$! ;;
	esac
}

status() { "$BIN/localcapctl" -r "$T" --json status 2>&1; }

# wait_for DESC COMMAND...: poll up to 5 s.
wait_for() {
	desc=$1; shift
	i=0
	while [ $i -lt 100 ]; do
		if "$@"; then ok "$desc"; return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	not_ok "$desc"
	echo "  last status: $(status)"
	return 1
}

running() { status | grep -q "\"name\":\"$1\",\"running\":true,\"pid\":$2,"; }
down() { status | grep -q "\"name\":\"$1\",\"running\":false"; }
all_up() {
	running redirectord "$REDIRECTORD_PID" && running netstackd "$NETSTACKD_PID" &&
	    running proxyd "$PROXYD_PID"
}
alive() { kill -0 "$1" 2>/dev/null; }
logged() { grep -qs "$2" "$T/$1.log"; }

# netstackd first: it must wait for the others, not give up.
start netstackd
wait_for "netstackd alone waits for its peers" logged netstackd "waiting for proxyd"
start redirectord
start proxyd
wait_for "all three daemons up and handshaken" all_up
check "state dir created 0700" test "$(stat -c %a "$STATE")" = 700
check "flow.sock is 0660" test "$(stat -c %a "$T/flow.sock")" = 660
check "netstackd was handed the TUN" logged netstackd "TUN localcap0 .*received"

# Kill each daemon in turn: the others stay, log the loss, and reconnect.
kill -9 "$PROXYD_PID"; wait "$PROXYD_PID" 2>/dev/null
wait_for "status shows proxyd down after kill -9" down proxyd
check "netstackd logged the loss of proxyd" logged netstackd "lost proxyd"
check "redirectord and netstackd still running" sh -c \
    "kill -0 $REDIRECTORD_PID && kill -0 $NETSTACKD_PID"
start proxyd
wait_for "a restarted proxyd is reconnected" all_up

kill -9 "$NETSTACKD_PID"; wait "$NETSTACKD_PID" 2>/dev/null
wait_for "status shows netstackd down after kill -9" down netstackd
check "redirectord logged the loss of netstackd" logged redirectord "lost netstackd"
check "proxyd logged the loss of its flow source" logged proxyd "flow source .* gone"
check "redirectord and proxyd still running" sh -c \
    "kill -0 $REDIRECTORD_PID && kill -0 $PROXYD_PID"
start netstackd
wait_for "a restarted netstackd is reconnected" all_up

kill -9 "$REDIRECTORD_PID"; wait "$REDIRECTORD_PID" 2>/dev/null
check_run "localcapctl says redirectord is not running (exit 1)" 1 \
    "redirectord is not running" "$BIN/localcapctl" -r "$T" status
sleep 0.3
check "netstackd logged the loss of redirectord" logged netstackd "lost redirectord"
check "netstackd and proxyd still running" sh -c \
    "kill -0 $NETSTACKD_PID && kill -0 $PROXYD_PID"
start redirectord
wait_for "a restarted redirectord takes over its stale sockets" all_up

# The control socket vets callers by SO_PEERCRED: an ordinary user (not
# root, not in the localcap-admin group) gets a clear refusal, and it is
# logged.  (ctl_auth.sh checks the rest of the boundary.)
if command -v setpriv >/dev/null; then
	check_run "ctl.sock refuses a uid outside root and the localcap-admin group" 1 \
	    "uid 65534 may not use ctl.sock" \
	    setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$BIN/localcapctl" -r "$T" status
	check "...and redirectord logged the refusal" \
	    logged redirectord "refused: uid 65534 may not use ctl.sock"
fi

# One instance per runtime dir.
check_run "a second proxyd is refused" 1 "another proxyd is running in $T (pid $PROXYD_PID)" \
    "$BIN/proxyd" -f -r "$T" -s "$STATE"
check "the first proxyd is unharmed" alive "$PROXYD_PID"

# Config files: a bad line is fatal at start and named; SIGHUP reloads.
printf 'log_level = info\n[proxyd]\nlisten_port = 8080\n' >"$T/bad.conf"
check_run "bad config: exit 1 naming file and line" 1 \
    "$T/bad.conf:3: unknown key 'listen_port'" \
    "$BIN/redirectord" -f -r "$T" -g "$CG" -c "$T/bad.conf"
check_run "a bad --tun-mtu is refused" 1 "MTU 100 out of range" \
    unshare --net -- "$BIN/redirectord" -f -r "$T/x" -g "$CG" --tun-mtu 100
check "the running redirectord is unharmed" alive "$REDIRECTORD_PID"
printf 'log_level = info\n' >"$T/good.conf"
kill -9 "$NETSTACKD_PID"; wait "$NETSTACKD_PID" 2>/dev/null
"$BIN/netstackd" -f -r "$T" -c "$T/good.conf" >>"$T/netstackd.log" 2>&1 &
NETSTACKD_PID=$!
wait_for "netstackd with a config file comes up" all_up
cp "$T/bad.conf" "$T/good.conf"
kill -HUP "$NETSTACKD_PID"
wait_for "SIGHUP with a broken file keeps the running config" \
    logged netstackd "keeping the running configuration: $T/good.conf:3"
# At level warn the reload's own info line is not written; back at info it is.
printf 'log_level = warn\n' >"$T/good.conf"
kill -HUP "$NETSTACKD_PID"
sleep 0.3
check "reload to log_level=warn applied (no info line)" \
    test "$(count netstackd 'configuration reloaded')" -eq 0
printf 'log_level = info\n' >"$T/good.conf"
kill -HUP "$NETSTACKD_PID"
wait_for "reload to log_level=info applied (info line)" \
    logged netstackd "configuration reloaded from $T/good.conf"
check "exactly one reload was refused" \
    test "$(count netstackd 'keeping the running')" -eq 1
check "netstackd alive after the reloads" alive "$NETSTACKD_PID"

# Clean shutdown: exit 0, sockets and pid files gone.
for p in $NETSTACKD_PID $PROXYD_PID $REDIRECTORD_PID; do kill -TERM "$p"; done
rcs=""
for p in $NETSTACKD_PID $PROXYD_PID $REDIRECTORD_PID; do wait "$p"; rcs="$rcs$?"; done
PROXYD_PID="" REDIRECTORD_PID="" NETSTACKD_PID=""
check "all three exit 0 on SIGTERM (got $rcs)" test "$rcs" = "000"
left=$(cd "$T" && ls *.sock *.pid 2>/dev/null)
check "no socket or pid file left behind ($left)" test -z "$left"

# netstackd as an unprivileged user: redirectord gives data.sock to that
# user's group and accepts it, so netstackd reconnects after a redirectord
# restart even though it is no longer root.
if getent passwd nobody >/dev/null; then
	# proxyd too: its state dir belongs to its user (tmpfiles.d does this
	# for the systemd units).
	install -d -m 0700 -o nobody -g "$(id -gn nobody)" "$T/u/state"
	"$BIN/proxyd" -f -r "$T/u" -s "$T/u/state" --user nobody >>"$T/proxyd-u.log" 2>&1 &
	U_PX=$!
	unshare --net -- "$BIN/redirectord" -f -r "$T/u" -g "$CG" --netstack-user nobody \
	    >>"$T/redirectord-u.log" 2>&1 &
	U_RD=$!
	"$BIN/netstackd" -f -r "$T/u" --user nobody >>"$T/netstackd-u.log" 2>&1 &
	U_NS=$!
	upu() { "$BIN/localcapctl" -r "$T/u" --json status 2>/dev/null |
	    grep -q '"name":"netstackd","running":true'; }
	wait_for "netstackd --user nobody connects" upu
	check "...and runs as nobody" test "$(stat -c %U /proc/$U_NS)" = nobody
	kill -9 "$U_RD"; wait "$U_RD" 2>/dev/null
	unshare --net -- "$BIN/redirectord" -f -r "$T/u" -g "$CG" --netstack-user nobody \
	    >>"$T/redirectord-u.log" 2>&1 &
	U_RD=$!
	wait_for "...and reconnects, unprivileged, to a restarted redirectord" upu
	upx() { "$BIN/localcapctl" -r "$T/u" --json status 2>/dev/null |
	    grep -q "\"name\":\"proxyd\",\"running\":true,\"pid\":$U_PX,"; }
	kill -9 "$U_PX"; wait "$U_PX" 2>/dev/null
	"$BIN/proxyd" -f -r "$T/u" -s "$T/u/state" --user nobody >>"$T/proxyd-u.log" 2>&1 &
	U_PX=$!
	wait_for "...and to a restarted proxyd --user nobody (flow.sock is that user's)" upx
	kill "$U_NS" "$U_RD" "$U_PX" 2>/dev/null
	wait "$U_NS" "$U_RD" "$U_PX" 2>/dev/null
fi

# As a daemon (no -f): detaches, relative paths made absolute, pid file
# names the detached process, SIGTERM removes it.
mkdir -m 755 "$T/bg"
(cd "$T" && "$BIN/proxyd" -r bg -s bg/state); rc=$?
check "proxyd without -f returns 0 once detached" test "$rc" -eq 0
i=0; while [ ! -s "$T/bg/proxyd.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
bgpid=$(cat "$T/bg/proxyd.pid" 2>/dev/null)
check "the detached proxyd left our session" \
    test "$(ps -o sid= -p "${bgpid:-0}")" != "$(ps -o sid= -p $$)"
check "its socket is where the relative path said" test -S "$T/bg/flow.sock"
kill -TERM "${bgpid:-0}" 2>/dev/null
i=0; while kill -0 "${bgpid:-0}" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "SIGTERM stops it and removes its pid file and socket" \
    test ! -e "$T/bg/proxyd.pid" -a ! -e "$T/bg/flow.sock"

if [ $failed -ne 0 ]; then
	for d in redirectord netstackd proxyd; do
		echo "--- $d.log"; tail -n 30 "$T/$d.log"
	done
fi
echo "daemons: $passed passed, $failed failed"
[ $failed -eq 0 ]
