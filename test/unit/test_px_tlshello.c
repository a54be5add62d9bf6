/*
 * Unit tests for proxyd/tlshello.c: real ClientHellos (openssl, curl,
 * python, captured on loopback), every prefix of them, re-fragmentation over
 * records, and every length field that can lie — record, handshake, session
 * id, cipher suites, compression, extensions block, each extension and the
 * lists inside SNI / ALPN / versions / groups / signature algorithms.
 * Synthetic hellos come from a small builder so each test changes one thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/tlshello.h"
#include "test/unit/data/px_client_hellos.h"
#include "test/unit/helpers/bytes.h"

/* --- builder ------------------------------------------------------------ */

/* An extension with raw body. */
static void
ext(struct bld *b, unsigned type, const void *body, size_t n)
{
	put16(b, type);
	put16(b, (unsigned)n);
	putmem(b, body, n);
}

static void
ext_sni(struct bld *b, const char *name)
{
	size_t n = strlen(name);

	put16(b, TLS_EXT_SERVER_NAME);
	put16(b, (unsigned)(n + 5));
	put16(b, (unsigned)(n + 3));
	put8(b, 0);
	put16(b, (unsigned)n);
	putmem(b, name, n);
}

/*
 * Handshake message: ClientHello with the given extensions block (NULL: no
 * extensions field at all).
 */
static size_t
hello_msg(uint8_t *out, const struct bld *exts)
{
	struct bld m = { .n = 0 };
	size_t body;

	put8(&m, 1);
	put8(&m, 0);
	put16(&m, 0);		/* length, patched below */
	put16(&m, 0x0303);
	for (int i = 0; i < 32; i++)
		put8(&m, (unsigned)i);
	put8(&m, 32);
	for (int i = 0; i < 32; i++)
		put8(&m, 0xee);
	put16(&m, 6);
	put16(&m, 0x1301);
	put16(&m, 0x1302);
	put16(&m, 0xc02f);
	put8(&m, 1);
	put8(&m, 0);
	if (exts != NULL) {
		put16(&m, (unsigned)exts->n);
		putmem(&m, exts->d, exts->n);
	}
	body = m.n - 4;
	m.d[1] = (uint8_t)(body >> 16);
	m.d[2] = (uint8_t)(body >> 8);
	m.d[3] = (uint8_t)body;
	memcpy(out, m.d, m.n);
	return m.n;
}

/* Wrap a handshake message in records of at most frag bytes. */
static size_t
records(uint8_t *out, const uint8_t *msg, size_t n, size_t frag)
{
	size_t o = 0;

	for (size_t off = 0; off < n; off += frag) {
		size_t k = n - off < frag ? n - off : frag;

		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		memcpy(out + o, msg + off, k);
		o += k;
	}
	return o;
}

static uint8_t msgbuf[70000], recbuf[140000];

static enum tlshello_result
parse_exts(const struct bld *exts, struct tls_client_hello *ch)
{
	size_t m = hello_msg(msgbuf, exts);
	size_t r = records(recbuf, msgbuf, m, 16384);

	return tlshello_parse(recbuf, r, ch);
}

static void
expect_malformed_exts(const struct bld *exts, enum tlshello_error err)
{
	struct tls_client_hello ch;

	assert_int_equal(parse_exts(exts, &ch), TLSHELLO_MALFORMED);
	assert_string_equal(tlshello_error_str(ch.error), tlshello_error_str(err));
	assert_null(ch.hello);
	tlshello_free(&ch);
}

static void
expect_malformed(const uint8_t *buf, size_t len, enum tlshello_error err)
{
	struct tls_client_hello ch;

	assert_int_equal(tlshello_parse(buf, len, &ch), TLSHELLO_MALFORMED);
	assert_string_equal(tlshello_error_str(ch.error), tlshello_error_str(err));
	tlshello_free(&ch);
}

/* --- real hellos ---------------------------------------------------------- */

