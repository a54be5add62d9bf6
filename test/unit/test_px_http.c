/*
 * Unit tests for proxyd/http.c: real client traffic, framing per RFC 9112
 * §6.3, every way a length can lie, request-smuggling shapes, limits, and
 * split-invariance (every split point and one byte at a time must produce the
 * same events as the whole buffer).
 *
 * Each run is rendered as a transcript of events so tests compare strings:
 *   H <method> <target> 1.<minor> <body>|H <status> 1.<minor> <body>
 *   F name=value      (one per field, in order)
 *   B <bytes>         (consecutive body pieces merged)
 *   E [T name=value]  (end, with trailers)
 *   U / P / X <error>
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/http.h"

struct sbuf {
	char	*s;
	size_t	 len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	sb_add(b, tmp, (size_t)n);
}

static const char *const body_names[] = {
	"none", "len", "chunked", "close", "tunnel"
};

struct run {
	enum http_kind	kind;
	const enum http_method *methods;	/* per final response */
	size_t		nmethods;
	bool		eof;		/* call http_parse_eof at the end */
	bool		resume;		/* resume after PAUSED */
	const struct http_limits *lim;
	/* out */
	struct sbuf	out;
	bool		in_body;
	bool		stopped;
	size_t		mi;
	struct http_parser p;
};

static void
record(struct run *r, enum http_event ev, const uint8_t *data, size_t dlen)
{
	const struct http_msg *m = &r->p.msg;

	if (ev != HTTP_EV_BODY && r->in_body) {
		sb_add(&r->out, "\n", 1);
		r->in_body = false;
	}
	switch (ev) {
	case HTTP_EV_HEADERS:
		if (m->is_request)
			sb_printf(&r->out, "H %s %s 1.%d %s\n", m->method,
			    m->target, m->version_minor, body_names[m->body]);
		else
			sb_printf(&r->out, "H %d 1.%d %s\n", m->status,
			    m->version_minor, body_names[m->body]);
		for (size_t i = 0; i < m->nfields; i++)
			sb_printf(&r->out, "F %s=%s\n", m->fields[i].name,
			    m->fields[i].value);
		break;
	case HTTP_EV_BODY:
		if (!r->in_body)
			sb_add(&r->out, "B ", 2);
		sb_add(&r->out, (const char *)data, dlen);
		r->in_body = true;
		break;
	case HTTP_EV_END:
		sb_add(&r->out, "E", 1);
		for (size_t i = 0; i < m->ntrailers; i++)
			sb_printf(&r->out, " T %s=%s", m->trailers[i].name,
			    m->trailers[i].value);
		sb_add(&r->out, "\n", 1);
		if (!m->is_request && !m->interim && r->mi < r->nmethods)
			http_parser_set_request_method(&r->p, r->methods[r->mi++]);
		break;
	case HTTP_EV_UPGRADE:
		sb_add(&r->out, "U\n", 2);
		break;
	case HTTP_EV_PAUSED:
		sb_add(&r->out, "P\n", 2);
		break;
	case HTTP_EV_ERROR:
		sb_printf(&r->out, "X %s\n", http_error_str(r->p.error));
		break;
	case HTTP_EV_NEED_MORE:
		break;
	}
}

static void
run_begin(struct run *r)
{
	memset(&r->out, 0, sizeof(r->out));
	sb_add(&r->out, "", 0);
	r->in_body = r->stopped = false;
	r->mi = 0;
	http_parser_init(&r->p, r->kind, r->lim);
	if (r->kind == HTTP_RESPONSE && r->nmethods > 0)
		http_parser_set_request_method(&r->p, r->methods[r->mi++]);
}

static void
run_feed(struct run *r, const uint8_t *buf, size_t len)
{
	while (!r->stopped) {
		const uint8_t *data;
		size_t used, dlen;
		enum http_event ev;

		ev = http_parse(&r->p, buf, len, &used, &data, &dlen);
		assert_true(used <= len);
		buf += used;
		len -= used;
		if (ev == HTTP_EV_NEED_MORE) {
			assert_int_equal(len, 0);
			return;
		}
		record(r, ev, data, dlen);
		if (ev == HTTP_EV_PAUSED && r->resume) {
			http_parser_resume(&r->p);
			continue;
		}
		if (ev == HTTP_EV_ERROR || ev == HTTP_EV_UPGRADE ||
		    ev == HTTP_EV_PAUSED) {
			if (ev == HTTP_EV_UPGRADE && len > 0)
				sb_printf(&r->out, "R %zu\n", len);
			r->stopped = true;
		}
	}
}

static char *
run_end(struct run *r)
{
	if (r->eof && !r->stopped) {
		enum http_event ev = http_parse_eof(&r->p);

		if (ev != HTTP_EV_NEED_MORE)
			record(r, ev, NULL, 0);
	}
	http_parser_free(&r->p);
	return r->out.s;
}

/* Whole buffer, then every 2-way split, then byte by byte: all equal. */
static char *
parse_all(struct run *r, const char *in)
{
	size_t len = strlen(in);
	char *whole, *other;

	run_begin(r);
	run_feed(r, (const uint8_t *)in, len);
	whole = run_end(r);
	for (size_t cut = 1; cut < len; cut++) {
		run_begin(r);
		run_feed(r, (const uint8_t *)in, cut);
		/* a stop (error/upgrade) reports leftovers differently per split */
		if (!r->stopped)
			run_feed(r, (const uint8_t *)in + cut, len - cut);
		other = run_end(r);
		if (strstr(whole, "\nR ") == NULL && strncmp(whole, "R ", 2) != 0)
			assert_string_equal(whole, other);
		free(other);
	}
	run_begin(r);
	for (size_t i = 0; i < len && !r->stopped; i++)
		run_feed(r, (const uint8_t *)in + i, 1);
	other = run_end(r);
	if (strstr(whole, "\nR ") == NULL)
		assert_string_equal(whole, other);
	free(other);
	return whole;
}

