/*
 * Unit tests for proxyd/quic.c: the RFC 9001 and RFC 9369 Appendix A
 * vectors (keys, the client Initial opened to its ClientHello, and our
 * builder reproducing both protected packets byte for byte), a ClientHello
 * split over Initials in several datagrams and in any order, coalesced
 * packets, a Retry's new DCID, and every way a datagram can be cut, flipped
 * or lie: each gets a clean verdict, never OK by accident.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/quic.h"
#include "test/unit/data/px_quic_vectors.h"

static const uint8_t rfc_dcid[8] = { 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08 };

/* The RFC's ClientHello: the CRYPTO frame's data (type, offset 0, 2-byte
 * length 0xf1, then 241 bytes). */
#define RFC_HELLO	(QUIC_CLIENT_FRAMES + 4)
#define RFC_HELLO_LEN	((size_t)241)

static void
hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* One CRYPTO frame carrying hello[off, off+n). */
static size_t
crypto_frame(uint8_t *out, size_t cap, const uint8_t *hello, size_t off,
    size_t n)
{
	size_t o = 0, t;

	assert_true(cap > 20 + n);
	out[o++] = 0x06;
	t = quic_varint_put(out + o, cap - o, off);
	assert_true(t > 0);
	o += t;
	t = quic_varint_put(out + o, cap - o, n);
	assert_true(t > 0);
	o += t;
	memcpy(out + o, hello + off, n);
	return o + n;
}

/* A client Initial (v, keys of rfc_dcid unless kdcid) carrying frames. */
static size_t
client_initial(uint32_t v, const uint8_t *kdcid, size_t kdcid_len,
    uint64_t pn, const uint8_t *frames, size_t frames_len, size_t pad_to,
    uint8_t *out, size_t cap)
{
	static const uint8_t scid[4] = { 1, 2, 3, 4 };
	struct quic_initial_spec s = {
		.version = v, .server = false,
		.key_dcid = kdcid ? kdcid : rfc_dcid,
		.key_dcid_len = kdcid ? kdcid_len : sizeof(rfc_dcid),
		.dcid = kdcid ? kdcid : rfc_dcid,
		.dcid_len = kdcid ? kdcid_len : sizeof(rfc_dcid),
		.scid = scid, .scid_len = sizeof(scid),
		.pn = pn, .pn_len = 2, .pad_to = pad_to,
	};
	size_t n = quic_build_initial(&s, frames, frames_len, out, cap);

	assert_true(n > 0);
	return n;
}

