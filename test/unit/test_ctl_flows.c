/*
 * Unit tests for ctl/flows.c — localcapctl flows, show and export --har —
 * against a fixture store built through proxyd's writer API (store.h):
 * the columns of the table, --json lines, every filter, --follow picking
 * up a flow written while it runs (and stopping on SIGINT), show's
 * headers, text and hex bodies, DNS answers and raw --body, HAR 1.2
 * checked structurally with python3's json, and the error lines (no store,
 * unknown id, bad --since).  Each command runs in a child whose stdout and
 * stderr are captured.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sqlite3.h>
#include <poll.h>
#include <pty.h>

#include "log.h"
#include "ctl/flows.h"
#include "proxyd/store.h"
#include "test/unit/helpers/flowfix.h"

static char dir[64];
static char dbpath[128];
static char outpath[128], errpath[128];
static char out[256 * 1024], err[16 * 1024];
static size_t out_len;
static int64_t t_now;

static const uint8_t png[] = {
	0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0x0d, 'I', 'H',
	'D', 'R', 0, 0, 0, 1, 0xff,
};


static int64_t
realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * 1: curl, HTTPS, two exchanges (text, then binary with a 500);
 * 2: a DNS query and its answer; 3: a raw TCP flow; 4: wget, HTTP 404,
 * two hours ago; 5: still running.
 */
/* flow 3's executable path (NewFlow.owner.exe, schema 6) */
static char nc_exe[] = "/usr/bin/nc.openbsd";

static void
build_fixture(void)
{
	static const struct http_field req1[] = {
		{ "Host", 4, "example.org", 11 },
		{ "Accept", 6, "*/*", 3 },
	};
	static const struct http_field resp1[] = {
		{ "Content-Type", 12, "text/html", 9 },
		{ "X-Odd", 5, "a\0b\x1b[31m", 8 },
		/* C1 CSI (U+009B) and a right-to-left override (U+202E). */
		{ "X-C1", 4, "\xc2\x9b" "2J\xe2\x80\xae" "evil", 11 },
	};
	static const struct http_field req2[] = {
		{ "Host", 4, "example.org", 11 },
		{ "Content-Type", 12, "image/png", 9 },
	};
	static const struct http_field resp2[] = {
		{ "Content-Type", 12, "application/octet-stream", 24 },
	};
	struct store_flow_facts tls = {
		.protocol = "https", .tls_version = "TLSv1.3",
		.tls_cipher = "TLS1-3-AES-128-GCM-SHA256", .sni = "example.org",
		.alpn = "http/1.1",
		.upstream_tls_version = "TLSv1.2", .upstream_tls_cipher = "X",
		.upstream_resumed = true, .server_cert_subject = "CN=example.org",
		.server_cert_issuer = "CN=Test CA", .server_cert_verified = 1,
		.client_alpn_offer = "h2,http/1.1",
	};
	struct store_flow_facts raw = { .protocol = "raw" };
	struct store_flow_facts dns = { .protocol = "dns" };
	struct store_flow_facts http = { .protocol = "http" };
	struct store_http h;
	struct flow_record rec;
	struct store *st;
	char e[256];
	int64_t row, t = t_now - 60 * 1000000;

	st = store_open(dbpath, NULL, e, sizeof(e));
	if (st == NULL)
		fail_msg("store_open: %s", e);

	flowfix_record(&rec, 1, FLOW_TCP, "curl", 100, "192.0.2.7", 443, t);
	row = store_flow_begin(st, &rec);
	memset(&h, 0, sizeof(h));
	h.seq = 1;
	h.scheme = "https";
	h.method = "GET";
	h.target = "/index.html?q=a%20b&x";
	h.host = "example.org";
	h.version_minor = 1;
	h.status = 200;
	h.reason = "OK";
	h.req_fields = req1;
	h.n_req_fields = 2;
	h.resp_fields = resp1;
	h.n_resp_fields = 3;
	h.resp_body = (const uint8_t *)"<h1>hi</h1>\r\n";
	h.resp_body_len = h.resp_body_size = 13;
	h.req_start_us = (uint64_t)t + 1000;
	h.req_end_us = (uint64_t)t + 2000;
	h.resp_start_us = (uint64_t)t + 12000;
	h.resp_end_us = (uint64_t)t + 15000;
	assert_true(store_http_add(st, row, &h) > 0);
	h.seq = 2;
	h.method = "POST";
	h.target = "/upload";
	h.status = 500;
	h.reason = "Internal Server Error";
	h.req_fields = req2;
	h.resp_fields = resp2;
	h.n_resp_fields = 1;
	h.req_body = png;
	h.req_body_len = h.req_body_size = sizeof(png);
	h.resp_body = png;
	h.resp_body_len = h.resp_body_size = sizeof(png);
	h.req_start_us = (uint64_t)t + 20000;
	h.req_end_us = (uint64_t)t + 21000;
	h.resp_start_us = (uint64_t)t + 30000;
	h.resp_end_us = (uint64_t)t + 31000;
	assert_true(store_http_add(st, row, &h) > 0);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t + 40000;
	rec.has_tcp_stats = 1;
	rec.tcp_stats = (struct flow_tcp_stats){ .packets_from_app = 40,
		.packets_to_app = 35, .retransmits = 0, .rtt_us = 12000 };
	assert_int_equal(store_flow_end(st, row, &rec, &tls), 0);

	flowfix_record(&rec, 2, FLOW_UDP, "resolver", 200, "192.0.2.53", 53, t + 100000);
	row = store_flow_begin(st, &rec);
	assert_int_equal(store_dns_add_wire(st, row, (uint64_t)t + 100000,
	    flowfix_dns_query, sizeof(flowfix_dns_query)), 0);
	assert_int_equal(store_dns_add_wire(st, row, (uint64_t)t + 103000,
	    flowfix_dns_answer, sizeof(flowfix_dns_answer)), 0);
	rec.end = FLOW_END_IDLE;
	rec.end_us = (uint64_t)t + 200000;
	assert_int_equal(store_flow_end(st, row, &rec, &dns), 0);

	flowfix_record(&rec, 3, FLOW_TCP, "nc", 300, "192.0.2.9", 7000, t + 300000);
	rec.meta.exe = nc_exe;	/* as the macOS extension tells it */
	row = store_flow_begin(st, &rec);
	rec.bytes_from_app = 10;
	rec.bytes_to_app = 2048;
	flow_keep_first(rec.first_from_app, &rec.first_from_app_len,
	    "hello\x00\x01", 7);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t + 1300000;
	rec.has_tcp_stats = 1;
	rec.tcp_stats = (struct flow_tcp_stats){ .packets_from_app = 14,
		.packets_to_app = 12, .retransmits = 3, .rtt_us = 875 };
	assert_int_equal(store_flow_end(st, row, &rec, &raw), 0);
	rec.meta.exe = NULL;

	flowfix_record(&rec, 4, FLOW_TCP, "wget", 400, "192.0.2.10", 80,
	    t_now - 2 * 3600 * 1000000LL);
	row = store_flow_begin(st, &rec);
	memset(&h, 0, sizeof(h));
	h.seq = 1;
	h.scheme = "http";
	h.method = "GET";
	h.target = "http://other.test/missing";
	h.host = "other.test";
	h.version_minor = 1;
	h.status = 404;
	h.reason = "Not Found";
	h.req_start_us = rec.meta.start_us + 100;
	h.resp_start_us = rec.meta.start_us + 900;
	h.resp_end_us = rec.meta.start_us + 1000;
	assert_true(store_http_add(st, row, &h) > 0);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = rec.meta.start_us + 2000;
	assert_int_equal(store_flow_end(st, row, &rec, &http), 0);

	flowfix_record(&rec, 5, FLOW_TCP, "ssh", 500, "192.0.2.22", 22, t + 400000);
	assert_true(store_flow_begin(st, &rec) > 0);
	store_close(st);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_ctl_flows.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/%s", dir, STORE_DIR_NAME);
	if (mkdir(dbpath, 0700) == -1)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/%s/%s", dir, STORE_DIR_NAME,
	    STORE_DB_NAME);
	snprintf(outpath, sizeof(outpath), "%s/out", dir);
	snprintf(errpath, sizeof(errpath), "%s/err", dir);
	t_now = realtime_us();
	build_fixture();
	return 0;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	/* Only our own mkdtemp directory. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t
slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	size_t len = 0;

	if (fd == -1) {
		buf[0] = '\0';
		return 0;
	}
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return len;
}

typedef int (*ctl_fn)(const char *, int, char **);

/* Run fn(state_dir, argv) in a child; its exit code, output in out/err. */
static int
run_child(ctl_fn fn, const char *state_dir, pid_t *bg, char **argv)
{
	int argc = 0, status, fd;
	pid_t pid;

	while (argv[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, STDOUT_FILENO);
		close(fd);
		fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, STDERR_FILENO);
		close(fd);
		/* exit, not _exit: LeakSanitizer checks the command at exit. */
		exit(fn(state_dir, argc, argv));
	}
	if (bg) {
		*bg = pid;
		return 0;
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	out_len = slurp(outpath, out, sizeof(out));
	slurp(errpath, err, sizeof(err));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define RUN(fn, ...) run_child(fn, dir, NULL, (char *[]){ __VA_ARGS__, NULL })

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The output line whose first column is id, or NULL. */
static const char *
line_of(const char *id)
{
	static char line[2048];
	const char *p = out;
	size_t idlen = strlen(id);

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (strncmp(p, id, idlen) == 0 && p[idlen] == ' ') {
			snprintf(line, sizeof(line), "%.*s", (int)len, p);
			return line;
		}
		p += len + (nl != NULL);
	}
	return NULL;
}

