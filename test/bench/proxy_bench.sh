#!/bin/sh
# The explicit-proxy benchmark (issue 5): the same client doing the same work
# against the same origin, in one run, for
#
#   direct     client -> origin, no proxy (the ceiling)
#   proxyd     client -> CONNECT -> proxyd --listen -> origin, intercepted
#   sslsplit   client -> sslsplit (an "https" proxyspec with the origin as
#              its static destination: sslsplit has no CONNECT listener)
#   mitmproxy  client -> CONNECT -> mitmdump (regular mode) -> origin
#
# and for each: HTTPS bulk MB/s (one connection reading a large file),
# keep-alive requests/s (BENCH_CONNS connections, a small file), new TLS
# connections/s (full handshakes, one request each), the proxy's CPU time
# per GB, per 1,000 requests and per 1,000 connections (the cgroup it runs
# in: every thread and child), and its peak RSS (VmHWM, summed over its
# processes).  Ratios put proxyd against each of the others.
#
# The origin is nginx (TLS with a certificate from a test CA that every
# proxy is told to trust); the client is bench_proxyclient (OpenSSL), which
# always verifies the certificate it gets.  The peers get an ECDSA P-256 CA
# (and sslsplit an ECDSA leaf key) like proxyd's, and mitmproxy streams
# bodies (stream_large_bodies=1m) like proxyd; sslsplit does not verify the
# origin's certificate (it cannot), the others do.
#
# BENCH_SECONDS per measurement (default 4), BENCH_CONNS concurrent
# connections for requests/s and connections/s (default 4).  BENCH_PERF=1
# also profiles proxyd (perf record) during the bulk transfer and the new
# connections and prints its top symbols.  KEEP=1 keeps the logs.
# Everything runs in a network namespace the script creates, on its
# loopback, the proxies in child cgroups it creates; both are removed on
# every exit path.  Root only.  Not a test: nothing here fails on a number.
# shellcheck disable=SC2034,SC2154 # results are set and read through eval
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "proxy_bench: needs root (a network namespace, cgroups); skipped"
	exit 0
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
CLIENT="$B/bench/bench_proxyclient"
for tool in nginx openssl curl "$CLIENT" "$B/bin/proxyd"; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "proxy_bench: $tool missing (scripts/deps.sh --bench; make bench); skipped"
		exit 0
	}
done
. "$top/test/lib.sh"
. "$top/test/bench/lib.sh"
SECS=${BENCH_SECONDS:-4}
CONNS=${BENCH_CONNS:-4}
NS="lc-pbench-$$"
T=$(mktemp -d /tmp/lc-pbench.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-pbench-$$") || { echo "proxy_bench: no cgroup v2"; exit 0; }
pids=""

cleanup() {
	stop_pids $pids
	kill_netns "$NS"
	remove_cgroup "$CG"
	[ -n "${KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
# An address besides loopback, so that getaddrinfo(AI_ADDRCONFIG) in the
# peers (sslsplit) resolves "127.0.0.1"; nothing is routed there.
ip -n "$NS" link add lcpb0 type veth peer name lcpb1
ip -n "$NS" addr add 10.97.0.1/24 dev lcpb0
ip -n "$NS" link set lcpb0 up
NSX="ip netns exec $NS"
# incg NAME CMD...: CMD in the namespace, in the child cgroup CG/NAME
# (nsenter, not ip netns exec: that one mounts a /sys without the cgroups).
incg() {
	_cg="$CG/$1"
	shift
	mkdir -p "$_cg"
	# exec: run in the background (incg ... &), $! is then the program.
	exec nsenter --net="/run/netns/$NS" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$_cg" "$@"
}
cpu_usec() { cg_cpu_usec "$CG/$1"; }
hwm_kib() { cg_hwm_kib "$CG/$1"; }

# --- PKI: the origin's CA and leaf; one CA for the peers ---------------------------
bench_pki "$T" 'DNS:origin.test,IP:127.0.0.1' || exit 1

# --- the origin: nginx, one worker, a large and a small static file ----------------
bench_www "$T"
bench_nginx_conf "$T" "127.0.0.1:8443 ssl"
incg origin nginx -e "$T/nginx/error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf" \
    >"$T/nginx.log" 2>&1 &
pids="$pids $!"
i=0
until $NSX curl -sf --cacert "$T/oca.pem" -o /dev/null https://127.0.0.1:8443/small; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "proxy_bench: nginx did not start"; cat "$T"/nginx*.log \
	    "$T/nginx/error.log"; exit 1; }
	sleep 0.05
done

# --- one setup at a time ------------------------------------------------------------
# client ARGS...: bench_proxyclient in the namespace; prints its result line.
client() { $NSX "$CLIENT" "$@" 2>>"$T/client.err"; }
field() { kv_field "$@"; }

# measure NAME ARGS...: the three workloads for one setup (ARGS: where the
# client goes, -C CA); results in R_NAME_*.  CPU is the cgroup's, when the
# setup has one (a proxy).
measure() {
	_n=$1
	shift
	# Warm up and wait for the proxy (bounded): a few connections first.
	_i=0
	while :; do
		_r=$($NSX "$CLIENT" -m connect -t 0.3 -c 1 -p /small "$@" 2>/dev/null)
		[ "$(field "$_r" conns)" -gt 0 ] 2>/dev/null && break
		_i=$((_i + 1))
		[ $_i -gt 40 ] && { eval "R_${_n}_dead=1"; return 1; }
		sleep 0.25
	done
	for _w in bulk keepalive connect; do
		case $_w in
		bulk) _args="-m bulk -c 1 -p /big" ;;
		keepalive) _args="-m keepalive -c $CONNS -p /small" ;;
		connect) _args="-m connect -c $CONNS -p /small" ;;
		esac
		_c0=0
		[ -d "$CG/$_n" ] && _c0=$(cpu_usec "$_n")
		if [ "$_w" != keepalive ] && [ "$_n" = proxyd ] && [ -n "${BENCH_PERF:-}" ]; then
			perf record -q -e cpu-clock -F 499 -g -p "$PXD" -o "$T/perf-$_w.data" -- \
			    sleep "$SECS" >"$T/perf.log" 2>&1 &
			_perf=$!
		fi
		_r=$(client $_args -t "$SECS" "$@")
		[ -n "${_perf:-}" ] && { wait "$_perf"; _perf=""; }
		_c1=0
		[ -d "$CG/$_n" ] && _c1=$(cpu_usec "$_n")
		eval "R_${_n}_${_w}='$_r'"
		eval "R_${_n}_${_w}_cpu=$((_c1 - _c0))"
	done
	[ -d "$CG/$_n" ] && eval "R_${_n}_rss=$(hwm_kib "$_n")"
	return 0
}