static void
assert_rfc_hello(const struct quic_initial *qi)
{
	const uint8_t *name;
	size_t n;

	assert_string_equal(qi->hello.sni, "example.com");
	assert_int_equal(qi->hello.nalpn, 1);
	assert_true(tlshello_alpn_at(&qi->hello, 0, &name, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(name, "alpn", 4);
	assert_int_equal(qi->hello.hello_len, RFC_HELLO_LEN);
}

/* --- vectors --------------------------------------------------------------- */

static void
test_keys_v1_rfc9001_a1(void **state)
{
	struct quic_keys k;
	uint8_t want[16];

	(void)state;
	assert_true(quic_initial_keys(QUIC_VERSION_1, rfc_dcid, 8, false, &k));
	hex("1f369613dd76d5467730efcbe3b1a22d", want, 16);
	assert_memory_equal(k.key, want, 16);
	hex("fa044b2f42a3fd3b46fb255c", want, 12);
	assert_memory_equal(k.iv, want, 12);
	hex("9f50449e04a0e810283a1e9933adedd2", want, 16);
	assert_memory_equal(k.hp, want, 16);
	assert_true(quic_initial_keys(QUIC_VERSION_1, rfc_dcid, 8, true, &k));
	hex("cf3a5331653c364c88f0f379b6067e37", want, 16);
	assert_memory_equal(k.key, want, 16);
	hex("0ac1493ca1905853b0bba03e", want, 12);
	assert_memory_equal(k.iv, want, 12);
	hex("c206b8d9b9f0f37644430b490eeaa314", want, 16);
	assert_memory_equal(k.hp, want, 16);
}

static void
test_keys_v2_rfc9369_a1(void **state)
{
	struct quic_keys k;
	uint8_t want[16];

	(void)state;
	assert_true(quic_initial_keys(QUIC_VERSION_2, rfc_dcid, 8, false, &k));
	hex("8b1a0bc121284290a29e0971b5cd045d", want, 16);
	assert_memory_equal(k.key, want, 16);
	hex("91f73e2351d8fa91660e909f", want, 12);
	assert_memory_equal(k.iv, want, 12);
	hex("45b95e15235d6f45a6b19cbcb0294ba9", want, 16);
	assert_memory_equal(k.hp, want, 16);
	assert_true(quic_initial_keys(QUIC_VERSION_2, rfc_dcid, 8, true, &k));
	hex("82db637861d55e1d011f19ea71d5d2a7", want, 16);
	assert_memory_equal(k.key, want, 16);
	hex("dd13c276499c0249d3310652", want, 12);
	assert_memory_equal(k.iv, want, 12);
	hex("edf6d05c83121201b436e16877593c3a", want, 16);
	assert_memory_equal(k.hp, want, 16);
	/* an unknown version has no keys */
	assert_false(quic_initial_keys(0x1a2a3a4a, rfc_dcid, 8, false, &k));
}

static void
open_vector(const uint8_t *pkt, size_t len, uint32_t version)
{
	struct quic_initial qi;
	struct quic_header h;

	assert_int_equal(quic_peek(pkt, len, &h), QUIC_OK);
	assert_true(h.known_version);
	assert_true(h.initial);
	assert_int_equal(h.version, version);
	assert_true(quic_looks_like_client_initial(pkt, len));

	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, pkt, len), QUIC_OK);
	assert_int_equal(qi.version, version);
	assert_int_equal(qi.dcid_len, 8);
	assert_memory_equal(qi.dcid, rfc_dcid, 8);
	assert_int_equal(qi.scid_len, 0);
	assert_int_equal(qi.largest_pn, 2);
	assert_int_equal(qi.npackets, 1);
	assert_memory_equal(qi.hello.hello, RFC_HELLO, RFC_HELLO_LEN);
	assert_rfc_hello(&qi);
	/* sticky: later datagrams change nothing */
	assert_int_equal(quic_initial_feed(&qi, (const uint8_t *)"x", 1), QUIC_OK);
	assert_string_equal(qi.hello.sni, "example.com");
	/* shed: the reassembly buffers and keys go, the hello stays */
	assert_non_null(qi.crypto);
	quic_initial_shed(&qi);
	assert_null(qi.crypto);
	assert_null(qi.have);
	assert_false(qi.have_keys);
	assert_memory_equal(qi.hello.hello, RFC_HELLO, RFC_HELLO_LEN);
	assert_string_equal(qi.hello.sni, "example.com");
	assert_int_equal(quic_initial_feed(&qi, pkt, len), QUIC_OK);
	quic_initial_free(&qi);
}


static void
test_open_v1_client_initial(void **state)
{
	(void)state;
	open_vector(QUIC_V1_CLIENT_INITIAL, sizeof(QUIC_V1_CLIENT_INITIAL),
	    QUIC_VERSION_1);
}

static void
test_open_v2_client_initial(void **state)
{
	(void)state;
	open_vector(QUIC_V2_CLIENT_INITIAL, sizeof(QUIC_V2_CLIENT_INITIAL),
	    QUIC_VERSION_2);
}

/* Our builder reproduces the RFCs' protected packets exactly. */
static void
build_rfc(uint32_t v, bool server, const uint8_t *want, size_t want_len)
{
	static const uint8_t sscid[8] = { 0xf0, 0x67, 0xa5, 0x50, 0x2a, 0x42,
	    0x62, 0xb5 };
	struct quic_initial_spec s = {
		.version = v, .server = server,
		.key_dcid = rfc_dcid, .key_dcid_len = 8,
		.dcid = server ? NULL : rfc_dcid, .dcid_len = server ? 0 : 8,
		.scid = server ? sscid : NULL, .scid_len = server ? 8 : 0,
		.pn = server ? 1 : 2, .pn_len = server ? 2 : 4,
		.pad_to = server ? 0 : 1200,
	};
	uint8_t out[1500];
	size_t n;

	n = quic_build_initial(&s, server ? QUIC_SERVER_FRAMES :
	    QUIC_CLIENT_FRAMES, server ? sizeof(QUIC_SERVER_FRAMES) :
	    sizeof(QUIC_CLIENT_FRAMES), out, sizeof(out));
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, want_len);
	/* and refuses a buffer one byte short */
	assert_int_equal(quic_build_initial(&s, server ? QUIC_SERVER_FRAMES :
	    QUIC_CLIENT_FRAMES, server ? sizeof(QUIC_SERVER_FRAMES) :
	    sizeof(QUIC_CLIENT_FRAMES), out, want_len - 1), 0);
}