static void
assert_line_has(const char *id, const char *what)
{
	const char *l = line_of(id);

	if (l == NULL)
		fail_msg("no line %s in:\n%s", id, out);
	if (strstr(l, what) == NULL)
		fail_msg("line %s lacks '%s': %s", id, what, l);
}

static void
flows_table_one_line_per_entry(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_flows, "flows"), 0);
	/* Header + 1.1, 1.2, 2.1, 3, 4.1, 5. */
	assert_int_equal(count_lines(out), 7);
	assert_true(strncmp(out, "ID ", 3) == 0);
	assert_line_has("1.1", "curl(100)");
	assert_line_has("1.1", " GET ");
	assert_line_has("1.1", "https://example.org/index.html?q=a%20b&x");
	assert_line_has("1.1", " 200 ");
	assert_line_has("1.1", "0 B / 13 B");
	assert_line_has("1.1", "14 ms");
	assert_line_has("1.2", " POST ");
	assert_line_has("1.2", " 500 ");
	assert_line_has("2.1", "resolver(200)");
	assert_line_has("2.1", "DNS A");
	assert_line_has("2.1", "example.com");
	assert_line_has("2.1", "NOERROR");
	assert_line_has("2.1", "3.0 ms");
	assert_line_has("3", "nc(300)");
	assert_line_has("3", "RAW");
	assert_line_has("3", "192.0.2.9:7000");
	assert_line_has("3", "10 B / 2.0 KiB");
	assert_line_has("3", "closed");
	assert_line_has("3", "1.00 s");
	assert_line_has("4.1", "http://other.test/missing");
	assert_line_has("4.1", " 404 ");
	assert_line_has("5", "running");
	/* Oldest first: the two-hour-old wget exchange leads. */
	assert_true(strstr(out, "\n4.1 ") < strstr(out, "\n1.1 "));
	/* Not a terminal: no colour. */
	assert_null(strchr(out, '\033'));
}

