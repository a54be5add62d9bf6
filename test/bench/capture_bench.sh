#!/bin/sh
# The capture-path benchmark (issue 11): the same client doing the same
# work against the same origin, in one run, for
#
#   direct     client -> origin, nothing in between (the ceiling)
#   localcap   the real capture path: the client runs under `localcapctl
#              run`, its sockets are bound to the TUN by the eBPF cgroup
#              program; netstackd terminates TCP, proxyd intercepts TLS and
#              relays to the origin (redirectord, netstackd and proxyd
#              started as test/integration/capture_proxyd.sh starts them)
#   sslsplit   transparent: iptables REDIRECT of the client's connections
#              (and only the client's: -m cgroup) to sslsplit, which finds
#              the original destination with SO_ORIGINAL_DST
#   mitmproxy  the same, to `mitmdump --mode transparent` (streaming bodies)
#
# Two network namespaces this script creates: "client" (the client, the
# proxies, the iptables rules) and "server" (nginx), joined by a veth pair;
# TLS 1.3 on both legs where the peers negotiate it.  Figures, for each:
# HTTPS and HTTP bulk MB/s (one connection reading a 1 GiB file), keep-
# alive HTTPS requests/s (8 connections, a 3-byte file), new TLS
# connections/s (full handshakes, one request each) serial and 8 in
# parallel; the proxy's CPU per GB, per 1,000 requests and per connection
# (cpu.stat of a cgroup made for that proxy: every process and thread of
# it), and its peak RSS (VmHWM, summed).  localcap's CPU is also split per
# daemon.  Ratios put localcap against each of the others.
#
# BENCH_SECONDS per measurement (default 4; 20 measurements in all);
# BENCH_ONLY (e.g. "localcap") and BENCH_WORKS (e.g. "keepalive") narrow
# the run, for before/after comparisons of one change.
# BENCH_STRACE=WORK (e.g. keepalive) counts netstackd's and proxyd's system
# calls during that workload (strace -c; slows them, so only the counts mean anything).
# BENCH_PERF=1 also records perf profiles of netstackd and proxyd during
# localcap's HTTPS and HTTP bulk and keep-alive runs and prints their top symbols.
# BENCH_PIN=same|apart pins netstackd and proxyd to one core / to one each.
# KEEP=1 keeps the logs.  Root only; everything it creates (namespaces,
# cgroups, iptables rules inside its namespace) goes on every exit path.
# Not a test: nothing here fails on a number.
# shellcheck disable=SC2034,SC2154 # results are set and read through eval
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "capture_bench: needs root (namespaces, cgroups, BPF); skipped"
	exit 0
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
	echo "capture_bench: kernel has no BTF (capture needs it); skipped"
	exit 0
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
CLIENT="$B/bench/bench_proxyclient"
for tool in nginx openssl curl iptables "$CLIENT" "$B/bin/proxyd" "$B/bin/netstackd" \
    "$B/bin/redirectord" "$B/bin/localcapctl"; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "capture_bench: $tool missing (scripts/deps.sh --bench; make bench); skipped"
		exit 0
	}
