#!/bin/sh
# Provide mbedTLS 3.6 LTS for localcap.
#
# bookworm ships mbedTLS 2.28: TLS 1.2 only and measurably slower.  When
# pkg-config finds no mbedtls >= 3.6 on the system, fetch Debian's own source
# package from the next release (trixie) and build it once into
# build/deps/mbedtls, which the Makefile links statically.
#
# The trixie source index is read through a private apt configuration in
# build/deps/apt that points at the same Debian mirror the machine already
# uses; the system's apt sources, lists and caches are never touched.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
deps="$top/build/deps"
prefix="$deps/mbedtls"
want=3.6

if pkg-config --atleast-version=$want mbedtls 2>/dev/null; then
	echo "mbedtls: system has $(pkg-config --modversion mbedtls), using it"
	exit 0
fi
if PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --atleast-version=$want mbedtls 2>/dev/null; then
	echo "mbedtls: $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion mbedtls) already built in $prefix"
	exit 0
fi

# The machine's Debian mirror: first "URIs:" (deb822) or "deb" line naming a
# .../debian archive.  deb.debian.org if none is found.
mirror=$(
	{ cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p'
	  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p'
	} | tr ' ' '\n' | grep -E '/debian/?$' | head -n 1
)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

apt="$deps/apt"
rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc/sources.list.d" \
	"$apt/etc/preferences.d" "$apt/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
	>"$apt/etc/sources.list"
cat >"$apt/apt.conf" <<EOF
Dir::State "$apt";
Dir::State::Lists "$apt/lists";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$apt";
Dir::Etc::SourceList "$apt/etc/sources.list";
Dir::Etc::SourceParts "$apt/etc/sources.list.d";
Dir::Etc::Preferences "$apt/etc/preferences";
Dir::Etc::PreferencesParts "$apt/etc/preferences.d";
APT::Sandbox::User "root";
EOF

echo "mbedtls: fetching trixie's source package from $mirror"
APT_CONFIG="$apt/apt.conf" apt-get -qq update
# apt checks every file against the signed Sources index; dpkg-source then
# unpacks the upstream tarball and applies Debian's patches.
(cd "$apt/src" && APT_CONFIG="$apt/apt.conf" apt-get -qq source --download-only mbedtls)
dsc=$(ls "$apt"/src/mbedtls_3.6*.dsc 2>/dev/null | head -n 1)
if [ -z "$dsc" ]; then
	echo "mbedtls: trixie offers no mbedtls 3.6.x source package" >&2
	exit 1
fi
(cd "$apt/src" && dpkg-source --no-check -x "$dsc" mbedtls-src >/dev/null)

# AES-GCM is the record cipher TLS clients prefer, and mbedTLS's AES-NI code
# runs about 35 % faster compiled for SSE4.1 (its GHASH loop is vectorised):
# 290 -> 400 MB/s per core here (docs/benchmarks.md).  The library is
# built on the machine that runs it, so it may use what this CPU has; mbedTLS
# still checks AES-NI/PCLMUL at run time before using them.
isa=""
if [ "$(uname -m)" = x86_64 ] && grep -qw sse4_1 /proc/cpuinfo &&
    grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
	isa="-msse4.1 -maes -mpclmul"
fi

echo "mbedtls: building $(basename "$dsc" .dsc) into $prefix${isa:+ ($isa)}"
cmake -S "$apt/src/mbedtls-src" -B "$apt/build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX="$prefix" \
	-DCMAKE_POSITION_INDEPENDENT_CODE=ON \
	-DCMAKE_C_FLAGS="-O2 -g $isa -fstack-protector-strong -D_FORTIFY_SOURCE=2" \
	-DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON \
	-DENABLE_TESTING=OFF -DENABLE_PROGRAMS=OFF \
	-DMBEDTLS_FATAL_WARNINGS=OFF >/dev/null
cmake --build "$apt/build" -j "$(nproc)" >/dev/null
cmake --install "$apt/build" >/dev/null
rm -rf "$apt"

PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --atleast-version=$want mbedtls
echo "mbedtls: $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion mbedtls) installed in $prefix"