static void
flows_json_lines_parse(void **state)
{
	char path[160], cmd[1024];
	FILE *f;

	(void)state;
	assert_int_equal(RUN(ctl_flows, "flows", "--json"), 0);
	assert_int_equal(count_lines(out), 6);
	assert_non_null(strstr(out, "{\"id\":\"1.1\",\"flow\":1,\"seq\":1,"
	    "\"kind\":\"http\""));
	assert_non_null(strstr(out, "\"id\":\"3\",\"flow\":3,\"seq\":null"));
	assert_non_null(strstr(out, "\"qtype\":\"A\""));
	snprintf(path, sizeof(path), "%s/flows.jsonl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(out, 1, out_len, f);
	fclose(f);
	if (system("command -v python3 >/dev/null") != 0)
		skip();
	snprintf(cmd, sizeof(cmd), "python3 -c '\n"
	    "import json, sys\n"
	    "rows = [json.loads(l) for l in open(sys.argv[1])]\n"
	    "keys = {\"id\",\"flow\",\"seq\",\"kind\",\"start\",\"start_us\","
	    "\"duration_us\",\"pid\",\"process\",\"proto\",\"method\",\"host\","
	    "\"path\",\"url\",\"status\",\"result\",\"bytes_up\",\"bytes_down\","
	    "\"dst\",\"tcp\"}\n"
	    "assert all(keys <= set(r) for r in rows), rows\n"
	    "by = {r[\"id\"]: r for r in rows}\n"
	    "assert by[\"1.2\"][\"status\"] == 500\n"
	    "assert by[\"2.1\"][\"host\"] == \"example.com\"\n"
	    "assert by[\"5\"][\"duration_us\"] is None\n"
	    "assert by[\"3\"][\"dst\"] == \"192.0.2.9:7000\"\n"
	    "assert by[\"3\"][\"tcp\"] == {\"packets_up\": 14, \"packets_down\": 12,"
	    " \"retransmits\": 3, \"rtt_us\": 875}, by[\"3\"]\n"
	    "assert by[\"1.1\"][\"tcp\"] == by[\"1.2\"][\"tcp\"]\n"
	    "assert by[\"1.2\"][\"tcp\"][\"rtt_us\"] == 12000\n"
	    "assert by[\"2.1\"][\"tcp\"] is None and by[\"4.1\"][\"tcp\"] is None\n"
	    "assert by[\"5\"][\"tcp\"] is None\n"
	    "' %s", path);
	assert_int_equal(system(cmd), 0);
}

static void
flows_filters_select_entries(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_flows, "flows", "--host", "example\\.org$"), 0);
	assert_int_equal(count_lines(out), 3);
	assert_non_null(line_of("1.1"));
	assert_non_null(line_of("1.2"));

	assert_int_equal(RUN(ctl_flows, "flows", "--method", "post"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("1.2"));

	/* Methods are HTTP's: a DNS type is not one. */
	assert_int_equal(RUN(ctl_flows, "flows", "--method", "A"), 0);
	assert_int_equal(count_lines(out), 1);

	assert_int_equal(RUN(ctl_flows, "flows", "--status", "404"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("4.1"));

	assert_int_equal(RUN(ctl_flows, "flows", "--process", "resolver"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("2.1"));

	assert_int_equal(RUN(ctl_flows, "flows", "--since", "1h"), 0);
	assert_int_equal(count_lines(out), 6);
	assert_null(line_of("4.1"));

	/* The last two, still oldest first. */
	assert_int_equal(RUN(ctl_flows, "flows", "--limit", "2"), 0);
	assert_int_equal(count_lines(out), 3);
	assert_non_null(line_of("3"));
	assert_non_null(line_of("5"));
	assert_true(strstr(out, "\n3 ") < strstr(out, "\n5 "));

	assert_int_equal(RUN(ctl_flows, "flows", "--host", "example", "--method",
	    "GET", "--since", "1h"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("1.1"));
}

/* Pages by cursor (what the viewer asks for), and --text. */
static void
flows_pages_before_and_after_an_id(void **state)
{
	(void)state;
	/* Oldest first: 4.1 1.1 1.2 2.1 3 5. */
	assert_int_equal(RUN(ctl_flows, "flows", "--limit", "2", "--before", "3"),
	    0);
	assert_int_equal(count_lines(out), 3);
	assert_true(strstr(out, "\n1.2 ") < strstr(out, "\n2.1 "));
	assert_int_equal(RUN(ctl_flows, "flows", "--after", "1.2", "--limit",
	    "2"), 0);
	assert_int_equal(count_lines(out), 3);
	assert_true(strstr(out, "\n2.1 ") < strstr(out, "\n3 "));
	assert_int_equal(RUN(ctl_flows, "flows", "--after", "3"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("5"));
	assert_int_equal(RUN(ctl_flows, "flows", "--text", "EXAMPLE.COM"), 0);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(line_of("2.1"));
	assert_int_equal(RUN(ctl_flows, "flows", "--before", "3"), 2);
	assert_int_equal(RUN(ctl_flows, "flows", "--after", "x"), 2);
	assert_int_equal(RUN(ctl_flows, "flows", "--after", "99"), 1);
	assert_non_null(strstr(err, "no entry 99"));
}

static void
flows_bad_options_are_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_flows, "flows", "--since", "yesterday"), 2);
	assert_non_null(strstr(err, "--since 'yesterday'"));
	assert_int_equal(count_lines(err), 1);
	assert_int_equal(RUN(ctl_flows, "flows", "--host", "a("), 2);
	assert_non_null(strstr(err, "--host 'a('"));
	assert_int_equal(RUN(ctl_flows, "flows", "--status", "abc"), 2);
	assert_int_equal(RUN(ctl_flows, "flows", "--limit", "0"), 2);
	assert_int_equal(RUN(ctl_flows, "flows", "stray"), 2);
}

static void
no_store_is_one_clear_line(void **state)
{
	char empty[160];

	(void)state;
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(run_child(ctl_flows, empty, NULL,
	    (char *[]){ "flows", NULL }), 1);
	assert_int_equal(count_lines(err), 1);
	assert_non_null(strstr(err, "no flows recorded yet in "));
	assert_non_null(strstr(err, empty));
	assert_int_equal(run_child(ctl_show, NULL, NULL,
	    (char *[]){ "show", "--state-dir", empty, "1", NULL }), 1);
	assert_non_null(strstr(err, "no flows recorded yet"));
	/* $LOCALCAP_STATE_DIR when neither the option nor the argument. */
	setenv("LOCALCAP_STATE_DIR", dir, 1);
	assert_int_equal(run_child(ctl_flows, NULL, NULL,
	    (char *[]){ "flows", NULL }), 0);
	assert_int_equal(count_lines(out), 7);
	unsetenv("LOCALCAP_STATE_DIR");
}

static void
show_exchange_headers_bodies_timings(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_show, "show", "1.1"), 0);
	assert_non_null(strstr(out, "flow 1  tcp  10.0.0.2:40001 -> 192.0.2.7:443"));
	assert_non_null(strstr(out, "curl (pid 100"));
	assert_non_null(strstr(out, "tls        client TLSv1.3 "
	    "TLS1-3-AES-128-GCM-SHA256 sni example.org alpn http/1.1 (offered "
	    "h2,http/1.1)\n           upstream TLSv1.2 X (resumed)\n"));
	assert_non_null(strstr(out, "server cert CN=example.org, issuer CN=Test "
	    "CA, verified\n"));
	assert_non_null(strstr(out, "GET https://example.org/index.html?q=a%20b&x"
	    " HTTP/1.1\n"));
	assert_non_null(strstr(out, "  Host: example.org\n"));
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\n"));
	/* Recorded bytes never reach the terminal raw. */
	assert_non_null(strstr(out, "  X-Odd: a\\x00b\\x1b[31m\n"));
	assert_null(strchr(out, '\033'));
	assert_non_null(strstr(out, "response body: 13 B\n<h1>hi</h1>\n"));
	assert_non_null(strstr(out, "sent +1.0 ms response began +11 ms ended "
	    "+14 ms"));
	assert_null(strstr(out, "--- 1.2"));

	/* Binary bodies as a hex dump; show FLOW gives every exchange. */
	assert_int_equal(RUN(ctl_show, "show", "1"), 0);
	assert_non_null(strstr(out, "--- 1.1 ---"));
	assert_non_null(strstr(out, "--- 1.2 ---"));
	assert_non_null(strstr(out, "  00000000  89 50 4e 47 0d 0a 1a 0a  00 00 "
	    "00 0d 49 48 44 52  |.PNG........IHDR|"));
	assert_non_null(strstr(out, "HTTP/1.1 500 Internal Server Error"));
}

