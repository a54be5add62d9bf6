#!/bin/sh
# The HTTP/2 benchmark (issue 10): h2load doing the same work against the
# same h2 origin (nginx, TLS, http2), in one run, for
#
#   direct     h2load -> origin (the ceiling)
#   shim       h2load -> socat -> origin (the shim below, alone)
#   proxyd     h2load -> CONNECT -> proxyd --listen -> origin, h2 on both
#              legs, every stream relayed and recorded
#   mitmproxy  h2load -> CONNECT -> mitmdump (regular mode) -> origin
#
# h2load cannot speak to a proxy, so for the two proxies it connects to a
# socat shim that opens the CONNECT tunnel (socat's PROXY address) and
# copies; the shim runs in its own cgroup, so its CPU is counted against
# neither proxy, but its copy is in the path of both.
#
# Figures per setup: keep-alive requests/s (BENCH_CONNS connections, 50
# streams each at once, a small file), bulk MB/s (one connection, one
# stream at a time, 256 MiB files; and the same over HTTP/1.1, h2load
# --h1, for the HTTP/1 layer's figure on the same path), the proxy's CPU per 1,000 requests and
# per GB (its cgroup), and its peak RSS.  Ratios put proxyd against each.
# BENCH_SECONDS per keep-alive measurement (default 4), BENCH_CONNS
# (default 4).  BENCH_PERF=1 also profiles proxyd (perf) during the
# keep-alive run and prints its top symbols.  KEEP=1 keeps the logs.
# Everything runs in a network namespace the script creates, the proxies
# in child cgroups it creates; both are removed on every exit path.  Root
# only.  Not a test: nothing here fails on a number.
# shellcheck disable=SC2034,SC2154 # results are set and read through eval
set -u

if [ "$(id -u)" -ne 0 ]; then
	echo "h2_bench: needs root (a network namespace, cgroups); skipped"
	exit 0
fi
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"
for tool in nginx h2load socat openssl curl "$B/bin/proxyd"; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "h2_bench: $tool missing (scripts/deps.sh --bench; make bench); skipped"
		exit 0
	}
done
. "$top/test/lib.sh"
SECS=${BENCH_SECONDS:-4}
CONNS=${BENCH_CONNS:-4}
NS="lc-h2bench-$$"
T=$(mktemp -d /tmp/lc-h2bench.XXXXXX)
chmod 755 "$T"
CG=$(make_cgroup "localcap-h2bench-$$") || { echo "h2_bench: no cgroup v2"; exit 0; }
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
NSX="ip netns exec $NS"
# incg NAME CMD...: CMD in the namespace, in the child cgroup CG/NAME (run
# in the background: exec, so $! is the program).
incg() {
	_cg="$CG/$1"
	shift
	mkdir -p "$_cg"
	exec nsenter --net="/run/netns/$NS" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$_cg" "$@"
}
cpu_usec() { awk '/^usage_usec/ { print $2 }' "$CG/$1/cpu.stat"; }
hwm_kib() {
	_sum=0
	for _p in $(cat "$CG/$1/cgroup.procs"); do
		_v=$(awk '/^VmHWM/ { print $2 }' "/proc/$_p/status" 2>/dev/null)
		_sum=$((_sum + ${_v:-0}))
	done
	echo "$_sum"
}

# --- PKI and the origin: nginx with http2, one worker ---------------------------------
EC="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
( cd "$T" &&
  openssl req -x509 $EC -keyout oca.key -out oca.pem -subj '/CN=Origin Test CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  openssl req -new $EC -keyout origin.key -out origin.csr -subj '/CN=origin.test' &&
  printf 'subjectAltName=DNS:origin.test,IP:127.0.0.1\n' >san &&
  openssl x509 -req -in origin.csr -CA oca.pem -CAkey oca.key -CAcreateserial \
      -days 2 -extfile san -out origin.pem &&
  openssl req -x509 $EC -keyout pca.key -out pca.pem -subj '/CN=Peer Bench CA' \
      -days 2 -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
  mkdir mitm && cat pca.key pca.pem >mitm/mitmproxy-ca.pem ) >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; exit 1; }
mkdir -p "$T/www" "$T/nginx/tmp"
truncate -s 256M "$T/www/big"
cat "$T/www/big" >/dev/null
printf 'ok\n' >"$T/www/small"
cat >"$T/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	default_type application/octet-stream;
	keepalive_requests 10000000;
	keepalive_timeout 60s;
	http2_max_requests 10000000;
	http2_max_concurrent_streams 128;
	client_body_temp_path $T/nginx/tmp/body;
	proxy_temp_path $T/nginx/tmp/proxy;
	fastcgi_temp_path $T/nginx/tmp/fastcgi;
	uwsgi_temp_path $T/nginx/tmp/uwsgi;
	scgi_temp_path $T/nginx/tmp/scgi;
	server {
		listen 127.0.0.1:8443 ssl http2;
		ssl_certificate $T/origin.pem;
		ssl_certificate_key $T/origin.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		root $T/www;
	}
}
EOF
incg origin nginx -e "$T/nginx/error.log" -p "$T/nginx" -c "$T/nginx/nginx.conf" \
    >"$T/nginx.log" 2>&1 &
