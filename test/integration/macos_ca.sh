#!/bin/sh
# localcapctl ca install/uninstall the macOS way, run on Linux: the System
# keychain through security(1) (ctl/ca_keychain.c), selected here with
# LOCALCAP_CA_STORE=keychain (the default on macOS).  A stand-in
# `security` on PATH records its argv; the checks are that install runs
#   security add-trusted-cert -d -r trustRoot -k <keychain> <CA PEM>
# and records the certificate's SHA-1 (the same openssl computes), that
# uninstall runs remove-trusted-cert -d <PEM> and delete-certificate -Z
# <that SHA-1> <keychain> and forgets the record, that a failing security
# fails the command, and that a tampered record deletes nothing.  What the
# real security(1) does with these arguments is for a Mac (docs/macos.md).
# Root only (the record lives in a root-only directory); touches nothing
# outside its temp dir (LOCALCAP_TRUST_ROOT).
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
B="$top/${BUILD:-build}"
[ "$(id -u)" -eq 0 ] || { echo "macos_ca: needs root; skipped"; exit 77; }
command -v openssl >/dev/null || { echo "macos_ca: needs openssl; skipped"; exit 77; }
T=$(mktemp -d /tmp/lc-mxca.XXXXXX)
chmod 755 "$T"
PX=""
passed=0 failed=0
cleanup() {
	[ -n "$PX" ] && kill "$PX" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$B/bin/proxyd" -f -r "$T" -s "$T/state" >"$T/proxyd.log" 2>&1 &
PX=$!
i=0; while [ ! -s "$T/state/localcap-ca-cert.der" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill "$PX"; wait "$PX"; PX=""
PEM="$T/state/localcap-ca-cert.pem"
SHA1=$(openssl x509 -in "$PEM" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
R="$T/root"
KC="$R/Library/Keychains/System.keychain"
mkdir -p "$T/fakebin" "$R"
# The stand-in: one line of argv per call; exits $SECURITY_RC (default 0).
cat >"$T/fakebin/security" <<'SH'
#!/bin/sh
printf '%s\n' "$*" >>"$SECURITY_LOG"
exit "${SECURITY_RC:-0}"
SH
chmod 755 "$T/fakebin/security"
ctl() {
	PATH="$T/fakebin:$PATH" SECURITY_LOG="$T/argv" LOCALCAP_CA_STORE=keychain \
	    LOCALCAP_TRUST_ROOT="$R" "$B/bin/localcapctl" -s "$T/state" "$@"
}

out=$(ctl ca install 2>&1); rc=$?
check "ca install succeeds ($rc: $out)" test $rc -eq 0
check "it ran security add-trusted-cert -d -r trustRoot -k <keychain> <PEM>" \
    test "$(cat "$T/argv")" = "add-trusted-cert -d -r trustRoot -k $KC $PEM"
check "it names the certificate by the SHA-1 openssl computes ($SHA1)" sh -c \
    "echo \"\$1\" | grep -q \"SHA-1 $SHA1\"" sh "$out"
rec=$(ls "$R/var/lib/localcap-ca/"installed.* 2>/dev/null | head -n 1)
check "the install record holds that SHA-1" grep -qx "keychain $SHA1" "$rec"
check "no Debian store was touched" test ! -e "$R/usr/local/share/ca-certificates"

: >"$T/argv"
out=$(ctl ca uninstall 2>&1); rc=$?
check "ca uninstall succeeds ($rc: $out)" test $rc -eq 0
check "it removed the trust setting, then the certificate by its SHA-1" test \
    "$(cat "$T/argv")" = "remove-trusted-cert -d $PEM
delete-certificate -Z $SHA1 $KC"
check "the record is gone" test ! -e "$rec"
: >"$T/argv"
out=$(ctl ca uninstall 2>&1); rc=$?
check "a second uninstall has nothing to do and runs nothing" sh -c \
    "[ $rc -eq 0 ] && echo \"\$1\" | grep -q 'nothing to uninstall' && [ ! -s '$T/argv' ]" sh "$out"

out=$(SECURITY_RC=1 ctl ca install 2>&1); rc=$?
check "a failing security fails install ($rc: $out)" test $rc -ne 0
rec=$(ls "$R/var/lib/localcap-ca/"installed.* 2>/dev/null | head -n 1)
check "...and records no certificate" sh -c "! grep -q '^keychain' '$rec'"

# A tampered record: uninstall must delete nothing it names.
printf 'state %s\nkeychain -a\n' "$T/state" >"$rec"
: >"$T/argv"
out=$(ctl ca uninstall 2>&1); rc=$?
check "a record naming no SHA-1 is refused ($rc: $out)" sh -c \
    "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'left alone'" sh "$out"
check "...and security was not run" test ! -s "$T/argv"
out=$(LOCALCAP_CA_STORE=windows "$B/bin/localcapctl" -s "$T/state" ca install 2>&1); rc=$?
check "an unknown LOCALCAP_CA_STORE is an error ($rc)" test $rc -eq 2

echo "macos_ca: $passed passed, $failed failed"
[ $failed -eq 0 ]