static void
show_dns_and_raw_flows(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_show, "show", "2"), 0);
	assert_non_null(strstr(out, "question   example.com A"));
	assert_non_null(strstr(out, "answer     NOERROR after 3.0 ms"));
	assert_non_null(strstr(out, "  example.com 3600 A 93.184.216.34"));
	assert_non_null(strstr(out, "datagrams  0 up, 0 down"));
	assert_null(strstr(out, "\ntcp "));

	assert_null(strstr(out, "executable"));	/* flow 2 has none */

	assert_int_equal(RUN(ctl_show, "show", "3"), 0);
	assert_non_null(strstr(out, "protocol   raw"));
	assert_non_null(strstr(out, "\nexecutable /usr/bin/nc.openbsd\n"));
	assert_non_null(strstr(out, "bytes      10 up, 2048 down"));
	/* The source's TCP figures, on a line of their own. */
	assert_non_null(strstr(out, "\ntcp        14 packets up, 12 down, "
	    "3 retransmits, rtt 0.9 ms\n"));
	assert_null(strstr(out, "datagrams"));
	assert_non_null(strstr(out, "first bytes from the app:\n  00000000  68 65"
	    " 6c 6c 6f 00 01"));

	assert_int_equal(RUN(ctl_show, "show", "5"), 0);
	assert_non_null(strstr(out, ", running"));
	assert_null(strstr(out, "\ntcp "));	/* no figures yet */
}

static void
show_body_writes_raw_bytes(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_show, "show", "--body", "1.2"), 0);
	assert_int_equal(out_len, sizeof(png));
	assert_memory_equal(out, png, sizeof(png));
	/* A flow with one exchange may be named by the flow. */
	assert_int_equal(RUN(ctl_show, "show", "4", "--body"), 0);
	assert_int_equal(out_len, 0);
	assert_int_equal(RUN(ctl_show, "show", "--body", "1"), 2);
	assert_non_null(strstr(err, "several exchanges"));
	assert_int_equal(RUN(ctl_show, "show", "--body", "3"), 1);
	assert_non_null(strstr(err, "3 has no HTTP exchange"));
}

/* IPv6 addresses are bracketed, so that the port stands apart. */
static void
show_ipv6_flow_brackets_addresses(void **state)
{
	struct flow_record rec;
	struct store *st;
	char e[256], id[24], want[96];
	int64_t row;

	(void)state;
	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 8, FLOW_UDP, "dig", 800, "192.0.2.1", 53, t_now);
	rec.meta.src.family = rec.meta.dst.family = AF_INET6;
	inet_pton(AF_INET6, "fd6c::1", rec.meta.src.addr);
	inet_pton(AF_INET6, "fd98::2", rec.meta.dst.addr);
	row = store_flow_begin(st, &rec);
	assert_true(row > 0);
	store_close(st);
	snprintf(id, sizeof(id), "%lld", (long long)row);
	assert_int_equal(RUN(ctl_show, "show", id), 0);
	snprintf(want, sizeof(want), "flow %s  udp  [fd6c::1]:40008 -> "
	    "[fd98::2]:53\n", id);
	assert_non_null(strstr(out, want));
}

static void
show_unknown_and_bad_ids(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_show, "show", "99"), 1);
	assert_non_null(strstr(err, "no flow 99 in "));
	assert_int_equal(count_lines(err), 1);
	assert_int_equal(RUN(ctl_show, "show", "1.7"), 1);
	assert_non_null(strstr(err, "flow 1 has no exchange 7"));
	assert_int_equal(RUN(ctl_show, "show", "--body", "99.1"), 1);
	assert_non_null(strstr(err, "no flow 99"));
	assert_int_equal(RUN(ctl_show, "show", "abc"), 2);
	assert_non_null(strstr(err, "bad id 'abc'"));
	assert_int_equal(RUN(ctl_show, "show", "1.x"), 2);
	assert_int_equal(RUN(ctl_show, "show", "0"), 2);
	assert_int_equal(RUN(ctl_show, "show"), 2);
}