static void
test_build_matches_rfc_vectors(void **state)
{
	(void)state;
	build_rfc(QUIC_VERSION_1, false, QUIC_V1_CLIENT_INITIAL,
	    sizeof(QUIC_V1_CLIENT_INITIAL));
	build_rfc(QUIC_VERSION_1, true, QUIC_V1_SERVER_INITIAL,
	    sizeof(QUIC_V1_SERVER_INITIAL));
	build_rfc(QUIC_VERSION_2, false, QUIC_V2_CLIENT_INITIAL,
	    sizeof(QUIC_V2_CLIENT_INITIAL));
	build_rfc(QUIC_VERSION_2, true, QUIC_V2_SERVER_INITIAL,
	    sizeof(QUIC_V2_SERVER_INITIAL));
}

/* A server's Initial is no client's first flight: it does not open with the
 * client keys. */
static void
test_server_initial_is_not_a_client_hello(void **state)
{
	struct quic_initial qi;

	(void)state;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, QUIC_V1_SERVER_INITIAL,
	    sizeof(QUIC_V1_SERVER_INITIAL)), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_DECRYPT);
	quic_initial_free(&qi);
}

/* --- reassembly ------------------------------------------------------------ */

static void
split_over_datagrams(uint32_t v)
{
	uint8_t f[600], d[1500];
	size_t fn, dn, cuts[] = { 0, 60, 150, RFC_HELLO_LEN };
	/* parts sent in the order 2, 0, 1 */
	int order[] = { 2, 0, 1 };
	struct quic_initial qi;

	quic_initial_init(&qi);
	for (int i = 0; i < 3; i++) {
		int part = order[i];

		fn = crypto_frame(f, sizeof(f), RFC_HELLO, cuts[part],
		    cuts[part + 1] - cuts[part]);
		dn = client_initial(v, NULL, 0, (uint64_t)i, f, fn, 1200, d,
		    sizeof(d));
		assert_int_equal(quic_initial_feed(&qi, d, dn),
		    i < 2 ? QUIC_NEED_MORE : QUIC_OK);
	}
	assert_int_equal(qi.npackets, 3);
	assert_int_equal(qi.ndatagrams, 3);
	assert_int_equal(qi.largest_pn, 2);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

/* Before the verdict, shedding would lose the hello's first bytes: it
 * does nothing, and the hello still completes. */
static void
test_shed_waits_for_the_verdict(void **state)
{
	uint8_t f[600], d[1500];
	size_t fn, dn;
	struct quic_initial qi;

	(void)state;
	quic_initial_init(&qi);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, 100);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_NEED_MORE);
	quic_initial_shed(&qi);
	assert_non_null(qi.crypto);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 100, RFC_HELLO_LEN - 100);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 1, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

static void
test_split_over_three_datagrams_out_of_order(void **state)
{
	(void)state;
	split_over_datagrams(QUIC_VERSION_1);
	split_over_datagrams(QUIC_VERSION_2);
	split_over_datagrams(0xff00001d);	/* draft-29 */
}

/* Chrome scatters CRYPTO frames in one packet among PING and PADDING, in
 * any order, some overlapping. */