done
. "$top/test/lib.sh"
. "$top/test/bench/lib.sh"
SECS=${BENCH_SECONDS:-4}
NSC="lc-cbc-$$"
NSS="lc-cbs-$$"
ORIGIN=10.99.0.2
T=$(mktemp -d /tmp/lc-cbench.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-cbench-$$") || { echo "capture_bench: no cgroup v2"; exit 0; }
CGROOT=$(cgroup2_root)
pids=""

cleanup() {
	stop_pids $pids
	kill_netns "$NSC"
	kill_netns "$NSS"
	remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NSC" && ip netns add "$NSS" || exit 1
ip link add lccb0 netns "$NSC" type veth peer name lccb1 netns "$NSS" || exit 1
ip -n "$NSC" link set lo up
ip -n "$NSS" link set lo up
ip -n "$NSC" addr add 10.99.0.1/24 dev lccb0
ip -n "$NSS" addr add "$ORIGIN/24" dev lccb1
ip -n "$NSC" link set lccb0 up
ip -n "$NSS" link set lccb1 up

# nsrun NS CGROUP CMD...: CMD in namespace NS and in CGROUP (created if need
# be); nsenter, not ip netns exec, which mounts a /sys without the cgroups.
# exec: in the background (nsrun ... &), $! is the program itself.
nsrun() {
	_ns=$1 _cg=$2
	shift 2
	mkdir -p "$_cg"
	exec nsenter --net="/run/netns/$_ns" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
	    "$_cg" "$@"
}

bench_pki "$T" "DNS:origin.test,IP:$ORIGIN" || exit 1
bench_www "$T"
bench_nginx_conf "$T" "$ORIGIN:8443 ssl" "$ORIGIN:8080"
nsrun "$NSS" "$CG/origin" nginx -e "$T/nginx/error.log" -p "$T/nginx" \
    -c "$T/nginx/nginx.conf" >"$T/nginx.log" 2>&1 &
pids="$pids $!"
i=0
until nsenter --net="/run/netns/$NSC" curl -sf --cacert "$T/oca.pem" -o /dev/null \
    "https://$ORIGIN:8443/small"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "capture_bench: nginx did not start"; cat "$T"/nginx*.log \
	    "$T/nginx/error.log"; exit 1; }
	sleep 0.05
done

# --- measuring one setup -----------------------------------------------------------
# How the client is started for the setup being measured: directly in the
# client cgroup (direct, and the peers, whose REDIRECT matches that cgroup),
# or under localcapctl run (capture).
# Its errors go to $T/client.err (CLIENT_ERR: elsewhere, while warming up).
CLIENT_ERR="$T/client.err"
client() {
	if [ "$HOW" = capture ]; then
		(nsrun "$NSC" "$CG/cap" "$B/bin/localcapctl" -r "$T" run -- "$CLIENT" "$@") \
		    2>>"$CLIENT_ERR"
	else
		(nsrun "$NSC" "$CG/client" "$CLIENT" "$@") 2>>"$CLIENT_ERR"
	fi
}
WORKS=${BENCH_WORKS:-https http keepalive connect1 connect8}
ONLY=${BENCH_ONLY:-direct localcap sslsplit mitmproxy}
wanted() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# measure NAME CAFILE [CGROUP]: every workload for one setup; results in
# R_NAME_WORK, the CPU of CGROUP (the proxy's, with every daemon below it)
# in R_NAME_WORK_cpu and per daemon in R_NAME_WORK_cpu_DAEMON.
measure() {
	_n=$1 _ca=$2 _pcg=${3:-}
	_tls="-a $ORIGIN:8443 -i $ORIGIN -C $_ca"
	# Wait for the setup to answer (bounded), which also warms it up.
	_i=0
	while :; do
		_r=$(CLIENT_ERR="$T/warmup-$_n.err" client -m connect -t 0.3 -c 1 -p /small $_tls)
		[ "$(kv_field "$_r" conns)" -gt 0 ] 2>/dev/null && break
		_i=$((_i + 1))
		[ $_i -gt 40 ] && { eval "R_${_n}_dead=1"; return 1; }
		sleep 0.25
	done
	for _w in $WORKS; do
		case $_w in
		https) _args="-m bulk -c 1 -p /big $_tls" ;;
		http) _args="-m bulk -c 1 -p /big -P -a $ORIGIN:8080" ;;
		keepalive) _args="-m keepalive -c 8 -p /small $_tls" ;;
		connect1) _args="-m connect -c 1 -p /small $_tls" ;;
		connect8) _args="-m connect -c 8 -p /small $_tls" ;;
		esac
		if [ -n "$_pcg" ]; then
			_c0=$(cg_cpu_usec "$_pcg")
			for _d in $DAEMONS; do eval "_d0_$_d=\$(cg_cpu_usec \"\$_pcg/\$_d\")"; done
		fi
		_perf=""
		if [ -n "${BENCH_PERF:-}" ] && [ "$_n" = localcap ] &&
		    { [ "$_w" = https ] || [ "$_w" = http ] || [ "$_w" = keepalive ]; }; then
			perf record -q -e cpu-clock -F 499 -g -p "$NSD,$PXD" \
			    -o "$T/perf-$_w.data" -- sleep "$SECS" >"$T/perf.log" 2>&1 &
			_perf=$!
		fi
		_st=""
		if [ -n "${BENCH_STRACE:-}" ] && [ "$_n" = localcap ] && [ "$_w" = "$BENCH_STRACE" ]; then
			for _p in $NSD $PXD; do
				timeout -s INT "$SECS" strace -c -f -p "$_p" -o "$T/strace-$_p.txt" \
				    2>/dev/null &
				_st="$_st $!"
			done
		fi
		_r=$(client $_args -t "$SECS")
		[ -n "$_perf" ] && wait "$_perf"
		for _p in $_st; do wait "$_p"; done
		eval "R_${_n}_${_w}='$_r'"
		if [ -n "$_pcg" ]; then
			eval "R_${_n}_${_w}_cpu=$(($(cg_cpu_usec "$_pcg") - _c0))"
			for _d in $DAEMONS; do
				eval "R_${_n}_${_w}_cpu_$_d=\$((\$(cg_cpu_usec \"\$_pcg/\$_d\") - _d0_$_d))"
			done
		fi
	done
	if [ -n "$_pcg" ]; then
		eval "R_${_n}_rss=$(cg_hwm_kib "$_pcg")"
		for _d in $DAEMONS; do eval "R_${_n}_rss_$_d=$(cg_hwm_kib "$_pcg/$_d")"; done
		cg_mem_makeup "$_pcg" >"$T/mem-$_n.txt"
		# The mappings behind those figures, for KEEP=1 runs.
		for _p in $(find "$_pcg" -name cgroup.procs -exec cat {} + 2>/dev/null); do
			cp "/proc/$_p/smaps" "$T/smaps-$_n-$_p.txt" 2>/dev/null
		done
	fi
	return 0
}

