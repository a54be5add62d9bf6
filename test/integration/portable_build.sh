#!/bin/sh
# `make PORTABLE=1`: what macOS builds (common/ and proxyd/ without their
# Linux-only files, localcapctl's ctl/ (ps without ps_linux.c) and
# storeread/ and the spec parser it links (redirectord/spec.c without
# cgroup_linux.c), the generated protobuf code, macos-extension/core/,
# redirectord's process and macOS backend)
# compiles here without _GNU_SOURCE and with Linux-only names poisoned,
# warnings as errors.  (macos_proxyd.sh links and runs that proxyd.)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
rm -rf build/portable
out=$(make --no-print-directory PORTABLE=1 2>&1)
rc=$?
echo "$out" | tail -n 20
[ $rc -eq 0 ] && echo "$out" | grep -q "warning-free" || exit 1
# proxyd is in it, with the seam's POSIX side and without its Linux-only files
for o in proxyd/proxyd.o proxyd/signer.o proxyd/recchan.o proxyd/relay_copy.o \
    common/plat_posix.o common/sandbox_posix.o; do
	[ -s "build/portable/$o" ] || { echo "not ok - $o not in the portable build"; exit 1; }
done
for o in proxyd/relay_splice.o common/sandbox.o common/plat_linux.o; do
	[ ! -e "build/portable/$o" ] || { echo "not ok - $o (Linux-only) in the portable build"; exit 1; }
done
echo "ok - proxyd compiled with the platform seam's POSIX side, its Linux-only files left out"
# redirectord: the process and its macOS backend, never the Linux backend's
for o in redirectord/redirectord.o redirectord/backend.o redirectord/backend_macos.o; do
	[ -s "build/portable/$o" ] || { echo "not ok - $o not in the portable build"; exit 1; }
done
for o in redirectord/backend_linux.o redirectord/capture.o redirectord/bpf.o \
    redirectord/tun.o redirectord/cgcache.o; do
	[ ! -e "build/portable/$o" ] || { echo "not ok - $o (Linux-only) in the portable build"; exit 1; }
done
echo "ok - redirectord compiled with its macOS backend, its Linux backend left out"
# localcapctl: its files and the spec parser, without /proc and cgroups
for o in ctl/localcapctl.o ctl/ps.o ctl/pscmd.o redirectord/spec.o; do
	[ -s "build/portable/$o" ] || { echo "not ok - $o not in the portable build"; exit 1; }
done
for o in ctl/ps_linux.o redirectord/cgroup_linux.o; do
	[ ! -e "build/portable/$o" ] || { echo "not ok - $o (Linux-only) in the portable build"; exit 1; }
done
echo "ok - localcapctl and spec.c compiled, ps_linux.c and cgroup_linux.c left out"
# and it can fail: a Linux-only call in a portable file is an error
printf '#include <sys/socket.h>\nint f(int);\nint f(int fd) { return accept4(fd, 0, 0, 0); }\n' >build/portable/canary.c
if ${CC:-cc} -U_GNU_SOURCE -D_DEFAULT_SOURCE -DLC_PORTABLE_CHECK \
    -include common/portable_check.h -Werror -c build/portable/canary.c \
    -o build/portable/canary.o 2>/dev/null; then
	echo "not ok - accept4 compiled in the portable build"
	exit 1
fi
echo "ok - the portable build compiles, and refuses a Linux-only call"