static void
openssl_hello_sni_alpn_versions(void **state)
{
	struct tls_client_hello ch;

	(void)state;
	assert_int_equal(tlshello_parse(px_ch_openssl, px_ch_openssl_len, &ch),
	    TLSHELLO_OK);
	assert_true(ch.has_sni);
	assert_false(ch.sni_rejected);
	assert_string_equal(ch.sni, "example.com");
	assert_int_equal(ch.nalpn, 2);
	assert_true(tlshello_offers_alpn(&ch, "h2"));
	assert_true(tlshello_offers_alpn(&ch, "http/1.1"));
	assert_false(tlshello_offers_alpn(&ch, "http/1"));
	assert_int_equal(ch.record_version, 0x0301);
	assert_int_equal(ch.legacy_version, 0x0303);
	assert_int_equal(ch.nsupported_versions, 4);
	assert_int_equal(tlshello_u16(ch.supported_versions, 0), 0x0304);
	assert_int_equal(ch.ncipher_suites, 31);
	assert_int_equal(tlshello_u16(ch.cipher_suites, 0), 0x1302);
	assert_int_equal(ch.nsupported_groups, 10);
	assert_int_equal(tlshello_u16(ch.supported_groups, 0), 0x001d);
	assert_int_equal(ch.nsignature_algorithms, 20);
	assert_true(ch.has_session_ticket);
	assert_int_equal(ch.session_ticket_len, 0);
	assert_false(ch.has_psk);
	assert_false(ch.has_ech);
	assert_false(ch.has_grease);
	assert_int_equal(ch.session_id_len, 32);
	assert_int_equal(ch.stream_len, px_ch_openssl_len);
	assert_int_equal(ch.nrecords, 1);
	tlshello_free(&ch);
}

static void
curl_and_python_hellos(void **state)
{
	struct tls_client_hello ch;

	(void)state;
	assert_int_equal(tlshello_parse(px_ch_curl, px_ch_curl_len, &ch),
	    TLSHELLO_OK);
	assert_string_equal(ch.sni, "www.example.org");
	assert_true(tlshello_offers_alpn(&ch, "h2"));
	assert_int_equal(ch.nextensions, 12);
	tlshello_free(&ch);

	assert_int_equal(tlshello_parse(px_ch_python, px_ch_python_len, &ch),
	    TLSHELLO_OK);
	assert_string_equal(ch.sni, "api.example.net");
	assert_int_equal(ch.nalpn, 0);
	assert_false(tlshello_offers_alpn(&ch, "http/1.1"));
	assert_int_equal(ch.nsupported_versions, 2);
	tlshello_free(&ch);
}

static void
tls12_hello_without_sni(void **state)
{
	struct tls_client_hello ch;

	(void)state;
	assert_int_equal(tlshello_parse(px_ch_openssl_tls12_nosni,
	    px_ch_openssl_tls12_nosni_len, &ch), TLSHELLO_OK);
	assert_false(ch.has_sni);
	assert_string_equal(ch.sni, "");
	assert_int_equal(ch.nsupported_versions, 0);
	assert_int_equal(ch.session_id_len, 0);
	assert_int_equal(tlshello_u16(ch.cipher_suites, 0), 0xc02c);
	tlshello_free(&ch);
}

static void
every_prefix_needs_more(void **state)
{
	static const struct {
		const unsigned char *p;
		size_t n;
	} h[] = {
		{ px_ch_openssl, sizeof(px_ch_openssl) },
		{ px_ch_curl, sizeof(px_ch_curl) },
		{ px_ch_openssl_tls12_nosni, sizeof(px_ch_openssl_tls12_nosni) },
		{ px_ch_python, sizeof(px_ch_python) },
	};
	struct tls_client_hello ch;

	(void)state;
	for (size_t k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
		for (size_t i = 0; i < h[k].n; i++) {
			assert_int_equal(tlshello_parse(h[k].p, i, &ch),
			    TLSHELLO_NEED_MORE);
			assert_null(ch.hello);
			tlshello_free(&ch);
		}
	}
}

