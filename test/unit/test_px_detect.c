/*
 * Unit tests for proxyd/detect.c: real ClientHellos and client requests are
 * recognised at the earliest byte that makes them certain, every standard
 * method is known, garbage and server-first protocols' look-alikes are
 * refused within a few bytes, and every answer is stable as more bytes
 * arrive (a decision on a prefix never changes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/detect.h"
#include "test/unit/data/px_client_hellos.h"
#include "test/unit/data/px_dns_msgs.h"

/* The first prefix length with a decision, and that every longer prefix
 * gives the same decision. */
static size_t
decided_at(const uint8_t *buf, size_t len, enum detect_proto want)
{
	size_t at = 0;
	enum detect_proto first = DETECT_NEED_MORE;

	for (size_t i = 0; i <= len; i++) {
		enum detect_proto p = detect_tcp(buf, i);

		if (first == DETECT_NEED_MORE) {
			if (p != DETECT_NEED_MORE) {
				first = p;
				at = i;
			}
		} else if (p != first)
			fail_msg("prefix %zu: %s after %s at %zu", i,
			    detect_proto_str(p), detect_proto_str(first), at);
	}
	if (first != want)
		fail_msg("'%.*s': want %s got %s", (int)(len > 40 ? 40 : len),
		    (const char *)buf, detect_proto_str(want),
		    detect_proto_str(first));
	return at;
}

static size_t
decided_at_str(const char *s, enum detect_proto want)
{
	return decided_at((const uint8_t *)s, strlen(s), want);
}

static void
client_hellos_detected_from_record_header(void **state)
{
	(void)state;
	assert_int_equal(decided_at(px_ch_openssl, sizeof(px_ch_openssl),
	    DETECT_TLS), 6);
	assert_int_equal(decided_at(px_ch_curl, sizeof(px_ch_curl), DETECT_TLS), 6);
	assert_int_equal(decided_at(px_ch_openssl_tls12_nosni,
	    sizeof(px_ch_openssl_tls12_nosni), DETECT_TLS), 6);
	assert_int_equal(decided_at(px_ch_python, sizeof(px_ch_python),
	    DETECT_TLS), 6);
}

static void
tls_lookalikes_are_raw(void **state)
{
	(void)state;
	/* ServerHello, alert, bad version, empty and oversized records */
	assert_int_equal(decided_at((const uint8_t *)"\x16\x03\x03\x00\x30\x02", 6,
	    DETECT_RAW), 6);
	assert_int_equal(decided_at((const uint8_t *)"\x15\x03\x03\x00\x02\x02\x28",
	    7, DETECT_RAW), 1);
	assert_int_equal(decided_at_str("\x16\x02", DETECT_RAW), 2);
	assert_int_equal(decided_at_str("\x16\x03\x05", DETECT_RAW), 3);
	assert_int_equal(decided_at((const uint8_t *)"\x16\x03\x01\x00\x00\x01", 6,
	    DETECT_RAW), 5);
	assert_int_equal(decided_at_str("\x16\x03\x01\x40\x01\x01", DETECT_RAW), 5);
}

static void
real_requests_detected_at_end_of_request_line(void **state)
{
	static const char curl[] = "GET /index.html?q=1 HTTP/1.1\r\n"
	    "Host: 127.0.0.1:18081\r\nUser-Agent: curl/7.88.1\r\n\r\n";
	static const char connect[] = "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n\r\n";

	(void)state;
	assert_int_equal(decided_at_str(curl, DETECT_HTTP1),
	    strlen("GET /index.html?q=1 HTTP/1.1\r"));
	assert_int_equal(decided_at_str(connect, DETECT_HTTP1),
	    strlen("CONNECT example.com:443 HTTP/1.1\r"));
	decided_at_str("GET http://example.com/x HTTP/1.0\n\n", DETECT_HTTP1);
	decided_at_str("OPTIONS * HTTP/1.1\r\n", DETECT_HTTP1);
	decided_at_str("\r\nGET / HTTP/1.1\r\n", DETECT_HTTP1);
}

static void
every_standard_method_detected(void **state)
{
	static const char *const m[] = {
		"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
		"TRACE", "PATCH", "PROPFIND", "PROPPATCH", "MKCOL", "COPY",
		"MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "MKCALENDAR",
		"ACL", "BIND", "UNBIND", "REBIND", "MERGE", "CHECKOUT",
		"VERSION-CONTROL", "PURGE", "LINK", "UNLINK", "QUERY",
		"M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
	};
	char line[128];

	(void)state;
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		snprintf(line, sizeof(line), "%s /x HTTP/1.1\r\n", m[i]);
		decided_at_str(line, DETECT_HTTP1);
	}
}

