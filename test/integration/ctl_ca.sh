#!/bin/sh
# localcapctl ca: path, export (PEM and DER), install and uninstall.  proxyd
# makes the CA in a temporary state dir; install goes into a scratch trust
# root (LOCALCAP_TRUST_ROOT: update-ca-certificates runs on that tree only)
# and a scratch NSS database in a scratch HOME, never into the host's.
# The installed bundle must let openssl verify a certificate the CA signed;
# uninstall must remove exactly what install added.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/test/lib.sh"
B="$top/${BUILD:-build}"
T=$(mktemp -d /tmp/lc-ca.XXXXXX)
chmod 755 "$T"
PX=""
passed=0 failed=0
cleanup() {
	[ -n "$PX" ] && kill "$PX" 2>/dev/null
	wait 2>/dev/null
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for t in update-ca-certificates openssl; do
	command -v "$t" >/dev/null || { echo "ctl_ca: needs $t; skipped"; exit 77; }
done
ctl() { "$B/bin/localcapctl" -s "$T/state" "$@"; }

out=$(ctl ca path 2>&1); rc=$?
check "no CA yet: exit 1, says proxyd makes it ($out)" sh -c \
    "[ $rc -eq 1 ] && echo \"\$1\" | grep -q 'creates it on its first start'" sh "$out"

"$B/bin/proxyd" -f -r "$T" -s "$T/state" >"$T/proxyd.log" 2>&1 &
PX=$!
i=0; while [ ! -s "$T/state/localcap-ca-cert.pem" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
kill "$PX"; wait "$PX"; PX=""
check "proxyd created the CA: key 0600, certificate 0644" sh -c \
    "[ \$(stat -c %a '$T/state/localcap-ca.pem') = 600 ] &&
     [ \$(stat -c %a '$T/state/localcap-ca-cert.pem') = 644 ]"
check "ca path names the certificate" test "$(ctl ca path)" = "$T/state/localcap-ca-cert.pem"
ctl ca export >"$T/ca.pem"
check "ca export is the PEM, a CA certificate" sh -c \
    "openssl x509 -in '$T/ca.pem' -noout -text | grep -q 'CA:TRUE'"
ctl ca export --der >"$T/ca.der"
check "ca export --der is the same certificate in DER" sh -c \
    "[ \"\$(openssl x509 -inform DER -in '$T/ca.der' -noout -fingerprint -sha256)\" = \
       \"\$(openssl x509 -in '$T/ca.pem' -noout -fingerprint -sha256)\" ]"

# A scratch trust root with an empty system store, and a scratch NSS db.
R="$T/root"
mkdir -p "$R/etc/ssl/certs" "$R/usr/share/ca-certificates/test" "$R/etc/ca-certificates/update.d"
# One unrelated CA in the store, as a real system has many.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=unrelated-ca -keyout "$T/k0" \
    -out "$R/usr/share/ca-certificates/test/unrelated.crt" 2>/dev/null
echo "test/unrelated.crt" >"$R/etc/ca-certificates.conf"
HOMEDIR="$T/home"
if command -v certutil >/dev/null; then
	mkdir -p "$HOMEDIR/.pki/nssdb"
	certutil -N -d "sql:$HOMEDIR/.pki/nssdb" --empty-password
fi
out=$(LOCALCAP_TRUST_ROOT="$R" HOME="$HOMEDIR" SUDO_USER= ctl ca install 2>&1); rc=$?
check "ca install succeeds ($rc: $out)" test $rc -eq 0
check "the system bundle now holds the CA" sh -c \
    "grep -q \"\$(sed -n 2p '$T/ca.pem')\" '$R/etc/ssl/certs/ca-certificates.crt'"
# A leaf the CA signs is trusted by whoever uses the bundle.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=other -keyout "$T/k" -out "$T/other.pem" 2>/dev/null
check "the bundle does not trust an unrelated certificate (the check can fail)" sh -c \
    "! openssl verify -CAfile '$R/etc/ssl/certs/ca-certificates.crt' '$T/other.pem' >/dev/null 2>&1"
check "the bundle trusts the CA itself" sh -c \
    "openssl verify -CAfile '$R/etc/ssl/certs/ca-certificates.crt' '$T/ca.pem' >/dev/null"
if command -v certutil >/dev/null; then
	check "the NSS database has it as a trusted CA" sh -c \
	    "certutil -L -d 'sql:$HOMEDIR/.pki/nssdb' | grep -q 'localcap CA .*C,,'"
fi
# The record is root's, not in the state dir proxyd's user owns; a record
# planted there (by that user) is not what uninstall reads.
rec=$(ls "$R/var/lib/localcap-ca/"installed.* 2>/dev/null)
check "the install record is root's, 0600 in a 0700 dir, not in the state dir ($rec)" sh -c \
    "[ -n '$rec' ] && [ \"\$(stat -c '%a %u' '$rec')\" = '600 0' ] &&
     [ \$(stat -c %a '$R/var/lib/localcap-ca') = 700 ] && [ ! -e '$T/state/ca-installed' ]"
echo keep >"$T/victim"
printf 'file %s\nfile %s\n' "$T/victim" \
    "$R/usr/local/share/ca-certificates/../../../../victim" >"$T/state/ca-installed"
out=$(LOCALCAP_TRUST_ROOT="$R" HOME="$HOMEDIR" SUDO_USER= ctl ca uninstall 2>&1); rc=$?
check "ca uninstall succeeds ($rc)" test $rc -eq 0
check "...and a record planted in the state dir deleted nothing" test -e "$T/victim"
check "the bundle no longer holds it, the file is gone, the rest stays" sh -c \
    "! grep -q \"\$(sed -n 2p '$T/ca.pem')\" '$R/etc/ssl/certs/ca-certificates.crt' &&
     ! ls '$R/usr/local/share/ca-certificates/'localcap-* >/dev/null 2>&1 &&
     grep -q \"\$(sed -n 2p '$R/usr/share/ca-certificates/test/unrelated.crt')\" \
        '$R/etc/ssl/certs/ca-certificates.crt'"
if command -v certutil >/dev/null; then
	check "...and the NSS database no longer has it" sh -c \
	    "! certutil -L -d 'sql:$HOMEDIR/.pki/nssdb' | grep -q 'localcap CA'"
fi
# With no root record, an older localcapctl's record in the state dir is
# read, but only what install creates is removed from it.
out=$(LOCALCAP_TRUST_ROOT="$R" ctl ca uninstall 2>&1); rc=$?
check "a planted state-dir record is refused line by line (exit $rc)" sh -c \
    "[ $rc -ne 0 ] && echo \"\$1\" | grep -q 'which ca install does not create; left alone'" sh "$out"
check "...and the files it named are still there" test -e "$T/victim"
rm -f "$T/state/ca-installed"
out=$(LOCALCAP_TRUST_ROOT="$R" ctl ca uninstall 2>&1)
check "uninstall again: nothing to do, exit 0" sh -c \
    "echo \"\$1\" | grep -q 'nothing to uninstall'" sh "$out"
out=$(ctl ca frobnicate 2>&1); rc=$?
check "an unknown ca command: exit 2" test $rc -eq 2

echo "ctl_ca: $passed passed, $failed failed"
[ $failed -eq 0 ]
