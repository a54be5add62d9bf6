#!/bin/sh
# make bench: every benchmark, each printing figures and ratios against a
# baseline it measures in the same run.  Not tests: nothing here fails on a
# number.  BENCH_SECONDS sets iperf3's duration (default 5) and each
# measurement of the proxy benchmarks (default 4).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
B="$top/${BUILD:-build}"

echo "== proxyd relay on loopback (direct vs relayed)"
"$B/bench/bench_relay" 256
echo
echo "== certificate forging"
"$B/bench/bench_certforge" 1
echo
echo "== TLS interception engine (decrypt + encrypt) vs a plain TLS connection"
"$B/bench/bench_mitm" 2 64
echo
echo "== the flow store's reader on 500,000 exchanges (the old view vs keyset pages; the CLI)"
"$B/bench/bench_store" "${BENCH_STORE_EXCHANGES:-500000}" "$B/bin/localcapctl"
echo
echo "== netstackd end to end"
"$top/test/bench/netstack_bench.sh"
echo
echo "== proxyd as an explicit proxy vs direct, sslsplit and mitmproxy"
"$top/test/bench/proxy_bench.sh"
echo
echo "== the viewer's API on a 500,000-exchange store (webd vs storeread and localcapctl)"
"$top/test/bench/webd_bench.sh"
echo "== localcap's capture path vs direct, sslsplit and mitmproxy (transparent)"
"$top/test/bench/capture_bench.sh"
echo "== HTTP/2 through proxyd vs direct and mitmproxy (h2load)"
"$top/test/bench/h2_bench.sh"
