#!/bin/sh
# `make PORTABLE=1`: what macOS builds (common/'s portable files, the
# generated protobuf code, macos-extension/core/) compiles here without
# _GNU_SOURCE and with Linux-only names poisoned, warnings as errors.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
rm -rf build/portable
out=$(make --no-print-directory PORTABLE=1 2>&1)
rc=$?
echo "$out" | tail -n 20
[ $rc -eq 0 ] && echo "$out" | grep -q "warning-free" || exit 1
# and it can fail: a Linux-only call in a portable file is an error
printf '#include <sys/socket.h>\nint f(int);\nint f(int fd) { return accept4(fd, 0, 0, 0); }\n' >build/portable/canary.c
if ${CC:-cc} -U_GNU_SOURCE -D_DEFAULT_SOURCE -DLC_PORTABLE_CHECK \
    -include common/portable_check.h -Werror -c build/portable/canary.c \
    -o build/portable/canary.o 2>/dev/null; then
	echo "not ok - accept4 compiled in the portable build"
	exit 1
fi
echo "ok - the portable build compiles, and refuses a Linux-only call"
