/*
 * Unit tests for proxyd/httpobs.c, the HTTP/1.1 observer the relay feeds
 * with the bytes of a flow.  A test is a script of (direction, bytes) steps
 * as they would pass through the relay; each exchange the observer emits is
 * rendered as one transcript line, and every script is run whole, then cut
 * into pieces of 1, 2, 3, 7 and 64 bytes, which must all give the same
 * transcript.  One test goes through a real flow store in a temp dir.
 *
 * Line: SEQ METHOD URL|STATUS REASON|req SIZE/KEPT|resp SIZE/KEPT|HDR|ERROR
 * where HDR is the response's first field ("-" when none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <ev.h>
#include <sqlite3.h>

#include "proxyd/httpobs.h"
#include "proxyd/membudget.h"
#include "proxyd/relay.h"
#include "proxyd/store.h"

#define C	HTTPOBS_CLIENT
#define S	HTTPOBS_SERVER
#define EOF_C	2		/* the client's stream ends */
#define EOF_S	3		/* the server's stream ends */

struct step {
	int		 dir;
	const char	*data;
};

struct transcript {
	char		 s[8192];
	size_t		 len;
	uint64_t	 last_resp_end;
};

static void
record(void *arg, const struct store_http *h)
{
	struct transcript *t = arg;
	int n;

	/* Timings are in order: request, response start, response end. */
	assert_true(h->req_start_us > 0);
	if (h->status != 0) {
		assert_true(h->resp_start_us >= h->req_start_us);
		assert_true(h->resp_end_us >= h->resp_start_us);
		assert_true(h->resp_end_us >= t->last_resp_end);
		t->last_resp_end = h->resp_end_us;
	}
	assert_true(h->req_body_len <= h->req_body_size);
	assert_true(h->resp_body_len <= h->resp_body_size);
	n = snprintf(t->s + t->len, sizeof(t->s) - t->len,
	    "%u %s %s://%s%s|%d %s|req %llu/%zu|resp %llu/%zu|%s%s%.*s|%s\n",
	    h->seq, h->method, h->scheme, h->host, h->target, h->status,
	    h->reason ? h->reason : "-",
	    (unsigned long long)h->req_body_size, h->req_body_len,
	    (unsigned long long)h->resp_body_size, h->resp_body_len,
	    h->n_resp_fields ? h->resp_fields[0].name : "-",
	    h->n_resp_fields ? "=" : "",
	    h->n_resp_fields ? (int)h->resp_fields[0].value_len : 0,
	    h->n_resp_fields ? h->resp_fields[0].value : "",
	    h->error ? h->error : "-");
	assert_true(n > 0 && (size_t)n < sizeof(t->s) - t->len);
	t->len += (size_t)n;
}

/* Run script with pieces of at most piece bytes (0: whole steps). */
static void
run(const struct step *script, size_t nsteps, size_t piece, size_t cap,
    struct transcript *t, int *stopped, uint32_t *count)
{
	struct httpobs_config cfg = {
		.scheme = "http", .default_host = "192.0.2.1:80",
		.body_cap = cap, .flow_id = 1, .emit = record, .arg = t,
	};
	struct httpobs *o;
	uint64_t now = 1000;
	size_t i;

	memset(t, 0, sizeof(*t));
	o = httpobs_new(&cfg);
	assert_non_null(o);
	for (i = 0; i < nsteps; i++) {
		const uint8_t *p = (const uint8_t *)script[i].data;
		size_t len, off, k;

		if (script[i].dir == EOF_C || script[i].dir == EOF_S) {
			(void)httpobs_eof(o, script[i].dir == EOF_C ? C : S,
			    now++);
			continue;
		}
		len = strlen(script[i].data);
		for (off = 0; off < len; off += k) {
			k = piece == 0 || len - off < piece ? len - off : piece;
			(void)httpobs_feed(o, (enum httpobs_dir)script[i].dir,
			    p + off, k, now++);
		}
	}
	*stopped = httpobs_stopped(o);
	*count = httpobs_count(o);
	httpobs_free(o, now, NULL);
}