static void
bytes_after_hello_are_not_consumed(void **state)
{
	uint8_t buf[1024];
	struct tls_client_hello ch;

	(void)state;
	memcpy(buf, px_ch_curl, px_ch_curl_len);
	/* e.g. a 0-RTT record or a change_cipher_spec following */
	memcpy(buf + px_ch_curl_len, "\x14\x03\x03\x00\x01\x01", 6);
	assert_int_equal(tlshello_parse(buf, px_ch_curl_len + 6, &ch),
	    TLSHELLO_OK);
	assert_int_equal(ch.stream_len, px_ch_curl_len);
	tlshello_free(&ch);
}

static void
hello_fragmented_over_records(void **state)
{
	static const size_t frags[] = { 1, 2, 3, 7, 100, 511 };
	const uint8_t *msg = px_ch_curl + 5;
	size_t mlen = px_ch_curl_len - 5;
	struct tls_client_hello ch;

	(void)state;
	for (size_t k = 0; k < sizeof(frags) / sizeof(frags[0]); k++) {
		size_t n = records(recbuf, msg, mlen, frags[k]);

		assert_int_equal(tlshello_parse(recbuf, n, &ch), TLSHELLO_OK);
		assert_string_equal(ch.sni, "www.example.org");
		assert_int_equal(ch.nrecords, (mlen + frags[k] - 1) / frags[k]);
		assert_int_equal(ch.stream_len, n);
		assert_int_equal(ch.hello_len, mlen);
		assert_memory_equal(ch.hello, msg, mlen);
		tlshello_free(&ch);
		if (frags[k] == 7) {
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(tlshello_parse(recbuf, i, &ch),
				    TLSHELLO_NEED_MORE);
				tlshello_free(&ch);
			}
		}
	}
}

/* --- not TLS / record layer ------------------------------------------------- */

static void
not_tls_decided_from_first_bytes(void **state)
{
	struct tls_client_hello ch;

	(void)state;
	assert_int_equal(tlshello_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16,
	    &ch), TLSHELLO_NOT_TLS);
	assert_int_equal(tlshello_parse((const uint8_t *)"\x16\x02\x00", 3, &ch),
	    TLSHELLO_NOT_TLS);
	assert_int_equal(tlshello_parse((const uint8_t *)"\x16\x03\x05", 3, &ch),
	    TLSHELLO_NOT_TLS);
	assert_int_equal(tlshello_parse((const uint8_t *)"\x17\x03\x03\x00\x10",
	    5, &ch), TLSHELLO_NOT_TLS);
	/* SSLv2-compatible hello: not supported, not TLS to us */
	assert_int_equal(tlshello_parse((const uint8_t *)"\x80\x2e\x01\x03\x01",
	    5, &ch), TLSHELLO_NOT_TLS);
	assert_int_equal(tlshello_parse((const uint8_t *)"\x16", 1, &ch),
	    TLSHELLO_NEED_MORE);
	assert_int_equal(tlshello_parse((const uint8_t *)"\x16\x03", 2, &ch),
	    TLSHELLO_NEED_MORE);
	assert_int_equal(tlshello_parse(NULL, 0, &ch), TLSHELLO_NEED_MORE);
	tlshello_free(&ch);
}

static void
record_length_lies(void **state)
{
	(void)state;
	expect_malformed((const uint8_t *)"\x16\x03\x01\x00\x00\x01", 6,
	    TLSHELLO_ERR_RECORD_LENGTH);
	expect_malformed((const uint8_t *)"\x16\x03\x01\x40\x01\x01", 6,
	    TLSHELLO_ERR_RECORD_LENGTH);
	expect_malformed((const uint8_t *)"\x16\x03\x01\xff\xff", 5,
	    TLSHELLO_ERR_RECORD_LENGTH);
}