static void
test_scattered_frames_in_one_packet(void **state)
{
	uint8_t f[1200], d[1500];
	size_t fn = 0, dn;
	struct quic_initial qi;

	(void)state;
	fn += crypto_frame(f + fn, sizeof(f) - fn, RFC_HELLO, 200, 41);
	f[fn++] = 0x01;					/* PING */
	memset(f + fn, 0, 7);				/* PADDING */
	fn += 7;
	fn += crypto_frame(f + fn, sizeof(f) - fn, RFC_HELLO, 0, 100);
	fn += crypto_frame(f + fn, sizeof(f) - fn, RFC_HELLO, 90, 120);
	f[fn++] = 0x01;
	fn += crypto_frame(f + fn, sizeof(f) - fn, RFC_HELLO, 0, 10);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

/* Two Initials coalesced in one datagram, then a 0-RTT packet, then zero
 * padding after the last packet. */
static void
test_coalesced_packets(void **state)
{
	uint8_t f[600], d[2000];
	size_t fn, dn = 0;
	struct quic_initial qi;

	(void)state;
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, 120);
	dn += client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 0, d + dn,
	    sizeof(d) - dn);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 120, RFC_HELLO_LEN - 120);
	dn += client_initial(QUIC_VERSION_1, NULL, 0, 1, f, fn, 0, d + dn,
	    sizeof(d) - dn);
	/* 0-RTT (type 1 in v1): header, Length 30, 30 opaque bytes */
	d[dn++] = 0xd1;
	d[dn++] = 0; d[dn++] = 0; d[dn++] = 0; d[dn++] = 1;
	d[dn++] = 8;
	memcpy(d + dn, rfc_dcid, 8);
	dn += 8;
	d[dn++] = 0;
	d[dn++] = 30;
	memset(d + dn, 0xab, 30);
	dn += 30;
	memset(d + dn, 0, 1200 - (dn % 1200));
	dn += 1200 - (dn % 1200);

	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	assert_int_equal(qi.npackets, 2);
	assert_int_equal(qi.ndatagrams, 1);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

/* A datagram with only 0-RTT or an unknown trailer after the first Initial
 * is NEED_MORE, not a new verdict; duplicates (retransmissions) are fine. */
static void
test_retransmission_and_other_datagrams(void **state)
{
	uint8_t f[600], d[1500];
	size_t fn, dn;
	struct quic_initial qi;
	static const uint8_t shorthdr[] = { 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9 };

	(void)state;
	quic_initial_init(&qi);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, 100);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_NEED_MORE);
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_NEED_MORE);
	assert_int_equal(quic_initial_feed(&qi, shorthdr, sizeof(shorthdr)),
	    QUIC_NEED_MORE);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 100, RFC_HELLO_LEN - 100);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 1, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

/* After a Retry the client picks the new DCID and keys, and sends its hello
 * again from offset 0. */
static void
test_retry_new_dcid(void **state)
{
	static const uint8_t newcid[12] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2 };
	uint8_t f[600], d[1500];
	size_t fn, dn;
	struct quic_initial qi;

	(void)state;
	quic_initial_init(&qi);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, 80);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_NEED_MORE);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, RFC_HELLO_LEN);
	dn = client_initial(QUIC_VERSION_1, newcid, sizeof(newcid), 1, f, fn,
	    1200, d, sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	assert_int_equal(qi.keys_dcid_len, sizeof(newcid));
	/* the flow's DCID stays the first one */
	assert_memory_equal(qi.dcid, rfc_dcid, 8);
	assert_rfc_hello(&qi);
	quic_initial_free(&qi);
}

/* --- refusals ---------------------------------------------------------------- */

static void
test_not_quic(void **state)
{
	static const uint8_t dns[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0,
	    0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0,
	    1, 0, 1 };
	uint8_t junk[1300], unk[1250];
	struct quic_initial qi;
	struct quic_header h;

	(void)state;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, dns, sizeof(dns)), QUIC_NOT_QUIC);
	assert_int_equal(quic_initial_feed(&qi, dns, 0), QUIC_NOT_QUIC);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 + 3);
	junk[0] = 0x3f;		/* short header */
	assert_int_equal(quic_initial_feed(&qi, junk, sizeof(junk)),
	    QUIC_NOT_QUIC);
	assert_false(quic_looks_like_client_initial(junk, sizeof(junk)));
	quic_initial_free(&qi);

	/* a long header of a version we do not know: QUIC, but unreadable */
	memset(unk, 0, sizeof(unk));
	unk[0] = 0xc0;
	unk[1] = 0x1a; unk[2] = 0x2a; unk[3] = 0x3a; unk[4] = 0x4a;
	unk[5] = 8;
	unk[14] = 0;
	assert_int_equal(quic_peek(unk, sizeof(unk), &h), QUIC_OK);
	assert_false(h.known_version);
	assert_string_equal(quic_version_str(h.version), "grease");
	assert_true(quic_looks_like_client_initial(unk, sizeof(unk)));
	assert_false(quic_looks_like_client_initial(unk, 1199));
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, unk, sizeof(unk)), QUIC_NOT_QUIC);
	quic_initial_free(&qi);

	/* fixed bit clear */
	memcpy(junk, QUIC_V1_CLIENT_INITIAL, sizeof(QUIC_V1_CLIENT_INITIAL));
	junk[0] &= (uint8_t)~0x40;
	assert_false(quic_looks_like_client_initial(junk, 1200));
}

