/*
 * Unit tests for webd's pure parts: the request parser (webd/httpreq.c),
 * query, cookie and JSON helpers, the access checks (webd/guard.c) and the
 * filter box's syntax (webd/filter.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "webd/filter.h"
#include "webd/guard.h"
#include "webd/httpreq.h"

static struct web_req req;

static enum web_parse
parse(const char *s, size_t *used)
{
	size_t dummy;

	return web_req_parse(&req, (const uint8_t *)s, strlen(s),
	    used ? used : &dummy);
}

static int
status_of(const char *s)
{
	enum web_parse r = parse(s, NULL);

	if (r == WEB_PARSE_DONE)
		return 0;
	if (r == WEB_PARSE_MORE)
		return 1;
	return req.error_status;
}

static void
parses_a_browser_request(void **state)
{
	static const char s[] =
	    "GET /api/flows?filter=host%3Aexample&limit=5 HTTP/1.1\r\n"
	    "Host: 127.0.0.1:8081\r\n"
	    "User-Agent: Mozilla/5.0\r\n"
	    "Accept: application/json\r\n"
	    "Cookie: a=b; localcap_token=abc\r\n"
	    "\r\n";
	size_t used = 0;
	char v[64];

	(void)state;
	assert_int_equal(parse(s, &used), WEB_PARSE_DONE);
	assert_int_equal(used, strlen(s));
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/api/flows");
	assert_string_equal(req.query, "filter=host%3Aexample&limit=5");
	assert_string_equal(req.host, "127.0.0.1:8081");
	assert_true(req.keep_alive);
	assert_string_equal(web_req_header(&req, "user-agent"), "Mozilla/5.0");
	assert_int_equal(web_query_get(req.query, "filter", v, sizeof(v)), 12);
	assert_string_equal(v, "host:example");
	assert_int_equal(web_query_get(req.query, "limit", v, sizeof(v)), 1);
	assert_int_equal(web_query_get(req.query, "lim", v, sizeof(v)), -1);
	assert_int_equal(web_cookie_get(req.cookie, "localcap_token", v,
	    sizeof(v)), 3);
	assert_string_equal(v, "abc");
	assert_int_equal(web_cookie_get(req.cookie, "token", v, sizeof(v)), -1);
}

static void
waits_for_the_whole_request(void **state)
{
	static const char s[] = "POST /api/attach HTTP/1.1\r\nHost: localhost:1\r\n"
	    "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
	    "{\"spec\":\"curl\"}GET / HTTP/1.1\r\n";
	size_t n, used = 0;

	(void)state;
	/* Every prefix short of the body's end is "more". */
	for (n = 0; n < strlen(s) - strlen("GET / HTTP/1.1\r\n") - 1; n++)
		assert_int_equal(web_req_parse(&req, (const uint8_t *)s, n,
		    &used), WEB_PARSE_MORE);
	assert_int_equal(web_req_parse(&req, (const uint8_t *)s, strlen(s),
	    &used), WEB_PARSE_DONE);
	assert_int_equal(req.body_len, 15);
	assert_memory_equal(req.body, "{\"spec\":\"curl\"}", 15);
	assert_int_equal(used, strlen(s) - strlen("GET / HTTP/1.1\r\n"));
}

