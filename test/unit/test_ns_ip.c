/*
 * Unit tests for netstackd's IP layer (netstackd/ip.c, checksum.c): every
 * length field lying, options and extension chains, fragments, checksums,
 * ICMP echo and unreachable building.  Packets are built from small templates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "netstackd/checksum.h"
#include "netstackd/ip.h"

static const uint8_t v4a[4] = { 10, 0, 0, 1 }, v4b[4] = { 93, 184, 216, 34 };
static const uint8_t v6a[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t v6b[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };

/* A v4 packet carrying a 20-byte TCP header with valid checksums. */
static size_t
build_v4_tcp(uint8_t *buf)
{
	memset(buf, 0, 40);
	ip_write_hdr(buf, 4, v4a, v4b, IPPROTO_NS_TCP, 20);
	buf[20] = 0x30; buf[21] = 0x39; buf[22] = 0x01; buf[23] = 0xbb;
	buf[32] = 0x50; buf[33] = 0x02;	/* data offset 5, SYN */
	ip_set_l4_csum(buf, 40, 16);
	return 40;
}

static size_t
build_v6_tcp(uint8_t *buf)
{
	memset(buf, 0, 60);
	ip_write_hdr(buf, 6, v6a, v6b, IPPROTO_NS_TCP, 20);
	buf[52] = 0x50; buf[53] = 0x02;
	ip_set_l4_csum(buf, 60, 16);
	return 60;
}

static void
fix_v4_csum(uint8_t *buf)
{
	size_t ihl = (size_t)(buf[0] & 0xf) * 4;

	buf[10] = buf[11] = 0;
	uint16_t c = csum_fold(csum_add(0, buf, ihl));
	buf[10] = (uint8_t)(c >> 8);
	buf[11] = (uint8_t)c;
}

static void
checksum_rfc1071_example(void **state)
{
	/* RFC 1071 §3 example: sum of these words is 0xddf2 (before ~). */
	const uint8_t d[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

	(void)state;
	assert_int_equal(csum_fold(csum_add(0, d, 8)), (uint16_t)~0xddf2);
	/* Odd length pads with zero; split sums equal a whole sum. */
	assert_int_equal(csum_fold(csum_add(csum_add(0, d, 4), d + 4, 3)),
	    csum_fold(csum_add(0, (const uint8_t[8]){ 0x00, 0x01, 0xf2, 0x03,
	    0xf4, 0xf5, 0xf6, 0 }, 8)));
}

/* The plain RFC 1071 loop, to check the word-at-a-time version against. */
static uint16_t
ref_csum(const uint8_t *b, size_t len, uint32_t init)
{
	uint64_t acc = init;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		acc += (uint32_t)b[len - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

static void
checksum_fast_matches_reference(void **state)
{
	static uint8_t buf[2100];
	uint32_t x = 12345;
	size_t i, len, align;

	(void)state;
	for (i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (align = 0; align < 8; align++)
		for (len = 0; len < 2048; len += (len < 80 ? 1 : 37))
			assert_int_equal(csum_fold(csum_add(0x1234, buf + align, len)),
			    ref_csum(buf + align, len, 0x1234));
	/* All-ones data exercises the carries. */
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(csum_fold(csum_add(0xffff, buf, 2001)),
	    ref_csum(buf, 2001, 0xffff));
	/* Split at even offsets equals one pass. */
	assert_int_equal(csum_fold(csum_add(csum_add(0, buf + 3, 100), buf + 103, 51)),
	    ref_csum(buf + 3, 151, 0));
}

static void
ipv4_valid_tcp_parses(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	assert_int_equal(p.version, 4);
	assert_int_equal(p.proto, IPPROTO_NS_TCP);
	assert_memory_equal(p.src, v4a, 4);
	assert_memory_equal(p.dst, v4b, 4);
	assert_ptr_equal(p.l4, buf + 20);
	assert_int_equal(p.l4len, 20);
	assert_true(ip_l4_csum_ok(&p));
	buf[30] ^= 1;
	assert_false(ip_l4_csum_ok(&p));
}

static void
ipv4_total_length_lies(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	buf[2] = 0; buf[3] = 41;	/* one more than the buffer */
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v4_bad_total_len, 1);
	buf[3] = 19;			/* less than the header */
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v4_bad_total_len, 2);
	/* Shorter than the buffer is fine: trailing bytes are ignored. */
	buf[3] = 30;
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	assert_int_equal(p.l4len, 10);
}

static void
ipv4_ihl_lies(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	buf[0] = 0x44;
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	buf[0] = 0x4f;	/* 60 bytes > 40-byte buffer */
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v4_bad_ihl, 2);
}

static void
ipv4_bad_header_csum(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	buf[8] = 3;	/* change TTL without fixing the checksum */
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v4_bad_csum, 1);
}