# redirect PORT: the client cgroup's connections to the origin go to PORT
# (TLS and HTTP alike) on this namespace's loopback; "redirect off" ends it.
CLIREL=${CG#"$CGROOT"/}/client
mkdir -p "$CG/client"
redirect() {
	ip netns exec "$NSC" iptables -t nat -F OUTPUT
	[ "$1" = off ] && return 0
	for _p in 8443 8080; do
		ip netns exec "$NSC" iptables -t nat -A OUTPUT -p tcp -d "$ORIGIN" --dport $_p \
		    -m cgroup --path "$CLIREL" -j REDIRECT --to-ports "$1" || return 1
	done
}

SETUPS="direct"
HOW=direct DAEMONS=""
if wanted direct; then measure direct "$T/oca.pem"; else R_direct_missing=1; fi

# localcap: the daemons each in a cgroup of their own below CG/localcap;
# capture attaches to CG/cap, where localcapctl run makes the client's.
LC="$CG/localcap"
if wanted localcap; then
nsrun "$NSC" "$LC/redirectord" "$B/bin/redirectord" -f -r "$T" -g "$CG/cap" \
    >"$T/redirectord.log" 2>&1 &
pids="$pids $!"
nsrun "$NSC" "$LC/netstackd" "$B/bin/netstackd" -f -r "$T" >"$T/netstackd.log" 2>&1 &
NSD=$!
pids="$pids $NSD"
nsrun "$NSC" "$LC/proxyd" "$B/bin/proxyd" -f -r "$T" -s "$T/state" --upstream-ca "$T/oca.pem" \
    >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"
mkdir -p "$CG/cap"
i=0
until "$B/bin/localcapctl" -r "$T" --json status 2>/dev/null |
    grep -q '"name":"proxyd","running":true' && [ -s "$T/state/localcap-ca-cert.pem" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
# BENCH_PIN (item 4's question: do the daemons gain from two cores?):
# "same" puts netstackd and proxyd on CPU 0, "apart" netstackd on 0 and
# proxyd on 1; unset leaves them to the scheduler.
case ${BENCH_PIN:-} in
same) taskset -a -p -c 0 "$NSD" >/dev/null; taskset -a -p -c 0 "$PXD" >/dev/null ;;
apart) taskset -a -p -c 0 "$NSD" >/dev/null; taskset -a -p -c 1 "$PXD" >/dev/null ;;
esac
SETUPS="$SETUPS localcap"
HOW=capture DAEMONS="redirectord netstackd proxyd"
measure localcap "$T/state/localcap-ca-cert.pem" "$LC"
flows=$("$B/bin/localcapctl" -r "$T" --json status 2>/dev/null |
    sed -n 's/.*"tcp_flows_created":\([0-9]*\).*/\1/p')