static void
refuses_what_is_ambiguous(void **state)
{
	(void)state;
	assert_int_equal(status_of("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 400);	/* no Host */
	assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
	    400);
	assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), 501);
	assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 1\r\nContent-Length: 1\r\n\r\n"), 400);
	assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 0\r\nContent-Length: 0\r\n\r\n"), 400);
	assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: -1\r\n\r\n"), 400);
	assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 99999999999999999999999\r\n\r\n"), 413);
	assert_int_equal(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
	assert_int_equal(status_of("GET / HTTX/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	assert_int_equal(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"), 400);
	assert_int_equal(status_of("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), 1);
}

static void
refuses_traversal(void **state)
{
	(void)state;
	assert_int_equal(status_of("GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n"),
	    400);
	assert_int_equal(status_of("GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n"
	    "\r\n"), 400);
	assert_int_equal(status_of("GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /a%5cb HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /a%0a HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	/* Dots inside a name are fine. */
	assert_int_equal(status_of("GET /app.js HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
	assert_int_equal(status_of("GET /a..b HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

static void
refuses_what_is_too_large(void **state)
{
	char *s = malloc(WEB_MAX_HEAD + 200);
	size_t n;

	(void)state;
	assert_non_null(s);
	/* A target over the limit: 414. */
	n = (size_t)sprintf(s, "GET /");
	memset(s + n, 'a', WEB_MAX_TARGET);
	n += WEB_MAX_TARGET;
	n += (size_t)sprintf(s + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(status_of(s), 414);
	/* A head over the limit, finished or not: 431. */
	n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nX: ");
	memset(s + n, 'a', WEB_MAX_HEAD);
	s[n + WEB_MAX_HEAD] = '\0';
	assert_int_equal(status_of(s), 431);
	/* Too many header lines: 431. */
	n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < WEB_MAX_HEADERS; i++)
		n += (size_t)sprintf(s + n, "X%d: y\r\n", i);
	sprintf(s + n, "\r\n");
	assert_int_equal(status_of(s), 431);
	free(s);
}

static void
connection_header(void **state)
{
	(void)state;
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
	    "\r\n", NULL), WEB_PARSE_DONE);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", NULL), WEB_PARSE_DONE);
	assert_false(req.keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	    NULL), WEB_PARSE_DONE);
	assert_true(req.keep_alive);
}

static void
query_decoding(void **state)
{
	char v[8];

	(void)state;
	assert_int_equal(web_query_get("a=x+y%21", "a", v, sizeof(v)), 4);
	assert_string_equal(v, "x y!");
	assert_int_equal(web_query_get("a=%00", "a", v, sizeof(v)), -2);
	assert_int_equal(web_query_get("a=%4", "a", v, sizeof(v)), -2);
	assert_int_equal(web_query_get("a=12345678", "a", v, sizeof(v)), -2);
	assert_int_equal(web_query_get("b&a", "a", v, sizeof(v)), -1);
	assert_int_equal(web_query_get("b&a=", "a", v, sizeof(v)), 0);
	assert_int_equal(web_query_get("", "a", v, sizeof(v)), -1);
}

static void
json_bodies(void **state)
{
	char v[32];
	const char *ok = " {\"x\":\"1\", \"spec\" : \"curl,!12\\u00e9\\ud83d\\ude00\"} ";

	(void)state;
	assert_int_equal(web_json_string((const uint8_t *)ok, strlen(ok), "spec",
	    v, sizeof(v)), 14);
	assert_string_equal(v, "curl,!12\xc3\xa9\xf0\x9f\x98\x80");
	assert_int_equal(web_json_string((const uint8_t *)"{}", 2, "spec", v,
	    sizeof(v)), -1);
#define BAD(s) assert_int_equal(web_json_string((const uint8_t *)(s), \
	    strlen(s), "spec", v, sizeof(v)), -2)
	BAD("");
	BAD("[]");
	BAD("{\"spec\":1}");
	BAD("{\"spec\":\"a\"");
	BAD("{\"spec\":\"a\"} x");
	BAD("{\"spec\":\"a\\u0000\"}");
	BAD("{\"spec\":\"\\ud800\"}");
	BAD("{\"spec\":\"a\nb\"}");
	BAD("{\"spec\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
	BAD("{\"spec\":\"a\",}");
	BAD("{\"spec\" \"a\"}");
#undef BAD
}

static void
host_header_check(void **state)
{
	(void)state;
	assert_true(web_host_ok("127.0.0.1:8081", "127.0.0.1", 8081));
	assert_true(web_host_ok("localhost:8081", "127.0.0.1", 8081));
	assert_true(web_host_ok("LocalHost:8081", "127.0.0.1", 8081));
	assert_true(web_host_ok("localhost.:8081", "127.0.0.1", 8081));
	assert_true(web_host_ok("[::1]:8081", "::1", 8081));
	assert_true(web_host_ok("localhost", "127.0.0.1", 80));
	/* DNS rebinding: a name of the attacker's that resolves to us. */
	assert_false(web_host_ok("evil.example:8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("localhost.evil.example:8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1.nip.io:8081", "127.0.0.1", 8081));
	/* Right name, wrong port; another address; no port when not 80. */
	assert_false(web_host_ok("127.0.0.1:8082", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.2:8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1:", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1:8081x", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1:+8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("127.0.0.1:0008081", "127.0.0.1", 8081));
	assert_false(web_host_ok("[::1]:8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("[127.0.0.1]:8081", "127.0.0.1", 8081));
	assert_false(web_host_ok("[::1]x:8081", "::1", 8081));
	assert_false(web_host_ok("", "127.0.0.1", 8081));
	assert_false(web_host_ok(NULL, "127.0.0.1", 8081));
}

static void
tokens(void **state)
{
	char a[WEB_TOKEN_LEN + 1], b[WEB_TOKEN_LEN + 1], cookie[128], auth[128];

	(void)state;
	assert_int_equal(web_token_new(a), 0);
	assert_int_equal(web_token_new(b), 0);
	assert_int_equal(strlen(a), WEB_TOKEN_LEN);
	assert_string_not_equal(a, b);
	assert_true(web_token_eq(a, strlen(a), a));
	assert_false(web_token_eq(b, strlen(b), a));
	assert_false(web_token_eq(a, strlen(a) - 1, a));
	assert_false(web_token_eq("", 0, a));

	snprintf(cookie, sizeof(cookie), "x=1; " WEB_TOKEN_COOKIE "=%s", a);
	assert_true(web_authorized(NULL, cookie, a));
	assert_false(web_authorized(NULL, cookie, b));
	assert_false(web_authorized(NULL, NULL, a));
	assert_false(web_authorized(NULL, "x=1", a));
	snprintf(auth, sizeof(auth), "Bearer %s", a);
	assert_true(web_authorized(auth, NULL, a));
	assert_false(web_authorized(auth, NULL, b));
	/* A wrong Authorization is not rescued by a right cookie. */
	assert_false(web_authorized("Basic eDp5", cookie, a));
}

static void
posts(void **state)
{
	(void)state;
	assert_true(web_post_ok(NULL, NULL, "application/json", "127.0.0.1:1"));
	assert_true(web_post_ok("http://127.0.0.1:1", "same-origin",
	    "application/json; charset=utf-8", "127.0.0.1:1"));
	assert_false(web_post_ok(NULL, NULL, "text/plain", "127.0.0.1:1"));
	assert_false(web_post_ok(NULL, NULL, NULL, "127.0.0.1:1"));
	assert_false(web_post_ok(NULL, NULL, "application/x-www-form-urlencoded",
	    "127.0.0.1:1"));
	assert_false(web_post_ok("http://evil.example", NULL, "application/json",
	    "127.0.0.1:1"));
	assert_false(web_post_ok("null", NULL, "application/json", "127.0.0.1:1"));
	assert_false(web_post_ok(NULL, "cross-site", "application/json",
	    "127.0.0.1:1"));
	assert_false(web_post_ok(NULL, "same-site", "application/json",
	    "127.0.0.1:1"));
}

static void
filter_box(void **state)
{
	struct web_filter f;
	char err[128];

	(void)state;
	assert_int_equal(web_filter_parse("  host:example\\.org  method:POST "
	    "status:404 process:curl since:10m hello  world ", &f, err,
	    sizeof(err)), 0);
	assert_string_equal(f.host, "example\\.org");
	assert_string_equal(f.method, "POST");
	assert_int_equal(f.status, 404);
	assert_string_equal(f.process, "curl");
	assert_string_equal(f.since, "10m");
	assert_string_equal(f.text, "hello world");
	assert_int_equal(web_filter_parse(NULL, &f, err, sizeof(err)), 0);
	assert_string_equal(f.text, "");
	assert_int_equal(f.status, 0);
	/* A prefix with nothing after it is text. */
	assert_int_equal(web_filter_parse("host:", &f, err, sizeof(err)), 0);
	assert_string_equal(f.text, "host:");
	assert_int_equal(web_filter_parse("status:abc", &f, err, sizeof(err)), -1);
	assert_int_equal(web_filter_parse("status:99", &f, err, sizeof(err)), -1);
	assert_int_equal(web_filter_parse("status:4040", &f, err, sizeof(err)),
	    -1);
	{
		char big[WEB_FILTER_MAX + 16];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(web_filter_parse(big, &f, err, sizeof(err)), -1);
		memcpy(big, "host:", 5);
		assert_int_equal(web_filter_parse(big, &f, err, sizeof(err)), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_a_browser_request),
		cmocka_unit_test(waits_for_the_whole_request),
		cmocka_unit_test(refuses_what_is_ambiguous),
		cmocka_unit_test(refuses_traversal),
		cmocka_unit_test(refuses_what_is_too_large),
		cmocka_unit_test(connection_header),
		cmocka_unit_test(query_decoding),
		cmocka_unit_test(json_bodies),
		cmocka_unit_test(host_header_check),
		cmocka_unit_test(tokens),
		cmocka_unit_test(posts),
		cmocka_unit_test(filter_box),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