static void
ipv4_options_skipped(void **state)
{
	uint8_t buf[64], tmp[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(tmp);

	(void)state;
	/* Insert 8 bytes of options (NOP NOP ... EOL) between IP and TCP. */
	memcpy(buf, tmp, 20);
	memset(buf + 20, 1, 7);
	buf[27] = 0;
	memcpy(buf + 28, tmp + 20, n - 20);
	buf[0] = 0x47;
	buf[3] = (uint8_t)(n + 8);
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n + 8, &p, &st), 0);
	assert_ptr_equal(p.l4, buf + 28);
	assert_int_equal(p.l4len, 20);
	assert_true(ip_l4_csum_ok(&p));
}

static void
ipv4_fragments_dropped(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	buf[6] = 0x20;	/* MF */
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	buf[6] = 0x40; buf[7] = 0x01;	/* DF but offset 8 */
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v4_fragment, 2);
}

static void
ip_truncated_and_bad_version(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t i, n = build_v4_tcp(buf);

	(void)state;
	for (i = 0; i < 20; i++)
		assert_int_equal(ip_parse(buf, i, &p, &st), -1);
	assert_int_equal(st.drop_truncated, 20);
	n = build_v6_tcp(buf);
	for (i = 1; i < 40; i++)
		assert_int_equal(ip_parse(buf, i, &p, &st), -1);
	assert_int_equal(st.drop_truncated, 20 + 39);
	buf[0] = 0x50;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_bad_version, 1);
}

static void
ipv4_unknown_proto_and_bad_source(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v4_tcp(buf);

	(void)state;
	buf[9] = 47;	/* GRE */
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_unknown_proto, 1);
	build_v4_tcp(buf);
	buf[12] = 224;
	fix_v4_csum(buf);
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_bad_addr, 1);
}

static void
ipv6_valid_tcp_parses(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v6_tcp(buf);

	(void)state;
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	assert_int_equal(p.version, 6);
	assert_memory_equal(p.src, v6a, 16);
	assert_int_equal(p.l4len, 20);
	assert_true(ip_l4_csum_ok(&p));
	buf[59] ^= 0x10;
	assert_false(ip_l4_csum_ok(&p));
}

static void
ipv6_payload_length_lies(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v6_tcp(buf);

	(void)state;
	buf[5] = 21;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_payload_len, 1);
	buf[4] = 0xff;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_payload_len, 2);
}

/* v6 header + hop-by-hop (8) + destination options (16) + 20-byte TCP. */
static size_t
build_v6_ext(uint8_t *buf)
{
	uint8_t tcp[20] = { 0 };

	memset(buf, 0, 100);
	tcp[12] = 0x50;
	ip_write_hdr(buf, 6, v6a, v6b, 0, 8 + 16 + 20);
	buf[40] = 60; buf[41] = 0;	/* HBH -> DSTOPTS, 8 bytes */
	buf[42] = 1; buf[43] = 4;	/* PadN */
	buf[48] = IPPROTO_NS_TCP; buf[49] = 1;	/* DSTOPTS -> TCP, 16 bytes */
	buf[50] = 1; buf[51] = 12;
	memcpy(buf + 64, tcp, 20);
	return 84;
}

static void
ipv6_ext_chain_walked(void **state)
{
	uint8_t buf[128];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v6_ext(buf);

	(void)state;
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	assert_int_equal(p.proto, IPPROTO_NS_TCP);
	assert_ptr_equal(p.l4, buf + 64);
	assert_int_equal(p.l4len, 20);
}

static void
ipv6_ext_hdr_length_lies(void **state)
{
	uint8_t buf[128];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v6_ext(buf);

	(void)state;
	buf[49] = 200;	/* destination options claims 1608 bytes */
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_ext_hdr, 1);
	/* Chain header cut short by the payload length. */
	n = build_v6_ext(buf);
	buf[5] = 12;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_ext_hdr, 2);
	/* Hop-by-hop not first. */
	n = build_v6_ext(buf);
	buf[48] = 0;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_ext_hdr, 3);
}