HOW=direct DAEMONS=""
stop_one "$PXD"
stop_one "$NSD"
else
	R_localcap_missing=1
	SETUPS="$SETUPS localcap"
fi

if wanted sslsplit && command -v sslsplit >/dev/null 2>&1; then
	# No destination in the proxyspecs: sslsplit asks netfilter for it.
	nsrun "$NSC" "$CG/sslsplit" sslsplit -k "$T/pca.key" -c "$T/pca.pem" -K "$T/leaf.key" \
	    ssl 127.0.0.1 10443 http 127.0.0.1 10080 >"$T/sslsplit.log" 2>&1 &
	SSP=$!
	pids="$pids $SSP"
	SETUPS="$SETUPS sslsplit"
	# The one REDIRECT both ports share: sslsplit's specs are per port.
	ip netns exec "$NSC" iptables -t nat -F OUTPUT
	ip netns exec "$NSC" iptables -t nat -A OUTPUT -p tcp -d "$ORIGIN" --dport 8443 \
	    -m cgroup --path "$CLIREL" -j REDIRECT --to-ports 10443
	ip netns exec "$NSC" iptables -t nat -A OUTPUT -p tcp -d "$ORIGIN" --dport 8080 \
	    -m cgroup --path "$CLIREL" -j REDIRECT --to-ports 10080
	measure sslsplit "$T/pca.pem" "$CG/sslsplit"
	redirect off
	stop_one "$SSP"
else
	R_sslsplit_missing=1
	SETUPS="$SETUPS sslsplit"
fi

if wanted mitmproxy && command -v mitmdump >/dev/null 2>&1; then
	nsrun "$NSC" "$CG/mitmproxy" env HOME="$T/mitm" mitmdump -q --mode transparent \
	    --listen-host 127.0.0.1 -p 18080 --set confdir="$T/mitm" \
	    --set ssl_verify_upstream_trusted_ca="$T/oca.pem" \
	    --set stream_large_bodies=1m >"$T/mitmproxy.log" 2>&1 &
	MTP=$!
	pids="$pids $MTP"
	SETUPS="$SETUPS mitmproxy"
	redirect 18080
	measure mitmproxy "$T/pca.pem" "$CG/mitmproxy"
	redirect off
	stop_one "$MTP"
else
	R_mitmproxy_missing=1
	SETUPS="$SETUPS mitmproxy"
fi

