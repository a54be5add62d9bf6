#!/bin/sh
# Install what localcap needs to build and test on Debian bookworm, then make
# sure an mbedTLS >= 3.6 is available (building it once from Debian's own
# trixie source package when the system has none).  Idempotent: run it as often
# as you like; it is what `make deps`, the README and .ci/run call.
# With --bench, also what `make bench` needs.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

# Build: compilers, generators, libraries.  Tests: cmocka and the real peers
# the integration tests talk to (chromium: the browser that reads the flow
# viewer's page in test/integration/webd.sh, and falls back from HTTP/3 in
# capture_chromium_quic.sh; socat: the CONNECT shim that takes nghttp and
# h2load, which speak to no proxy, through proxyd --listen in proxyd_h2.sh;
# python3-h2: both ends of an extended CONNECT there, which no packaged
# tool speaks).  Each is a stock bookworm package.
PACKAGES="
  build-essential pkg-config cmake python3 dpkg-dev xz-utils bzip2
  clang llvm libclang-rt-14-dev
  libev-dev libprotobuf-c-dev protobuf-c-compiler
  libbpf-dev bpftool linux-libc-dev
  libcap-dev libseccomp-dev libmnl-dev libsqlite3-dev libnghttp2-dev
  libcmocka-dev
  iproute2 procps psmisc curl wget openssl iperf3 python3-cryptography
  nghttp2-client nghttp2-server socat python3-h2
  mandoc man-db systemd strace ca-certificates libnss3-tools
  chromium
"
# AES-GCM record crypto through Intel's ipsec-mb (built into our mbedTLS by
# scripts/build-mbedtls.sh; x86-64 only, where Debian ships it).
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
	PACKAGES="$PACKAGES libipsec-mb-dev"
fi
# `make bench` (deps.sh --bench) also needs the proxy benchmark's origin, its
# OpenSSL client's headers, the two peers proxyd is measured against,
# iptables (the capture benchmark puts the peers in transparent mode with a
# REDIRECT inside its own namespace) and socat (the HTTP/2 benchmark's
# CONNECT shim: h2load speaks to no proxy).
BENCH_PACKAGES="libssl-dev nginx-light sslsplit mitmproxy iptables socat"
if [ "${1:-}" = "--bench" ]; then
	PACKAGES="$PACKAGES $BENCH_PACKAGES"
fi

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: installing packages needs root (try: sudo make deps)" >&2
		exit 1
	fi
}

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	need_root
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
else
	echo "deps: all Debian packages present"
fi

exec "$top/scripts/build-mbedtls.sh"