static void
handshake_type_checked_before_record_completes(void **state)
{
	(void)state;
	/* a ServerHello from the client side */
	expect_malformed((const uint8_t *)"\x16\x03\x03\x00\x50\x02\x00", 7,
	    TLSHELLO_ERR_NOT_CLIENT_HELLO);
}

static void
handshake_length_lies(void **state)
{
	uint8_t buf[64];
	size_t n;

	(void)state;
	/* claims 0x010000 bytes of hello: more than we accept */
	expect_malformed((const uint8_t *)"\x16\x03\x01\x00\x04\x01\x01\x00\x00",
	    9, TLSHELLO_ERR_TOO_LARGE);
	/* claims 1 byte, record carries 6: trailing data */
	expect_malformed((const uint8_t *)"\x16\x03\x01\x00\x06\x01\x00\x00\x01"
	    "\x03\x03", 11, TLSHELLO_ERR_TRAILING_DATA);
	/* claims 2 bytes of body: too short for a hello */
	expect_malformed((const uint8_t *)"\x16\x03\x01\x00\x06\x01\x00\x00\x02"
	    "\x03\x03", 11, TLSHELLO_ERR_TRUNCATED);
	/* claims more than the record, and an alert record follows */
	memcpy(buf, "\x16\x03\x01\x00\x06\x01\x00\x00\x40\x03\x03", 11);
	n = 11;
	memcpy(buf + n, "\x15\x03\x03\x00\x02\x02\x28", 7);
	n += 7;
	expect_malformed(buf, n, TLSHELLO_ERR_INTERLEAVED);
	/* an empty ClientHello body */
	expect_malformed((const uint8_t *)"\x16\x03\x01\x00\x04\x01\x00\x00\x00",
	    9, TLSHELLO_ERR_TRUNCATED);
	/* a hello record shorter than its 2nd fragment's promise: fine until
	 * the bytes arrive */
	{
		struct tls_client_hello ch;

		assert_int_equal(tlshello_parse((const uint8_t *)
		    "\x16\x03\x01\x00\x02\x01\x00\x16\x03\x01\x00\x02\x00\x30", 14,
		    &ch), TLSHELLO_NEED_MORE);
		tlshello_free(&ch);
	}
}

/* --- fields inside the hello ------------------------------------------------- */

static void
body_vector_lengths_lie(void **state)
{
	uint8_t m[200];
	size_t n;
	struct tls_client_hello ch;

	(void)state;
	n = hello_msg(m, NULL);
	/* baseline: no extensions field at all is accepted */
	records(recbuf, m, n, 16384);
	assert_int_equal(tlshello_parse(recbuf, n + 5, &ch), TLSHELLO_OK);
	assert_int_equal(ch.nextensions, 0);
	assert_int_equal(ch.ncipher_suites, 3);
	tlshello_free(&ch);

	/* session id length 33 */
	m[4 + 2 + 32] = 33;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_SESSION_ID);
	m[4 + 2 + 32] = 32;
	/* cipher suites: odd length, zero length, past the end */
	m[4 + 2 + 32 + 1 + 32 + 1] = 5;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_CIPHER_SUITES);
	m[4 + 2 + 32 + 1 + 32 + 1] = 0;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_CIPHER_SUITES);
	m[4 + 2 + 32 + 1 + 32 + 1] = 0x40;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_CIPHER_SUITES);
	m[4 + 2 + 32 + 1 + 32 + 1] = 6;
	/* compression: none listed */
	m[4 + 2 + 32 + 1 + 32 + 2 + 6] = 0;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_COMPRESSION);
	m[4 + 2 + 32 + 1 + 32 + 2 + 6] = 2;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_COMPRESSION);
}