# --- the table ------------------------------------------------------------------------
# value SETUP ROW: one figure, or "n/a" / "-".
value() {
	eval "_miss=\${R_$1_missing:-}; _dead=\${R_$1_dead:-}"
	{ [ -n "$_miss" ] || [ -n "$_dead" ]; } && { echo "n/a"; return; }
	if [ "$2" = rss ]; then
		[ "$1" = direct ] && { echo "-"; return; }
		eval "_kib=\${R_$1_rss:-0}"
		awk -v k="$_kib" 'BEGIN { printf "%.1f", k / 1024 }'
		return
	fi
	_w=${2%%_*}
	eval "_r=\${R_$1_$_w:-}; _cpu=\${R_$1_${_w}_cpu:-}"
	[ -n "$_r" ] || { echo "n/a"; return; }
	_s=$(kv_field "$_r" secs)
	_b=$(kv_field "$_r" bytes)
	_q=$(kv_field "$_r" reqs)
	_k=$(kv_field "$_r" conns)
	case $2 in
	https | http) awk -v b="$_b" -v s="$_s" 'BEGIN { printf "%.0f", b / s / 1e6 }' ;;
	keepalive) awk -v n="$_q" -v s="$_s" 'BEGIN { printf "%.0f", n / s }' ;;
	connect1 | connect8) awk -v n="$_k" -v s="$_s" 'BEGIN { printf "%.0f", n / s }' ;;
	*_cpu)
		[ -n "$_cpu" ] || { echo "-"; return; }
		case $_w in
		https | http) awk -v c="$_cpu" -v b="$_b" \
			'BEGIN { if (b > 0) printf "%.2f", c / 1e6 / (b / 1e9); else print "n/a" }' ;;
		keepalive) awk -v c="$_cpu" -v n="$_q" \
			'BEGIN { if (n > 0) printf "%.0f", c / n; else print "n/a" }' ;;
		*) awk -v c="$_cpu" -v n="$_k" \
			'BEGIN { if (n > 0) printf "%.2f", c / n / 1e3; else print "n/a" }' ;;
		esac ;;
	esac
}

echo "localcap (capture: eBPF + TUN + netstackd + proxyd), sslsplit and mitmproxy"
echo "(transparent, iptables REDIRECT) against direct; $SECS s per figure; client:"
echo "bench_proxyclient (OpenSSL, verifies); origin: nginx in another namespace"
printf '\n%-36s %8s %8s %8s %8s | %7s %7s %7s\n' "" direct localcap sslsplit mitmprx \
    "lc/dir" "lc/ssl" "lc/mitm"
for row in https http keepalive connect1 connect8 https_cpu http_cpu keepalive_cpu \
    connect8_cpu rss; do
	case $row in
	https) label="HTTPS bulk MB/s" ;;
	http) label="HTTP bulk MB/s" ;;
	keepalive) label="keep-alive HTTPS req/s (8 conns)" ;;
	connect1) label="new TLS conn/s, serial" ;;
	connect8) label="new TLS conn/s, 8 parallel" ;;
	https_cpu) label="CPU s per GB, HTTPS (lower better)" ;;
	http_cpu) label="CPU s per GB, HTTP (lower better)" ;;
	keepalive_cpu) label="CPU ms per 1,000 req (lower)" ;;
	connect8_cpu) label="CPU ms per connection (lower)" ;;
	rss) label="peak RSS MiB (lower better)" ;;
	esac
	d=$(value direct $row); l=$(value localcap $row)
	s=$(value sslsplit $row); m=$(value mitmproxy $row)
	printf '%-36s %8s %8s %8s %8s | %7s %7s %7s\n' "$label" "$d" "$l" "$s" "$m" \
	    "$(bench_ratio "$l" "$d")" "$(bench_ratio "$l" "$s")" "$(bench_ratio "$l" "$m")"
done
echo
echo "localcap's CPU per daemon, per unit of work (s per GB for the bulk runs,"
echo "ms per 1,000 requests for keep-alive, ms per connection for the others):"
printf '  %-12s' ""
for w in $WORKS; do printf ' %9s' "$w"; done
echo
for dm in redirectord netstackd proxyd; do
	printf '  %-12s' "$dm"
	for w in $WORKS; do
		eval "_c=\${R_localcap_${w}_cpu_$dm:-}; _r=\${R_localcap_${w}:-}"
		if [ -z "$_c" ] || [ -z "$_r" ]; then
			printf ' %9s' "-"
			continue
		fi
		case $w in
		https | http) _u=$(kv_field "$_r" bytes); _f="%.2f"; _k=1e9 ;;
		keepalive) _u=$(kv_field "$_r" reqs); _f="%.1f"; _k=1e3 ;;
		*) _u=$(kv_field "$_r" conns); _f="%.2f"; _k=1 ;;
		esac
		printf ' %9s' "$(awk -v c="$_c" -v u="$_u" -v k="$_k" -v f="$_f" \
		    'BEGIN { if (u > 0) printf f, c / 1e3 / (u / k) * (k == 1e9 ? 1e-3 : 1); else print "n/a" }')"
	done
	eval "_kib=\${R_localcap_rss_$dm:-}"
	[ -n "$_kib" ] && printf '  (peak RSS %s MiB)' "$(awk -v k="$_kib" 'BEGIN { printf "%.1f", k / 1024 }')"
	echo