pids="$pids $!"
i=0
until $NSX curl -sf --http2 --cacert "$T/oca.pem" -o /dev/null https://127.0.0.1:8443/small; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "h2_bench: nginx did not start"; cat "$T/nginx/error.log"; exit 1; }
	sleep 0.05
done

# h2load ARGS...: in the namespace; its output.
h2l() { $NSX h2load "$@" 2>&1; }
# From h2load's output: requests/s, MB/s, succeeded.
rps() { sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' | head -n 1; }
mbs() { sed -n 's/^finished in [^,]*, [^,]*, \([0-9.]*\)\([KMG]\)B\/s.*/\1 \2/p' | head -n 1 |
    awk '{ m = $2 == "G" ? 1000 : $2 == "K" ? 0.001 : 1; printf "%.0f", $1 * m }'; }
okn() { sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' | head -n 1; }

# measure NAME PORT: the two workloads with h2load connecting to PORT.
measure() {
	_n=$1 _port=$2
	_u="https://origin.test:8443"
	_to="--connect-to=127.0.0.1:$_port"
	# Wait for the path (bounded).
	_i=0
	until [ "$(h2l -n 1 -c 1 $_to $_u/small | okn)" = 1 ]; do
		_i=$((_i + 1))
		[ $_i -gt 40 ] && { eval "R_${_n}_dead=1"; return 1; }
		sleep 0.25
	done
	_c0=0
	[ -d "$CG/$_n" ] && _c0=$(cpu_usec "$_n")
	if [ "$_n" = proxyd ] && [ -n "${BENCH_PERF:-}" ]; then
		perf record -q -e cpu-clock -F 499 -g -p "$PXD" -o "$T/perf.data" -- \
		    sleep "$SECS" >"$T/perf.log" 2>&1 &
		_perf=$!
	fi
	_o=$(h2l -D "$SECS" -c "$CONNS" -m 50 $_to $_u/small)
	[ -n "${_perf:-}" ] && { wait "$_perf"; _perf=""; }
	_c1=0
	[ -d "$CG/$_n" ] && _c1=$(cpu_usec "$_n")
	echo "$_o" >"$T/h2load-$_n-keepalive.txt"
	eval "R_${_n}_keepalive=$(echo "$_o" | rps)"
	eval "R_${_n}_reqs=$(echo "$_o" | okn)"
	eval "R_${_n}_keepalive_cpu=$((_c1 - _c0))"
	_c0=$_c1
	_o=$(h2l -n 4 -c 1 -m 1 $_to $_u/big)
	_c1=0
	[ -d "$CG/$_n" ] && _c1=$(cpu_usec "$_n")
	echo "$_o" >"$T/h2load-$_n-bulk.txt"
	eval "R_${_n}_bulk=$(echo "$_o" | mbs)"
	eval "R_${_n}_bulk_cpu=$((_c1 - _c0))"
	# The same over HTTP/1.1 (h2load --h1): the HTTP/1 layer's figure.
	_o=$(h2l --h1 -n 4 -c 1 -m 1 $_to $_u/big)
	echo "$_o" >"$T/h2load-$_n-bulk-h1.txt"
	eval "R_${_n}_h1bulk=$(echo "$_o" | mbs)"
	[ -d "$CG/$_n" ] && eval "R_${_n}_rss=$(hwm_kib "$_n")"
	return 0
}

stop() {
	kill "$1" 2>/dev/null
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 20 ]; do sleep 0.1; _i=$((_i + 1)); done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
# shim PROXYPORT: socat on 19443 opening a CONNECT tunnel to the origin
# through the proxy at PROXYPORT for each connection.
# (PROXYPORT 0: a plain TCP forward to the origin, to measure the shim.)
shim() {
	if [ "$1" = 0 ]; then
		_to=TCP:127.0.0.1:8443
	else
		_to="PROXY:127.0.0.1:127.0.0.1:8443,proxyport=$1"
	fi
	incg shim socat -b 262144 TCP-LISTEN:19443,bind=127.0.0.1,reuseaddr,fork \
	    "$_to" >"$T/socat.log" 2>&1 &
	SHIM=$!
	pids="$pids $SHIM"
}

measure direct 8443
shim 0
measure shim 19443
stop "$SHIM"

incg proxyd "$B/bin/proxyd" -f -r "$T" -s "$T/state" --listen 127.0.0.1:3128 \
    --upstream-ca "$T/oca.pem" >"$T/proxyd.log" 2>&1 &
PXD=$!
pids="$pids $PXD"
shim 3128
measure proxyd 19443
R_proxyd_exchanges=$("$B/bin/localcapctl" -s "$T/state" flows --json 2>/dev/null |
    grep -c '"http_version":"HTTP/2.0"')
stop "$SHIM"
stop "$PXD"

if command -v mitmdump >/dev/null 2>&1; then
	incg mitmproxy env HOME="$T/mitm" mitmdump -q --listen-host 127.0.0.1 -p 18080 \
	    --set confdir="$T/mitm" --set ssl_verify_upstream_trusted_ca="$T/oca.pem" \
	    --set stream_large_bodies=1m >"$T/mitmproxy.log" 2>&1 &
	MTP=$!
	pids="$pids $MTP"
	shim 18080
	measure mitmproxy 19443
	stop "$SHIM"
	stop "$MTP"
else
	R_mitmproxy_missing=1
fi

value() {
	eval "_miss=\${R_$1_missing:-}; _dead=\${R_$1_dead:-}"
	[ -n "$_miss$_dead" ] && { echo "n/a"; return; }
	case $2 in
	keepalive) eval "echo \${R_$1_keepalive:-n/a}" | awk '{ printf "%.0f", $1 }' ;;
	bulk) eval "echo \${R_$1_bulk:-n/a}" ;;
	h1bulk) eval "echo \${R_$1_h1bulk:-n/a}" ;;
	keepalive_cpu)
		[ "$1" = direct ] && { echo "-"; return; }
		eval "_c=\${R_$1_keepalive_cpu:-0} _r=\${R_$1_reqs:-0}"
		awk -v c="$_c" -v n="$_r" 'BEGIN { if (n > 0) printf "%.1f", c / n; else print "n/a" }' ;;
	bulk_cpu)
		[ "$1" = direct ] && { echo "-"; return; }
		eval "_c=\${R_$1_bulk_cpu:-0}"
		awk -v c="$_c" 'BEGIN { printf "%.2f", c / 1e6 / (4 * 268435456 / 1e9) }' ;;
	rss)
		[ "$1" = direct ] && { echo "-"; return; }
		eval "_k=\${R_$1_rss:-0}"; awk -v k="$_k" 'BEGIN { printf "%.1f", k / 1024 }' ;;
	esac
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'
}