static void
extension_lengths_lie(void **state)
{
	struct bld e = { .n = 0 };
	uint8_t m[300];
	size_t n;

	(void)state;
	/* an extension claiming more than the block holds */
	put16(&e, 0x0017);
	put16(&e, 10);
	put16(&e, 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_EXTENSION_LENGTH);
	/* half an extension header */
	e.n = 0;
	put8(&e, 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_EXTENSION_LENGTH);
	/* the block length claims more than the message */
	e.n = 0;
	ext(&e, 0x0017, "", 0);
	n = hello_msg(m, &e);
	m[n - 5] = 0x00;	/* block length high byte is at n-6, low n-5 */
	m[n - 6] = 0x01;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_EXTENSION_LENGTH);
	/* the block is shorter than the message: bytes left over */
	m[n - 6] = 0x00;
	m[n - 5] = 0x00;
	records(recbuf, m, n, 16384);
	expect_malformed(recbuf, n + 5, TLSHELLO_ERR_TRAILING_DATA);
}

static void
duplicate_extension_rejected(void **state)
{
	struct bld e = { .n = 0 };

	(void)state;
	ext(&e, 0x0017, "", 0);
	ext(&e, 0x0017, "", 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_DUPLICATE_EXTENSION);
	/* type 0xffff must not index past the bitmap */
	e.n = 0;
	ext(&e, 0xffff, "", 0);
	ext(&e, 0xffff, "", 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_DUPLICATE_EXTENSION);
}

static void
sni_structure_lies(void **state)
{
	struct bld e = { .n = 0 };

	(void)state;
	/* list length does not match the extension */
	ext(&e, 0, "\x00\x09\x00\x00\x04host", 9);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
	/* name length past the list */
	e.n = 0;
	ext(&e, 0, "\x00\x07\x00\x00\x09host", 9);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
	/* empty name */
	e.n = 0;
	ext(&e, 0, "\x00\x03\x00\x00\x00", 5);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
	/* empty list */
	e.n = 0;
	ext(&e, 0, "\x00\x00", 2);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
	/* two host_names */
	e.n = 0;
	ext(&e, 0, "\x00\x0e\x00\x00\x04host\x00\x00\x04hos2", 16);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
	/* empty extension */
	e.n = 0;
	ext(&e, 0, "", 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_SNI);
}

static void
sni_name_validated(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "example.com", true },
		{ "a", true },
		{ "_dmarc.my-host.example", true },
		{ "xn--bcher-kva.example", true },
		{ "EXAMPLE.COM", true },
		{ "example.com.", false },
		{ ".example.com", false },
		{ "a..b", false },
		{ "-a.example", false },
		{ "a-.example", false },
		{ "10.0.0.1", false },
		{ "exa mple.com", false },
		{ "exa\x01mple", false },
		{ "caf\xc3\xa9.example", false },
		{ "a/b", false },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
		    false },	/* 64-byte label */
	};
	struct tls_client_hello ch;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bld e = { .n = 0 };

		ext_sni(&e, cases[i].name);
		assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
		assert_true(ch.has_sni);
		if (ch.sni_rejected == cases[i].ok)
			fail_msg("SNI %s: want %s", cases[i].name,
			    cases[i].ok ? "accepted" : "rejected");
		if (cases[i].ok)
			assert_string_equal(ch.sni, cases[i].name);
		else
			assert_string_equal(ch.sni, "");
		tlshello_free(&ch);
	}
	/* 253 bytes is the limit; the NUL still fits */
	{
		char name[260];
		struct bld e = { .n = 0 };

		memset(name, 'a', sizeof(name));
		for (size_t i = 50; i < 253; i += 51)
			name[i] = '.';
		name[253] = '\0';
		ext_sni(&e, name);
		assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
		assert_false(ch.sni_rejected);
		assert_int_equal(strlen(ch.sni), 253);
		tlshello_free(&ch);
		name[253] = 'a';
		name[254] = '\0';
		e.n = 0;
		ext_sni(&e, name);
		assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
		assert_true(ch.sni_rejected);
		tlshello_free(&ch);
	}
}

