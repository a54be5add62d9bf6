#!/bin/sh
# macOS's packaging files, checked as far as Linux can (test/integration/
# macos_files.py): every property list (launchd jobs, the extension's and
# host app's Info.plist and entitlements) parses as plutil -lint would
# have it; each launchd job is named after its file and passes only
# options its daemon knows, as macOS builds it (make portable-run's
# redirectord and proxyd: the macOS backend's --service-user is not
# Linux's); redirectord's, proxyd's and the signer's Seatbelt profiles
# (packaging/macos/sandbox/) are well-formed SBPL that uses only known
# operations and filters and the names common/sandbox_posix.c defines.
# Then broken copies must fail, so the checks can.  Whether launchd loads
# the jobs and Seatbelt accepts the profiles is for a Mac (docs/macos.md).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
BUILD=${BUILD:-build}
command -v python3 >/dev/null 2>&1 || { echo "skip: python3 not installed"; exit 77; }
[ -x "$BUILD/bin/proxyd" ] || { echo "skip: $BUILD/bin not built"; exit 77; }
CHK="python3 test/integration/macos_files.py"
failed=0
P="$BUILD/portable-run"
# (Links an older macos_proxyd.sh left there would pass for what make builds.)
find "$P/bin" -type l -exec rm -f {} + 2>/dev/null
if ! make --no-print-directory ${SANITIZE:+SANITIZE=$SANITIZE} BUILD="$BUILD" \
    "$P/bin/redirectord" "$P/bin/proxyd" >"$BUILD/portable-run-pkg.log" 2>&1; then
	tail -n 30 "$BUILD/portable-run-pkg.log"
	echo "not ok - make portable-run"
	exit 1
fi
$CHK plist packaging/launchd/*.plist macos-extension/shim/*.plist \
    macos-extension/shim/*.entitlements || failed=1
$CHK launchd "$P/bin" packaging/launchd/*.plist || failed=1
$CHK sbpl common/sandbox_posix.c packaging/macos/sandbox/*.sb || failed=1

T=$(mktemp -d /tmp/lc-mxpkg.XXXXXX)
trap 'rm -rf "$T"' EXIT
must_fail() {
	desc=$1
	shift
	if "$@" >"$T/out" 2>&1; then
		echo "not ok - $desc: accepted"
		failed=1
	else
		echo "ok - $desc: refused ($(grep -m1 '^not ok' "$T/out" | cut -c10-90))"
	fi
}
sed 's|</dict>|<key>x</key></dict>|' packaging/launchd/org.localcap.proxyd.plist >"$T/bad.plist"
must_fail "a plist with a key and no value" $CHK plist "$T/bad.plist"
sed 's|--state-dir|--state-dri|' packaging/launchd/org.localcap.proxyd.plist \
    >"$T/org.localcap.proxyd.plist"
must_fail "a launchd job with an option proxyd lacks" $CHK launchd "$P/bin" \
    "$T/org.localcap.proxyd.plist"
cp packaging/launchd/org.localcap.proxyd.plist "$T/org.localcap.other.plist"
must_fail "a launchd job whose Label is not its file's name" $CHK launchd "$P/bin" \
    "$T/org.localcap.other.plist"
must_fail "redirectord's job against Linux's redirectord (no --service-user there)" \
    $CHK launchd "$BUILD/bin" packaging/launchd/org.localcap.redirectord.plist
sed 's/literal exec-file/literal host-file/' packaging/macos/sandbox/redirectord.sb \
    >"$T/exec.sb"
must_fail "redirectord's profile starting a program sandbox_posix.c does not name" \
    $CHK sbpl common/sandbox_posix.c "$T/exec.sb"
sed '$ s/)$//' packaging/macos/sandbox/proxyd.sb >"$T/unbalanced.sb"
must_fail "a profile with a '(' not closed" $CHK sbpl common/sandbox_posix.c "$T/unbalanced.sb"
sed 's/network-outbound/network-outgoing/' packaging/macos/sandbox/proxyd.sb >"$T/op.sb"
must_fail "a profile with an unknown operation" $CHK sbpl common/sandbox_posix.c "$T/op.sb"
sed 's/subpath rw-dir/subpath store-dir/' packaging/macos/sandbox/proxyd.sb >"$T/name.sb"
must_fail "a profile naming a path sandbox_posix.c does not define" \
    $CHK sbpl common/sandbox_posix.c "$T/name.sb"
grep -v '(deny default)' packaging/macos/sandbox/signer.sb >"$T/open.sb"
must_fail "a profile without (deny default)" $CHK sbpl common/sandbox_posix.c "$T/open.sb"
[ $failed -eq 0 ] && echo "macos_packaging: all passed" || echo "macos_packaging: FAILED"
exit $failed
