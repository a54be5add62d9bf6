#!/bin/sh
# proxyd the way macOS builds it, run here: `make portable-run` links proxyd
# with the platform seam's POSIX side (common/plat_posix.c: no accept4,
# getrandom, prctl, close_range or capabilities; MSG_NOSIGNAL 0), the
# signer's length-prefixed SOCK_STREAM channel instead of SOCK_SEQPACKET
# (proxyd/recchan.c), no splice (proxyd/relay_copy.c) and the POSIX sandbox
# (common/sandbox_posix.c: user drop only; Seatbelt is macOS's).  Then:
#   - the binary imports none of the Linux-only calls it replaced;
#   - its signer channel is a stream socket (ss), and it says which build;
#   - the existing proxyd tests run against it unchanged: proxyd_relay.sh
#     (raw relay, 4 MiB SHA-256, refusals), proxyd_listen.sh (explicit
#     proxy, TLS interception through the signer, the resolver) and
#     macos_sim.sh (the macOS extension's core into this proxyd, 10,000
#     flows).
# What stays Linux here: ipc_linux.c (ipc_darwin.c needs macOS's
# LOCAL_PEERCRED), and the reset marker towards the netstackd stand-in
# (MSG_OOB works on Linux's AF_UNIX); towards the extension's core it goes
# on flow.sock, as on macOS (macos_sim's "upstream reset after the app's
# end").
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
P="$BUILD/portable-run"
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
for tool in nm ss; do
	command -v $tool >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done
[ -x "$BUILD/bin/proxyd" ] || { echo "skip: $BUILD/bin not built"; exit 77; }

# Links an earlier run of this script left would pass for what make builds.
find "$P/bin" -type l -exec rm -f {} + 2>/dev/null
if ! make --no-print-directory ${SANITIZE:+SANITIZE=$SANITIZE} BUILD="$BUILD" \
    portable-run >"$BUILD/portable-run.log" 2>&1; then
	tail -n 30 "$BUILD/portable-run.log"
	echo "not ok - make portable-run"
	exit 1
fi
ok "make portable-run builds $P/bin/proxyd"

# --- the binary ---------------------------------------------------------------
imports=$(nm -D --undefined-only "$P/bin/proxyd" | awk '{ print $2 }' | sed 's/@.*//')
linux_only=$(echo "$imports" | grep -xE 'splice|pipe2|prctl|getrandom|close_range|cap_[a-z_]+|seccomp_[a-z_]+' | tr '\n' ' ')
[ -z "$linux_only" ] && ok "no Linux-only call imported (splice, prctl, getrandom, close_range, libcap, libseccomp)" ||
    not_ok "the portable proxyd imports $linux_only"
real=$(nm -D --undefined-only "$BUILD/bin/proxyd" | grep -cE ' (splice|prctl|getrandom|close_range)(@|$)')
[ "$real" -eq 4 ] && ok "...which the Linux build does import (4 of 4: the check can fail)" ||
    not_ok "the Linux build imports $real of splice/prctl/getrandom/close_range"
echo "$imports" | grep -qx arc4random_buf && ok "randomness from arc4random_buf, as on macOS" ||
    not_ok "arc4random_buf not used"

# --- the signer channel ----------------------------------------------------------
T=$(mktemp -d /tmp/lc-mxpx.XXXXXX)
chmod 755 "$T"
PX=""
cleanup() {
	[ -n "$PX" ] && kill "$PX" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
"$P/bin/proxyd" -f -v -r "$T" -s "$T/state" >"$T/proxyd.log" 2>&1 &
PX=$!
i=0
while [ $i -lt 300 ] && ! grep -q 'proxyd keeps the certificate only' "$T/proxyd.log"; do
	sleep 0.05
	i=$((i + 1))
done
grep -q 'certificate only (portable build)' "$T/proxyd.log" &&
    ok "proxyd says it is the portable build" ||
    { not_ok "proxyd's log does not say portable build"; tail -n 5 "$T/proxyd.log"; }
spid=$(sed -n 's/.*signer process (pid \([0-9]*\)).*/\1/p' "$T/proxyd.log" | head -n 1)
socks=$(ss -xap 2>/dev/null | grep -E "pid=($PX|${spid:-none}),")
nseq=$(echo "$socks" | grep -c '^u_seq')
nstr=$(echo "$socks" | grep -E "pid=${spid:-none}," | grep -c '^u_str')
[ -n "$spid" ] && [ "$nseq" -eq 0 ] && [ "$nstr" -ge 1 ] &&
    ok "the signer (pid $spid) talks over a stream socket, no SOCK_SEQPACKET anywhere" ||
    { not_ok "signer sockets: $nseq seqpacket, $nstr stream (pid ${spid:-?})"; echo "$socks"; }
kill "$PX"
wait "$PX"
rc=$?
PX=""
[ $rc -eq 0 ] && ok "proxyd stops on SIGTERM with status 0" || not_ok "proxyd exited $rc"

# --- the proxyd tests, against the portable proxyd ----------------------------------
# $M holds the portable proxyd; the other binaries and the test helpers are
# the Linux build's (they stand in for the flow sources and clients).  A
# tree of its own: links in $P/bin would hide portable-run's other binaries.
M="$P/mixed"
rm -rf "$M"
mkdir -p "$M/bin"
ln -sfn "$top/$BUILD/test" "$M/test"
for b in "$BUILD"/bin/*; do
	n=$(basename "$b")
	[ "$n" = proxyd ] || ln -sfn "$top/$BUILD/bin/$n" "$M/bin/$n"
done
ln -sfn "$top/$P/bin/proxyd" "$M/bin/proxyd"
for t in proxyd_relay proxyd_listen macos_sim; do
	BUILD="$M" "$top/test/integration/$t.sh" >"$T/$t.log" 2>&1
	rc=$?
	summary=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$T/$t.log" | tail -n 1)
	if [ $rc -eq 0 ]; then
		ok "$t.sh against the portable proxyd: ${summary:-passed}"
	elif [ $rc -eq 77 ]; then
		echo "# $t.sh skipped: $(tail -n 1 "$T/$t.log")"
	else
		not_ok "$t.sh against the portable proxyd (exit $rc)"
		tail -n 30 "$T/$t.log" | sed 's/^/    | /'
	fi
done

echo "macos_proxyd: $passed passed, $failed failed"
[ $failed -eq 0 ]
