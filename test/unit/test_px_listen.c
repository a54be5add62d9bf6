/*
 * Unit tests for the explicit proxy's decisions (proxyd/listen.c): the exact
 * origin-form request an absolute-form one becomes, CONNECT with the bytes
 * that followed it, every refusal with its status, and --listen's address
 * syntax.  The socket side is covered by test/integration/proxyd_listen.sh.
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
#include "proxyd/listen.h"

/* Parse in's head and decide; the parser is freed. */
static void
decide(const char *in, size_t len, struct plisten_req *r)
{
	struct http_parser p;
	const uint8_t *d;
	size_t used, dl;

	http_parser_init(&p, HTTP_REQUEST, NULL);
	assert_int_equal(http_parse(&p, (const uint8_t *)in, len, &used, &d, &dl),
	    HTTP_EV_HEADERS);
	plisten_decide(&p.msg, (const uint8_t *)in, used, len, r);
	http_parser_free(&p);
}

static void
expect_prefix(const struct plisten_req *r, const char *want)
{
	assert_int_equal(r->status, 0);
	if (r->prefix_len != strlen(want) || memcmp(r->prefix, want,
	    r->prefix_len) != 0)
		fail_msg("got\n%.*s\nwanted\n%s", (int)r->prefix_len,
		    (const char *)r->prefix, want);
}

static void
absolute_form_rewritten_to_origin_form(void **state)
{
	static const char in[] =
	    "GET http://Example.com/a/b?c=d HTTP/1.1\r\n"
	    "Host: wrong.example\r\n"
	    "User-Agent: t\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Proxy-Authorization: Basic eDp5\r\n"
	    "Connection: keep-alive, X-Hop\r\n"
	    "X-Hop: 1\r\n"
	    "Keep-Alive: 300\r\n"
	    "Accept: */*\r\n\r\n";
	struct plisten_req r;

	(void)state;
	decide(in, sizeof(in) - 1, &r);
	assert_false(r.tunnel);
	assert_string_equal(r.host, "Example.com");
	assert_int_equal(r.port, 80);
	expect_prefix(&r, "GET /a/b?c=d HTTP/1.1\r\n"
	    "Host: Example.com\r\n"
	    "User-Agent: t\r\n"
	    "Accept: */*\r\n"
	    "Connection: close\r\n\r\n");
	free(r.prefix);
}

static void
absolute_form_port_path_and_body(void **state)
{
	static const char in[] =
	    "POST http://[2001:db8::1]:8080 HTTP/1.0\r\n"
	    "Content-Length: 5\r\n\r\nhello";
	struct plisten_req r;

	(void)state;
	decide(in, sizeof(in) - 1, &r);
	assert_string_equal(r.host, "2001:db8::1");
	assert_int_equal(r.port, 8080);
	expect_prefix(&r, "POST / HTTP/1.0\r\n"
	    "Host: [2001:db8::1]:8080\r\n"
	    "Content-Length: 5\r\n"
	    "Connection: close\r\n\r\nhello");
	free(r.prefix);
}

/* Connection may not strip the body's framing: the body would turn into the
 * next request. */
static void
framing_survives_connection_tokens(void **state)
{
	static const char in[] =
	    "POST http://h.test/ HTTP/1.1\r\n"
	    "Connection: content-length, transfer-encoding, x-a\r\n"
	    "X-A: 1\r\nContent-Length: 5\r\n\r\nhello";
	struct plisten_req r;

	(void)state;
	decide(in, sizeof(in) - 1, &r);
	expect_prefix(&r, "POST / HTTP/1.1\r\nHost: h.test\r\n"
	    "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
	free(r.prefix);
}

static void
upgrade_keeps_connection_upgrade(void **state)
{
	static const char in[] =
	    "GET http://h.test/ws HTTP/1.1\r\n"
	    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
	struct plisten_req r;

	(void)state;
	decide(in, sizeof(in) - 1, &r);
	expect_prefix(&r, "GET /ws HTTP/1.1\r\nHost: h.test\r\n"
	    "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	free(r.prefix);
}

static void
connect_keeps_following_bytes(void **state)
{
	static const char in[] =
	    "CONNECT h.test:443 HTTP/1.1\r\nHost: h.test:443\r\n\r\n\x16\x03\x01";
	struct plisten_req r;

	(void)state;
	decide(in, sizeof(in) - 1, &r);
	assert_int_equal(r.status, 0);
	assert_true(r.tunnel);
	assert_string_equal(r.host, "h.test");
	assert_int_equal(r.port, 443);
	assert_int_equal(r.prefix_len, 3);
	assert_memory_equal(r.prefix, "\x16\x03\x01", 3);
	free(r.prefix);
	decide("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n",
	    strlen("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"), &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.host, "::1");
	assert_null(r.prefix);
}

static void
refusals(void **state)
{
	static const struct { const char *in; int status; const char *why; } c[] = {
		{ "CONNECT h.test HTTP/1.1\r\n\r\n", 400, "host:port" },
		{ "CONNECT h.test:0 HTTP/1.1\r\n\r\n", 400, "host:port" },
		{ "CONNECT h..test:443 HTTP/1.1\r\n\r\n", 400, "host:port" },
		{ "CONNECT user@h.test:443 HTTP/1.1\r\n\r\n", 400, "host:port" },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "this is a proxy" },
		{ "GET https://h.test/ HTTP/1.1\r\n\r\n", 501, "CONNECT" },
		{ "GET ftp://h.test/ HTTP/1.1\r\n\r\n", 400, "unsupported" },
		{ "GET http://-h.test/ HTTP/1.1\r\n\r\n", 400, "bad host" },
		{ "GET http://a@h.test/ HTTP/1.1\r\n\r\n", 400, "unsupported" },
	};
	struct plisten_req r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		decide(c[i].in, strlen(c[i].in), &r);
		if (r.status != c[i].status || strstr(r.why, c[i].why) == NULL)
			fail_msg("'%s': %d %s", c[i].in, r.status, r.why);
		assert_null(r.prefix);
	}
}

static void
too_many_fields_after_rewrite(void **state)
{
	char in[8192];
	struct plisten_req r;
	size_t n;
	int i;

	(void)state;
	n = (size_t)snprintf(in, sizeof(in), "GET http://h.test/ HTTP/1.1\r\n");
	/* 99 fields kept: with Host and Connection, over the parser's 100. */
	for (i = 0; i < HTTP_DEFAULT_MAX_FIELDS - 1; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "X-%d: v\r\n", i);
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
	decide(in, n, &r);
	assert_int_equal(r.status, 431);
	assert_null(r.prefix);
}

static void
listen_addresses(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "localhost:80", "::1:80", "127.0.0.1:0",
		"127.0.0.1:65536", ":8080", "[::1]", "1.2.3.4:80x", "",
	};
	struct endpoint a;
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(plisten_parse_addr("127.0.0.1:3128", &a, err,
	    sizeof(err)), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.port, 3128);
	assert_int_equal(plisten_parse_addr("[::1]:8080", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.addr[15], 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (plisten_parse_addr(bad[i], &a, err, sizeof(err)) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err, "ADDRESS:PORT"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(absolute_form_rewritten_to_origin_form),
		cmocka_unit_test(absolute_form_port_path_and_body),
		cmocka_unit_test(framing_survives_connection_tokens),
		cmocka_unit_test(upgrade_keeps_connection_upgrade),
		cmocka_unit_test(connect_keeps_following_bytes),
		cmocka_unit_test(refusals),
		cmocka_unit_test(too_many_fields_after_rewrite),
		cmocka_unit_test(listen_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