static void
ipv6_ext_chain_too_long(void **state)
{
	uint8_t buf[40 + 8 * 12 + 20];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	int i;

	(void)state;
	memset(buf, 0, sizeof(buf));
	ip_write_hdr(buf, 6, v6a, v6b, 60, 8 * 12 + 20);
	for (i = 0; i < 12; i++)
		buf[40 + 8 * i] = i == 11 ? IPPROTO_NS_TCP : 60;
	assert_int_equal(ip_parse(buf, sizeof(buf), &p, &st), -1);
	assert_int_equal(st.drop_v6_bad_ext_hdr, 1);
}

static void
ipv6_fragment_dropped(void **state)
{
	uint8_t buf[128];
	struct ip_stats st = { 0 };
	struct ip_pkt p;
	size_t n = build_v6_ext(buf);

	(void)state;
	buf[40] = 44;
	assert_int_equal(ip_parse(buf, n, &p, &st), -1);
	assert_int_equal(st.drop_v6_fragment, 1);
}

static void
icmp_echo_v4_answered(void **state)
{
	uint8_t req[64], out[128];
	struct ip_stats st = { 0 };
	struct ip_pkt p, r;
	size_t outlen;

	(void)state;
	memset(req, 0, sizeof(req));
	ip_write_hdr(req, 4, v4a, v4b, IPPROTO_NS_ICMP, 16);
	req[20] = 8; req[24] = 0x12; req[25] = 0x34; req[27] = 7;
	memcpy(req + 28, "pingdata", 8);
	ip_set_l4_csum(req, 36, 2);
	assert_int_equal(ip_parse(req, 36, &p, &st), 0);
	assert_int_equal(ip_handle_icmp(&p, out, sizeof(out), &outlen, &st), 1);
	assert_int_equal(outlen, 36);
	assert_int_equal(ip_parse(out, outlen, &r, &st), 0);
	assert_int_equal(r.l4[0], 0);
	assert_memory_equal(r.src, v4b, 4);
	assert_memory_equal(r.dst, v4a, 4);
	assert_memory_equal(r.l4 + 4, req + 24, 12);
	assert_true(ip_l4_csum_ok(&r));
	assert_int_equal(st.icmp_echo_replied, 1);
	/* A corrupted request is not answered. */
	req[30] ^= 1;
	assert_int_equal(ip_handle_icmp(&p, out, sizeof(out), &outlen, &st), 0);
	assert_int_equal(st.drop_l4_bad_csum, 1);
}

static void
icmpv6_echo_answered_and_rs_dropped(void **state)
{
	uint8_t req[80], out[128];
	struct ip_stats st = { 0 };
	struct ip_pkt p, r;
	size_t outlen;

	(void)state;
	memset(req, 0, sizeof(req));
	ip_write_hdr(req, 6, v6a, v6b, IPPROTO_NS_ICMPV6, 12);
	req[40] = 128; req[45] = 9;
	memcpy(req + 48, "abcd", 4);
	ip_set_l4_csum(req, 52, 2);
	assert_int_equal(ip_parse(req, 52, &p, &st), 0);
	assert_int_equal(ip_handle_icmp(&p, out, sizeof(out), &outlen, &st), 1);
	assert_int_equal(ip_parse(out, outlen, &r, &st), 0);
	assert_int_equal(r.l4[0], 129);
	assert_true(ip_l4_csum_ok(&r));
	assert_memory_equal(r.dst, v6a, 16);
	/* Router solicitation: silently dropped, counted. */
	req[40] = 133; req[45] = 0;
	ip_set_l4_csum(req, 52, 2);
	assert_int_equal(ip_parse(req, 52, &p, &st), 0);
	assert_int_equal(ip_handle_icmp(&p, out, sizeof(out), &outlen, &st), 0);
	assert_int_equal(st.icmpv6_rs_dropped, 1);
	assert_int_equal(outlen, 0);
}