static void
alpn_list_lies(void **state)
{
	struct bld e = { .n = 0 };

	(void)state;
	ext(&e, TLS_EXT_ALPN, "\x00\x04\x02h2", 5);	/* list too long */
	expect_malformed_exts(&e, TLSHELLO_ERR_ALPN);
	e.n = 0;
	ext(&e, TLS_EXT_ALPN, "\x00\x03\x03h2", 5);	/* name too long */
	expect_malformed_exts(&e, TLSHELLO_ERR_ALPN);
	e.n = 0;
	ext(&e, TLS_EXT_ALPN, "\x00\x04\x02h2\x00", 6);	/* empty name */
	expect_malformed_exts(&e, TLSHELLO_ERR_ALPN);
	e.n = 0;
	ext(&e, TLS_EXT_ALPN, "\x00\x00", 2);		/* empty list */
	expect_malformed_exts(&e, TLSHELLO_ERR_ALPN);
}

static void
u16_lists_lie(void **state)
{
	struct bld e = { .n = 0 };

	(void)state;
	ext(&e, TLS_EXT_SUPPORTED_VERSIONS, "\x03\x03\x04\x03", 4);
	expect_malformed_exts(&e, TLSHELLO_ERR_SUPPORTED_VERSIONS);
	e.n = 0;
	ext(&e, TLS_EXT_SUPPORTED_VERSIONS, "\x04\x03\x04", 3);
	expect_malformed_exts(&e, TLSHELLO_ERR_SUPPORTED_VERSIONS);
	e.n = 0;
	ext(&e, TLS_EXT_SUPPORTED_GROUPS, "\x00\x00", 2);
	expect_malformed_exts(&e, TLSHELLO_ERR_SUPPORTED_GROUPS);
	e.n = 0;
	ext(&e, TLS_EXT_SUPPORTED_GROUPS, "\x00\x02\x00\x1d\x00", 5);
	expect_malformed_exts(&e, TLSHELLO_ERR_SUPPORTED_GROUPS);
	e.n = 0;
	ext(&e, TLS_EXT_SIGNATURE_ALGORITHMS, "\x00\x04\x04\x03", 4);
	expect_malformed_exts(&e, TLSHELLO_ERR_SIGNATURE_ALGORITHMS);
	e.n = 0;
	ext(&e, TLS_EXT_SIGNATURE_ALGORITHMS, "\x00", 1);
	expect_malformed_exts(&e, TLSHELLO_ERR_SIGNATURE_ALGORITHMS);
}

static void
psk_must_be_last(void **state)
{
	struct bld e = { .n = 0 };
	struct tls_client_hello ch;

	(void)state;
	ext(&e, TLS_EXT_PRE_SHARED_KEY, "\x00\x00", 2);
	ext(&e, 0x0017, "", 0);
	expect_malformed_exts(&e, TLSHELLO_ERR_PSK_NOT_LAST);
	e.n = 0;
	ext(&e, TLS_EXT_EARLY_DATA, "", 0);
	ext(&e, TLS_EXT_PRE_SHARED_KEY, "\x00\x00", 2);
	assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
	assert_true(ch.has_psk);
	assert_true(ch.has_early_data);
	tlshello_free(&ch);
}

static void
browser_like_grease_ech_ticket(void **state)
{
	struct bld e = { .n = 0 };
	struct tls_client_hello ch;

	(void)state;
	ext(&e, 0x1a1a, "", 0);			/* GREASE extension */
	ext_sni(&e, "www.example.com");
	ext(&e, TLS_EXT_SESSION_TICKET, "ticketbytes", 11);
	ext(&e, TLS_EXT_ALPN, "\x00\x0c\x02h2\x08http/1.1", 14);
	ext(&e, TLS_EXT_ECH, "\x00\x00\x01\x00\x01", 5);
	assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
	assert_true(ch.has_grease);
	assert_true(ch.has_ech);
	assert_int_equal(ch.session_ticket_len, 11);
	assert_string_equal(ch.sni, "www.example.com");
	assert_int_equal(ch.nextensions, 5);
	tlshello_free(&ch);

	/* GREASE in supported_groups only */
	e.n = 0;
	ext(&e, TLS_EXT_SUPPORTED_GROUPS, "\x00\x04\x3a\x3a\x00\x1d", 6);
	assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
	assert_true(ch.has_grease);
	tlshello_free(&ch);
	e.n = 0;
	ext(&e, TLS_EXT_SUPPORTED_GROUPS, "\x00\x04\x3a\x3b\x00\x1d", 6);
	assert_int_equal(parse_exts(&e, &ch), TLSHELLO_OK);
	assert_false(ch.has_grease);
	tlshello_free(&ch);
	assert_true(tls_is_grease(0xfafa));
	assert_false(tls_is_grease(0x0a1a));
}

