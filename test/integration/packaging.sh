#!/bin/sh
# Packaging checks (packaging/, man/, packaging/install.mk):
#  - every man page is clean under `mandoc -T lint -W warning` and renders
#    with `man -l`;
#  - the systemd units pass `systemd-analyze verify` with no message at all,
#    and `systemd-analyze security --offline=yes` rates netstackd and proxyd
#    "OK" or better (the agreed threshold; redirectord's score is printed);
#  - sysusers.d and tmpfiles.d create the localcap user/group and the
#    runtime and state directories with the right owners and modes (in a
#    scratch root, --root);
#  - the daemons (and the viewer, webd) start and connect when run the way
#    the units run them:
#    each unit's CapabilityBoundingSet (parsed from the unit), no_new_privs,
#    umask 077, and netstackd in a network namespace of its own
#    (PrivateNetwork=yes), then run, reload and stop cleanly, and every
#    system call they made (strace) is in their unit's SystemCallFilter=.
#    This is as close to the units as we get without booting systemd; what
#    it does not cover is in docs/packaging.md;
#  - `make install DESTDIR=...` puts binaries, man pages, units, sysusers
#    and tmpfiles where they belong, with the daemons' paths in the units.
#
# Needs root (the daemons make a TUN; sysusers/tmpfiles chown).  Debian
# packages: mandoc, man-db, systemd (installed here if missing), strace and
# python3 (the system call check is skipped without them); exits 77
# only if they are missing and cannot be installed.  Everything it creates
# (a network namespace, a child cgroup, scratch directories) is removed on
# every exit path.
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "packaging: needs root (TUN, chown in a scratch root); skipped"
	exit 77
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
# shellcheck source=test/lib.sh
. "$top/test/lib.sh"

need_tools() {
	for t in mandoc man systemd-analyze systemd-sysusers systemd-tmpfiles \
	    setpriv unshare nsenter; do
		command -v "$t" >/dev/null 2>&1 || return 1
	done
}
if ! need_tools && command -v apt-get >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q mandoc man-db \
	    systemd >/dev/null 2>&1
fi
if ! need_tools; then
	echo "packaging: needs mandoc, man-db and systemd (apt-get install" \
	    "mandoc man-db systemd); skipped"
	exit 77
fi

NS="lc-pkg-$$"
T=$(mktemp -d /tmp/lc-pkg.XXXXXX)
chmod 755 "$T"
CG=""
PIDS=""
passed=0 failed=0

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	kill_netns "$NS"
	[ -n "$CG" ] && remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

skip() { echo "SKIP - $*"; }

UNITS="localcap-redirectord.service localcap-netstackd.service localcap-proxyd.service localcap-webd.service"