done
# Whether the daemons overlap on the cores: CPU seconds per second of the run.
printf '  %-12s' "cores busy"
for w in $WORKS; do
	eval "_c=\${R_localcap_${w}_cpu:-}; _r=\${R_localcap_${w}:-}"
	if [ -n "$_c" ] && [ -n "$_r" ]; then
		printf ' %9s' "$(awk -v c="$_c" -v s="$(kv_field "$_r" secs)" 'BEGIN { printf "%.2f", c / 1e6 / s }')"
	else
		printf ' %9s' "-"
	fi
done
echo
echo "  (${flows:-?} TCP flows through netstackd)"
echo
echo "memory after each proxy's runs, per process (KiB; the peak, then now: anon"
echo "is heap and stacks, file the mapped text and libraries as far as touched):"
for n in localcap sslsplit mitmproxy; do
	[ -s "$T/mem-$n.txt" ] && { echo "$n:"; cat "$T/mem-$n.txt"; }
done
echo
for n in $SETUPS; do
	wanted "$n" || { echo "$n: not run (BENCH_ONLY)"; continue; }
	eval "_miss=\${R_${n}_missing:-}; _dead=\${R_${n}_dead:-}"
	[ -n "$_miss" ] && echo "$n: n/a (not installed: scripts/deps.sh --bench)"
	if [ -n "$_dead" ]; then
		echo "$n: n/a (did not answer; its logs are kept with KEEP=1); the client said:"
		sort "$T/warmup-$n.err" 2>/dev/null | uniq -c | sort -rn | head -n 3
	fi
	for w in $WORKS; do
		eval "_r=\${R_${n}_${w}:-}"
		e=$(kv_field "$_r" errors)
		[ -n "$e" ] && [ "$e" != 0 ] && echo "$n $w: $e client errors"
	done
done
if [ -s "$T/client.err" ]; then
	echo "client errors (first lines):"
	sort "$T/client.err" | uniq -c | sort -rn | head -n 5
fi
echo "ratios: localcap / the other (above 1 is better for the throughput rows,"
echo "below 1 for CPU and RSS); CPU and RSS are the proxy's whole process tree"
echo "(localcap: redirectord + netstackd + proxyd and its signer); localcap also"
echo "records every exchange in its SQLite flow store, the peers record nothing"

if [ -n "${BENCH_STRACE:-}" ]; then
	eval "_r=\${R_localcap_$BENCH_STRACE:-}"
	echo
	echo "== system calls during $BENCH_STRACE (strace -c, which slows the daemons;"
	echo "   $(kv_field "$_r" reqs) requests, $(kv_field "$_r" bytes) bytes)"
	for _p in "netstackd $NSD" "proxyd $PXD"; do
		set -- $_p
		echo "-- $1"
		sed -n '3,14p' "$T/strace-$2.txt"
	done
fi
for w in https http keepalive; do
	[ -n "${BENCH_PERF:-}" ] && [ -s "$T/perf-$w.data" ] || continue
	echo
	echo "== where netstackd's and proxyd's time goes, $w (perf, self time)"
	perf report -i "$T/perf-$w.data" --stdio --no-children -g none --percent-limit 1 \
	    --sort comm,dso,symbol 2>/dev/null | grep -v '^#' | grep '%' |
	    sed 's/[[:space:]-]*$//' | head -n 25
done