/* The transcript at every split, checked against want. */
static void
check_cap(const struct step *script, size_t nsteps, size_t cap,
    const char *want, int want_stopped)
{
	static const size_t pieces[] = { 0, 1, 2, 3, 7, 64 };
	struct transcript t;
	uint32_t count;
	int stopped;
	size_t i;

	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		run(script, nsteps, pieces[i], cap, &t, &stopped, &count);
		if (strcmp(t.s, want) != 0)
			fail_msg("pieces of %zu:\n%s\nwanted:\n%s", pieces[i], t.s,
			    want);
		assert_int_equal(stopped, want_stopped);
	}
}

#define CHECK(script, want, stopped) \
	check_cap((script), sizeof(script) / sizeof((script)[0]), 1024, \
	    (want), (stopped))

static void
simple_get_200(void **state)
{
	static const struct step s[] = {
		{ C, "GET /big HTTP/1.1\r\nHost: 10.98.0.2:8080\r\n"
		    "User-Agent: curl\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" },
	};

	(void)state;
	CHECK(s, "1 GET http://10.98.0.2:8080/big|200 OK|req 0/0|resp 5/5|"
	    "Content-Length=5|-\n", 0);
}

static void
keep_alive_three_requests(void **state)
{
	static const struct step s[] = {
		{ C, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" },
		{ C, "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz" },
		{ S, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nbb" },
		{ C, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" },
	};

	(void)state;
	CHECK(s,
	    "1 GET http://h/a|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n"
	    "2 POST http://h/b|201 Created|req 3/3|resp 2/2|Content-Length=2|-\n"
	    "3 GET http://h/c|404 Not Found|req 0/0|resp 0/0|Content-Length=0|-\n",
	    0);
}

static void
pipelined_requests_pair_in_order(void **state)
{
	static const struct step s[] = {
		{ C, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
		    "HEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"
		    "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n11"
		    "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n3" },
	};

	(void)state;
	CHECK(s,
	    "1 GET http://h/1|200 OK|req 0/0|resp 2/2|Content-Length=2|-\n"
	    "2 HEAD http://h/2|200 OK|req 0/0|resp 0/0|Content-Length=99|-\n"
	    "3 GET http://h/3|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n", 0);
}

static void
head_with_content_length_has_no_body(void **state)
{
	static const struct step s[] = {
		{ C, "HEAD /f HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" },
		{ C, "GET /g HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ng" },
	};

	(void)state;
	CHECK(s,
	    "1 HEAD http://h/f|200 OK|req 0/0|resp 0/0|Content-Length=1000|-\n"
	    "2 GET http://h/g|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n", 0);
}

static void
no_content_204_and_not_modified_304(void **state)
{
	static const struct step s[] = {
		{ C, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n" },
		{ C, "GET /y HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n" },
		{ S, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" },
		{ C, "GET /z HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz" },
	};

	(void)state;
	CHECK(s,
	    "1 DELETE http://h/x|204 No Content|req 0/0|resp 0/0|X=1|-\n"
	    "2 GET http://h/y|304 Not Modified|req 0/0|resp 0/0|Content-Length=10|-\n"
	    "3 GET http://h/z|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n", 0);
}

static void
continue_100_then_200(void **state)
{
	static const struct step s[] = {
		{ C, "PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
		    "Expect: 100-continue\r\n\r\n" },
		{ S, "HTTP/1.1 100 Continue\r\n\r\n" },
		{ C, "data" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
	};

	(void)state;
	CHECK(s, "1 PUT http://h/up|200 OK|req 4/4|resp 2/2|"
	    "Content-Length=2|-\n", 0);
}

static void
chunked_with_trailers(void **state)
{
	static const struct step s[] = {
		{ C, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
		    "\r\n3\r\nabc\r\n0\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n" },
		{ C, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
	};

	(void)state;
	CHECK(s,
	    "1 POST http://h/c|200 OK|req 3/3|resp 11/11|"
	    "Transfer-Encoding=chunked|-\n"
	    "2 GET http://h/next|200 OK|req 0/0|resp 0/0|Content-Length=0|-\n",
	    0);
}

static void
response_read_until_close(void **state)
{
	static const struct step s[] = {
		{ C, "GET /old HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it" },
		{ S, " until the end" },
		{ EOF_S, NULL },
	};

	(void)state;
	CHECK(s, "1 GET http://h/old|200 OK|req 0/0|resp 23/23|Server=x|-\n", 0);
}

static void
body_over_cap_is_truncated(void **state)
{
	static const struct step s[] = {
		{ C, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n"
		    "0123456789abcdefghij" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nresponsebody" },
	};

	(void)state;
	/* Kept 8 of each, sizes say all: the store marks them truncated. */
	check_cap(s, 2, 8, "1 POST http://h/big|200 OK|req 20/8|resp 12/8|"
	    "Content-Length=12|-\n", 0);
}

static void
no_host_uses_default_and_https_scheme(void **state)
{
	struct httpobs_config cfg = {
		.scheme = "https", .default_host = "origin.test",
		.emit = record,
	};
	static const char req[] = "GET /x HTTP/1.0\r\n\r\n";
	static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
	struct transcript t;
	struct httpobs *o;

	(void)state;
	memset(&t, 0, sizeof(t));
	cfg.arg = &t;
	o = httpobs_new(&cfg);
	assert_non_null(o);
	assert_int_equal(httpobs_feed(o, C, (const uint8_t *)req,
	    strlen(req), 10), 0);
	assert_int_equal(httpobs_feed(o, S, (const uint8_t *)resp,
	    strlen(resp), 20), 0);
	assert_int_equal(httpobs_count(o), 1);
	httpobs_free(o, 30, NULL);
	assert_string_equal(t.s, "1 GET https://origin.test/x|200 OK|req 0/0|"
	    "resp 0/0|Content-Length=0|-\n");
}

static void
garbage_request_stops_observing(void **state)
{
	static const struct step s[] = {
		{ C, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk" },
		{ C, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n\x01\x02\x03 junk\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\np" },
		{ C, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n" },
	};

	(void)state;
	/* /p was pending when the junk came: recorded with the reason. */
	CHECK(s,
	    "1 GET http://h/ok|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n"
	    "2 GET http://h/p|0 -|req 0/0|resp 0/0|-|request: "
	    "invalid method\n", 1);
}

static void
garbage_response_stops_observing(void **state)
{
	static const struct step s[] = {
		{ C, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nXYZ garbage" },
		{ C, "GET /b HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "more" },
	};

	(void)state;
	/* The response ended after 1 byte, so "YZ garbage" is a bad
	 * status line: /a is complete, nothing more is parsed. */
	CHECK(s,
	    "1 GET http://h/a|200 OK|req 0/0|resp 1/1|Content-Length=1|-\n", 1);
}

static void
binary_garbage_never_crashes(void **state)
{
	uint8_t buf[4096];
	struct httpobs_config cfg = { .scheme = "http", .default_host = "h" };
	struct httpobs *o;
	unsigned seed = 12345;
	size_t i;
	int round;

	(void)state;
	for (round = 0; round < 50; round++) {
		o = httpobs_new(&cfg);
		assert_non_null(o);
		for (i = 0; i < sizeof(buf); i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] = (uint8_t)(seed >> 16);
		}
		/* A valid start, then noise both ways. */
		(void)httpobs_feed(o, C, (const uint8_t *)"GET / HTTP/1.1\r\n",
		    16, 1);
		(void)httpobs_feed(o, C, buf, sizeof(buf) / 2, 2);
		(void)httpobs_feed(o, S, buf + sizeof(buf) / 2, sizeof(buf) / 2,
		    3);
		(void)httpobs_eof(o, S, 4);
		assert_true(httpobs_stopped(o));
		assert_int_equal(httpobs_feed(o, C, buf, 10, 5), -1);
		httpobs_free(o, 6, NULL);
	}
}

static void
response_without_request_stops(void **state)
{
	static const struct step s[] = {
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
		{ C, "GET / HTTP/1.1\r\nHost: h\r\n\r\n" },
	};

	(void)state;
	CHECK(s, "", 1);
}

static void
websocket_upgrade_recorded_then_not_parsed(void **state)
{
	static const struct step s[] = {
		{ C, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n" },
		{ S, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\n\r\n\x81\x05hello" },
		{ C, "\x81\x85 not http at all" },
		{ S, "\x88\x00" },
		{ EOF_S, NULL },
	};

	(void)state;
	CHECK(s, "1 GET http://h/ws|101 Switching Protocols|req 0/0|resp 0/0|"
	    "Upgrade=websocket|-\n", 1);
}

static void
connect_recorded_then_tunnel_ignored(void **state)
{
	static const struct step s[] = {
		{ C, "CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test:443"
		    "\r\n\r\n\x16\x03\x01" },
		{ S, "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03" },
	};

	(void)state;
	CHECK(s, "1 CONNECT http://origin.test:443origin.test:443|"
	    "200 Connection established|req 0/0|resp 0/0|-|-\n", 1);
}

static void
closed_before_response_is_recorded(void **state)
{
	static const struct step s[] = {
		{ C, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" },
		{ C, "GET /never HTTP/1.1\r\nHost: h\r\n\r\n" },
	};

	(void)state;
	CHECK(s,
	    "1 GET http://h/slow|200 OK|req 0/0|resp 3/3|Content-Length=10|"
	    "connection closed before the response ended\n"
	    "2 GET http://h/never|0 -|req 0/0|resp 0/0|-|"
	    "connection closed before a response\n", 0);
}

static void
truncated_response_at_eof(void **state)
{
	static const struct step s[] = {
		{ C, "GET /t HTTP/1.1\r\nHost: h\r\n\r\n" },
		{ S, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" },
		{ EOF_S, NULL },
	};

	(void)state;
	CHECK(s, "1 GET http://h/t|200 OK|req 0/0|resp 3/3|-|"
	    "response: connection closed inside a message\n", 1);
}

static void
unanswered_requests_bounded(void **state)
{
	struct httpobs_config cfg = {
		.scheme = "http", .default_host = "h", .max_pending = 4,
		.emit = record,
	};
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct transcript t;
	struct httpobs *o;
	int i, rc = 0;

	(void)state;
	memset(&t, 0, sizeof(t));
	cfg.arg = &t;
	o = httpobs_new(&cfg);
	for (i = 0; i < 5 && rc == 0; i++)
		rc = httpobs_feed(o, C, (const uint8_t *)req, strlen(req), 1);
	assert_int_equal(rc, -1);
	assert_int_equal(i, 5);
	assert_int_equal(httpobs_count(o), 4);
	assert_non_null(strstr(t.s, "4 GET http://h/|0 -|req 0/0|resp 0/0|-|"
	    "too many requests without a response\n"));
	httpobs_free(o, 2, NULL);
}

static void
flow_end_reason_marks_pending(void **state)
{
	struct httpobs_config cfg = {
		.scheme = "http", .default_host = "h", .emit = record,
	};
	static const char req[] = "GET /r HTTP/1.1\r\nHost: h\r\n\r\n";
	struct transcript t;
	struct httpobs *o;

	(void)state;
	memset(&t, 0, sizeof(t));
	cfg.arg = &t;
	o = httpobs_new(&cfg);
	assert_int_equal(httpobs_feed(o, C, (const uint8_t *)req, strlen(req),
	    1), 0);
	httpobs_free(o, 2, "connect failed");
	assert_string_equal(t.s, "1 GET http://h/r|0 -|req 0/0|resp 0/0|-|"
	    "connect failed\n");
}

/* --- through the flow store ------------------------------------------------ */

struct store_sink {
	struct store	*st;
	int64_t		 row;
};

static void
to_store(void *arg, const struct store_http *h)
{
	struct store_sink *k = arg;

	assert_true(store_http_add(k->st, k->row, h) > 0);
}

static void
exchanges_reach_the_store(void **state)
{
	static const char req[] = "GET /big HTTP/1.1\r\nHost: 10.98.0.2:8080\r\n"
	    "Accept: */*\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
	    "Server: t\r\n\r\n0123456789";
	char dir[] = "/tmp/test_px_httpobs.XXXXXX", db[128], p[160], err[256];
	struct store_config scfg;
	struct flow_record rec;
	struct store_sink k;
	struct httpobs_config cfg = { .scheme = "http", .default_host = "x",
	    .body_cap = 4, .emit = to_store, .arg = &k };
	struct httpobs *o;
	sqlite3_stmt *s;
	sqlite3 *rdb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/%s", dir, STORE_DB_NAME);
	store_config_default(&scfg);
	k.st = store_open(db, &scfg, err, sizeof(err));
	assert_non_null(k.st);
	memset(&rec, 0, sizeof(rec));
	rec.id = 1;
	rec.meta.transport = FLOW_TCP;
	rec.meta.src.family = rec.meta.dst.family = AF_INET;
	inet_pton(AF_INET, "10.98.0.1", rec.meta.src.addr);
	inet_pton(AF_INET, "10.98.0.2", rec.meta.dst.addr);
	rec.meta.src.port = 40000;
	rec.meta.dst.port = 8080;
	snprintf(rec.meta.owner.process, sizeof(rec.meta.owner.process), "%s", "curl");
	rec.meta.start_us = 1700000000000000ULL;
	k.row = store_flow_begin(k.st, &rec);
	assert_true(k.row > 0);

	o = httpobs_new(&cfg);
	assert_int_equal(httpobs_feed(o, C, (const uint8_t *)req, strlen(req),
	    1700000000000100ULL), 0);
	assert_int_equal(httpobs_feed(o, S, (const uint8_t *)resp,
	    strlen(resp), 1700000000000200ULL), 0);
	httpobs_free(o, 1700000000000300ULL, NULL);
	assert_int_equal(store_flush(k.st), 0);

	assert_int_equal(sqlite3_open_v2(db, &rdb, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(rdb, "SELECT method, url, host, "
	    "status, resp_body_size, length(resp_body), resp_body_truncated, "
	    "req_headers, resp_headers FROM http_exchanges", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(s, 0), "GET");
	assert_string_equal(sqlite3_column_text(s, 1),
	    "http://10.98.0.2:8080/big");
	assert_string_equal(sqlite3_column_text(s, 2), "10.98.0.2:8080");
	assert_int_equal(sqlite3_column_int(s, 3), 200);
	assert_int_equal(sqlite3_column_int(s, 4), 10);
	assert_int_equal(sqlite3_column_int(s, 5), 4);
	assert_int_equal(sqlite3_column_int(s, 6), 1);
	assert_non_null(strstr((const char *)sqlite3_column_text(s, 7),
	    "Accept"));
	assert_non_null(strstr((const char *)sqlite3_column_text(s, 8),
	    "Server"));
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
	sqlite3_close(rdb);
	store_close(k.st);
	unlink(db);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
	assert_int_equal(rmdir(dir), 0);
}

/* --- through the relay ------------------------------------------------------ */

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Turn the loop once (at most 5 ms). */
static void
turn(struct ev_loop *loop)
{
	ev_timer w;

	ev_timer_init(&w, tick, 0.005, 0);
	ev_timer_start(loop, &w);
	ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &w);
}

/* Read what fd has into buf (appending); -1 at EOF. */
static int
drain(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	while (*len < cap && (n = recv(fd, buf + *len, cap - *len,
	    MSG_DONTWAIT)) != 0) {
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return 0;
		}
		*len += (size_t)n;
	}
	return *len < cap ? -1 : 0;
}

static size_t
count_str(const char *s, size_t len, const char *what)
{
	size_t n = 0, wl = strlen(what);

	for (size_t i = 0; i + wl <= len; i++)
		if (memcmp(s + i, what, wl) == 0)
			n++;
	return n;
}

/*
 * A pipelined plain-HTTP conversation through a real relay into a real
 * store: the bytes arrive unchanged both ways, and the three exchanges
 * are recorded in order.
 */
static void
relay_records_pipelined_plain_http(void **state)
{
	static const char reqs[] =
	    "GET /one HTTP/1.1\r\nHost: origin.local\r\n\r\n"
	    "HEAD /two HTTP/1.1\r\nHost: origin.local\r\n\r\n"
	    "POST /three HTTP/1.1\r\nHost: origin.local\r\n"
	    "Content-Length: 4\r\n\r\nbody";
	static const char resps[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
	    "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
	    "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nthree\r\n0\r\n\r\n";
	char dir[] = "/tmp/test_px_httpobs.XXXXXX", db[128], p[160], err[256];
	char got_req[1024], got_resp[1024];
	size_t req_len = 0, resp_len = 0;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	struct relay_config rc;
	struct flow_meta m;
	struct ev_loop *loop;
	struct relay *r;
	struct store *st;
	sqlite3_stmt *q;
	sqlite3 *rdb;
	int lfd, ofd = -1, fds[2], app_eof = 0, i;
	double end;
	static const char *const want[] = {
		"1|GET|http://origin.local/one|200|3",
		"2|HEAD|http://origin.local/two|200|0",
		"3|POST|http://origin.local/three|201|5",
	};

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/%s", dir, STORE_DB_NAME);
	st = store_open(db, NULL, err, sizeof(err));
	assert_non_null(st);
	loop = ev_loop_new(EVFLAG_AUTO);
	relay_config_default(&rc);
	rc.store = st;
	r = relay_new(loop, &rc);
	assert_non_null(r);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);

	memset(&m, 0, sizeof(m));
	m.transport = FLOW_TCP;
	m.source_flow_id = 1;
	m.src.family = m.dst.family = AF_INET;
	memcpy(m.src.addr, "\x7f\x00\x00\x01", 4);
	memcpy(m.dst.addr, "\x7f\x00\x00\x01", 4);
	m.src.port = 40000;
	m.dst.port = ntohs(sin.sin_port);
	snprintf(m.owner.process, sizeof(m.owner.process), "%s", "testapp");
	snprintf(m.owner.cgroup, sizeof(m.owner.cgroup), "%s", "/test.slice");
	assert_true(relay_start(r, NULL, &m, fds[1]) != 0);
	/* The app pipelines all three at once, in two writes. */
	assert_int_equal(send(fds[0], reqs, 20, 0), 20);
	assert_int_equal(send(fds[0], reqs + 20, strlen(reqs) - 20, 0),
	    (ssize_t)strlen(reqs) - 20);

	end = mono_s() + 10;
	while (req_len < strlen(reqs)) {
		assert_true(mono_s() < end);
		turn(loop);
		if (ofd == -1)
			ofd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (ofd != -1)
			(void)drain(ofd, got_req, sizeof(got_req), &req_len);
	}
	assert_int_equal(req_len, strlen(reqs));
	assert_memory_equal(got_req, reqs, req_len);
	/* The origin answers in one go and closes; so does the app. */
	assert_int_equal(send(ofd, resps, strlen(resps), 0),
	    (ssize_t)strlen(resps));
	close(ofd);
	while (!app_eof) {
		assert_true(mono_s() < end);
		turn(loop);
		app_eof = drain(fds[0], got_resp, sizeof(got_resp), &resp_len) == -1;
	}
	assert_int_equal(resp_len, strlen(resps));
	assert_memory_equal(got_resp, resps, resp_len);
	close(fds[0]);
	while (relay_stats(r)->flows_active > 0) {
		assert_true(mono_s() < end);
		turn(loop);
	}
	assert_int_equal(store_flush(st), 0);

	assert_int_equal(sqlite3_open_v2(db, &rdb, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(rdb, "SELECT seq || '|' || method "
	    "|| '|' || url || '|' || status || '|' || resp_body_size, error "
	    "FROM http_exchanges ORDER BY seq", -1, &q, NULL), SQLITE_OK);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		assert_string_equal(sqlite3_column_text(q, 0), want[i]);
		assert_int_equal(sqlite3_column_type(q, 1), SQLITE_NULL);
	}
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(rdb, "SELECT protocol FROM flows",
	    -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal(sqlite3_column_text(q, 0), "http");
	sqlite3_finalize(q);
	sqlite3_close(rdb);
	assert_true(count_str(got_resp, resp_len, "HTTP/1.1") == 3);

	relay_free(r);
	ev_loop_destroy(loop);
	store_close(st);
	close(lfd);
	unlink(db);
	snprintf(p, sizeof(p), "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	unlink(p);
	assert_int_equal(rmdir(dir), 0);
}

/* What the budget saw of one exchange's bodies. */
struct budget_seen {
	int		 n;
	bool		 req_cut;
	size_t		 req_len;
	uint64_t	 req_size;
};

static void
budget_emit(void *arg, const struct store_http *h)
{
	struct budget_seen *s = arg;

	s->n++;
	s->req_cut = h->req_body_budget_cut;
	s->req_len = h->req_body_len;
	s->req_size = h->req_body_size;
}

/*
 * Body memory is charged to proxyd's budget: once it is spent the body is
 * kept truncated and marked so (the store records truncated = 2), the
 * bytes keep being observed, and the memory goes back when it is emitted.
 */
static void
body_over_budget_is_marked(void **state)
{
	static const char head[] = "POST /up HTTP/1.1\r\nHost: h\r\n"
	    "Content-Length: 262144\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "\r\nok";
	struct httpobs_config c = { 0 };
	struct budget_seen seen = { 0 };
	struct membudget budget;
	struct httpobs *o;
	uint8_t chunk[4096];
	size_t i;

	(void)state;
	membudget_init(&budget, 128 * 1024);	/* 64 KiB for bodies */
	c.scheme = "http";
	c.default_host = "h";
	c.body_cap = 1 << 20;
	c.budget = &budget;
	c.emit = budget_emit;
	c.arg = &seen;
	assert_non_null(o = httpobs_new(&c));
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(httpobs_feed(o, HTTPOBS_CLIENT, (const uint8_t *)head,
	    strlen(head), 1), 0);
	for (i = 0; i < 262144 / sizeof(chunk); i++)
		assert_int_equal(httpobs_feed(o, HTTPOBS_CLIENT, chunk,
		    sizeof(chunk), 2), 0);
	assert_true(budget.used <= budget.limit);
	assert_true(budget.refused > 0);
	assert_int_equal(httpobs_feed(o, HTTPOBS_SERVER, (const uint8_t *)resp,
	    strlen(resp), 3), 0);
	assert_int_equal(seen.n, 1);
	assert_true(seen.req_cut);
	assert_true(seen.req_len > 0 && seen.req_len <= 64 * 1024);
	assert_int_equal(seen.req_size, 262144);
	/* The parsers' buffers are charged until the observer goes. */
	assert_true(budget.used > 0 && budget.used < 16 * 1024);
	httpobs_free(o, 4, NULL);
	assert_int_equal(budget.used, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(simple_get_200),
		cmocka_unit_test(keep_alive_three_requests),
		cmocka_unit_test(pipelined_requests_pair_in_order),
		cmocka_unit_test(head_with_content_length_has_no_body),
		cmocka_unit_test(no_content_204_and_not_modified_304),
		cmocka_unit_test(continue_100_then_200),
		cmocka_unit_test(chunked_with_trailers),
		cmocka_unit_test(response_read_until_close),
		cmocka_unit_test(body_over_cap_is_truncated),
		cmocka_unit_test(body_over_budget_is_marked),
		cmocka_unit_test(no_host_uses_default_and_https_scheme),
		cmocka_unit_test(garbage_request_stops_observing),
		cmocka_unit_test(garbage_response_stops_observing),
		cmocka_unit_test(binary_garbage_never_crashes),
		cmocka_unit_test(response_without_request_stops),
		cmocka_unit_test(websocket_upgrade_recorded_then_not_parsed),
		cmocka_unit_test(connect_recorded_then_tunnel_ignored),
		cmocka_unit_test(closed_before_response_is_recorded),
		cmocka_unit_test(truncated_response_at_eof),
		cmocka_unit_test(unanswered_requests_bounded),
		cmocka_unit_test(flow_end_reason_marks_pending),
		cmocka_unit_test(exchanges_reach_the_store),
		cmocka_unit_test(relay_records_pipelined_plain_http),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
