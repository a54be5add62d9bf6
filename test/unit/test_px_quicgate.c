/*
 * Unit tests for proxyd/quicgate.c: what proxyd does with a UDP flow that
 * opens like QUIC, in each --quic mode — refused with a Version Negotiation
 * that echoes the client's connection ids, held until a split ClientHello
 * is whole, let through for --ignore-hosts, passed and recorded — and that
 * a flow that is not QUIC is left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/quicgate.h"
#include "test/unit/data/px_quic_vectors.h"

static const uint8_t dcid[8] = { 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08 };
static const uint8_t scid[5] = { 0xa1, 0xa2, 0xa3, 0xa4, 0xa5 };

#define HELLO		(QUIC_CLIENT_FRAMES + 4)
#define HELLO_LEN	((size_t)241)

/* A client Initial carrying hello[off, off+n) (n 0: a PING only). */
static size_t
initial(uint32_t v, uint64_t pn, size_t off, size_t n, uint8_t *out,
    size_t cap)
{
	struct quic_initial_spec s = {
		.version = v, .key_dcid = dcid, .key_dcid_len = sizeof(dcid),
		.dcid = dcid, .dcid_len = sizeof(dcid),
		.scid = scid, .scid_len = sizeof(scid),
		.pn = pn, .pn_len = 2, .pad_to = 1200,
	};
	uint8_t f[400];
	size_t fn = 0, r;

	if (n == 0) {
		f[fn++] = 0x01;
	} else {
		f[fn++] = 0x06;
		fn += quic_varint_put(f + fn, sizeof(f) - fn, off);
		fn += quic_varint_put(f + fn, sizeof(f) - fn, n);
		memcpy(f + fn, HELLO + off, n);
		fn += n;
	}
	r = quic_build_initial(&s, f, fn, out, cap);
	assert_true(r > 0);
	return r;
}

static void
test_modes_parse(void **state)
{
	enum quic_mode m;

	(void)state;
	assert_int_equal(quic_mode_parse("pass", &m), 0);
	assert_int_equal(m, QUIC_MODE_PASS);
	assert_int_equal(quic_mode_parse("fallback", &m), 0);
	assert_int_equal(m, QUIC_MODE_FALLBACK);
	assert_int_equal(quic_mode_parse("refuse", &m), -1);
	assert_int_equal(quic_mode_parse("", &m), -1);
	assert_string_equal(quic_mode_str(QUIC_MODE_PASS), "pass");
}

static void
test_not_quic_left_alone(void **state)
{
	static const uint8_t dns[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0,
	    0, 0, 0, 0, 0, 1, 0, 1 };
	uint8_t big[1300];
	struct qgate g;

	(void)state;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, dns, sizeof(dns)), QGATE_NOT_QUIC);
	assert_false(qgate_is_quic(&g));
	/* later datagrams, even QUIC-looking ones, do not change that */
	assert_int_equal(qgate_datagram(&g, QUIC_V1_CLIENT_INITIAL,
	    sizeof(QUIC_V1_CLIENT_INITIAL)), QGATE_NOT_QUIC);
	qgate_free(&g);

	/* a short header, or a long header below 1200 bytes of an unknown
	 * version, is no connection attempt */
	memset(big, 0x55, sizeof(big));
	big[0] = 0x41;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, big, sizeof(big)), QGATE_NOT_QUIC);
	qgate_free(&g);
	big[0] = 0xc0;
	big[5] = 4;
	big[10] = 0;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, big, 1000), QGATE_NOT_QUIC);
	qgate_free(&g);
}

static void
check_vn(const struct qgate *g)
{
	uint8_t out[128];
	struct quic_header h;
	size_t n = qgate_reply(g, out, sizeof(out));

	assert_true(n > 0);
	assert_int_equal(quic_peek(out, n, &h), QUIC_OK);
	assert_int_equal(h.version, QUIC_VERSION_NEGOTIATION);
	assert_true(out[0] & 0x80);
	/* the client's SCID comes back as DCID and vice versa */
	assert_int_equal(h.dcid_len, sizeof(scid));
	assert_memory_equal(h.dcid, scid, sizeof(scid));
	assert_int_equal(h.scid_len, sizeof(dcid));
	assert_memory_equal(h.scid, dcid, sizeof(dcid));
	assert_int_equal(n, 7 + 8 + 5 + 4);
	assert_memory_equal(out + n - 4, "\x5a\x6a\x7a\x8a", 4);
	assert_false(quic_version_known(QGATE_REFUSAL_VERSION));
}