/* Every prefix of the vector: a clean verdict, never OK. */
static void
test_every_truncation(void **state)
{
	(void)state;
	for (size_t n = 0; n < sizeof(QUIC_V1_CLIENT_INITIAL); n++) {
		struct quic_initial qi;
		enum quic_result r;

		quic_initial_init(&qi);
		r = quic_initial_feed(&qi, QUIC_V1_CLIENT_INITIAL, n);
		/* up to the SCID length byte (offset 14) the header is not
		 * even whole */
		if (n < 15)
			assert_int_equal(r, QUIC_NOT_QUIC);
		else
			assert_int_equal(r, QUIC_MALFORMED);
		quic_initial_free(&qi);
	}
}

/* Flipping any bit of any byte never yields OK (the AEAD covers the header
 * and payload, header protection the rest). */
static void
test_every_byte_flipped(void **state)
{
	uint8_t d[sizeof(QUIC_V1_CLIENT_INITIAL)];

	(void)state;
	for (size_t i = 0; i < sizeof(d); i++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			struct quic_initial qi;

			memcpy(d, QUIC_V1_CLIENT_INITIAL, sizeof(d));
			d[i] ^= (uint8_t)(1u << bit);
			quic_initial_init(&qi);
			if (quic_initial_feed(&qi, d, sizeof(d)) == QUIC_OK)
				fail_msg("byte %zu bit %u flipped still opens", i, bit);
			quic_initial_free(&qi);
		}
	}
}

static void
expect_malformed(const uint8_t *frames, size_t fn, enum quic_error want)
{
	uint8_t d[1500];
	size_t dn;
	struct quic_initial qi;

	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, frames, fn, 1200, d,
	    sizeof(d));
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_MALFORMED);
	if (qi.error != want)
		fail_msg("want '%s' got '%s'", quic_error_str(want),
		    quic_error_str(qi.error));
	/* sticky */
	assert_int_equal(quic_initial_feed(&qi, QUIC_V1_CLIENT_INITIAL,
	    sizeof(QUIC_V1_CLIENT_INITIAL)), QUIC_MALFORMED);
	quic_initial_free(&qi);
}

static void
test_bad_frames(void **state)
{
	uint8_t f[600];
	size_t fn;
	static const uint8_t stream[] = { 0x08, 0x00, 'h', 'i' };
	static const uint8_t cut_crypto[] = { 0x06, 0x00, 0x44, 0xff };
	static const uint8_t cut_ack[] = { 0x02, 0x05, 0x00, 0x03 };
	static const uint8_t not_hello[] = { 0x06, 0x00, 0x04, 0x02, 0, 0, 0 };
	static const uint8_t huge_hello[] = { 0x06, 0x00, 0x04, 0x01, 0x01, 0, 0 };
	static const uint8_t far_crypto[] = { 0x06, 0x80, 0x00, 0x40, 0x00, 0x01,
	    0xaa };
	static const uint8_t ack_ecn_ok[] = { 0x03, 0x05, 0x00, 0x01, 0x00,
	    0x01, 0x01, 0x00, 0x00, 0x00 };
	uint8_t d[1500];
	size_t dn;
	struct quic_initial qi;

	(void)state;
	expect_malformed(stream, sizeof(stream), QUIC_ERR_FRAME);
	expect_malformed(cut_crypto, sizeof(cut_crypto), QUIC_ERR_FRAME);
	expect_malformed(not_hello, sizeof(not_hello), QUIC_ERR_NOT_CLIENT_HELLO);
	expect_malformed(huge_hello, sizeof(huge_hello), QUIC_ERR_TOO_LARGE);
	expect_malformed(far_crypto, sizeof(far_crypto), QUIC_ERR_CRYPTO_RANGE);
	/* a cut ACK at the very end (padding cannot rescue it) */
	fn = sizeof(cut_ack);
	memcpy(f, cut_ack, fn);
	{
		struct quic_initial_spec s = {
			.version = QUIC_VERSION_1, .key_dcid = rfc_dcid,
			.key_dcid_len = 8, .dcid = rfc_dcid, .dcid_len = 8,
			.pn = 0, .pn_len = 4,
		};
		dn = quic_build_initial(&s, f, fn, d, sizeof(d));
		quic_initial_init(&qi);
		assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_MALFORMED);
		assert_int_equal(qi.error, QUIC_ERR_FRAME);
		quic_initial_free(&qi);
	}
	/* an ACK with ECN counts, then the hello: fine */
	memcpy(f, ack_ecn_ok, sizeof(ack_ecn_ok));
	fn = sizeof(ack_ecn_ok);
	fn += crypto_frame(f + fn, sizeof(f) - fn, RFC_HELLO, 0, RFC_HELLO_LEN);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_OK);
	quic_initial_free(&qi);
}

