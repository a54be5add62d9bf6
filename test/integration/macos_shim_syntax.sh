#!/bin/sh
# The macOS extension's Objective-C shim, checked the only way Linux can:
# clang -fsyntax-only with ARC and blocks against the stub SDK headers kept
# in macos-extension/shim/stubs/ (only what the shim calls, written from
# Apple's documentation), warnings as errors.  Catches a misspelt selector,
# a wrong block signature, a type mismatch with the core's C API.  It does
# not prove the extension works: that needs a Mac (docs/macos.md says what
# was verified where).  Also: the stubs really are what is parsed (a
# deliberately wrong call must fail), and the plists are well-formed.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
command -v clang >/dev/null 2>&1 || { echo "skip: clang not installed"; exit 77; }
SHIM="$top/macos-extension/shim"
passed=0 failed=0
T=$(mktemp -d /tmp/lc-shim.XXXXXX)
trap 'rm -rf "$T"' EXIT

# The same flags the macOS build uses (macos-extension/shim/Makefile), but
# the stubs in place of the SDK, and no -target (Debian's clang has no
# Darwin SDK; the ObjC runtime is named instead).
syntax() {
	clang -x objective-c -fsyntax-only -fobjc-arc -fblocks \
	    -fobjc-runtime=macosx-12.0 -std=gnu11 \
	    -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
	    -Wstrict-prototypes -Wcast-qual -Wformat=2 -Wundef \
	    -isystem "$SHIM/stubs" -I"$top" -I"$top/common" -I"$SHIM" "$@"
}

for f in "$SHIM"/*.m; do
	check "clang -fsyntax-only $(basename "$f")" syntax "$f"
done

# The check can fail: a right call passes, the same call misspelt or with
# the wrong block signature does not.
cat >"$T/right.m" <<'OBJC'
#import <NetworkExtension/NetworkExtension.h>
void f(NEAppProxyTCPFlow *flow);
void f(NEAppProxyTCPFlow *flow) { [flow readDataWithCompletionHandler:^(NSData *d, NSError *e) { (void)d; (void)e; }]; }
OBJC
sed 's/readDataWithCompletionHandler/readDataWithCompletion/' "$T/right.m" >"$T/wrong.m"
sed 's/NSData \*d, NSError \*e/NSData *d/; s/ (void)e;//' "$T/right.m" >"$T/wrong2.m"
check "a right call passes against the stubs" syntax "$T/right.m"
check "a misspelt selector is an error" sh -c "! clang -x objective-c -fsyntax-only -fobjc-arc -fblocks -fobjc-runtime=macosx-12.0 -Werror -isystem '$SHIM/stubs' '$T/wrong.m' 2>/dev/null"
check "a completion block of the wrong type is an error" sh -c "! clang -x objective-c -fsyntax-only -fobjc-arc -fblocks -fobjc-runtime=macosx-12.0 -Werror -isystem '$SHIM/stubs' '$T/wrong2.m' 2>/dev/null"

if command -v python3 >/dev/null 2>&1; then
	for p in "$SHIM"/*.plist "$SHIM"/*.entitlements; do
		[ -e "$p" ] || continue
		check "$(basename "$p") is a well-formed property list" \
		    python3 -c "import plistlib,sys; plistlib.load(open(sys.argv[1],'rb'))" "$p"
	done
fi

# The C files that only macOS compiles (their __APPLE__ branches), the same
# way: -D__APPLE__, the portable build's poisoned Linux names, and stubs of
# the Darwin headers and constants they use (sys/ucred.h, sys/ptrace.h,
# sys/sysctl.h,
# SOL_LOCAL/LOCAL_PEER*, SO_NOSIGPIPE), warnings as errors.
csyntax() {
	clang -fsyntax-only -std=c11 -Wall -Wextra -Werror -Wshadow \
	    -Wmissing-prototypes -Wstrict-prototypes -Wcast-qual -Wpointer-arith \
	    -Wformat=2 -Wundef -Wvla -Wnull-dereference -Wimplicit-fallthrough \
	    -D__APPLE__ -D_DEFAULT_SOURCE -DLC_PORTABLE_CHECK -isystem "$SHIM/stubs" \
	    -include "$top/common/portable_check.h" -DLOCALCAP_VERSION='"x"' \
	    -I"$top" -I"$top/common" -I"$top/$BUILD/gen" "$@"
}
for f in common/ipc_darwin.c common/plat_posix.c common/sandbox_posix.c ctl/ca.c \
    redirectord/backend.c redirectord/backend_macos.c; do
	check "clang -fsyntax-only -D__APPLE__ $f" csyntax "$top/$f"
done
sed 's/LOCAL_PEERPID/LOCAL_PEER_PID/' "$top/common/ipc_darwin.c" >"$T/ipc_darwin.c"
check "a misspelt Darwin constant in a C file is an error" sh -c \
    "! clang -fsyntax-only -std=c11 -Werror -D__APPLE__ -D_DEFAULT_SOURCE -isystem '$SHIM/stubs' -I'$top' -I'$top/common' -I'$top/$BUILD/gen' '$T/ipc_darwin.c' 2>/dev/null"

echo "macos_shim_syntax: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