static void
every_error_has_a_distinct_string(void **state)
{
	(void)state;
	for (int i = 0; i < TLSHELLO_ERR__COUNT; i++) {
		assert_string_not_equal(tlshello_error_str((enum tlshello_error)i),
		    "unknown error");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(
			    tlshello_error_str((enum tlshello_error)i),
			    tlshello_error_str((enum tlshello_error)j));
	}
}

/* QUIC's CRYPTO frames carry the bare message: the openssl hello without
 * its record header parses the same; a message must be exactly one hello. */
static void
bare_message_as_quic_carries_it(void **state)
{
	struct tls_client_hello ch;
	const uint8_t *msg = px_ch_openssl + 5;
	size_t n = px_ch_openssl_len - 5;
	uint8_t copy[600];

	(void)state;
	assert_int_equal(tlshello_parse_message(msg, n, &ch), TLSHELLO_OK);
	assert_string_equal(ch.sni, "example.com");
	assert_true(tlshello_offers_alpn(&ch, "h2"));
	assert_int_equal(ch.hello_len, n);
	assert_int_equal(ch.nrecords, 0);
	tlshello_free(&ch);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(tlshello_parse_message(msg, i, &ch),
		    TLSHELLO_NEED_MORE);
		tlshello_free(&ch);
	}
	/* one byte short or long of the length it declares */
	assert_int_equal(tlshello_parse_message(msg, n - 1, &ch),
	    TLSHELLO_MALFORMED);
	assert_int_equal(ch.error, TLSHELLO_ERR_TRAILING_DATA);
	tlshello_free(&ch);
	memcpy(copy, msg, n);
	copy[n] = 0;
	assert_int_equal(tlshello_parse_message(copy, n + 1, &ch),
	    TLSHELLO_MALFORMED);
	tlshello_free(&ch);
	/* a ServerHello is not accepted */
	copy[0] = 2;
	assert_int_equal(tlshello_parse_message(copy, n, &ch),
	    TLSHELLO_MALFORMED);
	assert_int_equal(ch.error, TLSHELLO_ERR_NOT_CLIENT_HELLO);
	tlshello_free(&ch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(openssl_hello_sni_alpn_versions),
		cmocka_unit_test(bare_message_as_quic_carries_it),
		cmocka_unit_test(curl_and_python_hellos),
		cmocka_unit_test(tls12_hello_without_sni),
		cmocka_unit_test(every_prefix_needs_more),
		cmocka_unit_test(bytes_after_hello_are_not_consumed),
		cmocka_unit_test(hello_fragmented_over_records),
		cmocka_unit_test(not_tls_decided_from_first_bytes),
		cmocka_unit_test(record_length_lies),
		cmocka_unit_test(handshake_type_checked_before_record_completes),
		cmocka_unit_test(handshake_length_lies),
		cmocka_unit_test(body_vector_lengths_lie),
		cmocka_unit_test(extension_lengths_lie),
		cmocka_unit_test(duplicate_extension_rejected),
		cmocka_unit_test(sni_structure_lies),
		cmocka_unit_test(sni_name_validated),
		cmocka_unit_test(alpn_list_lies),
		cmocka_unit_test(u16_lists_lie),
		cmocka_unit_test(psk_must_be_last),
		cmocka_unit_test(browser_like_grease_ech_ticket),
		cmocka_unit_test(every_error_has_a_distinct_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