static void
export_har_is_valid_har_1_2(void **state)
{
	char har[160], cmd[4096];

	(void)state;
	snprintf(har, sizeof(har), "%s/out.har", dir);
	assert_int_equal(RUN(ctl_export, "export", "--har", har), 0);
	if (system("command -v python3 >/dev/null") != 0)
		skip();
	snprintf(cmd, sizeof(cmd), "python3 -c '\n"
	    "import base64, json, sys\n"
	    "log = json.load(open(sys.argv[1]))[\"log\"]\n"
	    "assert log[\"version\"] == \"1.2\"\n"
	    "assert log[\"creator\"][\"name\"] == \"localcap\" and log[\"creator\"][\"version\"]\n"
	    "e = log[\"entries\"]\n"
	    "assert len(e) == 3, len(e)\n"
	    "for x in e:\n"
	    "  for k in (\"startedDateTime\", \"time\", \"request\", \"response\", \"cache\", \"timings\"):\n"
	    "    assert k in x, k\n"
	    "  assert x[\"startedDateTime\"].endswith(\"Z\") and \"T\" in x[\"startedDateTime\"]\n"
	    "  q, r, t = x[\"request\"], x[\"response\"], x[\"timings\"]\n"
	    "  for k in (\"method\", \"url\", \"httpVersion\", \"cookies\", \"headers\", \"queryString\", \"headersSize\", \"bodySize\"):\n"
	    "    assert k in q, k\n"
	    "  for k in (\"status\", \"statusText\", \"httpVersion\", \"cookies\", \"headers\", \"content\", \"redirectURL\", \"headersSize\", \"bodySize\"):\n"
	    "    assert k in r, k\n"
	    "  assert \"size\" in r[\"content\"] and \"mimeType\" in r[\"content\"]\n"
	    "  for k in (\"send\", \"wait\", \"receive\"):\n"
	    "    assert t[k] >= 0, k\n"
	    "  assert abs(x[\"time\"] - (t[\"send\"] + t[\"wait\"] + t[\"receive\"])) < 0.01\n"
	    "  assert all(set(h) == {\"name\", \"value\"} for h in q[\"headers\"] + r[\"headers\"])\n"
	    "  assert isinstance(x[\"serverIPAddress\"], str) and isinstance(x[\"connection\"], str)\n"
	    "# oldest first: wget 404, then the two curl exchanges\n"
	    "w, g, p = e\n"
	    "assert w[\"response\"][\"status\"] == 404 and w[\"request\"][\"url\"] == \"http://other.test/missing\"\n"
	    "assert g[\"request\"][\"queryString\"] == [{\"name\": \"q\", \"value\": \"a b\"}, {\"name\": \"x\", \"value\": \"\"}], g[\"request\"][\"queryString\"]\n"
	    "assert g[\"response\"][\"content\"] == {\"size\": 13, \"mimeType\": \"text/html\", \"text\": \"<h1>hi</h1>\\r\\n\"}, g[\"response\"][\"content\"]\n"
	    "assert {\"name\": \"X-Odd\", \"value\": \"a\\x00b\\x1b[31m\"} in g[\"response\"][\"headers\"]\n"
	    "assert g[\"serverIPAddress\"] == \"192.0.2.7\" and g[\"connection\"] == \"1\"\n"
	    "assert abs(g[\"timings\"][\"wait\"] - 10.0) < 0.001\n"
	    "# RTT and retransmits of the connection, on its first exchange\n"
	    "assert g[\"_localcap\"][\"rtt_ms\"] == 12.0 and g[\"_localcap\"][\"retransmits\"] == 0, g[\"_localcap\"]\n"
	    "assert \"rtt_ms\" not in p[\"_localcap\"] and \"rtt_ms\" not in w[\"_localcap\"]\n"
	    "c = p[\"response\"][\"content\"]\n"
	    "assert c[\"encoding\"] == \"base64\" and c[\"mimeType\"] == \"application/octet-stream\"\n"
	    "assert base64.b64decode(c[\"text\"]) == bytes.fromhex(\"89504e470d0a1a0a0000000d4948445200000001ff\")\n"
	    "pd = p[\"request\"][\"postData\"]\n"
	    "assert pd[\"mimeType\"] == \"image/png\" and pd[\"encoding\"] == \"base64\"\n"
	    "assert p[\"response\"][\"status\"] == 500 and p[\"request\"][\"bodySize\"] == 21\n"
	    "' %s", har);
	assert_int_equal(system(cmd), 0);
}

static void
export_har_filters_and_stdout(void **state)
{
	char har[160];
	struct stat sb;

	(void)state;
	assert_int_equal(RUN(ctl_export, "export", "--har", "-", "--status",
	    "404"), 0);
	assert_non_null(strstr(out, "{\"log\":{\"version\":\"1.2\""));
	assert_non_null(strstr(out, "other.test"));
	assert_null(strstr(out, "example.org"));
	/* Nothing matches: still a valid HAR, with no entries. */
	assert_int_equal(RUN(ctl_export, "export", "--har", "-", "--process",
	    "nobody"), 0);
	assert_non_null(strstr(out, "\"entries\":[]}}"));
	assert_int_equal(RUN(ctl_export, "export"), 2);
	assert_int_equal(RUN(ctl_export, "export", "--har", "x", "--since",
	    "later"), 2);
	/* A directory that does not exist: one error line, no file left. */
	snprintf(har, sizeof(har), "%s/nodir/out.har", dir);
	assert_int_equal(RUN(ctl_export, "export", "--har", har), 1);
	assert_int_equal(count_lines(err), 1);
	assert_int_equal(stat(har, &sb), -1);
}

/* An HTTP/2 gRPC exchange: its version, trailers and status everywhere;
 * and the error text in flows --json. */
static void
http2_grpc_exchange_everywhere(void **state)
{
	static const struct http_field req[] = {
		{ "content-type", 12, "application/grpc", 16 },
	};
	static const struct http_field trl[] = {
		{ "grpc-status", 11, "5", 1 },
		{ "grpc-message", 12, "not found", 9 },
	};
	static const uint32_t sizes[] = { 7 };
	struct store_grpc g = {
		.status = 5, .message = "not found",
		.req_messages = 1, .req_sizes = sizes, .n_req_sizes = 1,
	};
	struct store_flow_facts tls = { .protocol = "https", .alpn = "h2" };
	struct store_http h;
	struct flow_record rec;
	struct store *st;
	char e[256], har[160], cmd[1024];
	int64_t row;

	(void)state;
	assert_non_null(st = store_open(dbpath, NULL, e, sizeof(e)));
	flowfix_record(&rec, 6, FLOW_TCP, "grpcclient", 600, "192.0.2.30", 443,
	    t_now - 1000000);
	row = store_flow_begin(st, &rec);
	memset(&h, 0, sizeof(h));
	h.seq = 1;
	h.scheme = "https";
	h.method = "POST";
	h.target = "/pkg.Svc/Get";
	h.host = "grpc.test";
	h.http_version = "HTTP/2.0";
	h.status = 200;
	h.req_fields = req;
	h.n_req_fields = 1;
	h.resp_trailers = trl;
	h.n_resp_trailers = 2;
	h.grpc = &g;
	h.req_start_us = rec.meta.start_us + 100;
	h.resp_start_us = rec.meta.start_us + 900;
	h.resp_end_us = rec.meta.start_us + 1000;
	assert_true(store_http_add(st, row, &h) > 0);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = rec.meta.start_us + 2000;
	assert_int_equal(store_flow_end(st, row, &rec, &tls), 0);
	/* A flow refused for its upstream certificate: JSON says why too. */
	flowfix_record(&rec, 7, FLOW_TCP, "badcert", 700, "192.0.2.31", 443,
	    t_now - 900000);
	row = store_flow_begin(st, &rec);
	rec.end = FLOW_END_UPSTREAM_RESET;
	rec.end_us = rec.meta.start_us + 2000;
	tls.error = "upstream certificate for bad.test: not trusted";
	assert_int_equal(store_flow_end(st, row, &rec, &tls), 0);
	store_close(st);

	assert_int_equal(RUN(ctl_flows, "flows", "--json", "--process",
	    "badcert"), 0);
	assert_non_null(strstr(out, "\"result\":\"upstream reset\""));
	assert_non_null(strstr(out, "\"error\":"
	    "\"upstream certificate for bad.test: not trusted\""));

	assert_int_equal(RUN(ctl_flows, "flows", "--process", "grpcclient"), 0);
	assert_line_has("6.1", "POST h2");
	assert_int_equal(RUN(ctl_flows, "flows", "--json", "--process",
	    "grpcclient"), 0);
	assert_non_null(strstr(out, "\"http_version\":\"HTTP/2.0\""));
	/* HTTP/1.1 exchanges say theirs. */
	assert_int_equal(RUN(ctl_flows, "flows", "--json", "--process", "curl"),
	    0);
	assert_non_null(strstr(out, "\"http_version\":\"HTTP/1.1\""));
	/* The executable's path where the flow source gave it, null where not. */
	assert_non_null(strstr(out, "\"exe\":null"));
	assert_int_equal(RUN(ctl_flows, "flows", "--json", "--process", "nc"), 0);
	assert_non_null(strstr(out, "\"exe\":\"/usr/bin/nc.openbsd\""));
	assert_int_equal(RUN(ctl_show, "show", "6.1"), 0);
	assert_non_null(strstr(out, "POST https://grpc.test/pkg.Svc/Get HTTP/2.0\n"));
	assert_non_null(strstr(out, "HTTP/2.0 200 \n"));
	assert_non_null(strstr(out, "response trailers:\n  grpc-status: 5\n"
	    "  grpc-message: not found\n"));
	assert_non_null(strstr(out, "grpc       1 message(s) up, 0 down; status 5"
	    " not found\n"));

	snprintf(har, sizeof(har), "%s/grpc.har", dir);
	assert_int_equal(RUN(ctl_export, "export", "--har", har, "--process",
	    "grpcclient"), 0);
	if (system("command -v python3 >/dev/null") != 0)
		skip();
	snprintf(cmd, sizeof(cmd), "python3 -c '\n"
	    "import json, sys\n"
	    "e = json.load(open(sys.argv[1]))[\"log\"][\"entries\"]\n"
	    "assert len(e) == 1, e\n"
	    "x = e[0]\n"
	    "assert x[\"request\"][\"httpVersion\"] == \"HTTP/2.0\"\n"
	    "assert x[\"response\"][\"httpVersion\"] == \"HTTP/2.0\"\n"
	    "l = x[\"_localcap\"]\n"
	    "assert l[\"grpc_status\"] == 5 and l[\"grpc_message\"] == \"not found\", l\n"
	    "assert {\"name\": \"grpc-status\", \"value\": \"5\"} in l[\"trailers\"]\n"
	    "' %s", har);
	assert_int_equal(system(cmd), 0);
}