echo "HTTP/2 through proxyd and mitmproxy against direct (h2load; origin: nginx http2)"
echo "keep-alive: $SECS s, $CONNS connections x 50 streams, a 3-byte file; bulk: 4 x 256 MiB, one stream"
printf '\n%-34s %9s %9s %9s %9s | %8s %8s %8s\n' "" direct shim proxyd mitmproxy \
    "px/dir" "px/shim" "px/mitm"
for row in keepalive bulk h1bulk keepalive_cpu bulk_cpu rss; do
	case $row in
	keepalive) label="h2 keep-alive req/s (higher)" ;;
	bulk) label="h2 bulk MB/s (higher better)" ;;
	h1bulk) label="HTTP/1.1 bulk MB/s, same path" ;;
	keepalive_cpu) label="CPU ms per 1,000 req (lower)" ;;
	bulk_cpu) label="CPU s per GB (lower better)" ;;
	rss) label="peak RSS MiB (lower better)" ;;
	esac
	d=$(value direct $row); p=$(value proxyd $row); m=$(value mitmproxy $row)
	sh=$(value shim $row)
	case $row in *cpu|rss) sh="-";; esac
	printf '%-34s %9s %9s %9s %9s | %8s %8s %8s\n' "$label" "$d" "$sh" "$p" "$m" \
	    "$(ratio "$p" "$d")" "$(ratio "$p" "$sh")" "$(ratio "$p" "$m")"
done
echo
echo "proxyd recorded ${R_proxyd_exchanges:-0} HTTP/2.0 exchanges in its flow store"
[ -n "${R_mitmproxy_missing:-}" ] && echo "mitmproxy: n/a (not installed: scripts/deps.sh --bench)"
for n in proxyd mitmproxy; do
	eval "_dead=\${R_${n}_dead:-}"
	[ -n "$_dead" ] && echo "$n: n/a (did not answer; see its log with KEEP=1)"
done
echo "the proxies are reached through a socat CONNECT shim (h2load has no proxy"
echo "support): its copy is in their path, its CPU is not counted against them"

if [ -n "${BENCH_PERF:-}" ] && [ -s "$T/perf.data" ]; then
	echo
	echo "== where proxyd's time goes relaying h2 streams (perf, self time)"
	perf report -i "$T/perf.data" --stdio --no-children -g none --percent-limit 0.7 \
	    --sort dso,symbol 2>/dev/null | grep -v '^#' | grep '%' |
	    sed 's/[[:space:]-]*$//' | head -n 25
fi