static void
expect(enum http_kind kind, const char *in, bool eof, const char *want)
{
	struct run r = { .kind = kind, .eof = eof };
	char *got = parse_all(&r, in);

	assert_string_equal(got, want);
	free(got);
}

static void
expect_error(enum http_kind kind, const char *in, enum http_error err)
{
	struct run r = { .kind = kind };
	char *got = parse_all(&r, in);
	char want[128];

	snprintf(want, sizeof(want), "X %s\n", http_error_str(err));
	if (strstr(got, want) == NULL)
		fail_msg("input %s: want %s got %s", in, want, got);
	free(got);
}

/* --- real client traffic ------------------------------------------------- */

static const char curl_get[] =
	"GET /index.html?q=1 HTTP/1.1\r\n"
	"Host: 127.0.0.1:18081\r\n"
	"User-Agent: curl/7.88.1\r\n"
	"Accept: */*\r\n"
	"Accept-Language: en\r\n"
	"\r\n";

static const char wget_get[] =
	"GET /file.txt HTTP/1.1\r\n"
	"Host: 127.0.0.1:18082\r\n"
	"User-Agent: Wget/1.21.3\r\n"
	"Accept: */*\r\n"
	"Accept-Encoding: identity\r\n"
	"Connection: Keep-Alive\r\n"
	"\r\n";

static const char python_get[] =
	"GET /api?x=1 HTTP/1.1\r\n"
	"Accept-Encoding: identity\r\n"
	"Host: 127.0.0.1:18083\r\n"
	"User-Agent: Python-urllib/3.11\r\n"
	"Connection: close\r\n"
	"\r\n";

/* curl -T - -H 'Transfer-Encoding: chunked' */
static const char curl_put_chunked[] =
	"PUT /up HTTP/1.1\r\n"
	"Host: 127.0.0.1:18084\r\n"
	"User-Agent: curl/7.88.1\r\n"
	"Accept: */*\r\n"
	"Transfer-Encoding: chunked\r\n"
	"Expect: 100-continue\r\n"
	"\r\n"
	"b\r\nhello world\r\n0\r\n\r\n";

/* python3 -m http.server */
static const char python_server_response[] =
	"HTTP/1.0 200 OK\r\n"
	"Server: SimpleHTTP/0.6 Python/3.11.7\r\n"
	"Date: Sun, 29 Nov 2026 17:53:09 GMT\r\n"
	"Content-type: text/plain\r\n"
	"Content-Length: 6\r\n"
	"Last-Modified: Sun, 29 Nov 2026 17:53:07 GMT\r\n"
	"\r\n"
	"hello\n";

static void
curl_get_fields_in_order(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, curl_get, true,
	    "H GET /index.html?q=1 1.1 none\n"
	    "F Host=127.0.0.1:18081\n"
	    "F User-Agent=curl/7.88.1\n"
	    "F Accept=*/*\n"
	    "F Accept-Language=en\n"
	    "E\n");
}

static void
wget_and_python_keep_alive_flags(void **state)
{
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)wget_get,
	    strlen(wget_get), &used, &d, &dl), HTTP_EV_HEADERS);
	assert_true(p.msg.keep_alive);
	assert_int_equal(p.msg.method_id, HTTP_M_GET);
	assert_int_equal(http_parse(&p, NULL, 0, &used, &d, &dl), HTTP_EV_END);
	http_parser_free(&p);

	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)python_get,
	    strlen(python_get), &used, &d, &dl), HTTP_EV_HEADERS);
	assert_false(p.msg.keep_alive);
	assert_int_equal(http_parse(&p, NULL, 0, &used, &d, &dl), HTTP_EV_END);
	/* after Connection: close, more bytes are an error, EOF is not */
	assert_int_equal(http_parse_eof(&p), HTTP_EV_NEED_MORE);
	assert_int_equal(http_parse(&p, (const uint8_t *)"GET", 3, &used, &d,
	    &dl), HTTP_EV_ERROR);
	assert_int_equal(p.error, HTTP_ERR_DATA_AFTER_CLOSE);
	http_parser_free(&p);
}

static void
curl_chunked_put_expect_continue(void **state)
{
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	expect(HTTP_REQUEST, curl_put_chunked, true,
	    "H PUT /up 1.1 chunked\n"
	    "F Host=127.0.0.1:18084\n"
	    "F User-Agent=curl/7.88.1\n"
	    "F Accept=*/*\n"
	    "F Transfer-Encoding=chunked\n"
	    "F Expect=100-continue\n"
	    "B hello world\n"
	    "E\n");
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)curl_put_chunked,
	    strlen(curl_put_chunked), &used, &d, &dl), HTTP_EV_HEADERS);
	assert_true(p.msg.expect_continue);
	http_parser_free(&p);
}

static void
python_http10_response_closes(void **state)
{
	(void)state;
	expect(HTTP_RESPONSE, python_server_response, true,
	    "H 200 1.0 len\n"
	    "F Server=SimpleHTTP/0.6 Python/3.11.7\n"
	    "F Date=Sun, 29 Nov 2026 17:53:09 GMT\n"
	    "F Content-type=text/plain\n"
	    "F Content-Length=6\n"
	    "F Last-Modified=Sun, 29 Nov 2026 17:53:07 GMT\n"
	    "B hello\n\n"
	    "E\n");
}

/* Header shapes as Chrome 124 and Firefox 125 send them (typed from their
 * devtools; no browser on the build machines). */