/* On a terminal: colour by status, long targets cut; NO_COLOR turns it off. */
static void
flows_colour_only_on_a_terminal(void **state)
{
	static char tty_out[64 * 1024];
	struct store_http h = {
		.seq = 1, .scheme = "https", .method = "GET", .host = "example.org",
		.status = 404,
		.target = "/a/very/long/path/that/goes/on/and/on/and/on/and/on/"
		    "and/on/and/on",
	};
	struct flow_record rec;
	struct store *st;
	char e[256];
	int pass;

	(void)state;
	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 7, FLOW_TCP, "long", 700, "192.0.2.8", 443, t_now);
	h.req_start_us = h.resp_end_us = (uint64_t)t_now;
	assert_true(store_http_add(st, store_flow_begin(st, &rec), &h) > 0);
	store_close(st);

	for (pass = 0; pass < 2; pass++) {
		int master, slave, status;
		size_t len = 0;
		pid_t pid;

		assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(master);
			dup2(slave, STDOUT_FILENO);
			close(slave);
			if (pass == 1)
				setenv("NO_COLOR", "1", 1);
			else
				unsetenv("NO_COLOR");
			exit(ctl_flows(dir, 1, (char *[]){ "flows", NULL }));
		}
		close(slave);
		for (;;) {
			struct pollfd pfd = { .fd = master, .events = POLLIN };
			ssize_t n;

			if (poll(&pfd, 1, 5000) <= 0)
				break;
			n = read(master, tty_out + len, sizeof(tty_out) - 1 - len);
			if (n <= 0)
				break;	/* EIO once the child has gone */
			len += (size_t)n;
		}
		tty_out[len] = '\0';
		close(master);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_int_equal(WEXITSTATUS(status), 0);
		if (pass == 0) {
			/* 404 in yellow, 500 in red, 200 in green. */
			assert_non_null(strstr(tty_out, "\033[33m404"));
			assert_non_null(strstr(tty_out, "\033[31m500"));
			assert_non_null(strstr(tty_out, "\033[32m200"));
			assert_non_null(strstr(tty_out, "https://example.org/a/very/long"
			    "/path/that/goes/on…"));
			assert_null(strstr(tty_out, "and/on/and/on"));
		} else
			assert_null(strchr(tty_out, '\033'));
	}
	/* In a pipe the target is whole. */
	assert_int_equal(RUN(ctl_flows, "flows", "--process", "long"), 0);
	assert_non_null(strstr(out, "on/and/on/and/on "));
}

/*
 * Even a read-only connection creates the -wal and -shm files when proxyd
 * is down.  Root reading a store proxyd owns must not leave them root's, or
 * proxyd could not open its database again; SQLite gives them the
 * database's owner, and this checks it keeps doing so.
 */