static void
test_fallback_refuses_whole_hello_at_once(void **state)
{
	uint8_t d[1500];
	size_t n = initial(QUIC_VERSION_1, 0, 0, HELLO_LEN, d, sizeof(d));
	struct qgate g;

	(void)state;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, d, n), QGATE_REFUSE);
	assert_true(qgate_is_quic(&g));
	assert_string_equal(qgate_sni(&g), "example.com");
	assert_string_equal(qgate_alpn_offer(&g), "alpn");
	assert_null(qgate_pass_reason(&g));
	assert_non_null(qgate_detail(&g));
	assert_non_null(strstr(qgate_detail(&g), "v1"));
	assert_int_equal(qgate_nheld(&g), 0);
	check_vn(&g);
	qgate_free(&g);
}

static void
test_fallback_holds_a_split_hello(void **state)
{
	uint8_t d1[1500], d2[1500];
	size_t n1 = initial(QUIC_VERSION_2, 0, 0, 100, d1, sizeof(d1));
	size_t n2 = initial(QUIC_VERSION_2, 1, 100, HELLO_LEN - 100, d2,
	    sizeof(d2));
	struct qgate g;

	(void)state;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_HOLD);
	assert_int_equal(qgate_nheld(&g), 1);
	assert_string_equal(qgate_sni(&g), "");
	assert_int_equal(qgate_datagram(&g, d2, n2), QGATE_REFUSE);
	assert_int_equal(qgate_nheld(&g), 0);
	assert_string_equal(qgate_sni(&g), "example.com");
	assert_string_equal(qgate_version_str(&g), "v2");
	check_vn(&g);
	qgate_free(&g);
}

static void
test_fallback_deadline_refuses_without_sni(void **state)
{
	uint8_t d1[1500];
	size_t n1 = initial(QUIC_VERSION_1, 0, 0, 100, d1, sizeof(d1));
	struct qgate g;

	(void)state;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_HOLD);
	assert_int_equal(qgate_deadline(&g), QGATE_REFUSE);
	assert_string_equal(qgate_sni(&g), "");
	assert_non_null(strstr(qgate_detail(&g), "not whole in time"));
	check_vn(&g);
	qgate_free(&g);
}

static void
test_fallback_ignore_hosts_releases_held(void **state)
{
	uint8_t d1[1500], d2[1500];
	size_t n1 = initial(QUIC_VERSION_1, 0, 100, HELLO_LEN - 100, d1,
	    sizeof(d1));
	size_t n2 = initial(QUIC_VERSION_1, 1, 0, 100, d2, sizeof(d2));
	struct hostmatch *hm = hostmatch_new();
	char err[128];
	const uint8_t *p;
	size_t len;
	struct qgate g;

	(void)state;
	assert_non_null(hm);
	assert_int_equal(hostmatch_add(hm, "^other\\.org:,example\\.com:443$",
	    err, sizeof(err)), 0);
	qgate_init(&g, QUIC_MODE_FALLBACK, hm, 443);
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_HOLD);
	assert_int_equal(qgate_datagram(&g, d2, n2), QGATE_RELEASE);
	assert_int_equal(qgate_nheld(&g), 2);
	p = qgate_held(&g, 0, &len);
	assert_int_equal(len, n1);
	assert_memory_equal(p, d1, n1);
	p = qgate_held(&g, 1, &len);
	assert_int_equal(len, n2);
	assert_memory_equal(p, d2, n2);
	assert_null(qgate_held(&g, 2, &len));
	qgate_drop_held(&g);
	assert_string_equal(qgate_pass_reason(&g),
	    "matches --ignore-hosts 'example\\.com:443$'");
	assert_null(qgate_detail(&g));
	/* then everything is forwarded */
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_FORWARD);
	assert_int_equal(qgate_datagram(&g, (const uint8_t *)"\x41xyz", 4),
	    QGATE_FORWARD);
	qgate_free(&g);

	/* the same host on another port is refused */
	qgate_init(&g, QUIC_MODE_FALLBACK, hm, 8443);
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_HOLD);
	assert_int_equal(qgate_datagram(&g, d2, n2), QGATE_REFUSE);
	qgate_free(&g);
	hostmatch_free(hm);
}