# --- man pages -----------------------------------------------------------------
for m in "$top"/man/*.[1-9]; do
	name=$(basename "$m")
	if out=$(mandoc -T lint -W warning "$m" 2>&1) && [ -z "$out" ]; then
		ok "mandoc lint clean: $name"
	else
		not_ok "mandoc lint: $name: $out"
	fi
	# man -l through man-db and groff: the page a user actually sees.
	if err=$(MANWIDTH=80 man -l "$m" 2>&1 >"$T/rendered") && [ -z "$err" ] &&
	    grep -q "SEE ALSO" "$T/rendered"; then
		ok "man -l renders $name"
	else
		not_ok "man -l $name: $err"
	fi
done
for p in localcapctl.8 redirectord.8 netstackd.8 proxyd.8 webd.8 localcap.conf.5; do
	check "man page $p exists" [ -f "$top/man/$p" ]
done
# The pages describe what exists: every long option a program's --help
# prints, and every localcapctl command, is in its page.
for d in redirectord netstackd proxyd webd localcapctl; do
	page=$(mandoc -T ascii "$top/man/$d.8" 2>/dev/null | col -b)
	missing=""
	for o in $("$B/bin/$d" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		printf '%s\n' "$page" | grep -q -- "$o" || missing="$missing $o"
	done
	if [ "$d" = localcapctl ]; then
		for c in $("$B/bin/$d" --help | sed -n '/^commands:/,/^options:/p' |
		    awk '/^  [a-z]/ { print $1 }'); do
			printf '%s\n' "$page" | grep -qw -- "$c" || missing="$missing $c"
		done
	fi
	check "$d.8 describes every option${missing:+ (missing:$missing)}" [ -z "$missing" ]
done

# --- launchd plists: well-formed, the keys launchd needs ---------------------------
# (Nothing here can load them; docs/packaging.md says so.)
for p in "$top"/packaging/launchd/*.plist; do
	if ! command -v python3 >/dev/null 2>&1; then
		skip "no python3: $(basename "$p") not parsed"
		continue
	fi
	if out=$(python3 - "$p" 2>&1 <<'EOF'
import plistlib, sys
d = plistlib.load(open(sys.argv[1], "rb"))
assert d["Label"] + ".plist" == sys.argv[1].rsplit("/", 1)[1], "Label/file name"
assert d["ProgramArguments"][0].startswith("/usr/local/libexec/localcap/")
assert "-f" in d["ProgramArguments"], "not in the foreground"
EOF
	); then
		ok "launchd plist parses, Label and program right: $(basename "$p")"
	else
		not_ok "launchd plist $(basename "$p"): $out"
	fi
done

# --- make install ------------------------------------------------------------------
# Until the Makefile includes packaging/install.mk, check its rules through
# a wrapper that does.
DEST="$T/root"
if grep -q 'packaging/install.mk' "$top/Makefile"; then
	mk="-f Makefile"
else
	skip "the Makefile does not include packaging/install.mk yet:" \
	    "checking it through a wrapper Makefile"
	printf 'include Makefile\ninclude packaging/install.mk\n' >"$T/wrapper.mk"
	mk="-f $T/wrapper.mk"
fi
# shellcheck disable=SC2086
if (cd "$top" && make --no-print-directory $mk install DESTDIR="$DEST" \
    PREFIX=/usr SANITIZE="${SANITIZE:-}") >"$T/install.log" 2>&1; then
	ok "make install DESTDIR=... PREFIX=/usr"
else
	not_ok "make install: $(tail -n 5 "$T/install.log")"
fi
for f in bin/localcapctl libexec/localcap/redirectord libexec/localcap/netstackd \
    libexec/localcap/proxyd libexec/localcap/webd share/man/man8/webd.8 \
    share/man/man8/localcapctl.8 \
    share/man/man8/redirectord.8 share/man/man8/netstackd.8 \
    share/man/man8/proxyd.8 share/man/man5/localcap.conf.5 \
    lib/systemd/system/localcap.target lib/sysusers.d/localcap.conf \
    lib/tmpfiles.d/localcap.conf; do
	check "installed /usr/$f" [ -f "$DEST/usr/$f" ]
done
for u in $UNITS; do
	f="$DEST/usr/lib/systemd/system/$u"
	d=${u#localcap-}; d=${d%.service}
	if grep -q "^ExecStart=/usr/libexec/localcap/$d -f" "$f" 2>/dev/null; then
		ok "installed $u runs /usr/libexec/localcap/$d"
	else
		not_ok "$u: ExecStart not /usr/libexec/localcap/$d: $(grep ExecStart "$f" 2>&1)"
	fi
done
for x in "$DEST"/usr/libexec/localcap/* "$DEST"/usr/bin/localcapctl; do
	[ -x "$x" ] || not_ok "not executable: $x"
done

# --- systemd-analyze verify ----------------------------------------------------------
# The units as installed, with the daemons and man pages of the staged
# install (verify checks that ExecStart= is executable and that the
# Documentation= man pages exist).  Any message at all is a failure:
# verify exits 0 on unknown keys.
V="$T/units"
mkdir -p "$V"
for u in $UNITS localcap.target; do
	sed "s|/usr/local/libexec/localcap/|$DEST/usr/libexec/localcap/|g" \
	    "$top/packaging/systemd/$u" >"$V/$u"
done
if out=$(cd "$V" && MANPATH="$DEST/usr/share/man" systemd-analyze verify \
    --man=yes ./localcap.target ./localcap-*.service 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify: no message for any unit"
else
	not_ok "systemd-analyze verify: $out"
fi
# The check must be able to fail: a misspelt key is reported.
sed 's/^LockPersonality=/LockPersonalty=/' "$V/localcap-proxyd.service" >"$V/bad.service"
out=$(cd "$V" && systemd-analyze verify --man=no ./bad.service 2>&1)
case $out in
*"Unknown key"*) ok "systemd-analyze verify catches a misspelt key" ;;
*) not_ok "systemd-analyze verify let a misspelt key through: $out" ;;
esac
rm -f "$V/bad.service"

# --- systemd-analyze security ----------------------------------------------------------
# The tool's scale (exposure 0.0-10.0): PERFECT 0.0, SAFE < 1.0, OK < 5.0,
# MEDIUM < 7.5, EXPOSED < 9.0, UNSAFE < 10.0, DANGEROUS 10.0.
for u in $UNITS; do
	line=$(cd "$V" && systemd-analyze security --offline=yes "./$u" 2>&1 |
	    grep 'Overall exposure level')
	score=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
	echo "# exposure $u: ${score:-?}"
	case $u in
	*redirectord*) check "security: $u scored (${score:-$line})" [ -n "$score" ] ;;
	*)	case ${score#* } in
		PERFECT|SAFE|OK) ok "security: $u is OK or better ($score)" ;;
		*) not_ok "security: $u above the OK threshold: ${score:-$line}" ;;
		esac ;;
	esac
done

# --- sysusers.d and tmpfiles.d, in a scratch root -------------------------------------
R="$T/sysroot"
mkdir -p "$R/etc" "$R/usr/lib/sysusers.d" "$R/usr/lib/tmpfiles.d"
cp "$DEST/usr/lib/sysusers.d/localcap.conf" "$R/usr/lib/sysusers.d/" 2>/dev/null ||
    cp "$top/packaging/systemd/localcap.sysusers" "$R/usr/lib/sysusers.d/localcap.conf"
cp "$DEST/usr/lib/tmpfiles.d/localcap.conf" "$R/usr/lib/tmpfiles.d/" 2>/dev/null ||
    cp "$top/packaging/systemd/localcap.tmpfiles" "$R/usr/lib/tmpfiles.d/localcap.conf"
if systemd-sysusers --root="$R" >"$T/sysusers.log" 2>&1 &&
    grep -q '^localcap:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$R/etc/passwd" &&
    grep -q '^localcap-netstack:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$R/etc/passwd" &&
    grep -q '^localcap:x:' "$R/etc/group" && grep -q '^localcap-admin:x:[0-9]*:$' "$R/etc/group"; then
	ok "sysusers.d creates users localcap and localcap-netstack, and an empty localcap-admin group"
else
	not_ok "sysusers.d: $(cat "$T/sysusers.log")"
fi
# The admin group must hold no service user, by uid or primary group.
adm=$(sed -n 's/^localcap-admin:x:\([0-9]*\):.*/\1/p' "$R/etc/group")
check "no service user has localcap-admin ($adm) as its group" sh -c \
    "[ -n '$adm' ] && ! grep -q '^localcap[a-z-]*:x:[0-9]*:$adm:' '$R/etc/passwd'"