static const char chrome_get[] =
	"GET / HTTP/1.1\r\n"
	"Host: example.com\r\n"
	"Connection: keep-alive\r\n"
	"Cache-Control: max-age=0\r\n"
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", "
	"\"Not-A.Brand\";v=\"99\"\r\n"
	"sec-ch-ua-mobile: ?0\r\n"
	"sec-ch-ua-platform: \"Linux\"\r\n"
	"Upgrade-Insecure-Requests: 1\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
	"image/avif,image/webp,image/apng,*/*;q=0.8,"
	"application/signed-exchange;v=b3;q=0.7\r\n"
	"Sec-Fetch-Site: none\r\n"
	"Sec-Fetch-Mode: navigate\r\n"
	"Sec-Fetch-User: ?1\r\n"
	"Sec-Fetch-Dest: document\r\n"
	"Accept-Encoding: gzip, deflate, br, zstd\r\n"
	"Accept-Language: en-US,en;q=0.9\r\n"
	"Cookie: sid=abc; theme=dark\r\n"
	"\r\n";

static const char firefox_websocket[] =
	"GET /chat HTTP/1.1\r\n"
	"Host: example.com\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 "
	"Firefox/125.0\r\n"
	"Accept: */*\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Origin: https://example.com\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Connection: keep-alive, Upgrade\r\n"
	"Upgrade: websocket\r\n"
	"\r\n";

static void
browser_requests(void **state)
{
	struct run r = { .kind = HTTP_REQUEST };
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;
	char *got;

	(void)state;
	got = parse_all(&r, chrome_get);
	assert_non_null(strstr(got, "F Cookie=sid=abc; theme=dark\nE\n"));
	free(got);
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)chrome_get,
	    strlen(chrome_get), &used, &d, &dl), HTTP_EV_HEADERS);
	assert_int_equal(p.msg.nfields, 16);
	assert_true(p.msg.keep_alive);
	assert_false(p.msg.upgrade);
	assert_true(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "accept-encoding", "br"));
	http_parser_free(&p);

	/* the WebSocket handshake pauses the request side for the 101 */
	got = parse_all(&r, firefox_websocket);
	assert_non_null(strstr(got, "F Upgrade=websocket\nE\nP\n"));
	free(got);
}

static void
pipelined_requests_keep_order(void **state)
{
	(void)state;
	expect(HTTP_REQUEST,
	    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	    "PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	    "3;ext=1;q=\"x\"\r\nxyz\r\n2\r\n12\r\n0\r\nT1: v\r\nT2: w\r\n\r\n"
	    "DELETE /d HTTP/1.1\r\nConnection: close\r\n\r\n", true,
	    "H GET /a 1.1 none\nF Host=x\nE\n"
	    "H POST /b 1.1 len\nF Host=x\nF Content-Length=3\nB abc\nE\n"
	    "H PUT /c 1.1 chunked\nF Transfer-Encoding=gzip, chunked\n"
	    "B xyz12\nE T T1=v T T2=w\n"
	    "H DELETE /d 1.1 none\nF Connection=close\nE\n");
}

static void
duplicate_fields_kept_and_ows_trimmed(void **state)
{
	(void)state;
	expect(HTTP_REQUEST,
	    "GET / HTTP/1.1\r\nCookie: a=1\r\nX-Empty:\r\n"
	    "Cookie:   b=2 \t\r\nX-Obs: caf\xc3\xa9\r\n\r\n", false,
	    "H GET / 1.1 none\nF Cookie=a=1\nF X-Empty=\nF Cookie=b=2\n"
	    "F X-Obs=caf\xc3\xa9\nE\n");
}

static void
leading_empty_lines_before_request_ignored(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "\r\n\r\nGET / HTTP/1.1\r\n\r\n", false,
	    "H GET / 1.1 none\nE\n");
}

static void
bare_lf_line_endings_accepted(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "GET / HTTP/1.1\nHost: x\n\n", false,
	    "H GET / 1.1 none\nF Host=x\nE\n");
}

/* --- responses: framing ---------------------------------------------------- */