static void
root_reads_as_the_store_owner(void **state)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char p[200];
	struct stat sb;
	size_t i;

	(void)state;
	if (geteuid() != 0)
		skip();
	for (i = 1; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, suffixes[i]);
		unlink(p);	/* as after proxyd's clean exit */
	}
	assert_int_equal(chown(dir, 65534, 65534), 0);
	snprintf(p, sizeof(p), "%s/%s", dir, STORE_DIR_NAME);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(chown(dbpath, 65534, 65534), 0);
	assert_int_equal(RUN(ctl_flows, "flows"), 0);
	assert_int_equal(count_lines(out), 7);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, suffixes[i]);
		if (stat(p, &sb) == 0) {
			assert_int_equal(sb.st_uid, 65534);
			assert_int_equal(sb.st_gid, 65534);
		}
	}
	/* And proxyd, as that owner, still opens it. */
	{
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0) {
			char e[256];
			struct store *st;

			if (setgid(65534) == -1 || setuid(65534) == -1)
				_exit(2);
			st = store_open(dbpath, NULL, e, sizeof(e));
			if (st == NULL) {
				fprintf(stderr, "store_open: %s\n", e);
				_exit(1);
			}
			store_close(st);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

/* A store of another schema version: one line saying what to do. */
static void
other_schema_versions_refused_clearly(void **state)
{
	char sub[160], path[200], e[256];
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(RUN(ctl_flows, "flows"), 1);
	assert_int_equal(count_lines(err), 1);
	assert_non_null(strstr(err, "schema version 99, newer than this "
	    "localcapctl reads"));
	assert_int_equal(RUN(ctl_show, "show", "1"), 1);
	assert_int_equal(RUN(ctl_export, "export", "--har", "-"), 1);

	snprintf(sub, sizeof(sub), "%s/old", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", sub, STORE_DIR_NAME);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/%s", sub, STORE_DIR_NAME,
	    STORE_DB_NAME);
	assert_int_equal(store_create_at_version(path, 1, e, sizeof(e)), 0);
	assert_int_equal(run_child(ctl_flows, sub, NULL,
	    (char *[]){ "flows", NULL }), 1);
	assert_non_null(strstr(err, "schema version 1; start proxyd once"));

	/* Not a database at all. */
	assert_int_equal(truncate(path, 0), 0);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs("this is not sqlite, just some text long enough to be a "
		    "header of sorts...........................................\n",
		    f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/%s/%s-wal", sub, STORE_DIR_NAME,
	    STORE_DB_NAME);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s/%s-shm", sub, STORE_DIR_NAME,
	    STORE_DB_NAME);
	unlink(path);
	assert_int_equal(run_child(ctl_flows, sub, NULL,
	    (char *[]){ "flows", NULL }), 1);
	assert_int_equal(count_lines(err), 1);
	assert_non_null(strstr(err, "localcapctl: "));
}

/* --follow lists what is complete, then what completes while it runs. */
static void
follow_prints_new_flows_until_sigint(void **state)
{
	struct flow_record rec;
	struct store *st;
	char e[256];
	pid_t pid;
	int status;
	int64_t row;

	(void)state;
	assert_int_equal(run_child(ctl_flows, dir, &pid,
	    (char *[]){ "flows", "--follow", "--json", NULL }), 0);
	usleep(400000);
	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 6, FLOW_TCP, "late", 600, "192.0.2.30", 9000, t_now);
	row = store_flow_begin(st, &rec);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t_now + 5000;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	assert_int_equal(store_flush(st), 0);
	usleep(700000);		/* more than two polls */
	assert_int_equal(kill(pid, SIGINT), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	store_close(st);
	slurp(outpath, out, sizeof(out));
	/* 1.1 1.2 2.1 3 4.1 at once, then 6; 5 is still running. */
	assert_int_equal(count_lines(out), 6);
	assert_non_null(strstr(out, "\"id\":\"6\""));
	assert_non_null(strstr(out, "\"process\":\"late\""));
	assert_null(strstr(out, "\"id\":\"5\""));
	/* The running flow of the fixture was ended by the reopen. */
}

/*
 * A flow whose row proxyd holds for its source's figures (ended, not yet
 * complete) is listed by --follow once, when it completes, with them.
 */
static void
follow_waits_for_a_held_flow(void **state)
{
	struct flow_tcp_stats ts = { .packets_from_app = 7,
		.packets_to_app = 6, .retransmits = 2, .rtt_us = 1500 };
	struct flow_record rec;
	struct store *st;
	char e[256];
	pid_t pid;
	int status;
	int64_t row;

	(void)state;
	assert_int_equal(run_child(ctl_flows, dir, &pid,
	    (char *[]){ "flows", "--follow", "--json", NULL }), 0);
	usleep(400000);
	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 6, FLOW_TCP, "held", 600, "192.0.2.30", 9000, t_now);
	row = store_flow_begin(st, &rec);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t_now + 5000;
	assert_int_equal(store_flow_end_held(st, row, &rec, NULL), 0);
	assert_int_equal(store_flush(st), 0);
	usleep(600000);		/* two polls: not complete, not listed */
	slurp(outpath, out, sizeof(out));
	assert_null(strstr(out, "\"process\":\"held\""));
	assert_int_equal(store_flow_finish(st, row, &ts, true), 0);
	/* A late second report changes nothing a follower would see again. */
	assert_int_equal(store_flow_finish(st, row, NULL, true), 0);
	assert_int_equal(store_flush(st), 0);
	usleep(700000);
	assert_int_equal(kill(pid, SIGINT), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	store_close(st);
	slurp(outpath, out, sizeof(out));
	assert_int_equal(count_lines(out), 6);
	assert_non_null(strstr(out, "\"process\":\"held\""));
	assert_non_null(strstr(out, "\"result\":\"closed\""));
	assert_non_null(strstr(out, "\"tcp\":{\"packets_up\":7,\"packets_down\":6,"
	    "\"retransmits\":2,\"rtt_us\":1500},"));
	/* Once: 1.1 1.2 2.1 3 4.1 at once, then 6. */
	assert_null(strstr(strstr(out, "{\"id\":\"6\"") + 1,
	    "{\"id\":\"6\""));
}

/* Issue 12 #6: C1 and bidi controls never reach the terminal as such. */
static void
show_escapes_c1_and_bidi_controls(void **state)
{
	(void)state;
	assert_int_equal(RUN(ctl_show, "show", "1.1"), 0);
	assert_non_null(strstr(out, "  X-C1: \\u{009b}2J\\u{202e}evil\n"));
	assert_null(strstr(out, "\xc2\x9b"));
	assert_null(strstr(out, "\xe2\x80\xae"));
	/* JSON keeps the text as it is (valid UTF-8, escaped by the viewer). */
	assert_int_equal(RUN(ctl_show, "show", "--json", "1.1"), 0);
	assert_non_null(strstr(out, "[\"X-C1\",\"\xc2\x9b" "2J\xe2\x80\xae"
	    "evil\"]"));
}

/* HTTP/2's columns, where the store has them: in the list, show and HAR. */
static void
http2_trailers_and_grpc_shown(void **state)
{
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "UPDATE http_exchanges SET http_version = 'HTTP/2.0', reason = NULL,"
	    " resp_trailers = '[[\"grpc-status\",\"5\"],[\"grpc-message\","
	    "\"not found\"]]', grpc = '{\"status\":5,\"message\":\"not found\","
	    "\"request\":{\"messages\":1,\"sizes\":[7]},\"response\":"
	    "{\"messages\":0,\"sizes\":[]}}' WHERE flow_id = 1 AND seq = 2;",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(RUN(ctl_flows, "flows"), 0);
	assert_line_has("1.2", " POST h2 ");
	assert_line_has("1.1", " GET     ");
	assert_int_equal(RUN(ctl_show, "show", "1.2"), 0);
	assert_non_null(strstr(out, "POST https://example.org/upload HTTP/2.0\n"));
	assert_non_null(strstr(out, "HTTP/2.0 500 \n"));
	assert_non_null(strstr(out, "response trailers:\n  grpc-status: 5\n"
	    "  grpc-message: not found\n"));
	assert_non_null(strstr(out, "grpc       1 message(s) up, 0 down; status 5"
	    " not found\n"));
	assert_int_equal(RUN(ctl_show, "show", "1.1"), 0);
	assert_null(strstr(out, "grpc "));
}