/* A ClientHello that tlshello refuses (its SNI list lies) */
static void
test_bad_hello(void **state)
{
	uint8_t hello[RFC_HELLO_LEN], f[600];
	size_t fn;

	(void)state;
	memcpy(hello, RFC_HELLO, sizeof(hello));
	/* the extensions block starts after version, random, sid, suites,
	 * compression: find the SNI extension (00 00 00 10) and break its
	 * list length */
	for (size_t i = 0; i + 6 < sizeof(hello); i++)
		if (memcmp(hello + i, "\x00\x00\x00\x10\x00\x0e", 6) == 0) {
			hello[i + 5] = 0x30;
			break;
		}
	fn = crypto_frame(f, sizeof(f), hello, 0, sizeof(hello));
	expect_malformed(f, fn, QUIC_ERR_TLS);
}

static void
test_too_many_packets(void **state)
{
	static const uint8_t ping[] = { 0x01 };
	uint8_t d[1500];
	size_t dn;
	struct quic_initial qi;
	enum quic_result r = QUIC_NEED_MORE;
	unsigned i;

	(void)state;
	quic_initial_init(&qi);
	for (i = 0; i < QUIC_MAX_PACKETS + 5 && r == QUIC_NEED_MORE; i++) {
		dn = client_initial(QUIC_VERSION_1, NULL, 0, i, ping, 1, 1200,
		    d, sizeof(d));
		r = quic_initial_feed(&qi, d, dn);
	}
	assert_int_equal(r, QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_TOO_MANY_PACKETS);
	assert_int_equal(i, QUIC_MAX_PACKETS + 1);
	quic_initial_free(&qi);
}

static void
test_version_changed(void **state)
{
	uint8_t f[600], d[1500];
	size_t fn, dn;
	struct quic_initial qi;

	(void)state;
	quic_initial_init(&qi);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 0, 100);
	dn = client_initial(QUIC_VERSION_1, NULL, 0, 0, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_NEED_MORE);
	fn = crypto_frame(f, sizeof(f), RFC_HELLO, 100, RFC_HELLO_LEN - 100);
	dn = client_initial(QUIC_VERSION_2, NULL, 0, 1, f, fn, 1200, d,
	    sizeof(d));
	assert_int_equal(quic_initial_feed(&qi, d, dn), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_VERSION_CHANGED);
	quic_initial_free(&qi);
}

static void
test_header_lies(void **state)
{
	uint8_t d[sizeof(QUIC_V1_CLIENT_INITIAL)];
	struct quic_initial qi;

	(void)state;
	/* DCID length 21 */
	memcpy(d, QUIC_V1_CLIENT_INITIAL, sizeof(d));
	d[5] = 21;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, sizeof(d)), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_CID_LENGTH);
	quic_initial_free(&qi);
	/* Length (0x449e at 16..17) one past the datagram */
	memcpy(d, QUIC_V1_CLIENT_INITIAL, sizeof(d));
	d[17] = 0x9f;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, sizeof(d)), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_LENGTH);
	quic_initial_free(&qi);
	/* token length past the datagram */
	memcpy(d, QUIC_V1_CLIENT_INITIAL, sizeof(d));
	d[15] = 0x7f;
	d[16] = 0xff;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, sizeof(d)), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_HEADER);
	quic_initial_free(&qi);
	/* Length too small to sample */
	memcpy(d, QUIC_V1_CLIENT_INITIAL, sizeof(d));
	d[16] = 0x40;
	d[17] = 0x10;
	quic_initial_init(&qi);
	assert_int_equal(quic_initial_feed(&qi, d, sizeof(d)), QUIC_MALFORMED);
	assert_int_equal(qi.error, QUIC_ERR_SHORT_PACKET);
	quic_initial_free(&qi);
}

