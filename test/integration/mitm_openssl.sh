#!/bin/sh
# The TLS interception engine against real TLS stacks, on loopback only:
#   curl / openssl s_client -> mitm_proxy (the engine over sockets)
#   -> openssl s_server -WWW on 127.0.0.1 with a certificate from a test CA.
# Checks that curl and python3 trusting the localcap CA get the origin's files
# intact (TLS 1.3 and TLS 1.2 on the client leg, SHA-256 of 4 MiB), that curl
# offering h2 is served http/1.1 by an origin that prefers h2, that
# s_client verifies the forged chain and host name, that a client without
# our CA fails with a certificate error and the engine reports the
# rejection, that an origin with an untrusted certificate gets the client a
# 502 naming the reason, that both legs resume sessions, and that the driver
# exits cleanly.  Then AES-128-GCM and AES-256-GCM on both legs, TLS 1.3 and
# TLS 1.2, through ipsec-mb (where the CPU has it) and through mbedTLS's own
# code (LOCALCAP_AEAD=mbedtls): origins and clients offering only that suite,
# 4 MiB intact each way.  Needs no privileges.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
BUILD=${BUILD:-build}
DRV="$top/$BUILD/test/integration/mitm_proxy"
for tool in curl openssl sha256sum; do
	command -v $tool >/dev/null 2>&1 || { echo "skip: $tool not installed"; exit 77; }
done
[ -x "$DRV" ] || { echo "skip: $DRV not built (make test-bins)"; exit 77; }

T=$(mktemp -d /tmp/lc-mitm.XXXXXX)
PIDS=""
passed=0 failed=0

cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	sleep 0.1
	for p in $PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for COMMAND...: poll up to 30 s (sanitizer builds are slow).