static void
response_to_head_has_no_body(void **state)
{
	static const enum http_method m[] = { HTTP_M_HEAD, HTTP_M_GET };
	struct run r = { .kind = HTTP_RESPONSE, .methods = m, .nmethods = 2 };
	char *got;

	(void)state;
	got = parse_all(&r,
	    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
	assert_string_equal(got,
	    "H 200 1.1 none\nF Content-Length=100\nE\n"
	    "H 200 1.1 len\nF Content-Length=2\nB hi\nE\n");
	free(got);
}

static void
response_204_and_304_have_no_body(void **state)
{
	(void)state;
	expect(HTTP_RESPONSE,
	    "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
	    "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
	    "H 204 1.1 none\nF Content-Length=5\nE\n"
	    "H 304 1.1 none\nF Transfer-Encoding=chunked\nE\n"
	    "H 200 1.1 len\nF Content-Length=0\nE\n");
}

static void
interim_100_continue_then_final(void **state)
{
	(void)state;
	expect(HTTP_RESPONSE,
	    "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n", false,
	    "H 100 1.1 none\nE\n"
	    "H 103 1.1 none\nF Link=</s.css>\nE\n"
	    "H 200 1.1 chunked\nF Transfer-Encoding=chunked\nB hello\nE\n");
}

static void
interim_response_keeps_head_method(void **state)
{
	static const enum http_method m[] = { HTTP_M_HEAD };
	struct run r = { .kind = HTTP_RESPONSE, .methods = m, .nmethods = 1 };
	char *got;

	(void)state;
	got = parse_all(&r, "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
	assert_string_equal(got, "H 100 1.1 none\nE\n"
	    "H 200 1.1 none\nF Content-Length=9\nE\n");
	free(got);
}

static void
switching_protocols_stops_at_end_of_head(void **state)
{
	struct http_parser p;
	const char *in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n\r\n\x81\x05hello";
	const uint8_t *d;
	size_t used, dl, head = strlen(in) - 7;

	(void)state;
	http_parser_init(&p, HTTP_RESPONSE, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, head + 7, &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_int_equal(used, head);
	assert_int_equal(p.msg.body, HTTP_BODY_TUNNEL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in + used, 7, &used,
	    &d, &dl), HTTP_EV_UPGRADE);
	assert_int_equal(used, 0);
	/* stays a tunnel: websocket bytes are never parsed as HTTP */
	assert_int_equal(http_parse(&p, (const uint8_t *)in + head, 7, &used,
	    &d, &dl), HTTP_EV_UPGRADE);
	assert_int_equal(used, 0);
	http_parser_free(&p);
}

static void
connect_2xx_response_is_tunnel(void **state)
{
	static const enum http_method m[] = { HTTP_M_CONNECT };
	struct run r = { .kind = HTTP_RESPONSE, .methods = m, .nmethods = 1 };
	char *got;

	(void)state;
	got = parse_all(&r, "HTTP/1.1 200 Connection established\r\n\r\n");
	assert_string_equal(got, "H 200 1.1 tunnel\nU\n");
	free(got);
}

static void
connect_refused_response_has_body(void **state)
{
	static const enum http_method m[] = { HTTP_M_CONNECT };
	struct run r = { .kind = HTTP_RESPONSE, .methods = m, .nmethods = 1 };
	char *got;

	(void)state;
	got = parse_all(&r, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
	assert_string_equal(got, "H 403 1.1 len\nF Content-Length=2\nB no\nE\n");
	free(got);
}

static void
unframed_response_reads_until_close(void **state)
{
	(void)state;
	expect(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\n\r\nsome\r\nbytes", true,
	    "H 200 1.1 close\nB some\r\nbytes\nE\n");
	/* TE without chunked last: also until close, never keep-alive */
	expect(HTTP_RESPONSE,
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", true,
	    "H 200 1.1 close\nF Transfer-Encoding=gzip\nB zz\nE\n");
}

static void
http10_keep_alive_needs_header(void **state)
{
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;
	const char *a = "GET / HTTP/1.0\r\n\r\n";
	const char *b = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
	const char *c = "GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n";

	(void)state;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)a, strlen(a), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_false(p.msg.keep_alive);
	http_parser_free(&p);
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)b, strlen(b), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_true(p.msg.keep_alive);
	http_parser_free(&p);
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)c, strlen(c), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_false(p.msg.keep_alive);
	http_parser_free(&p);
}

static void
connect_request_pauses_until_resume(void **state)
{
	struct run r = { .kind = HTTP_REQUEST };
	char *got;

	(void)state;
	got = parse_all(&r, "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n\r\n\x16\x03\x01");
	assert_string_equal(got, "H CONNECT example.com:443 1.1 none\n"
	    "F Host=example.com:443\nE\nP\n");
	free(got);
	/* upgrade refused: what follows is HTTP again */
	r.resume = true;
	got = parse_all(&r, "GET /chat HTTP/1.1\r\nUpgrade: h2c\r\n"
	    "Connection: Upgrade, HTTP2-Settings\r\n\r\n"
	    "GET /next HTTP/1.1\r\n\r\n");
	assert_string_equal(got, "H GET /chat 1.1 none\nF Upgrade=h2c\n"
	    "F Connection=Upgrade, HTTP2-Settings\nE\nP\n"
	    "H GET /next 1.1 none\nE\n");
	free(got);
}

static void
upgrade_without_connection_token_does_not_pause(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
	    "GET /2 HTTP/1.1\r\n\r\n", false,
	    "H GET / 1.1 none\nF Upgrade=websocket\nE\nH GET /2 1.1 none\nE\n");
}

/* --- lengths that lie --------------------------------------------------------- */

static void
content_length_shorter_than_eof_is_truncated(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
	    true, "H POST / 1.1 len\nF Content-Length=10\nB abc\n"
	    "X connection closed inside a message\n");
	expect(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n5\r\nab", true, "H 200 1.1 chunked\n"
	    "F Transfer-Encoding=chunked\nB ab\n"
	    "X connection closed inside a message\n");
	expect(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost:", true,
	    "X connection closed inside a message\n");
}

static void
content_length_longer_body_becomes_next_message(void **state)
{
	/* the surplus is parsed as a request line and rejected, not merged */
	(void)state;
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n"
	    "abcdef\r\n\r\n", false,
	    "H POST / 1.1 len\nF Content-Length=2\nB ab\nE\n"
	    "X invalid method\n");
}

static void
content_length_list_and_duplicates(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
	    false, "H POST / 1.1 len\nF Content-Length=3, 3\nB abc\nE\n");
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
	    "Content-Length: 3\r\n\r\nabc", false, "H POST / 1.1 len\n"
	    "F Content-Length=3\nF Content-Length=3\nB abc\nE\n");
	expect_error(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\nabcd", HTTP_ERR_CONTENT_LENGTH_MISMATCH);
	expect_error(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
	    HTTP_ERR_CONTENT_LENGTH_MISMATCH);
	expect_error(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\n", HTTP_ERR_CONTENT_LENGTH_MISMATCH);
}

static void
content_length_must_be_digits(void **state)
{
	static const char *const bad[] = {
		"+5", "-1", "0x5", "5 5", "5;", "", "3,", ",3", "1e3", "\xd9\xa3",
		"18446744073709551616", "99999999999999999999999",
	};
	char in[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in),
		    "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
		expect_error(HTTP_REQUEST, in, HTTP_ERR_BAD_CONTENT_LENGTH);
		snprintf(in, sizeof(in),
		    "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", bad[i]);
		expect_error(HTTP_RESPONSE, in, HTTP_ERR_BAD_CONTENT_LENGTH);
	}
}

