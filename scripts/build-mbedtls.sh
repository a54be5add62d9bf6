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

# Our changes to mbedTLS (scripts/mbedtls/): AES-GCM one-shot operations go
# through Intel's ipsec-mb where the CPU has AES-NI (decided at run time;
# LOCALCAP_AEAD=mbedtls forces mbedTLS's own code).  A build made from other
# versions of this script or of those files, or with ipsec-mb then missing
# and now present (or the reverse), is rebuilt: the stamp records them.
ipsecmb=no
if [ "$(uname -m)" = x86_64 ] && [ -f /usr/include/intel-ipsec-mb.h ] &&
    ls /usr/lib/*/libIPSec_MB.a >/dev/null 2>&1; then
	ipsecmb=yes
fi
stamp="$(cat "$0" "$top"/scripts/mbedtls/* | sha256sum | cut -c1-64) ipsec-mb=$ipsecmb"
if PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --atleast-version=$want mbedtls 2>/dev/null; then
	if [ "$(cat "$prefix/localcap.stamp" 2>/dev/null)" = "$stamp" ]; then
		echo "mbedtls: $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion mbedtls) already built in $prefix"
		exit 0
	fi
	echo "mbedtls: $prefix was built from other sources or options; rebuilding"
fi
rm -rf "$prefix"

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
src="$apt/src/mbedtls-src"
cp "$top/scripts/mbedtls/localcap_gcm_accel.c" "$src/library/"
patch -s -d "$src" -p1 --no-backup-if-mismatch <"$top/scripts/mbedtls/localcap-gcm-accel.patch"
# Certificate signature checks remembered by (certificate, signer's key):
# an origin's chain is verified once, not on every upstream handshake.
cp "$top/scripts/mbedtls/localcap_x509_sigcache.c" "$src/library/"
patch -s -d "$src" -p1 --no-backup-if-mismatch <"$top/scripts/mbedtls/localcap-x509-sigcache.patch"
# X25519 through Project Everest's verified code (HACL*, in mbedTLS's
# 3rdparty/): an ECDHE (key + shared secret) takes 0.15 ms here against
# 1.0-1.3 ms on mbedTLS's generic bignums, and proxyd does one per leg of
# every new connection.  Debian's packaging leaves 3rdparty/ out of the
# build; put it back.  (Everest is Apache-2.0 only: mbedTLS is then taken
# under Apache-2.0, not GPL-2.0-or-later.)
patch -R -s -d "$src" -p1 --no-backup-if-mismatch <"$src/debian/patches/cmake-disable-3rdparty.patch"
python3 "$src/scripts/config.py" -f "$src/include/mbedtls/mbedtls_config.h" \
	set MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED

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

accel="" accel_libs=""
if [ $ipsecmb = yes ]; then
	accel="-DLOCALCAP_HAVE_IPSECMB"
	accel_libs="-lIPSec_MB"
fi

echo "mbedtls: building $(basename "$dsc" .dsc) into $prefix${isa:+ ($isa)}, ipsec-mb: $ipsecmb"
cmake -S "$src" -B "$apt/build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_INSTALL_PREFIX="$prefix" \
	-DCMAKE_POSITION_INDEPENDENT_CODE=ON \
	-DCMAKE_C_FLAGS="-O2 -g $isa $accel -fstack-protector-strong -D_FORTIFY_SOURCE=2" \
	-DCMAKE_C_STANDARD_LIBRARIES="$accel_libs" \
	-DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON \
	-DENABLE_TESTING=ON -DENABLE_PROGRAMS=OFF \
	-DMBEDTLS_FATAL_WARNINGS=OFF >/dev/null
cmake --build "$apt/build" -j "$(nproc)" --target mbedcrypto mbedx509 mbedtls everest >/dev/null

# mbedTLS's own test suites for what we change -- GCM (the NIST vectors
# among them), the cipher layer's GCM, the TLS record layer (test_suite_ssl
# encrypts and decrypts records with every suite), ECDH with Everest (the
# RFC 7748 vectors, legacy and PSA), chain verification with the signature
# cache (test_suite_x509parse) -- run on the library as built, with AES-GCM
# through ipsec-mb and through mbedTLS's own code.
suites="test_suite_gcm.aes128_en test_suite_gcm.aes128_de test_suite_gcm.aes192_en
	test_suite_gcm.aes192_de test_suite_gcm.aes256_en test_suite_gcm.aes256_de
	test_suite_gcm.misc test_suite_cipher.gcm test_suite_ssl test_suite_ecdh
	test_suite_psa_crypto test_suite_x509parse"
# shellcheck disable=SC2086
cmake --build "$apt/build" -j "$(nproc)" --target $suites >/dev/null
for aead in default mbedtls; do
	for t in $suites; do
		if ! (cd "$apt/build/tests" && env LOCALCAP_AEAD=$aead timeout 300 "./$t" >"$t.$aead.log" 2>&1); then
			tail -n 30 "$apt/build/tests/$t.$aead.log" >&2
			echo "mbedtls: $t failed (LOCALCAP_AEAD=$aead); not installing" >&2
			exit 1
		fi
		echo "mbedtls: $t (LOCALCAP_AEAD=$aead): $(tail -n 1 "$apt/build/tests/$t.$aead.log")"
	done
done

cmake --install "$apt/build" >/dev/null
# The libraries are linked statically: a program linking libmbedcrypto.a
# needs Everest and ipsec-mb after it.
echo "Libs.private: -leverest $accel_libs" >>"$prefix/lib/pkgconfig/mbedcrypto.pc"
echo "$stamp" >"$prefix/localcap.stamp"
rm -rf "$apt"

PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --atleast-version=$want mbedtls
echo "mbedtls: $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion mbedtls) installed in $prefix"