static void
icmp_unreach_port_quotes_original(void **state)
{
	uint8_t buf[64], out[700], big[1500];
	struct ip_stats st = { 0 };
	struct ip_pkt p, r;
	size_t n = build_v4_tcp(buf), m;

	(void)state;
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	m = icmp_build_unreach(&p, ICMP_UNREACH_PORT, out, sizeof(out));
	assert_int_equal(m, 20 + 8 + 40);
	assert_int_equal(ip_parse(out, m, &r, &st), 0);
	assert_int_equal(r.proto, IPPROTO_NS_ICMP);
	assert_int_equal(r.l4[0], 3);
	assert_int_equal(r.l4[1], 3);
	assert_memory_equal(r.dst, v4a, 4);
	assert_memory_equal(r.l4 + 8, buf, 40);
	assert_true(ip_l4_csum_ok(&r));
	/* Never an error about an error. */
	assert_int_equal(icmp_build_unreach(&r, ICMP_UNREACH_PORT, out,
	    sizeof(out)), 0);
	/* Long originals are cut to a 576-byte reply. */
	memset(big, 0, sizeof(big));
	ip_write_hdr(big, 4, v4a, v4b, IPPROTO_NS_UDP, 1000);
	assert_int_equal(ip_parse(big, 1020, &p, &st), 0);
	assert_int_equal(icmp_build_unreach(&p, ICMP_UNREACH_HOST, out,
	    sizeof(out)), 576);
}

static void
icmpv6_unreach_host(void **state)
{
	uint8_t buf[64], out[1400];
	struct ip_stats st = { 0 };
	struct ip_pkt p, r;
	size_t n = build_v6_tcp(buf), m;

	(void)state;
	assert_int_equal(ip_parse(buf, n, &p, &st), 0);
	m = icmp_build_unreach(&p, ICMP_UNREACH_HOST, out, sizeof(out));
	assert_int_equal(m, 40 + 8 + 60);
	assert_int_equal(ip_parse(out, m, &r, &st), 0);
	assert_int_equal(r.l4[0], 1);
	assert_int_equal(r.l4[1], 3);
	assert_true(ip_l4_csum_ok(&r));
}

static void
udp_v4_zero_csum_accepted_v6_rejected(void **state)
{
	uint8_t buf[64];
	struct ip_stats st = { 0 };
	struct ip_pkt p;

	(void)state;
	memset(buf, 0, sizeof(buf));
	ip_write_hdr(buf, 4, v4a, v4b, IPPROTO_NS_UDP, 12);
	buf[25] = 12;
	assert_int_equal(ip_parse(buf, 32, &p, &st), 0);
	assert_true(ip_l4_csum_ok(&p));
	memset(buf, 0, sizeof(buf));
	ip_write_hdr(buf, 6, v6a, v6b, IPPROTO_NS_UDP, 12);
	buf[45] = 12;
	assert_int_equal(ip_parse(buf, 52, &p, &st), 0);
	assert_false(ip_l4_csum_ok(&p));
	ip_set_l4_csum(buf, 52, 6);
	assert_true(ip_l4_csum_ok(&p));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checksum_rfc1071_example),
		cmocka_unit_test(checksum_fast_matches_reference),
		cmocka_unit_test(ipv4_valid_tcp_parses),
		cmocka_unit_test(ipv4_total_length_lies),
		cmocka_unit_test(ipv4_ihl_lies),
		cmocka_unit_test(ipv4_bad_header_csum),
		cmocka_unit_test(ipv4_options_skipped),
		cmocka_unit_test(ipv4_fragments_dropped),
		cmocka_unit_test(ip_truncated_and_bad_version),
		cmocka_unit_test(ipv4_unknown_proto_and_bad_source),
		cmocka_unit_test(ipv6_valid_tcp_parses),
		cmocka_unit_test(ipv6_payload_length_lies),
		cmocka_unit_test(ipv6_ext_chain_walked),
		cmocka_unit_test(ipv6_ext_hdr_length_lies),
		cmocka_unit_test(ipv6_ext_chain_too_long),
		cmocka_unit_test(ipv6_fragment_dropped),
		cmocka_unit_test(icmp_echo_v4_answered),
		cmocka_unit_test(icmpv6_echo_answered_and_rs_dropped),
		cmocka_unit_test(icmp_unreach_port_quotes_original),
		cmocka_unit_test(icmpv6_unreach_host),
		cmocka_unit_test(udp_v4_zero_csum_accepted_v6_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