static void
content_length_max_uint64_accepted(void **state)
{
	struct http_parser p;
	const char *in = "POST / HTTP/1.1\r\nContent-Length: "
	    "18446744073709551615\r\n\r\nab";
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, strlen(in), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_true(p.msg.content_length == UINT64_MAX);
	assert_int_equal(http_parse(&p, (const uint8_t *)in + used,
	    strlen(in) - used, &used, &d, &dl), HTTP_EV_BODY);
	assert_int_equal(dl, 2);
	http_parser_free(&p);
}

static void
chunk_sizes_that_lie(void **state)
{
	static const struct {
		const char *body;
		enum http_error err;
	} cases[] = {
		{ "g\r\n", HTTP_ERR_BAD_CHUNK_SIZE },
		{ "\r\n", HTTP_ERR_BAD_CHUNK_SIZE },
		{ "-1\r\n", HTTP_ERR_BAD_CHUNK_SIZE },
		{ "0x5\r\n", HTTP_ERR_BAD_CHUNK_SIZE },
		{ "10000000000000000\r\n", HTTP_ERR_CHUNK_SIZE_OVERFLOW },
		{ "fffffffffffffffff\r\n", HTTP_ERR_CHUNK_SIZE_OVERFLOW },
		{ "1 0\r\n", HTTP_ERR_BAD_CHUNK_EXT },
		{ "1 \r\n", HTTP_ERR_BAD_CHUNK_EXT },
		{ "1;a\x01\r\n", HTTP_ERR_BAD_CHUNK_EXT },
		{ "1\n", HTTP_ERR_CHUNK_CRLF },
		{ "1;a=\"\n\"\r\n", HTTP_ERR_CHUNK_CRLF },
		{ "1\rx", HTTP_ERR_CHUNK_CRLF },
		{ "5\r\nabc\r\n0\r\n\r\n", HTTP_ERR_CHUNK_CRLF },
		{ "3\r\nabcd\r\n", HTTP_ERR_CHUNK_CRLF },
		{ "3\r\nabc\n0\r\n\r\n", HTTP_ERR_CHUNK_CRLF },
		{ "0\r\nBad : x\r\n\r\n", HTTP_ERR_WS_BEFORE_COLON },
		{ "0\r\nBad Trailer: x\r\n\r\n", HTTP_ERR_BAD_FIELD_NAME },
		{ "0\r\n folded\r\n\r\n", HTTP_ERR_OBS_FOLD },
	};
	char in[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "POST / HTTP/1.1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n%s", cases[i].body);
		expect_error(HTTP_REQUEST, in, cases[i].err);
	}
}

static void
chunk_size_line_bounded(void **state)
{
	struct http_limits lim;
	struct run r = { .kind = HTTP_REQUEST, .lim = &lim };
	char in[512], *got;

	(void)state;
	http_limits_default(&lim);
	lim.max_chunk_line = 64;
	/* 62 bytes incl. CRLF: fine; leading zeros are allowed */
	snprintf(in, sizeof(in), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n0000000000000000000000000000000000000000000000000000000001"
	    "\r\nx\r\n0\r\n\r\n");
	got = parse_all(&r, in);
	assert_non_null(strstr(got, "B x\nE\n"));
	free(got);
	snprintf(in, sizeof(in), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n1;%0100d\r\nx\r\n0\r\n\r\n", 0);
	got = parse_all(&r, in);
	assert_non_null(strstr(got, "X chunk size line too long\n"));
	free(got);
}

static void
chunked_max_size_and_extensions_accepted(void **state)
{
	(void)state;
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "ffffffffffffffff\r\nab", true,
	    "H POST / 1.1 chunked\nF Transfer-Encoding=chunked\nB ab\n"
	    "X connection closed inside a message\n");
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "2 ; name=\"v a\"\r\nok\r\n0;last\r\n\r\n", false,
	    "H POST / 1.1 chunked\nF Transfer-Encoding=chunked\nB ok\nE\n");
}

/* --- smuggling shapes ---------------------------------------------------------- */

