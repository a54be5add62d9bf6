# Shell helpers shared by the proxy benchmarks (proxy_bench.sh,
# capture_bench.sh); sourced after test/lib.sh, not run.

# bench_pki DIR SAN: in DIR, the origin's CA (oca.pem/key) and its leaf
# (origin.pem/key, subjectAltName SAN, e.g. "DNS:origin.test,IP:127.0.0.1"),
# one CA for the peers (pca.pem/key), a leaf key for sslsplit (leaf.key)
# and mitmproxy's confdir (DIR/mitm).  All ECDSA P-256, like proxyd's.
bench_pki() {
	( cd "$1" &&
	  _ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes" &&
	  openssl req -x509 $_ec -keyout oca.key -out oca.pem -subj '/CN=Origin Test CA' \
	      -days 2 -addext basicConstraints=critical,CA:TRUE \
	      -addext keyUsage=critical,keyCertSign,cRLSign &&
	  openssl req -new $_ec -keyout origin.key -out origin.csr -subj '/CN=origin.test' &&
	  printf 'subjectAltName=%s\n' "$2" >san &&
	  openssl x509 -req -in origin.csr -CA oca.pem -CAkey oca.key -CAcreateserial \
	      -days 2 -extfile san -out origin.pem &&
	  openssl req -x509 $_ec -keyout pca.key -out pca.pem -subj '/CN=Peer Bench CA' \
	      -days 2 -addext basicConstraints=critical,CA:TRUE \
	      -addext keyUsage=critical,keyCertSign,cRLSign &&
	  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key &&
	  mkdir mitm && cat pca.key pca.pem >mitm/mitmproxy-ca.pem ) >"$1/pki.log" 2>&1 ||
	    { cat "$1/pki.log"; return 1; }
}

# bench_www DIR: DIR/www with a 1 GiB file (sparse, read once so it is in
# the page cache before anything is measured) and a 3-byte one.
bench_www() {
	mkdir -p "$1/www"
	truncate -s 1G "$1/www/big"
	cat "$1/www/big" >/dev/null
	printf 'ok\n' >"$1/www/small"
}

# bench_nginx_conf DIR LISTEN...: DIR/nginx/nginx.conf, one worker serving
# DIR/www on each LISTEN ("ADDR:PORT ssl" for TLS with DIR/origin.pem,
# "ADDR:PORT" for plain HTTP).  No access log, keep-alive without limit.
bench_nginx_conf() {
	_d=$1
	shift
	mkdir -p "$_d/nginx/tmp"
	{
	cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $_d/nginx/nginx.pid;
error_log $_d/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	default_type application/octet-stream;
	keepalive_requests 10000000;
	keepalive_timeout 60s;
	client_body_temp_path $_d/nginx/tmp/body;
	proxy_temp_path $_d/nginx/tmp/proxy;
	fastcgi_temp_path $_d/nginx/tmp/fastcgi;
	uwsgi_temp_path $_d/nginx/tmp/uwsgi;
	scgi_temp_path $_d/nginx/tmp/scgi;
	server {
EOF
	for _l in "$@"; do printf '\t\tlisten %s;\n' "$_l"; done
	cat <<EOF
		ssl_certificate $_d/origin.pem;
		ssl_certificate_key $_d/origin.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		root $_d/www;
	}
}
EOF
	} >"$_d/nginx/nginx.conf"
}

# cg_cpu_usec CGROUP: CPU time (µs) of everything that ran in it and below.
cg_cpu_usec() { awk '/^usage_usec/ { print $2 }' "$1/cpu.stat"; }

# cg_hwm_kib CGROUP: peak RSS (KiB) of the processes in it and below, added
# up (VmHWM: cgroup v1 hybrids have no memory.peak in the v2 tree).
cg_hwm_kib() {
	_sum=0
	for _p in $(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		_v=$(awk '/^VmHWM/ { print $2 }' "/proc/$_p/status" 2>/dev/null)
		_sum=$((_sum + ${_v:-0}))
	done
	echo "$_sum"
}

# cg_mem_makeup CGROUP: one line per process in it and below: its name,
# VmHWM (peak), and now VmRSS split into RssAnon / RssFile / RssShmem.
cg_mem_makeup() {
	printf '  %-14s %8s %8s %8s %8s %8s\n' process peak rss anon file shmem
	for _p in $(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		awk -v pid="$_p" '
		    /^Name:/ { n = $2 } /^VmHWM/ { h = $2 } /^VmRSS/ { r = $2 }
		    /^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } /^RssShmem/ { s = $2 }
		    END { printf "  %-14s %8s %8s %8s %8s %8s\n", n "/" pid, h, r, a, f, s }' \
		    "/proc/$_p/status" 2>/dev/null
	done
}

# kv_field LINE NAME: the value of NAME=VALUE in a line of such pairs.
kv_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# stop_one PID: end one process (SIGTERM, then SIGKILL after 2 s), reaped.
stop_one() {
	kill "$1" 2>/dev/null
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 20 ]; do sleep 0.1; _i=$((_i + 1)); done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# bench_ratio A B: A/B as "1.23x", "-" when either is missing or zero.
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'
}