stop() { stop_one "$1"; }

SETUPS="direct"
measure direct -a 127.0.0.1:8443 -C "$T/oca.pem"

incg proxyd "$B/bin/proxyd" -f -r "$T" -s "$T/state" --listen 127.0.0.1:3128 \
    --upstream-ca "$T/oca.pem" >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"
i=0
until [ -s "$T/state/localcap-ca-cert.pem" ] || [ $i -gt 100 ]; do sleep 0.05; i=$((i + 1)); done
SETUPS="$SETUPS proxyd"
measure proxyd -a 127.0.0.1:8443 -x 127.0.0.1:3128 -C "$T/state/localcap-ca-cert.pem"
stop "$PXD"

if command -v sslsplit >/dev/null 2>&1; then
	incg sslsplit sslsplit -k "$T/pca.key" -c "$T/pca.pem" -K "$T/leaf.key" \
	    ${SSLSPLIT_SPEC:-ssl} 127.0.0.1 10443 127.0.0.1 8443 >"$T/sslsplit.log" 2>&1 &
	SSP=$!
	pids="$pids $SSP"
	SETUPS="$SETUPS sslsplit"
	measure sslsplit -a 127.0.0.1:10443 -C "$T/pca.pem"
	stop "$SSP"
else
	R_sslsplit_missing=1
	SETUPS="$SETUPS sslsplit"
fi

if command -v mitmdump >/dev/null 2>&1; then
	incg mitmproxy env HOME="$T/mitm" mitmdump -q --listen-host 127.0.0.1 -p 18080 \
	    --set confdir="$T/mitm" --set ssl_verify_upstream_trusted_ca="$T/oca.pem" \
	    --set stream_large_bodies=1m >"$T/mitmproxy.log" 2>&1 &
	MTP=$!
	pids="$pids $MTP"
	SETUPS="$SETUPS mitmproxy"
	measure mitmproxy -a 127.0.0.1:8443 -x 127.0.0.1:18080 -C "$T/pca.pem"
	stop "$MTP"
else
	R_mitmproxy_missing=1
	SETUPS="$SETUPS mitmproxy"
fi