static void
request_with_te_and_cl_rejected(void **state)
{
	(void)state;
	expect_error(HTTP_REQUEST, "POST / HTTP/1.1\r\nContent-Length: 4\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HTTP_ERR_TE_AND_CL);
	expect_error(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
	    "\r\nContent-Length: 0\r\n\r\n", HTTP_ERR_TE_AND_CL);
	assert_int_equal(http_error_status(HTTP_ERR_TE_AND_CL), 400);
}

static void
response_with_te_and_cl_follows_te(void **state)
{
	struct http_parser p;
	const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	http_parser_init(&p, HTTP_RESPONSE, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, strlen(in), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_int_equal(p.msg.body, HTTP_BODY_CHUNKED);
	assert_true(p.msg.te_overrode_cl);
	http_parser_free(&p);
}

static void
transfer_encoding_shapes(void **state)
{
	static const struct {
		const char *te;
		enum http_error err;
	} cases[] = {
		{ "identity", HTTP_ERR_TE_NOT_CHUNKED },
		{ "gzip", HTTP_ERR_TE_NOT_CHUNKED },
		{ "chunked, identity", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ "chunked, chunked", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ "chunked\r\nTransfer-Encoding: gzip", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ "", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ " , ", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ "\"chunked\"", HTTP_ERR_BAD_TRANSFER_ENCODING },
		{ "chunked\x0b", HTTP_ERR_BAD_FIELD_VALUE },
		{ "chun ked", HTTP_ERR_BAD_TRANSFER_ENCODING },
	};
	char in[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "POST / HTTP/1.1\r\n"
		    "Transfer-Encoding: %s\r\n\r\n", cases[i].te);
		expect_error(HTTP_REQUEST, in, cases[i].err);
	}
	/* case-insensitive, empty elements ignored, split over two lines */
	expect(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip,\r\n"
	    "Transfer-Encoding: , CHUNKED\r\n\r\n0\r\n\r\n", false,
	    "H POST / 1.1 chunked\nF Transfer-Encoding=gzip,\n"
	    "F Transfer-Encoding=, CHUNKED\nE\n");
	expect_error(HTTP_REQUEST, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n0\r\n\r\n", HTTP_ERR_TE_IN_HTTP10);
	expect_error(HTTP_RESPONSE, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n0\r\n\r\n", HTTP_ERR_TE_IN_HTTP10);
}

static void
obs_fold_and_whitespace_before_colon_rejected(void **state)
{
	(void)state;
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
	    HTTP_ERR_OBS_FOLD);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
	    HTTP_ERR_OBS_FOLD);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\n Host: x\r\n\r\n",
	    HTTP_ERR_OBS_FOLD);
	expect_error(HTTP_REQUEST, "POST / HTTP/1.1\r\nTransfer-Encoding : "
	    "chunked\r\n\r\n", HTTP_ERR_WS_BEFORE_COLON);
	expect_error(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length\t: 1\r\n\r\n",
	    HTTP_ERR_WS_BEFORE_COLON);
}

static void
bare_cr_rejected(void **state)
{
	(void)state;
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
	    HTTP_ERR_BARE_CR);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\r\n\r\n", HTTP_ERR_BARE_CR);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\r\r\n\r\n",
	    HTTP_ERR_BARE_CR);
}

static void
bad_field_names_and_values(void **state)
{
	(void)state;
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\n: x\r\n\r\n",
	    HTTP_ERR_BAD_FIELD_NAME);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	    HTTP_ERR_BAD_FIELD_NAME);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX(y): x\r\n\r\n",
	    HTTP_ERR_BAD_FIELD_NAME);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
	    HTTP_ERR_BAD_FIELD_VALUE);
	{
		static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
		struct http_parser p;
		const uint8_t *d;
		size_t used, dl;

		http_parser_init(&p, HTTP_REQUEST, NULL);
		assert_int_equal(http_parse(&p, (const uint8_t *)nul,
		    sizeof(nul) - 1, &used, &d, &dl), HTTP_EV_ERROR);
		assert_int_equal(p.error, HTTP_ERR_BAD_FIELD_VALUE);
		/* sticky */
		assert_int_equal(http_parse(&p, (const uint8_t *)"x", 1, &used,
		    &d, &dl), HTTP_EV_ERROR);
		http_parser_free(&p);
	}
}

static void
bad_request_lines(void **state)
{
	static const struct {
		const char *line;
		enum http_error err;
	} cases[] = {
		{ "GET  / HTTP/1.1", HTTP_ERR_BAD_TARGET },
		{ "GET / HTTP/1.1 ", HTTP_ERR_BAD_VERSION },
		{ "GET /", HTTP_ERR_BAD_VERSION },
		{ "GET / HTTP/2.0", HTTP_ERR_UNSUPPORTED_VERSION },
		{ "GET / HTTP/1.10", HTTP_ERR_BAD_VERSION },
		{ "GET / http/1.1", HTTP_ERR_BAD_VERSION },
		{ "G(T / HTTP/1.1", HTTP_ERR_BAD_METHOD },
		{ " GET / HTTP/1.1", HTTP_ERR_BAD_METHOD },
		{ "GET /\x7f HTTP/1.1", HTTP_ERR_BAD_TARGET },
		{ "GET /\xc3\xa9 HTTP/1.1", HTTP_ERR_BAD_TARGET },
		{ "GET\t/ HTTP/1.1", HTTP_ERR_BAD_METHOD },
		{ "\x16\x03\x01\x02", HTTP_ERR_BAD_METHOD },
	};
	char in[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "%s\r\n\r\n", cases[i].line);
		expect_error(HTTP_REQUEST, in, cases[i].err);
	}
	assert_int_equal(http_error_status(HTTP_ERR_UNSUPPORTED_VERSION), 505);
}

static void
bad_status_lines(void **state)
{
	static const struct {
		const char *line;
		enum http_error err;
	} cases[] = {
		{ "HTTP/1.1 20 OK", HTTP_ERR_BAD_STATUS },
		{ "HTTP/1.1 099 Low", HTTP_ERR_BAD_STATUS },
		{ "HTTP/1.1 200OK", HTTP_ERR_BAD_STATUS },
		{ "HTTP/1.1  200 OK", HTTP_ERR_BAD_STATUS },
		{ "HTTP/1.1 2x0 OK", HTTP_ERR_BAD_STATUS },
		{ "ICY 200 OK", HTTP_ERR_BAD_VERSION },
		{ "HTTP/3.0 200 OK", HTTP_ERR_UNSUPPORTED_VERSION },
		{ "HTTP/1.1 200 O\x01K", HTTP_ERR_BAD_REASON },
		{ "", HTTP_ERR_BAD_VERSION },
	};
	char in[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "%s\r\n\r\n", cases[i].line);
		expect_error(HTTP_RESPONSE, in, cases[i].err);
	}
	expect(HTTP_RESPONSE, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false,
	    "H 200 1.1 len\nF Content-Length=0\nE\n");
}

/* --- limits ---------------------------------------------------------------------- */

