#!/bin/sh
# The permit table (common/msg.c) against the real daemons: a peer that sends
# a message its role may not send, or one over the type's size limit, is
# closed with one log line, and the daemon stays up (it goes on serving, and
# its connectors come back).  rogue_peer.py speaks the framing by hand.
#
#	netstackd <- "proxyd" sending FlowClosed (the flow source's message)
#	netstackd <- "proxyd" sending FlowClosed{reset} (proxyd's reset marker,
#		     which only the macOS extension may take)
#	netstackd <- "proxyd" sending a ProxyStatus over its size limit
#	proxyd    <- "netstackd" sending ProxyStatus (proxyd's own message)
#	proxyd    <- "netstackd" sending a NewFlow over its size limit
#	redirectord <- "netstackd" sending OwnerReply; <- localcapctl sending CtlReply
set -u
name=ipc_permit
if [ "$(id -u)" -ne 0 ]; then
	echo "$name: needs root (network namespace for redirectord); skipped"
	exit 77
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
NS="lc-permit-$$"
T=$(mktemp -d /tmp/lc-permit.XXXXXX)
chmod 755 "$T"
pids=""
passed=0 failed=0
. "$top/test/lib.sh"
CG=$(make_cgroup "localcap-test-permit-$$") || { echo "no cgroup v2"; exit 1; }

cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	remove_cgroup "$CG"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for FILE PATTERN: up to 10 s.
wait_for() {
	_i=0
	until grep -q "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1))
		[ $_i -lt 100 ] || return 1
		sleep 0.1
	done
}
alive() { kill -0 "$1" 2>/dev/null; }
ROGUE=rogue
rogue() { python3 "$top/test/integration/rogue_peer.py" "$@" >>"$T/rogue.log" 2>&1; }

# --- netstackd, its flow.sock peer playing proxyd ---------------------------
mkdir -m 755 "$T/ns"
python3 "$top/test/integration/rogue_peer.py" listen "$T/ns/flow.sock" proxyd \
    49 --payload 0807 --reconnect >"$T/rogue1.log" 2>&1 &
rogue=$!
i=0
until [ -S "$T/ns/flow.sock" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
"$B/bin/netstackd" -f -r "$T/ns" >"$T/netstackd.log" 2>&1 &
ns=$!
pids="$pids $ns"
wait $rogue
check "netstackd closes proxyd's connection on FlowClosed" \
    grep -q "^closed" "$T/rogue1.log"
check "... with one log line naming it" \
    grep -q "FlowClosed may not come from proxyd" "$T/netstackd.log"
check "... stays up and connects again" grep -q "^reconnected" "$T/rogue1.log"

# FlowClosed{flow_id 7, reason "reset"}: proxyd sends it to the macOS
# extension (role redirectord) in place of MSG_OOB; never to netstackd.
python3 "$top/test/integration/rogue_peer.py" listen "$T/ns/flow.sock" proxyd \
    49 --payload 080742057265736574 --reconnect >"$T/rogue3.log" 2>&1
check "netstackd closes proxyd's FlowClosed{reset} (the extension's marker)" \
    grep -q "^closed" "$T/rogue3.log"
check "... naming it (the second such close)" \
    test "$(grep -c "closing proxyd.*FlowClosed may not come from proxyd" \
    "$T/netstackd.log")" -eq 2
check "... and connects again" grep -q "^reconnected" "$T/rogue3.log"

python3 "$top/test/integration/rogue_peer.py" listen "$T/ns/flow.sock" proxyd \
    50 --len 9000 --reconnect >"$T/rogue2.log" 2>&1
check "netstackd closes a ProxyStatus over its limit, on the header" \
    grep -q "ProxyStatus of 9000 bytes exceeds" "$T/netstackd.log"
check "... and connects again" grep -q "^reconnected" "$T/rogue2.log"
check "netstackd is still running" alive $ns

# --- proxyd, a flow source playing netstackd ---------------------------------
mkdir -m 755 "$T/px"
"$B/bin/proxyd" -f -r "$T/px" -s "$T/px/state" >"$T/proxyd.log" 2>&1 &
px=$!
pids="$pids $px"
i=0
until [ -S "$T/px/flow.sock" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
check "proxyd closes a flow source sending ProxyStatus" \
    $ROGUE connect "$T/px/flow.sock" netstackd 50
check "... with one log line naming it" \
    grep -q "ProxyStatus may not come from netstackd" "$T/proxyd.log"
check "proxyd closes a NewFlow over its limit, on the header" \
    $ROGUE connect "$T/px/flow.sock" netstackd 48 --nfds 1 --len 9000
check "... with one log line" grep -q "NewFlow of 9000 bytes exceeds" "$T/proxyd.log"
check "proxyd is still running" alive $px

# --- redirectord -------------------------------------------------------------
ip netns add "$NS" || exit 1
mkdir -m 755 "$T/rd"
nsenter --net="/run/netns/$NS" "$B/bin/redirectord" -f -r "$T/rd" -g "$CG" \
    >"$T/redirectord.log" 2>&1 &
rd=$!
pids="$pids $rd"
i=0
until [ -S "$T/rd/data.sock" ] && [ -S "$T/rd/ctl.sock" ] || [ $i -ge 100 ]; do
	sleep 0.1; i=$((i + 1))
done
check "redirectord closes a netstackd sending OwnerReply" \
    $ROGUE connect "$T/rd/data.sock" netstackd 36
check "... with one log line naming it" \
    grep -q "OwnerReply may not come from netstackd" "$T/redirectord.log"
check "redirectord closes a localcapctl sending CtlReply" \
    $ROGUE connect "$T/rd/ctl.sock" ctl 17
check "... with one log line naming it" \
    grep -q "CtlReply may not come from" "$T/redirectord.log"
check "redirectord still answers status" \
    "$B/bin/localcapctl" -r "$T/rd" status >/dev/null
check "redirectord is still running" alive $rd

if [ $failed -ne 0 ]; then
	for f in netstackd proxyd redirectord rogue1 rogue3 rogue2 rogue; do
		echo "--- $f.log"; tail -n 20 "$T/$f.log"
	done
fi
echo "$name: $passed passed, $failed failed"
[ $failed -eq 0 ]