/* --- builders and helpers ------------------------------------------------------- */

static void
test_version_negotiation(void **state)
{
	static const uint32_t vers[] = { 0x1a2a3a4a };
	static const uint8_t scid[3] = { 0xaa, 0xbb, 0xcc };
	uint8_t out[64];
	struct quic_header h;
	size_t n;

	(void)state;
	n = quic_build_version_negotiation(rfc_dcid, 8, scid, 3, vers, 1, 0x55,
	    out, sizeof(out));
	assert_int_equal(n, 7 + 8 + 3 + 4);
	assert_int_equal(out[0], 0xd5);
	assert_int_equal(quic_peek(out, n, &h), QUIC_OK);
	assert_int_equal(h.version, 0);
	assert_int_equal(h.dcid_len, 3);		/* swapped */
	assert_memory_equal(h.dcid, scid, 3);
	assert_int_equal(h.scid_len, 8);
	assert_memory_equal(h.scid, rfc_dcid, 8);
	assert_memory_equal(out + n - 4, "\x1a\x2a\x3a\x4a", 4);
	assert_false(quic_looks_like_client_initial(out, n));
	assert_int_equal(quic_build_version_negotiation(rfc_dcid, 8, scid, 3,
	    vers, 1, 0, out, n - 1), 0);
}

static void
test_varints(void **state)
{
	static const uint64_t vals[] = { 0, 63, 64, 16383, 16384,
	    (1u << 30) - 1, 1u << 30, ((uint64_t)1 << 62) - 1 };
	static const size_t lens[] = { 1, 1, 2, 2, 4, 4, 8, 8 };
	uint8_t b[8];
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		assert_int_equal(quic_varint_put(b, sizeof(b), vals[i]), lens[i]);
		assert_int_equal(quic_varint_get(b, lens[i], &v), lens[i]);
		assert_int_equal(v, vals[i]);
		assert_int_equal(quic_varint_get(b, lens[i] - 1, &v), 0);
	}
	assert_int_equal(quic_varint_put(b, sizeof(b), (uint64_t)1 << 62), 0);
	assert_int_equal(quic_varint_put(b, 1, 64), 0);
	/* RFC 9000 §A.1 examples */
	hex("c2197c5eff14e88c", b, 8);
	assert_int_equal(quic_varint_get(b, 8, &v), 8);
	assert_int_equal(v, 151288809941952652ull);
	hex("9d7f3e7d", b, 4);
	assert_int_equal(quic_varint_get(b, 4, &v), 4);
	assert_int_equal(v, 494878333);
	assert_string_equal(quic_version_str(0xff00001d), "draft-29");
	assert_string_equal(quic_version_str(QUIC_VERSION_2), "v2");
	assert_string_equal(quic_version_str(0x12345678), "unknown");
	assert_string_equal(quic_error_str(QUIC_ERR__COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_v1_rfc9001_a1),
		cmocka_unit_test(test_keys_v2_rfc9369_a1),
		cmocka_unit_test(test_open_v1_client_initial),
		cmocka_unit_test(test_open_v2_client_initial),
		cmocka_unit_test(test_shed_waits_for_the_verdict),
		cmocka_unit_test(test_build_matches_rfc_vectors),
		cmocka_unit_test(test_server_initial_is_not_a_client_hello),
		cmocka_unit_test(test_split_over_three_datagrams_out_of_order),
		cmocka_unit_test(test_scattered_frames_in_one_packet),
		cmocka_unit_test(test_coalesced_packets),
		cmocka_unit_test(test_retransmission_and_other_datagrams),
		cmocka_unit_test(test_retry_new_dcid),
		cmocka_unit_test(test_not_quic),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_every_byte_flipped),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_bad_hello),
		cmocka_unit_test(test_too_many_packets),
		cmocka_unit_test(test_version_changed),
		cmocka_unit_test(test_header_lies),
		cmocka_unit_test(test_version_negotiation),
		cmocka_unit_test(test_varints),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