# --- the table ------------------------------------------------------------------------
# value SETUP ROW: one figure, or "n/a".
value() {
	eval "_miss=\${R_$1_missing:-}; _dead=\${R_$1_dead:-}"
	[ -n "$_miss" ] && { echo "n/a"; return; }
	[ -n "$_dead" ] && { echo "n/a"; return; }
	case $2 in
	bulk | keepalive | connect) eval "_r=\${R_$1_$2:-}" ;;
	*) eval "_r=\${R_$1_${2%_*}:-}; _cpu=\${R_$1_${2%_*}_cpu:-0}" ;;
	esac
	_s=$(field "$_r" secs)
	case $2 in
	bulk) awk -v b="$(field "$_r" bytes)" -v s="$_s" 'BEGIN { printf "%.0f", b / s / 1e6 }' ;;
	keepalive) awk -v n="$(field "$_r" reqs)" -v s="$_s" 'BEGIN { printf "%.0f", n / s }' ;;
	connect) awk -v n="$(field "$_r" conns)" -v s="$_s" 'BEGIN { printf "%.0f", n / s }' ;;
	rss) [ "$1" = direct ] && { echo "-"; return; }
		eval "_k=\${R_$1_rss:-0}"; awk -v k="$_k" 'BEGIN { printf "%.1f", k / 1024 }' ;;
	*_cpu)
		[ "$1" = direct ] && { echo "-"; return; }
		case $2 in
		bulk_cpu) awk -v c="$_cpu" -v b="$(field "$_r" bytes)" \
			'BEGIN { if (b > 0) printf "%.2f", c / 1e6 / (b / 1e9); else print "n/a" }' ;;
		keepalive_cpu) awk -v c="$_cpu" -v n="$(field "$_r" reqs)" \
			'BEGIN { if (n > 0) printf "%.1f", c / n; else print "n/a" }' ;;
		connect_cpu) awk -v c="$_cpu" -v n="$(field "$_r" conns)" \
			'BEGIN { if (n > 0) printf "%.0f", c / n; else print "n/a" }' ;;
		esac ;;
	esac
}
ratio() { bench_ratio "$@"; }

echo "proxyd, sslsplit and mitmproxy against direct, $SECS s per figure, $CONNS connections"
echo "for requests/s and connections/s (client: bench_proxyclient, OpenSSL; origin: nginx)"
printf '\n%-34s %9s %9s %9s %9s | %8s %8s %8s\n' "" direct proxyd sslsplit mitmproxy \
    "px/dir" "px/ssls" "px/mitm"
for row in bulk keepalive connect bulk_cpu keepalive_cpu connect_cpu rss; do
	case $row in
	bulk) label="HTTPS bulk MB/s (higher better)" ;;
	keepalive) label="keep-alive req/s (higher better)" ;;
	connect) label="new TLS conn/s (higher better)" ;;
	bulk_cpu) label="CPU s per GB (lower better)" ;;
	keepalive_cpu) label="CPU ms per 1,000 req (lower)" ;;
	connect_cpu) label="CPU ms per 1,000 conn (lower)" ;;
	rss) label="peak RSS MiB (lower better)" ;;
	esac
	d=$(value direct $row); p=$(value proxyd $row)
	s=$(value sslsplit $row); m=$(value mitmproxy $row)
	printf '%-34s %9s %9s %9s %9s | %8s %8s %8s\n' "$label" "$d" "$p" "$s" "$m" \
	    "$(ratio "$p" "$d")" "$(ratio "$p" "$s")" "$(ratio "$p" "$m")"
done
echo
for n in $SETUPS; do
	eval "_miss=\${R_${n}_missing:-}; _dead=\${R_${n}_dead:-}"
	[ -n "$_miss" ] && echo "$n: n/a (not installed: scripts/deps.sh --bench)"
	[ -n "$_dead" ] && echo "$n: n/a (did not answer; see its log with KEEP=1)"
	for w in bulk keepalive connect; do
		eval "_r=\${R_${n}_${w}:-}"
		e=$(field "$_r" errors)
		[ -n "$e" ] && [ "$e" != 0 ] && echo "$n $w: $e client errors"
	done
done
if [ -s "$T/client.err" ]; then
	echo "client errors (first lines):"
	sort "$T/client.err" | uniq -c | sort -rn | head -n 5
fi
echo "ratios: proxyd / the other (above 1 is better for the first three rows,"
echo "below 1 for the others); CPU and RSS are the proxy's alone (direct: -)"
echo "sslsplit is reached without CONNECT (static destination) and does not"
echo "verify the origin's certificate; proxyd also records every exchange in"
echo "its SQLite flow store, the peers record nothing"

for w in bulk connect; do
	[ -n "${BENCH_PERF:-}" ] && [ -s "$T/perf-$w.data" ] || continue
	echo
	case $w in
	bulk) echo "== where proxyd's time goes during the bulk transfer (perf, self time)" ;;
	connect) echo "== where proxyd's time goes making new TLS connections (perf, self time)" ;;
	esac
	perf report -i "$T/perf-$w.data" --stdio --no-children -g none --percent-limit 0.7 \
	    --sort dso,symbol 2>/dev/null | grep -v '^#' | grep '%' |
	    sed 's/[[:space:]-]*$//' | head -n 20
done
