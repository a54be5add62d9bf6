#!/bin/sh
# The top-level Makefile's macOS rules, checked here without a Mac:
# `make -n -B TARGET_OS=darwin` prints the build macOS would run (nothing is
# compiled), and that build must
#   - pass ld64 none of GNU ld's flags (-z relro/now, --as-needed,
#     -Bstatic/-Bdynamic, --gc-sections, -pie) and compile without
#     _GNU_SOURCE; link no libcap, libseccomp, libbpf, libmnl; link
#     Security and CoreFoundation (the peer's code signature);
#   - build proxyd, redirectord with its macOS backend, localcapctl and the
#     extension's core, and neither netstackd, webd nor the eBPF programs;
#   - leave every Linux-only file out, and compile only files that
#     `make PORTABLE=1` compiles (so portable_build.sh has checked them);
#   - install the launchd jobs and Seatbelt profiles, not systemd's units.
# The Linux dry run is checked to show the GNU flags, so the checks can fail.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
. "$top/test/lib.sh"
passed=0 failed=0
T=$(mktemp -d /tmp/lc-darwin-make.XXXXXX)
trap 'rm -rf "$T"' EXIT

make --no-print-directory -n -B TARGET_OS=darwin all >"$T/darwin" 2>&1
check "make -n TARGET_OS=darwin succeeds" test $? -eq 0
make --no-print-directory -n -B all >"$T/linux" 2>&1
make --no-print-directory -n -B PORTABLE=1 portable >"$T/portable" 2>&1

GNU_ONLY='(-z,?(relro|now)|--as-needed|-Bstatic|-Bdynamic|--gc-sections|-D_GNU_SOURCE|(^| )-pie( |$))'
LINUX_LIBS='(^| )-l(cap|seccomp|bpf|mnl)( |$)'
gnu=$(grep -cE -- "$GNU_ONLY" "$T/darwin")
check "no GNU-only compiler or linker flag in the Darwin build ($gnu lines)" test "$gnu" -eq 0
check "...which the Linux build has (the check can fail)" \
    grep -qE -- "$GNU_ONLY" "$T/linux"
libs=$(grep -cE -- "$LINUX_LIBS" "$T/darwin")
check "no libcap, libseccomp, libbpf, libmnl linked ($libs lines)" test "$libs" -eq 0
check "...which the Linux build links" grep -qE -- "$LINUX_LIBS" "$T/linux"

for b in proxyd redirectord localcapctl; do
	check "bin/$b is linked, with Security, CoreFoundation and -dead_strip_dylibs" \
	    sh -c "grep -E -- '-o build/darwin/bin/$b ' '$T/darwin' | grep -- '-framework Security' |
	    grep -- '-framework CoreFoundation' | grep -q -- '-Wl,-dead_strip_dylibs'"
done
for b in netstackd webd; do
	check "bin/$b is not built" sh -c "! grep -qE -- '-o build/darwin/bin/$b( |\$)' '$T/darwin'"
done
check "the extension's core is built (libmxcore.a)" \
    grep -q "ar rcs build/darwin/lib/libmxcore.a" "$T/darwin"
check "no eBPF program or skeleton" sh -c "! grep -qE 'target bpf|bpftool' '$T/darwin'"

check "redirectord: its process and macOS backend (backend_macos.o, mx_spec.o)" \
    sh -c "grep -q -- '-o build/darwin/bin/redirectord build/darwin/obj/redirectord/redirectord.o' '$T/darwin' &&
    grep -E 'ar rcs build/darwin/lib/libredirectord.a ' '$T/darwin' | grep -q 'backend_macos.o.*mx_spec.o'"
linux_objs=$(grep -oE '[a-z_/]*(backend_linux|capture|bpf|tun|cgcache|cgroup_linux|relay_splice|sandbox|plat_linux|ipc_linux|ps_linux)\.o' "$T/darwin" | sort -u | tr '\n' ' ')
check "no Linux-only object in it ($linux_objs)" test -z "$linux_objs"
check "common: ipc_darwin.o, plat_posix.o, sandbox_posix.o" \
    sh -c "grep -E 'ar rcs build/darwin/lib/libcommon.a ' '$T/darwin' |
    grep 'ipc_darwin.o' | grep 'plat_posix.o' | grep -q 'sandbox_posix.o'"

# Every C file the Darwin build compiles is one make PORTABLE=1 compiles.
# (generated files compared by name: each build has its own gen/)
grep -oE -- '-c [^ ]+\.c' "$T/darwin" | sed 's/^-c //; s|^.*/gen/|GEN/|' | sort -u >"$T/d.c"
grep -oE -- '-c [^ ]+\.c' "$T/portable" | sed 's/^-c //; s|^.*/gen/|GEN/|' | sort -u >"$T/p.c"
extra=$(comm -23 "$T/d.c" "$T/p.c" | tr '\n' ' ')
n=$(wc -l <"$T/d.c")
check "all $n C files it compiles are in the portable build (${extra:-none outside})" test -z "$extra"
check "...a comparison that sees files ($n > 80)" test "$n" -gt 80

make --no-print-directory -n TARGET_OS=darwin install DESTDIR=/nonexistent/stage \
    >"$T/install" 2>&1
check "make install on macOS: the launchd jobs and the Seatbelt profiles, no systemd unit" \
    sh -c "grep -q 'LaunchDaemons' '$T/install' &&
    grep -q 'redirectord.sb' '$T/install' && ! grep -q 'systemd' '$T/install'"
check "...and the daemons look for the profiles where they are installed" \
    grep -q "LOCALCAP_SANDBOX_DIR='\"/usr/local/share/localcap/sandbox\"'" "$T/darwin"

out=$(make --no-print-directory TARGET_OS=darwin check 2>&1)
rc=$?
check "make check on macOS says where its tests are (exit $rc)" \
    sh -c "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'macos-extension/shim check'" _ "$out"

echo "darwin_make: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