if systemd-tmpfiles --create --root="$R" >"$T/tmpfiles.log" 2>&1; then
	ok "tmpfiles.d applies cleanly"
else
	not_ok "tmpfiles.d: $(cat "$T/tmpfiles.log")"
fi
perm() { stat -c '%a %U %G' "$1" 2>&1; }
# The daemons refuse a runtime dir writable by group or others, or owned by
# anyone but root and themselves.
check "tmpfiles: /run/localcap is 0755 root:root (is $(perm "$R/run/localcap"))" \
    [ "$(perm "$R/run/localcap")" = "755 root root" ]
check "tmpfiles: /var/lib/localcap is 0700 localcap:localcap (is $(perm "$R/var/lib/localcap"))" \
    [ "$(stat -c %a "$R/var/lib/localcap")" = 700 ] &&
    grep -q "^localcap:x:$(stat -c %u "$R/var/lib/localcap"):$(stat -c %g "$R/var/lib/localcap"):" \
    "$R/etc/passwd"

# --- the daemons under the units' credentials -------------------------------------------
# CapabilityBoundingSet=CAP_A CAP_B -> setpriv's "-all,+a,+b".
bounding() {
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$top/packaging/systemd/$1" | tail -n 1)
	printf -- '-all'
	for c in $caps; do
		printf ',+%s' "$(printf '%s' "${c#CAP_}" | tr '[:upper:]' '[:lower:]')"
	done
}
if ! CG=$(make_cgroup "localcap-test-pkg-$$"); then
	CG=""
	not_ok "no cgroup v2 to attach capture to"
elif ! ip netns add "$NS"; then
	not_ok "cannot create network namespace $NS"
else
	ip -n "$NS" link set lo up
	RT="$T/run"
	mkdir -m 0755 "$RT"
	inns() { nsenter --net="/run/netns/$NS" "$@"; }
	# as_unit UNIT [NETNS-WRAPPER...] -- CMD...: CMD with the unit's
	# bounding set, no_new_privs and umask; a private network namespace
	# (unshare --net) has to be made before the capabilities go.
	as_unit() {
		u=$1; shift
		wrap=""
		while [ "$1" != "--" ]; do wrap="$wrap $1"; shift; done
		shift
		# shellcheck disable=SC2086
		inns $wrap setpriv --bounding-set "$(bounding "$u")" --no-new-privs \
		    sh -c 'umask 077; exec "$@"' sh "$@"
	}
	# Under strace when we have it: the system calls they make are then
	# checked against each unit's SystemCallFilter= below.
	tracer() { [ -n "$TRACING" ] && echo "strace -f -qq -o $T/$1.strace"; }
	TRACING=""
	command -v strace >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 &&
	    TRACING=1
	# proxyd switches to the user its unit names (--user); on a host
	# without that user, to nobody.  Its state dir is that user's, as
	# localcap.tmpfiles makes it.
	PXUSER=$(sed -n 's/^ExecStart=.* --user \([a-z_][a-z0-9_-]*\).*/\1/p' \
	    "$top/packaging/systemd/localcap-proxyd.service")
	check "proxyd's unit switches it to the localcap user" [ "$PXUSER" = localcap ]
	id -u "$PXUSER" >/dev/null 2>&1 || PXUSER=nobody
	PXUID=$(id -u "$PXUSER")
	# netstackd to a user of its own too; redirectord and proxyd give it
	# data.sock and flow.sock (--netstack-user in all three units).
	NSUSER=$(sed -n 's/^ExecStart=.* --user \([a-z_][a-z0-9_-]*\).*/\1/p' \
	    "$top/packaging/systemd/localcap-netstackd.service")
	check "netstackd's unit switches it to the localcap-netstack user" \
	    [ "$NSUSER" = localcap-netstack ]
	for u in redirectord proxyd; do
		check "$u's unit lets netstackd's user onto its socket" \
		    grep -q "^ExecStart=.* --netstack-user $NSUSER " \
		    "$top/packaging/systemd/localcap-$u.service"
	done
	for u in netstackd proxyd; do
		check "$u's unit hides /run but /run/localcap" sh -c \
		    "grep -q '^TemporaryFileSystem=/run\$' '$top/packaging/systemd/localcap-$u.service' &&
		     grep -q '^BindPaths=/run/localcap\$' '$top/packaging/systemd/localcap-$u.service'"
	done
	getent passwd "$NSUSER" >/dev/null 2>&1 || useradd --system --user-group \
	    --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
	    "$NSUSER" >/dev/null 2>&1 || NSUSER=nobody
	NSUID=$(id -u "$NSUSER")
	mkdir -m 0700 "$T/state"
	chown "$PXUSER:" "$T/state"
	# shellcheck disable=SC2046
	as_unit localcap-proxyd.service -- $(tracer proxyd) "$B/bin/proxyd" -f \
	    -r "$RT" -s "$T/state" -u "$PXUSER" --netstack-user "$NSUSER" \
	    >"$T/proxyd.log" 2>&1 &
	PIDS="$PIDS $!"
	# shellcheck disable=SC2046
	as_unit localcap-netstackd.service unshare --net -- $(tracer netstackd) \
	    "$B/bin/netstackd" -f -r "$RT" -u "$NSUSER" >"$T/netstackd.log" 2>&1 &
	PIDS="$PIDS $!"
	# shellcheck disable=SC2046
	as_unit localcap-redirectord.service -- $(tracer redirectord) \
	    "$B/bin/redirectord" -f -r "$RT" -g "$CG" --netstack-user "$NSUSER" \
	    >"$T/redirectord.log" 2>&1 &
	PIDS="$PIDS $!"
	# With something attached, capture is on only once all three are up
	# and connected (netstackd reports proxyd reachable to redirectord).
	i=0
	while [ $i -lt 100 ]; do
		"$B/bin/localcapctl" -r "$RT" attach lc-pkg-nothing >/dev/null 2>&1 &&
		    break
		sleep 0.1; i=$((i + 1))
	done
	i=0
	while [ $i -lt 100 ]; do
		st=$("$B/bin/localcapctl" -r "$RT" status 2>&1)
		printf '%s\n' "$st" | grep -q '^capture *on' && break
		sleep 0.1; i=$((i + 1))
	done
	if printf '%s\n' "$st" | grep -q '^capture *on'; then
		ok "the three daemons connect under the units' credentials"
	else
		not_ok "daemons under the units' credentials: $st"
		for d in redirectord netstackd proxyd; do
			sed "s/^/  $d: /" "$T/$d.log"
		done
	fi
	# Each daemon sandboxes itself and says so; none died on a refused drop.
	for d in redirectord netstackd proxyd; do
		uid=0
		[ $d = proxyd ] && uid=$PXUID
		[ $d = netstackd ] && uid=$NSUID
		if grep -q "sandboxed: uid $uid," "$T/$d.log"; then
			ok "$d sandboxed itself (uid $uid) within the unit's bounding set"
		else
			not_ok "$d did not sandbox itself: $(tail -n 3 "$T/$d.log")"
		fi
	done
	# netstackd ends with no capability at all, redirectord with its three.
	for d in redirectord netstackd; do
		pid=$(cat "$RT/$d.pid" 2>/dev/null)
		eff=$(awk '/^CapEff/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		bnd=$(awk '/^CapBnd/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		case $d in
		# CAP_NET_ADMIN 12, CAP_PERFMON 38, CAP_BPF 39
		redirectord) want=000000c000001000 ;;
		netstackd) want=0000000000000000 ;;
		esac
		check "$d capabilities: effective ${eff:-?} and bounding ${bnd:-?} are $want" \
		    [ "$eff $bnd" = "$want $want" ]
	done
	# proxyd, switched to its user, holds no capability; common/sandbox.c
	# empties the bounding set only while still root, so after --user it
	# keeps the unit's (harmless under no_new_privs: nothing it can exec
	# gains them).  Checked, and the bounding set shown.
	pid=$(cat "$RT/proxyd.pid" 2>/dev/null)
	eff=$(awk '/^CapEff/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	prm=$(awk '/^CapPrm/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	bnd=$(awk '/^CapBnd/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	nnp=$(awk '/^NoNewPrivs/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	echo "# proxyd bounding set after --user: ${bnd:-?}"
	check "proxyd capabilities: effective ${eff:-?} and permitted ${prm:-?} are none, no_new_privs ${nnp:-?}" \
	    [ "$eff $prm $nnp" = "0000000000000000 0000000000000000 1" ]

	# webd as its unit runs it: started as root within the unit's bounding
	# set, it opens the store in proxyd's 0700 state dir (with
	# CAP_DAC_READ_SEARCH), connects ctl.sock and writes its URL file,
	# then switches to its user with no capability; it answers its API
	# (processes included: redirectord took its ctl.sock connection) and
	# stops cleanly.
	WEBUSER=$(sed -n 's/^ExecStart=.* --user \([a-z_][a-z0-9_-]*\).*/\1/p' \
	    "$top/packaging/systemd/localcap-webd.service")
	check "webd's unit switches it to the localcap-web user" [ "$WEBUSER" = localcap-web ]
	id -u "$WEBUSER" >/dev/null 2>&1 || WEBUSER=nobody
	WEBUID=$(id -u "$WEBUSER")
	# shellcheck disable=SC2046
	as_unit localcap-webd.service -- $(tracer webd) "$B/bin/webd" -f -r "$RT" \
	    -s "$T/state" -u "$WEBUSER" -l 127.0.0.1:0 >"$T/webd.log" 2>&1 &
	PIDS="$PIDS $!"
	i=0
	while [ $i -lt 100 ] && ! grep -qs 'listening on port' "$T/webd.log"; do
		sleep 0.1; i=$((i + 1))
	done
	url=$(cat "$RT/webd.url" 2>/dev/null)
	check "webd under its unit's credentials: URL file 0600 ($(stat -c %a "$RT/webd.url" 2>&1))" \
	    [ "$(stat -c %a "$RT/webd.url" 2>/dev/null)" = 600 ] && [ -n "$url" ]
	webget() {
		inns curl -sS -m 10 -H "Authorization: Bearer ${url##*token=}" \
		    "${url%%\?*}$1"
	}
	check "webd: the store opened, the API answers ($(webget 'api/flows?limit=1' 2>&1 | head -c 60))" \
	    sh -c "printf '%s' \"\$1\" | grep -q '^{\"flows\":\['" sh "$(webget 'api/flows?limit=1' 2>&1)"
	check "webd: redirectord answers it (the spec in /api/processes)" \
	    sh -c "printf '%s' \"\$1\" | grep -q '^{\"capture\":{\"spec\":\"lc-pkg-nothing\"'" sh \
	    "$(webget api/processes 2>&1)"
	pid=$(cat "$RT/webd.pid" 2>/dev/null)
	eff=$(awk '/^CapEff/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	check "webd sandboxed itself as $WEBUSER (uid $WEBUID) with no capability (effective ${eff:-?})" \
	    sh -c "grep -q 'sandboxed: uid $WEBUID, 0 capabilities kept, no_new_privs, landlock' '$T/webd.log' &&
	        [ '$eff' = 0000000000000000 ]"
	kill -TERM "$pid" 2>/dev/null
	i=0
	while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do
		sleep 0.1; i=$((i + 1))
	done
	check "webd stopped cleanly on SIGTERM" grep -q "webd stopped" "$T/webd.log"

	# A little of everything else they do: run (a capture cgroup made and
	# removed), SIGHUP, then SIGTERM and a clean exit.
	# shellcheck disable=SC2016
	inns sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -r "$3" run -- true' \
	    sh "$CG" "$B/bin/localcapctl" "$RT" >"$T/run.log" 2>&1
	check "localcapctl run -- true under the units' credentials" [ $? -eq 0 ]
	DPIDS=""
	for d in redirectord netstackd proxyd; do
		DPIDS="$DPIDS $(cat "$RT/$d.pid" 2>/dev/null)"
	done
	# shellcheck disable=SC2086
	kill -HUP $DPIDS 2>/dev/null
	sleep 0.5
	# shellcheck disable=SC2086
	kill -TERM $DPIDS 2>/dev/null
	# Wait (at most 10 s, strace slows them) until none of them is left.
	i=0
	while [ $i -lt 100 ]; do
		left=0
		for p in $DPIDS; do kill -0 "$p" 2>/dev/null && left=1; done
		[ $left -eq 0 ] && break
		sleep 0.1; i=$((i + 1))
	done
	for d in redirectord netstackd proxyd; do
		if grep -q "$d stopped" "$T/$d.log"; then
			ok "$d stopped cleanly on SIGTERM"
		else
			not_ok "$d did not stop cleanly on SIGTERM: $(tail -n 5 "$T/$d.log")"
		fi
	done
	wait 2>/dev/null
	PIDS=""

	# webd under its unit while proxyd is stopped: the store is there but
	# proxyd's close removed its -wal and -shm, which webd (root without
	# CAP_DAC_OVERRIDE) may not make; it waits, then serves the store
	# once proxyd is back.
	rm -f "$RT/webd.url"
	as_unit localcap-webd.service -- "$B/bin/webd" -f -r "$RT" -s "$T/state" \
	    -u "$WEBUSER" -l 127.0.0.1:0 >"$T/webd2.log" 2>&1 &
	PIDS="$PIDS $!"
	i=0
	while [ $i -lt 50 ] && ! grep -qs 'waiting for proxyd to open the flow store' "$T/webd2.log"; do
		sleep 0.1; i=$((i + 1))
	done
	check "webd under its unit with proxyd stopped: waits for it (no URL yet)" \
	    sh -c "grep -q 'waiting for proxyd to open the flow store' '$T/webd2.log' &&
	        [ ! -e '$RT/webd.url' ]"
	as_unit localcap-proxyd.service -- "$B/bin/proxyd" -f -r "$RT" -s "$T/state" \
	    -u "$PXUSER" --netstack-user "$NSUSER" >"$T/proxyd2.log" 2>&1 &
	PIDS="$PIDS $!"
	i=0
	while [ $i -lt 100 ] && ! grep -qs 'listening on port' "$T/webd2.log"; do
		sleep 0.1; i=$((i + 1))
	done
	url=$(cat "$RT/webd.url" 2>/dev/null)
	check "...and once proxyd has the store open, serves it ($(webget 'api/flows?limit=1' 2>&1 | head -c 60))" \
	    sh -c "printf '%s' \"\$1\" | grep -q '^{\"flows\":\['" sh "$(webget 'api/flows?limit=1' 2>&1)"
	# shellcheck disable=SC2086
	kill -TERM $PIDS 2>/dev/null
	wait 2>/dev/null
	PIDS=""

	# Every system call they made is allowed by their unit's filter
	# (systemd's groups expanded by systemd-analyze syscall-filter).
	if [ -z "$TRACING" ]; then
		skip "no strace or python3: SystemCallFilter= not checked against" \
		    "the daemons' system calls"
	else
		for d in redirectord netstackd proxyd webd; do
			bad=$(python3 - "$top/packaging/systemd/localcap-$d.service" \
			    "$T/$d.strace" 2>&1 <<'EOF'
import re, subprocess, sys
out = subprocess.run(["systemd-analyze", "syscall-filter"],
                     capture_output=True, text=True).stdout
groups, cur = {}, None
for line in out.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if not line.startswith(" ") and s.startswith("@"):
        cur = groups.setdefault(s, [])
    elif cur is not None:
        cur.append(s)
def expand(name):
    if not name.startswith("@"):
        return {name}
    return set().union(*[expand(m) for m in groups.get(name, [])] or [set()])
# Each SystemCallFilter= line adds to (or with ~, removes from) the allow-list.
allowed = set()
for line in open(sys.argv[1]):
    if line.startswith("SystemCallFilter="):
        v = line.split("=", 1)[1].strip()
        names = set().union(*[expand(t) for t in v.lstrip("~").split()])
        allowed = allowed - names if v.startswith("~") else allowed | names
used = set()
for line in open(sys.argv[2]):
    m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)\(", line)
    if m:
        used.add(m.group(1))
print(" ".join(sorted(used - allowed)) if used else "no system calls traced")
EOF
			) || bad="(the check itself failed) $bad"
			check "$d: every system call it made is in its SystemCallFilter= ${bad:+(not: $bad)}" \
			    [ -z "$bad" ]
		done
	fi
fi

echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