static void
limits_each_have_their_error(void **state)
{
	struct http_limits lim;
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;
	char big[300];

	(void)state;
	http_limits_default(&lim);
	lim.max_start_line = 32;
	lim.max_field_line = 40;
	lim.max_head = 120;
	lim.max_fields = 3;

	/* an endless start line is refused before it ends */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	http_parser_init(&p, HTTP_REQUEST, &lim);
	assert_int_equal(http_parse(&p, (const uint8_t *)big, sizeof(big),
	    &used, &d, &dl), HTTP_EV_ERROR);
	assert_int_equal(p.error, HTTP_ERR_START_LINE_TOO_LONG);
	assert_int_equal(http_error_status(p.error), 414);
	http_parser_free(&p);

	{
		struct run r = { .kind = HTTP_REQUEST, .lim = &lim };
		char *got;

		got = parse_all(&r, "GET / HTTP/1.1\r\nX: 0123456789012345678901"
		    "234567890123456789\r\n\r\n");
		assert_string_equal(got, "X header field line too long\n");
		free(got);
		got = parse_all(&r, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
		    "D: 4\r\n\r\n");
		assert_string_equal(got, "X too many header fields\n");
		free(got);
		got = parse_all(&r, "GET / HTTP/1.1\r\n"
		    "A: 012345678901234567890123456789\r\n"
		    "B: 012345678901234567890123456789\r\n"
		    "C: 012345678901234567890123456789\r\n\r\n");
		assert_string_equal(got, "X header block too large\n");
		free(got);
		/* exactly at the limits is fine */
		got = parse_all(&r, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
		assert_string_equal(got, "H GET / 1.1 none\nF A=1\nF B=2\nF C=3\nE\n");
		free(got);
		/* trailers are bounded the same way */
		got = parse_all(&r, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked"
		    "\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
		assert_non_null(strstr(got, "X too many header fields\n"));
		free(got);
	}
	assert_int_equal(http_error_status(HTTP_ERR_TOO_MANY_FIELDS), 431);
}

static void
endless_empty_lines_bounded(void **state)
{
	struct http_limits lim;
	struct run r = { .kind = HTTP_REQUEST, .lim = &lim };
	char in[200], *got;

	(void)state;
	http_limits_default(&lim);
	lim.max_start_line = 16;
	for (size_t i = 0; i + 1 < sizeof(in); i += 2)
		memcpy(in + i, "\r\n", 2);
	in[sizeof(in) - 1] = '\0';
	got = parse_all(&r, in);
	assert_string_equal(got, "X invalid method\n");
	free(got);
}

/* --- helpers ---------------------------------------------------------------------- */

static void
field_lookup_and_token_lists(void **state)
{
	struct http_parser p;
	const char *in = "GET / HTTP/1.1\r\nconnection: keep-alive\r\n"
	    "CONNECTION: Upgrade ,  HTTP2-Settings\r\n"
	    "Accept-Encoding: gzip;q=1.0, br\r\n\r\n";
	const struct http_field *f;
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, strlen(in), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	f = http_field_get(p.msg.fields, p.msg.nfields, "Connection");
	assert_non_null(f);
	assert_string_equal(f->value, "keep-alive");
	assert_null(http_field_get(p.msg.fields, p.msg.nfields, "Connectio"));
	assert_true(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "connection", "upgrade"));
	assert_true(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "connection", "http2-settings"));
	assert_false(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "connection", "close"));
	assert_true(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "accept-encoding", "gzip"));
	assert_false(http_field_has_token(p.msg.fields, p.msg.nfields,
	    "accept-encoding", "gzip;q=1.0"));
	assert_true(http_is_token("x-y", 3));
	assert_false(http_is_token("x y", 3));
	assert_false(http_is_token("", 0));
	assert_int_equal(http_method_lookup("PATCH", 5), HTTP_M_PATCH);
	assert_int_equal(http_method_lookup("get", 3), HTTP_M_OTHER);
	http_parser_free(&p);
}

static void
host_must_be_single_and_valid(void **state)
{
	struct http_parser p;
	const char *in = "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
	const uint8_t *d;
	size_t used, dl;

	(void)state;
	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, strlen(in), &used,
	    &d, &dl), HTTP_EV_HEADERS);
	assert_string_equal(p.msg.host, "example.com:8080");
	http_parser_free(&p);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "Host: b.example\r\n\r\n", HTTP_ERR_BAD_HOST);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "host: a.example\r\n\r\n", HTTP_ERR_BAD_HOST);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	    HTTP_ERR_BAD_HOST);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: evil.example/x\r\n"
	    "\r\n", HTTP_ERR_BAD_HOST);
	expect_error(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: u@h.example\r\n\r\n",
	    HTTP_ERR_BAD_HOST);
	/* absent or empty Host is the caller's call */
	expect(HTTP_REQUEST, "GET / HTTP/1.1\r\nHost:\r\n\r\n", false,
	    "H GET / 1.1 none\nF Host=\nE\n");
	/* responses may carry anything named Host */
	expect(HTTP_RESPONSE, "HTTP/1.1 204 No Content\r\nHost: a\r\nHost: b"
	    "\r\n\r\n", false, "H 204 1.1 none\nF Host=a\nF Host=b\nE\n");
}