wait_for() {
	i=0
	while [ $i -lt 600 ]; do
		"$@" && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
logged() { grep -qs -- "$2" "$T/$1"; }

# --- test PKI: the origins' CA, a good leaf, a self-signed one ----------------
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
(
	cd "$T" &&
	openssl req -x509 $EC -keyout tca.key -out tca.pem -subj '/CN=Origin Test CA' \
	    -days 2 -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign &&
	openssl req -new $EC -keyout up.key -out up.csr -subj '/CN=test.local' &&
	printf 'subjectAltName=DNS:test.local,IP:127.0.0.1\n' >san &&
	openssl x509 -req -in up.csr -CA tca.pem -CAkey tca.key -CAcreateserial -days 2 \
	    -extfile san -out up.pem &&
	openssl req -x509 $EC -keyout bad.key -out bad.pem -subj '/CN=test.local' -days 2 \
	    -addext subjectAltName=DNS:test.local
) >"$T/pki.log" 2>&1 || { cat "$T/pki.log"; echo "not ok - test PKI"; exit 1; }

mkdir "$T/www"
head -c 4194304 /dev/urandom >"$T/www/big.bin"
echo "hello from the origin" >"$T/www/index.txt"

# --- origins and drivers --------------------------------------------------------
# the origins prefer h2: they must not get it, the engine has no h2 yet
start_origin() {	# NAME CERT KEY
	(cd "$T/www" && exec openssl s_server -accept 127.0.0.1:0 -cert "$T/$2" \
	    -key "$T/$3" -WWW -alpn h2,http/1.1) >"$T/$1.out" 2>&1 </dev/null &
	PIDS="$PIDS $!"
}
start_origin good up.pem up.key
start_origin bad bad.pem bad.key
wait_for logged good.out ACCEPT && wait_for logged bad.out ACCEPT ||
	{ cat "$T"/*.out; echo "not ok - origins started"; exit 1; }
GOOD=$(sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$T/good.out")
BAD=$(sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$T/bad.out")

mkdir -m 700 "$T/state" "$T/state2"
"$DRV" "$T/state" 127.0.0.1 "$GOOD" --upstream-ca "$T/tca.pem" >"$T/d1.out" 2>"$T/d1.err" &
D1=$!
"$DRV" "$T/state2" 127.0.0.1 "$BAD" --upstream-ca "$T/tca.pem" >"$T/d2.out" 2>"$T/d2.err" &
D2=$!
PIDS="$PIDS $D1 $D2"
wait_for logged d1.out listening && wait_for logged d2.out listening ||
	{ cat "$T"/d*.err; echo "not ok - drivers started"; exit 1; }
P1=$(sed -n 's/^listening \([0-9]*\)/\1/p' "$T/d1.out")
P2=$(sed -n 's/^listening \([0-9]*\)/\1/p' "$T/d2.out")
CA="$T/state/localcap-ca-cert.pem"
CA2="$T/state2/localcap-ca-cert.pem"

# --- checks -----------------------------------------------------------------------
out=$(curl -sS -v --max-time 20 --cacert "$CA" --resolve "test.local:$P1:127.0.0.1" \
    "https://test.local:$P1/index.txt" 2>"$T/curl-v.err")
check "curl trusting the localcap CA gets the origin's page" \
	[ "$out" = "hello from the origin" ]
check "curl offered h2 and was served over http/1.1" \
	grep -Eq "ALPN.*accepted.*http/1.1" "$T/curl-v.err"
# curl lists AES-256-GCM first, which the client leg does not offer (the
# slowest suite in mbedTLS)
check "flow recorded: SNI, http/1.1, TLS 1.3 with ChaCha20 both legs, origin verified, the offer" \
	wait_for logged d1.err "sni=test.local alpn=http/1.1 client=TLSv1.3/TLS1-3-CHACHA20-POLY1305-SHA256 upstream=TLSv1.3/TLS1-3-CHACHA20-POLY1305-SHA256 verified=1 .*offer=h2,http/1.1"

if command -v python3 >/dev/null 2>&1; then
	py=$(python3 - "$CA" "$P1" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=20) as s:
    with ctx.wrap_socket(s, server_hostname="test.local") as t:
        t.sendall(b"GET /index.txt HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            b = t.recv(65536)
            if not b:
                break
            data += b
print(data.decode().splitlines()[-1])
EOF
	)
	check "python3's ssl module (verifying) gets the page" [ "$py" = "hello from the origin" ]
fi

sum=$(curl -sS --max-time 60 --tlsv1.2 --tls-max 1.2 --cacert "$CA" \
    --resolve "test.local:$P1:127.0.0.1" "https://test.local:$P1/big.bin" | sha256sum)
check "4 MiB download over TLS 1.2 on the client leg is intact" \
	[ "$sum" = "$(sha256sum <"$T/www/big.bin")" ]
check "client leg was TLS 1.2" wait_for logged d1.err "client=TLSv1.2/"

# eight flows at once through the one driver (s_server serves them in turn)
i=0
while [ $i -lt 8 ]; do
	curl -sS --max-time 120 --cacert "$CA" --resolve "test.local:$P1:127.0.0.1" \
	    "https://test.local:$P1/big.bin" 2>/dev/null | sha256sum >"$T/par.$i" &
	i=$((i + 1))
done
wait_for sh -c 'for f in "$1"/par.*; do [ -s "$f" ] || exit 1; done' _ "$T"
sleep 0.2
want=$(sha256sum <"$T/www/big.bin")
check "eight parallel 4 MiB downloads are intact" \
	sh -c 'for f in "$1"/par.*; do [ "$(cat "$f")" = "$2" ] || exit 1; done' _ "$T" "$want"

s_out=$(openssl s_client -connect "127.0.0.1:$P1" -servername test.local -CAfile "$CA" \
    -verify_return_error -verify_hostname test.local </dev/null 2>&1)
check "openssl s_client verifies the forged chain and host name" \
	sh -c 'printf "%s" "$1" | grep -q "Verify return code: 0 (ok)"' _ "$s_out"
check "the client leg's key exchange is X25519 (Everest's code in our mbedTLS)" \
	sh -c 'printf "%s" "$1" | grep -q "Server Temp Key: X25519"' _ "$s_out"

curl -sS --max-time 20 --resolve "test.local:$P1:127.0.0.1" \
    "https://test.local:$P1/index.txt" >/dev/null 2>"$T/curl-noca.err"
rc=$?
check "curl without the localcap CA fails with a certificate error (exit 60)" [ "$rc" -eq 60 ]
check "the engine reports that the client rejected our certificate" \
	wait_for logged d1.err "error=client rejected our certificate reason=\"client TLS handshake for test.local: alert 48 (unknown_ca) after our certificate\""

resp=$(curl -sS --max-time 20 --cacert "$CA2" --resolve "test.local:$P2:127.0.0.1" \
    -w '\n%{http_code}' "https://test.local:$P2/index.txt" 2>&1)
check "an untrusted origin gets the client a 502 naming the reason" \
	sh -c 'printf "%s" "$1" | tail -n 1 | grep -qx 502 &&
	    printf "%s" "$1" | grep -q "upstream certificate of test.local"' _ "$resp"
check "the refused origin is recorded as such" \
	wait_for logged d2.err "error=upstream certificate not trusted"

# a TLS 1.1 client (if this OpenSSL still sends one) is told so at once
s11=$(openssl s_client -connect "127.0.0.1:$P1" -servername test.local -tls1_1 \
    -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1)
if printf '%s' "$s11" | grep -q "alert number 70"; then
	check "a TLS 1.1-only client gets protocol_version and the reason is recorded" \
		wait_for logged d1.err 'reason="client offers only TLS 1.1 or older'
else
	echo "ok - # skip: this openssl sends no TLS 1.1 hello"
fi

openssl s_client -connect "127.0.0.1:$P1" -servername test.local -CAfile "$CA" \
    -tls1_2 -reconnect </dev/null >"$T/reconnect.out" 2>&1
check "TLS 1.2 client leg resumes (s_client -reconnect)" grep -q "^Reused, TLSv1.2" "$T/reconnect.out"
# TLS 1.3 tickets come after the handshake: read a response before leaving
printf 'GET /index.txt HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$P1" \
    -servername test.local -CAfile "$CA" -sess_out "$T/sess.pem" -ign_eof >/dev/null 2>&1
printf 'GET /index.txt HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$P1" \
    -servername test.local -CAfile "$CA" -sess_in "$T/sess.pem" -ign_eof \
    >"$T/resume13.out" 2>&1
check "TLS 1.3 client leg resumes with a ticket" grep -q "^Reused, TLSv1.3" "$T/resume13.out"
check "the response came through the resumed session" grep -q "hello from the origin" "$T/resume13.out"
check "both legs resumed, as recorded" wait_for logged d1.err "resumed=1/1"

# --- AES-GCM, both sizes, both TLS versions, both implementations -----------------
# One origin per suite and version (only that suite on offer), one driver per
# origin and implementation (all with the first driver's CA, loaded from its
# state dir); the client offers only the same suite.
aes_run() {	# BITS TLSVER AEAD
	bits=$1 v=$2 aead=$3 name="o$1v$2"
	if [ "$v" = 13 ]; then
		oargs="-ciphersuites TLS_AES_${bits}_GCM_SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
		cargs="--tlsv1.3 --tls13-ciphers TLS_AES_${bits}_GCM_SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
		want="TLSv1.3/TLS1-3-AES-${bits}-GCM-SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
	else
		oargs="-tls1_2 -cipher ECDHE-ECDSA-AES${bits}-GCM-SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
		cargs="--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES${bits}-GCM-SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
		want="TLSv1.2/TLS-ECDHE-ECDSA-WITH-AES-${bits}-GCM-SHA$([ "$bits" = 128 ] && echo 256 || echo 384)"
	fi
	if [ ! -s "$T/$name.port" ]; then
		# shellcheck disable=SC2086
		(cd "$T/www" && exec openssl s_server -accept 127.0.0.1:0 -cert "$T/up.pem" \
		    -key "$T/up.key" -WWW $oargs) >"$T/$name.out" 2>&1 </dev/null &
		PIDS="$PIDS $!"
		wait_for logged "$name.out" ACCEPT ||
			{ cat "$T/$name.out"; echo "not ok - origin $name started"; failed=$((failed + 1)); return; }
		sed -n 's/^ACCEPT 127.0.0.1:\([0-9]*\).*/\1/p' "$T/$name.out" >"$T/$name.port"
	fi
	d="$name-$aead"
	if [ "$aead" = mbedtls ]; then
		LOCALCAP_AEAD=mbedtls "$DRV" "$T/state" 127.0.0.1 "$(cat "$T/$name.port")" \
		    --upstream-ca "$T/tca.pem" >"$T/$d.out" 2>"$T/$d.err" &
	else
		"$DRV" "$T/state" 127.0.0.1 "$(cat "$T/$name.port")" \
		    --upstream-ca "$T/tca.pem" >"$T/$d.out" 2>"$T/$d.err" &
	fi
	dp=$!
	PIDS="$PIDS $dp"
	wait_for logged "$d.out" listening ||
		{ cat "$T/$d.err"; echo "not ok - driver $d started"; failed=$((failed + 1)); return; }
	port=$(sed -n 's/^listening \([0-9]*\)/\1/p' "$T/$d.out")
	impl=$(sed -n 's/^aes-gcm //p' "$T/$d.err")
	# shellcheck disable=SC2086
	sum=$(curl -sS --max-time 60 $cargs --cacert "$CA" \
	    --resolve "test.local:$port:127.0.0.1" "https://test.local:$port/big.bin" | sha256sum)
	check "AES-$bits-GCM, TLS $v both legs, through $impl: 4 MiB intact" \
		[ "$sum" = "$want_sum" ]
	check "AES-$bits-GCM, TLS $v, through $impl: both legs as recorded" \
		wait_for logged "$d.err" "client=$want upstream=$want "
	kill "$dp"
	wait "$dp"
	check "AES-$bits-GCM, TLS $v, through $impl: driver exits 0" [ $? -eq 0 ]
}
want_sum=$(sha256sum <"$T/www/big.bin")
for aead in default mbedtls; do
	for v in 13 12; do
		aes_run 128 $v $aead
		aes_run 256 $v $aead
	done
done
check "LOCALCAP_AEAD=mbedtls drivers used mbedTLS's AES-GCM" \
	sh -c 'for f in "$1"/o*-mbedtls.err; do grep -qx "aes-gcm mbedtls" "$f" || exit 1; done' _ "$T"

kill "$D1" "$D2"
wait "$D1"; rc1=$?
wait "$D2"; rc2=$?
check "drivers exit 0 on SIGTERM (no sanitizer report)" [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]

echo "mitm_openssl: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
	echo "--- driver 1"; cat "$T/d1.err"
	echo "--- driver 2"; cat "$T/d2.err"
fi
[ "$failed" -eq 0 ]