static void
test_pass_forwards_and_records(void **state)
{
	uint8_t d1[1500], d2[1500];
	size_t n1 = initial(QUIC_VERSION_1, 0, 0, 100, d1, sizeof(d1));
	size_t n2 = initial(QUIC_VERSION_1, 1, 100, HELLO_LEN - 100, d2,
	    sizeof(d2));
	struct qgate g;

	(void)state;
	qgate_init(&g, QUIC_MODE_PASS, NULL, 443);
	assert_int_equal(qgate_datagram(&g, d1, n1), QGATE_FORWARD);
	assert_int_equal(qgate_nheld(&g), 0);
	assert_string_equal(qgate_sni(&g), "");
	assert_false(qgate_hello_final(&g));
	assert_int_equal(qgate_datagram(&g, d2, n2), QGATE_FORWARD);
	assert_true(qgate_hello_final(&g));
	assert_string_equal(qgate_sni(&g), "example.com");
	assert_string_equal(qgate_alpn_offer(&g), "alpn");
	assert_string_equal(qgate_pass_reason(&g), "--quic pass");
	assert_true(qgate_is_quic(&g));
	/* what reading the hello took is freed; what the recorder reads stays */
	qgate_shed(&g);
	assert_null(g.qi.crypto);
	assert_string_equal(qgate_sni(&g), "example.com");
	assert_string_equal(qgate_alpn_offer(&g), "alpn");
	assert_string_equal(qgate_pass_reason(&g), "--quic pass");
	/* short-header traffic later on: forwarded, nothing to parse */
	assert_int_equal(qgate_datagram(&g, (const uint8_t *)"\x41xyz", 4),
	    QGATE_FORWARD);
	qgate_free(&g);
}

static void
test_unreadable_attempts_refused(void **state)
{
	static const uint8_t stream[] = { 0x08, 0x00, 'h', 'i' };
	struct quic_initial_spec s = {
		.version = QUIC_VERSION_1, .key_dcid = dcid, .key_dcid_len = 8,
		.dcid = dcid, .dcid_len = 8, .scid = scid, .scid_len = 5,
		.pn_len = 2, .pad_to = 1200,
	};
	uint8_t d[1500], unk[1250];
	size_t n;
	struct qgate g;

	(void)state;
	n = quic_build_initial(&s, stream, sizeof(stream), d, sizeof(d));
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, d, n), QGATE_REFUSE);
	assert_non_null(strstr(qgate_detail(&g), "frame"));
	check_vn(&g);
	qgate_free(&g);

	/* a version we cannot read, padded as a first flight must be */
	memset(unk, 0, sizeof(unk));
	unk[0] = 0xc3;
	unk[1] = 0x51; unk[2] = 0x30; unk[3] = 0x35; unk[4] = 0x30;
	unk[5] = 8;
	memcpy(unk + 6, dcid, 8);
	unk[14] = 5;
	memcpy(unk + 15, scid, 5);
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	assert_int_equal(qgate_datagram(&g, unk, sizeof(unk)), QGATE_REFUSE);
	assert_string_equal(qgate_version_str(&g), "unknown");
	check_vn(&g);
	qgate_free(&g);
}

static void
test_hold_is_bounded(void **state)
{
	uint8_t d[1500];
	size_t n;
	struct qgate g;
	enum qgate_verdict v = QGATE_HOLD;
	unsigned i;

	(void)state;
	qgate_init(&g, QUIC_MODE_FALLBACK, NULL, 443);
	for (i = 0; i < 20 && v == QGATE_HOLD; i++) {
		n = initial(QUIC_VERSION_1, i, 0, 0, d, sizeof(d));
		v = qgate_datagram(&g, d, n);
	}
	assert_int_equal(v, QGATE_REFUSE);
	assert_int_equal(i, QGATE_HOLD_MAX + 1);
	assert_int_equal(qgate_nheld(&g), 0);
	/* refused stays refused */
	assert_int_equal(qgate_datagram(&g, d, n), QGATE_REFUSE);
	assert_int_equal(qgate_deadline(&g), QGATE_REFUSE);
	qgate_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes_parse),
		cmocka_unit_test(test_not_quic_left_alone),
		cmocka_unit_test(test_fallback_refuses_whole_hello_at_once),
		cmocka_unit_test(test_fallback_holds_a_split_hello),
		cmocka_unit_test(test_fallback_deadline_refuses_without_sni),
		cmocka_unit_test(test_fallback_ignore_hosts_releases_held),
		cmocka_unit_test(test_pass_forwards_and_records),
		cmocka_unit_test(test_unreadable_attempts_refused),
		cmocka_unit_test(test_hold_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