static void
authority_and_absolute_targets_split(void **state)
{
	static const struct {
		const char *in;
		uint16_t defport;
		const char *host;	/* NULL: rejected */
		uint16_t port;
	} cases[] = {
		{ "example.com:443", 0, "example.com", 443 },
		{ "EXAMPLE.com:8443", 0, "EXAMPLE.com", 8443 },
		{ "10.0.0.1:65535", 0, "10.0.0.1", 65535 },
		{ "[2001:db8::1]:443", 0, "2001:db8::1", 443 },
		{ "[::ffff:10.0.0.1]:80", 0, "::ffff:10.0.0.1", 80 },
		{ "example.com", 80, "example.com", 80 },
		{ "example.com", 0, NULL, 0 },		/* CONNECT needs a port */
		{ "example.com:", 80, NULL, 0 },
		{ "example.com:0", 0, NULL, 0 },
		{ "example.com:65536", 0, NULL, 0 },
		{ "example.com:123456", 0, NULL, 0 },
		{ "example.com:+443", 0, NULL, 0 },
		{ "example.com:44 3", 0, NULL, 0 },
		{ ":443", 0, NULL, 0 },
		{ "user@example.com:443", 0, NULL, 0 },
		{ "exa%6dple.com:443", 0, NULL, 0 },
		{ "[2001:db8::1:443", 0, NULL, 0 },
		{ "[]:443", 0, NULL, 0 },
		{ "[2001:db8::g]:443", 0, NULL, 0 },
		{ "[::1]x443", 0, NULL, 0 },
		{ "", 80, NULL, 0 },
	};
	char host[64];
	uint16_t port;
	bool https;
	const char *path;
	size_t plen;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = http_split_authority(cases[i].in, strlen(cases[i].in),
		    cases[i].defport, host, sizeof(host), &port);

		if (ok != (cases[i].host != NULL))
			fail_msg("%s: want %s", cases[i].in,
			    cases[i].host ? "accepted" : "rejected");
		if (ok) {
			assert_string_equal(host, cases[i].host);
			assert_int_equal(port, cases[i].port);
		}
	}
	/* the host buffer bounds the name */
	assert_false(http_split_authority("example.com:1", 13, 0, host, 11, &port));
	assert_true(http_split_authority("example.com:1", 13, 0, host, 12, &port));

	assert_true(http_split_absolute("http://example.com/a?b", 22, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_false(https);
	assert_string_equal(host, "example.com");
	assert_int_equal(port, 80);
	assert_int_equal(plen, 4);
	assert_memory_equal(path, "/a?b", 4);
	assert_true(http_split_absolute("HTTPS://[::1]:8443", 18, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_true(https);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8443);
	assert_int_equal(plen, 0);
	assert_true(http_split_absolute("http://h?q", 10, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_string_equal(host, "h");
	assert_memory_equal(path, "?q", 2);
	assert_false(http_split_absolute("/relative", 9, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_false(http_split_absolute("ftp://h/", 8, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_false(http_split_absolute("http:///x", 9, &https, host,
	    sizeof(host), &port, &path, &plen));
	assert_false(http_split_absolute("http://u:p@h/x", 14, &https, host,
	    sizeof(host), &port, &path, &plen));
}

static void
every_error_has_a_distinct_string(void **state)
{
	(void)state;
	for (int i = 0; i < HTTP_ERR__COUNT; i++) {
		assert_string_not_equal(http_error_str((enum http_error)i),
		    "unknown error");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(http_error_str((enum http_error)i),
			    http_error_str((enum http_error)j));
	}
	assert_string_equal(http_error_str(HTTP_ERR__COUNT), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(curl_get_fields_in_order),
		cmocka_unit_test(wget_and_python_keep_alive_flags),
		cmocka_unit_test(curl_chunked_put_expect_continue),
		cmocka_unit_test(python_http10_response_closes),
		cmocka_unit_test(browser_requests),
		cmocka_unit_test(pipelined_requests_keep_order),
		cmocka_unit_test(duplicate_fields_kept_and_ows_trimmed),
		cmocka_unit_test(leading_empty_lines_before_request_ignored),
		cmocka_unit_test(bare_lf_line_endings_accepted),
		cmocka_unit_test(response_to_head_has_no_body),
		cmocka_unit_test(response_204_and_304_have_no_body),
		cmocka_unit_test(interim_100_continue_then_final),
		cmocka_unit_test(interim_response_keeps_head_method),
		cmocka_unit_test(switching_protocols_stops_at_end_of_head),
		cmocka_unit_test(connect_2xx_response_is_tunnel),
		cmocka_unit_test(connect_refused_response_has_body),
		cmocka_unit_test(unframed_response_reads_until_close),
		cmocka_unit_test(http10_keep_alive_needs_header),
		cmocka_unit_test(connect_request_pauses_until_resume),
		cmocka_unit_test(upgrade_without_connection_token_does_not_pause),
		cmocka_unit_test(content_length_shorter_than_eof_is_truncated),
		cmocka_unit_test(content_length_longer_body_becomes_next_message),
		cmocka_unit_test(content_length_list_and_duplicates),
		cmocka_unit_test(content_length_must_be_digits),
		cmocka_unit_test(content_length_max_uint64_accepted),
		cmocka_unit_test(chunk_sizes_that_lie),
		cmocka_unit_test(chunk_size_line_bounded),
		cmocka_unit_test(chunked_max_size_and_extensions_accepted),
		cmocka_unit_test(request_with_te_and_cl_rejected),
		cmocka_unit_test(response_with_te_and_cl_follows_te),
		cmocka_unit_test(transfer_encoding_shapes),
		cmocka_unit_test(obs_fold_and_whitespace_before_colon_rejected),
		cmocka_unit_test(bare_cr_rejected),
		cmocka_unit_test(bad_field_names_and_values),
		cmocka_unit_test(bad_request_lines),
		cmocka_unit_test(bad_status_lines),
		cmocka_unit_test(limits_each_have_their_error),
		cmocka_unit_test(endless_empty_lines_bounded),
		cmocka_unit_test(field_lookup_and_token_lists),
		cmocka_unit_test(host_must_be_single_and_valid),
		cmocka_unit_test(authority_and_absolute_targets_split),
		cmocka_unit_test(every_error_has_a_distinct_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
