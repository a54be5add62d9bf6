# Shell helpers shared by the integration scripts (sourced, not run).

# The cgroup v2 mount point: /sys/fs/cgroup, or /sys/fs/cgroup/unified on
# hybrid systems.  Found in /proc/self/mountinfo, never assumed.
cgroup2_root() {
	awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

# make_cgroup NAME: a child cgroup of the v2 root for this test; prints its
# path.  Tests attach capture there, never to the root itself.
make_cgroup() {
	_root=$(cgroup2_root)
	[ -n "$_root" ] || return 1
	mkdir "$_root/$1" && echo "$_root/$1"
}

# remove_cgroup PATH: end what the test left running in it (only the test's
# own processes are ever in it), then remove it and its children.
remove_cgroup() {
	[ -d "$1" ] || return 0
	for _try in 1 2 3 4 5 6 7 8 9 10; do
		find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null |
		    while read -r _p; do kill -9 "$_p" 2>/dev/null; done
		find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
		[ -d "$1" ] || return 0
		sleep 0.1
	done
	echo "warning: could not remove cgroup $1" >&2
}

# stop_pids PID...: the test's own background processes, asked to stop,
# then killed if they have not within 0.2 s, and reaped.
stop_pids() {
	[ $# -gt 0 ] || return 0
	for _p in "$@"; do kill "$_p" 2>/dev/null; done
	sleep 0.2
	for _p in "$@"; do kill -9 "$_p" 2>/dev/null; done
	wait 2>/dev/null
}

# kill_netns NAME: end every process still in the namespace (the test's own),
# then delete it.
kill_netns() {
	for _p in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$_p" 2>/dev/null; done
	ip netns del "$1" 2>/dev/null
}

# Results, one line each ("ok - ..." / "not ok - ..."): the script sets
# passed=0 failed=0 first and reports the totals at the end.
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
# check DESC COMMAND...: ok if COMMAND succeeds, not ok otherwise.
check() { _d=$1; shift; if "$@"; then ok "$_d"; else not_ok "$_d"; fi; }

# capture_test_env TAG: what every two-host capture test starts with.  Sets
# NS and NS2 (the client's and the server's network namespace, not yet
# made), T (a scratch dir, 0755 so the daemons' users may read it; kept with
# KEEP=1), CG (a child cgroup where capture applies), PY (python3),
# pids="" (the test adds what it starts) and the result counters, and
# cleans all of it up on every exit.  A test that needs more at exit
# defines cleanup() again and calls capture_test_cleanup from it.
capture_test_env() {
	NS="lc-$1c-$$"
	NS2="lc-$1s-$$"
	T=$(mktemp -d "/tmp/lc-$1.XXXXXX") || exit 1
	chmod 755 "$T"
	CG=$(make_cgroup "localcap-test-$1-$$") ||
	    { echo "no cgroup v2"; rm -rf "$T"; exit 1; }
	PY=$(readlink -f /usr/bin/python3)
	pids=""
	passed=0 failed=0
	cleanup() { capture_test_cleanup; }
	trap cleanup EXIT
	trap 'exit 1' INT TERM
}
capture_test_cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	kill_netns "$NS2"
	remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