/* Issue 10 #3: flows --json says why a flow failed, as show does. */
static void
flows_json_carries_the_error_text(void **state)
{
	struct store_flow_facts bad = { .protocol = "tls", .sni = "bad.test",
		.error = "upstream certificate: not trusted" };
	struct flow_record rec;
	struct store *st;
	char e[256];
	int64_t row;

	(void)state;
	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 8, FLOW_TCP, "refused", 800, "192.0.2.44", 443, t_now);
	row = store_flow_begin(st, &rec);
	rec.end = FLOW_END_UPSTREAM_RESET;
	rec.end_us = (uint64_t)t_now + 100;
	assert_int_equal(store_flow_end(st, row, &rec, &bad), 0);
	store_close(st);
	assert_int_equal(RUN(ctl_flows, "flows", "--json", "--process",
	    "refused"), 0);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"result\":\"upstream reset\""));
	assert_non_null(strstr(out, "\"error\":\"upstream certificate: not "
	    "trusted\""));
	assert_int_equal(RUN(ctl_show, "show", "6"), 0);
	assert_non_null(strstr(out, "error      upstream certificate: not "
	    "trusted\n"));
	/* show --json of the flow: the same facts. */
	assert_int_equal(RUN(ctl_show, "show", "--json", "6"), 0);
	assert_non_null(strstr(out, "\"error\":\"upstream certificate: not "
	    "trusted\""));
	assert_non_null(strstr(out, "\"sni\":\"bad.test\""));
}

/* Issue 12 #8: the HAR is the owner's only, and never written through a
 * link planted where it goes. */
static void
export_har_file_is_private(void **state)
{
	char har[160], target[160];
	struct stat sb;
	mode_t old;
	int fd;

	(void)state;
	snprintf(har, sizeof(har), "%s/out.har", dir);
	old = umask(022);
	assert_int_equal(RUN(ctl_export, "export", "--har", har), 0);
	assert_int_equal(stat(har, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	/* A symlink at FILE is replaced, its target left alone. */
	snprintf(target, sizeof(target), "%s/target", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(unlink(har), 0);
	assert_int_equal(symlink(target, har), 0);
	assert_int_equal(RUN(ctl_export, "export", "--har", har), 0);
	assert_int_equal(lstat(har, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	umask(old);
}

static void
since_durations_and_iso_times(void **state)
{
	int64_t now = 1769882400LL * 1000000, v;

	(void)state;
	assert_int_equal(ctl_parse_since("10m", now, &v), 0);
	assert_int_equal(v, now - 600 * 1000000LL);
	assert_int_equal(ctl_parse_since("2h", now, &v), 0);
	assert_int_equal(v, now - 7200 * 1000000LL);
	assert_int_equal(ctl_parse_since("30s", now, &v), 0);
	assert_int_equal(v, now - 30 * 1000000LL);
	assert_int_equal(ctl_parse_since("1d", now, &v), 0);
	assert_int_equal(v, now - 86400 * 1000000LL);
	assert_int_equal(ctl_parse_since("2026-01-31T18:00:00Z", 0, &v), 0);
	assert_int_equal(v, 1769882400LL * 1000000);
	assert_int_equal(ctl_parse_since("2026-01-31T18:00:00.25Z", 0, &v), 0);
	assert_int_equal(v, 1769882400LL * 1000000 + 250000);
	assert_int_equal(ctl_parse_since("2026-01-31T19:30:00+01:30", 0, &v), 0);
	assert_int_equal(v, 1769882400LL * 1000000);
	assert_int_equal(ctl_parse_since("2026-01-31 18:00Z", 0, &v), 0);
	assert_int_equal(v, 1769882400LL * 1000000);
	/* Local time without a zone. */
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(ctl_parse_since("2026-01-31", 0, &v), 0);
	assert_int_equal(v, (1769882400LL - 18 * 3600) * 1000000);
	unsetenv("TZ");
	tzset();

	assert_int_equal(ctl_parse_since("", now, &v), -1);
	assert_int_equal(ctl_parse_since("10", now, &v), -1);
	assert_int_equal(ctl_parse_since("10x", now, &v), -1);
	assert_int_equal(ctl_parse_since("m", now, &v), -1);
	assert_int_equal(ctl_parse_since("99999999999d", now, &v), -1);
	assert_int_equal(ctl_parse_since("2026-13-01", now, &v), -1);
	assert_int_equal(ctl_parse_since("2026-01-31T18:00:00+25:00", now, &v), -1);
	assert_int_equal(ctl_parse_since("2026-01-31T18:00:00 junk", now, &v), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(flows_table_one_line_per_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_json_lines_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_filters_select_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_pages_before_and_after_an_id, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_bad_options_are_usage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(no_store_is_one_clear_line, setup, teardown),
		cmocka_unit_test_setup_teardown(show_exchange_headers_bodies_timings, setup, teardown),
		cmocka_unit_test_setup_teardown(show_dns_and_raw_flows, setup, teardown),
		cmocka_unit_test_setup_teardown(show_body_writes_raw_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(show_ipv6_flow_brackets_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(show_unknown_and_bad_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(export_har_is_valid_har_1_2, setup, teardown),
		cmocka_unit_test_setup_teardown(export_har_filters_and_stdout, setup, teardown),
		cmocka_unit_test_setup_teardown(http2_grpc_exchange_everywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(follow_prints_new_flows_until_sigint, setup, teardown),
		cmocka_unit_test_setup_teardown(follow_waits_for_a_held_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_colour_only_on_a_terminal, setup, teardown),
		cmocka_unit_test_setup_teardown(root_reads_as_the_store_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(other_schema_versions_refused_clearly, setup, teardown),
		cmocka_unit_test_setup_teardown(show_escapes_c1_and_bidi_controls, setup, teardown),
		cmocka_unit_test_setup_teardown(http2_trailers_and_grpc_shown, setup, teardown),
		cmocka_unit_test_setup_teardown(flows_json_carries_the_error_text, setup, teardown),
		cmocka_unit_test_setup_teardown(export_har_file_is_private, setup, teardown),
		cmocka_unit_test(since_durations_and_iso_times),
	};

	log_init("test_ctl_flows", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