static void
garbage_refused_within_a_few_bytes(void **state)
{
	(void)state;
	assert_int_equal(decided_at_str("SSH-2.0-OpenSSH_9.2\r\n", DETECT_RAW), 2);
	assert_int_equal(decided_at((const uint8_t *)"\x00\x01\x02", 3,
	    DETECT_RAW), 1);
	assert_int_equal(decided_at_str("get / HTTP/1.1\r\n", DETECT_RAW), 1);
	assert_int_equal(decided_at_str("GETX / HTTP/1.1\r\n", DETECT_RAW), 4);
	assert_int_equal(decided_at_str("GET  / HTTP/1.1\r\n", DETECT_RAW), 5);
	assert_int_equal(decided_at_str("GET /\x01 HTTP/1.1\r\n", DETECT_RAW), 6);
	assert_int_equal(decided_at_str("GET / HTTP/2.0\r\n", DETECT_RAW), 12);
	assert_int_equal(decided_at_str("GET / HTTP/1.1 \r\n", DETECT_RAW), 15);
	assert_int_equal(decided_at_str("GET / FTP/1.1\r\n", DETECT_RAW), 7);
	assert_int_equal(decided_at_str("\r\n\r\n\r\nGET / HTTP/1.1\r\n",
	    DETECT_RAW), 5);
	/* a PRI that is not the full preface */
	assert_int_equal(decided_at_str("PRI * HTTP/1.1\r\n", DETECT_RAW), 12);
}

static void
http2_preface_detected(void **state)
{
	(void)state;
	assert_int_equal(decided_at_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	    "\x00\x00\x12\x04", DETECT_HTTP2), 24);
}

static void
long_request_line_still_http(void **state)
{
	char *line = malloc(DETECT_MAX_REQUEST_LINE + 100);

	(void)state;
	assert_non_null(line);
	memcpy(line, "GET /", 5);
	memset(line + 5, 'a', DETECT_MAX_REQUEST_LINE + 90);
	line[DETECT_MAX_REQUEST_LINE + 95] = '\0';
	assert_int_equal(decided_at_str(line, DETECT_HTTP1),
	    DETECT_MAX_REQUEST_LINE + 1);
	free(line);
}

static void
udp_dns_needs_port_and_sane_header(void **state)
{
	uint8_t b[64];

	(void)state;
	assert_int_equal(detect_udp(px_dns_query_dig, sizeof(px_dns_query_dig),
	    53), DETECT_DNS);
	assert_int_equal(detect_udp(px_dns_mx_gmail, sizeof(px_dns_mx_gmail), 53),
	    DETECT_DNS);
	assert_int_equal(detect_udp(px_dns_query_dig, sizeof(px_dns_query_dig),
	    5353), DETECT_RAW);
	assert_int_equal(detect_udp(px_dns_query_dig, 11, 53), DETECT_RAW);
	memcpy(b, px_dns_query_dig, sizeof(px_dns_query_dig));
	b[2] = (uint8_t)((b[2] & 0x87) | (3 << 3));	/* opcode 3: unassigned */
	assert_int_equal(detect_udp(b, sizeof(px_dns_query_dig), 53), DETECT_RAW);
	memcpy(b, px_dns_query_dig, sizeof(px_dns_query_dig));
	b[6] = 0x10;				/* 4096 answers in 40 bytes */
	assert_int_equal(detect_udp(b, sizeof(px_dns_query_dig), 53), DETECT_RAW);
	/* QUIC on 443 and random bytes on 53 */
	memset(b, 0xff, sizeof(b));
	assert_int_equal(detect_udp(b, sizeof(b), 53), DETECT_RAW);
	assert_int_equal(detect_udp(b, sizeof(b), 443), DETECT_RAW);
}

static void
proto_names(void **state)
{
	(void)state;
	assert_string_equal(detect_proto_str(DETECT_TLS), "tls");
	assert_string_equal(detect_proto_str(DETECT_RAW), "raw");
	assert_string_equal(detect_proto_str((enum detect_proto)99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(client_hellos_detected_from_record_header),
		cmocka_unit_test(tls_lookalikes_are_raw),
		cmocka_unit_test(real_requests_detected_at_end_of_request_line),
		cmocka_unit_test(every_standard_method_detected),
		cmocka_unit_test(garbage_refused_within_a_few_bytes),
		cmocka_unit_test(http2_preface_detected),
		cmocka_unit_test(long_request_line_still_http),
		cmocka_unit_test(udp_dns_needs_port_and_sane_header),
		cmocka_unit_test(proto_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
