/*
 * Unit tests for proxyd/dns.c: answers shaped like real resolver traffic
 * (test/unit/data/px_dns_msgs.h), every prefix of them, and every length or
 * count that can lie — header counts, rdlength, names inside rdata,
 * compression pointers (self, forward, loops, long chains), name and label
 * sizes, EDNS OPT placement — plus presentation escaping and TCP framing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyd/dns.h"
#include "test/unit/data/px_dns_msgs.h"
#include "test/unit/helpers/bytes.h"

#define FIX(n)	{ #n, px_dns_##n, sizeof(px_dns_##n) }

static const struct fixture {
	const char		*name;
	const unsigned char	*p;
	size_t			 n;
} fixtures[] = {
	FIX(a_example), FIX(cname_github), FIX(mx_gmail), FIX(nxdomain_soa),
	FIX(txt_example), FIX(srv_xmpp), FIX(aaaa_example), FIX(ptr_reverse),
	FIX(query_dig), FIX(https_raw), FIX(ns_glue),
};

/* --- builder ------------------------------------------------------------- */

static void
header(struct bld *b, unsigned flags, unsigned qd, unsigned an, unsigned ns,
    unsigned ar)
{
	b->n = 0;
	put16(b, 0xabcd);
	put16(b, flags);
	put16(b, qd);
	put16(b, an);
	put16(b, ns);
	put16(b, ar);
}

/* "example.com" question at offset 12 (names can point at 12). */
static void
question(struct bld *b, unsigned type)
{
	putmem(b, "\x07" "example" "\x03" "com", 12);
	put8(b, 0);
	put16(b, type);
	put16(b, 1);
}

static void
rr_head(struct bld *b, const void *name, size_t nlen, unsigned type,
    unsigned rdlen)
{
	putmem(b, name, nlen);
	put16(b, type);
	put16(b, 1);
	put32(b, 300);
	put16(b, rdlen);
}

static enum dns_error
parse(const struct bld *b, struct dns_msg *m)
{
	return dns_parse(b->d, b->n, m);
}

static void
expect_error(const struct bld *b, enum dns_error err)
{
	struct dns_msg m;
	enum dns_error got = parse(b, &m);

	if (got != err)
		fail_msg("want '%s' got '%s'", dns_error_str(err),
		    dns_error_str(got));
	dns_msg_free(&m);
}

/* --- real-shaped messages --------------------------------------------------- */

static void
a_answer_with_edns(void **state)
{
	struct dns_msg m;
	char buf[128];

	(void)state;
	assert_int_equal(dns_parse(px_dns_a_example, sizeof(px_dns_a_example),
	    &m), DNS_OK);
	assert_int_equal(m.id, 0x3c1f);
	assert_true(m.qr && m.rd && m.ra);
	assert_false(m.aa || m.tc);
	assert_int_equal(m.rcode, 0);
	assert_string_equal(dns_rcode_str(m.rcode), "NOERROR");
	assert_int_equal(m.nquestions, 1);
	assert_string_equal(m.questions[0].name, "example.com");
	assert_int_equal(m.questions[0].type, DNS_T_A);
	assert_int_equal(m.nrrs, 2);
	assert_string_equal(m.rrs[0].name, "example.com");
	assert_int_equal(m.rrs[0].ttl, 3600);
	assert_true(m.rrs[0].decoded);
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "93.184.215.14");
	assert_int_equal(m.rrs[1].section, DNS_SEC_ADDITIONAL);
	assert_true(m.has_edns);
	assert_int_equal(m.edns_udp_size, 1232);
	assert_false(m.edns_do);
	dns_msg_free(&m);
}

static void
cname_chain_and_ns_glue_sections(void **state)
{
	struct dns_msg m;

	(void)state;
	assert_int_equal(dns_parse(px_dns_cname_github,
	    sizeof(px_dns_cname_github), &m), DNS_OK);
	assert_int_equal(m.rrs[0].type, DNS_T_CNAME);
	assert_string_equal(m.rrs[0].u.target, "github.com");
	assert_string_equal(m.rrs[1].name, "github.com");
	dns_msg_free(&m);

	assert_int_equal(dns_parse(px_dns_ns_glue, sizeof(px_dns_ns_glue), &m),
	    DNS_OK);
	assert_int_equal(m.nrrs, 4);
	assert_int_equal(m.rrs[1].section, DNS_SEC_ANSWER);
	assert_string_equal(m.rrs[1].u.target, "b.iana-servers.net");
	assert_int_equal(m.rrs[2].section, DNS_SEC_ADDITIONAL);
	assert_string_equal(m.rrs[3].name, "b.iana-servers.net");
	dns_msg_free(&m);
}

static void
mx_names_through_nested_pointers(void **state)
{
	struct dns_msg m;
	char buf[128];

	(void)state;
	assert_int_equal(dns_parse(px_dns_mx_gmail, sizeof(px_dns_mx_gmail), &m),
	    DNS_OK);
	assert_int_equal(m.nrrs, 5);
	assert_int_equal(m.rrs[4].u.mx.preference, 40);
	assert_string_equal(m.rrs[4].u.mx.exchange,
	    "alt4.gmail-smtp-in.l.google.com");
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "5 gmail-smtp-in.l.google.com");
	dns_msg_free(&m);
}

static void
nxdomain_with_soa_authority(void **state)
{
	struct dns_msg m;
	char buf[256];

	(void)state;
	assert_int_equal(dns_parse(px_dns_nxdomain_soa,
	    sizeof(px_dns_nxdomain_soa), &m), DNS_OK);
	assert_int_equal(m.rcode, 3);
	assert_string_equal(dns_rcode_str(m.rcode), "NXDOMAIN");
	assert_int_equal(m.ancount, 0);
	assert_int_equal(m.rrs[0].section, DNS_SEC_AUTHORITY);
	assert_string_equal(m.rrs[0].u.soa.mname, "ns.icann.org");
	assert_string_equal(m.rrs[0].u.soa.rname, "noc.dns.icann.org");
	assert_int_equal(m.rrs[0].u.soa.serial, 2024081466);
	assert_int_equal(m.rrs[0].u.soa.minimum, 3600);
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "ns.icann.org noc.dns.icann.org 2024081466 7200 3600 1209600 3600");
	dns_msg_free(&m);
}

static void
txt_strings_quoted_and_escaped(void **state)
{
	struct dns_msg m;

	(void)state;
	assert_int_equal(dns_parse(px_dns_txt_example, sizeof(px_dns_txt_example),
	    &m), DNS_OK);
	assert_string_equal(m.rrs[0].u.txt.text, "\"v=spf1 -all\"");
	assert_int_equal(m.rrs[1].u.txt.nstrings, 3);
	assert_string_equal(m.rrs[1].u.txt.text,
	    "\"say \\\"hi\\\"\\\\ok\" \"\" \"\\000\\255;x\"");
	dns_msg_free(&m);
}

static void
srv_aaaa_ptr_https_decoded(void **state)
{
	struct dns_msg m;
	char buf[128];

	(void)state;
	assert_int_equal(dns_parse(px_dns_srv_xmpp, sizeof(px_dns_srv_xmpp), &m),
	    DNS_OK);
	assert_true(m.aa);
	assert_int_equal(m.rrs[0].u.srv.port, 5222);
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "5 0 5222 xmpp.example.com");
	assert_string_equal(m.questions[0].name, "_xmpp-client._tcp.example.com");
	dns_msg_free(&m);

	assert_int_equal(dns_parse(px_dns_aaaa_example,
	    sizeof(px_dns_aaaa_example), &m), DNS_OK);
	assert_true(m.ad);
	assert_true(m.edns_do);
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "2606:2800:220:1::abcd");
	assert_string_equal(dns_rr_format(&m.rrs[1], buf, sizeof(buf)), "::1");
	dns_msg_free(&m);

	assert_int_equal(dns_parse(px_dns_ptr_reverse,
	    sizeof(px_dns_ptr_reverse), &m), DNS_OK);
	assert_string_equal(m.rrs[0].u.target, "host.example.net");
	dns_msg_free(&m);

	assert_int_equal(dns_parse(px_dns_https_raw, sizeof(px_dns_https_raw),
	    &m), DNS_OK);
	assert_false(m.rrs[0].decoded);
	assert_int_equal(m.rrs[0].rdlength, 13);
	assert_string_equal(dns_type_str(m.rrs[0].type), "HTTPS");
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, sizeof(buf)),
	    "\\# 13 00010000010006026833026832");
	/* a short output buffer truncates, still terminated */
	assert_string_equal(dns_rr_format(&m.rrs[0], buf, 10), "\\# 13 00");
	dns_msg_free(&m);
}

static void
dig_query_flags(void **state)
{
	struct dns_msg m;

	(void)state;
	assert_int_equal(dns_parse(px_dns_query_dig, sizeof(px_dns_query_dig),
	    &m), DNS_OK);
	assert_false(m.qr);
	assert_true(m.rd);
	assert_true(m.ad);
	assert_int_equal(m.opcode, 0);
	assert_true(m.has_edns);
	assert_int_equal(m.nrrs, 1);
	dns_msg_free(&m);
}

static void
every_prefix_and_trailing_byte_rejected(void **state)
{
	uint8_t buf[1024];
	struct dns_msg m;

	(void)state;
	for (size_t k = 0; k < sizeof(fixtures) / sizeof(fixtures[0]); k++) {
		for (size_t i = 0; i < fixtures[k].n; i++) {
			if (dns_parse(fixtures[k].p, i, &m) == DNS_OK)
				fail_msg("%s: prefix %zu parsed", fixtures[k].name, i);
			dns_msg_free(&m);
		}
		memcpy(buf, fixtures[k].p, fixtures[k].n);
		buf[fixtures[k].n] = 0;
		assert_int_equal(dns_parse(buf, fixtures[k].n + 1, &m),
		    DNS_ERR_TRAILING_DATA);
		dns_msg_free(&m);
	}
}

/* --- counts and lengths that lie ----------------------------------------------- */

static void
header_counts_exceed_data(void **state)
{
	struct bld b;

	(void)state;
	header(&b, 0x8180, 0, 0, 0, 0);
	b.n = 11;
	expect_error(&b, DNS_ERR_SHORT_HEADER);

	header(&b, 0x0100, 2, 0, 0, 0);
	question(&b, DNS_T_A);
	expect_error(&b, DNS_ERR_QUESTION_TRUNCATED);
	header(&b, 0x0100, 0xffff, 0xffff, 0xffff, 0xffff);
	expect_error(&b, DNS_ERR_QUESTION_TRUNCATED);
	/* question without its type/class */
	header(&b, 0x0100, 1, 0, 0, 0);
	question(&b, DNS_T_A);
	b.n -= 2;
	expect_error(&b, DNS_ERR_QUESTION_TRUNCATED);

	header(&b, 0x8180, 1, 2, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_A, 4);
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_RR_TRUNCATED);
	/* authority and additional counts too */
	b.d[7] = 1;
	b.d[9] = 1;
	expect_error(&b, DNS_ERR_RR_TRUNCATED);
	b.d[9] = 0;
	b.d[11] = 1;
	expect_error(&b, DNS_ERR_RR_TRUNCATED);
	/* RR fixed part cut short */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_A, 4);
	b.n -= 3;
	expect_error(&b, DNS_ERR_RR_TRUNCATED);
}

static void
truncated_flag_allows_missing_records(void **state)
{
	struct bld b;
	struct dns_msg m;

	(void)state;
	header(&b, 0x8380, 1, 3, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_A, 4);
	putmem(&b, "\x01\x02\x03\x04", 4);
	assert_int_equal(parse(&b, &m), DNS_OK);
	assert_true(m.tc);
	assert_true(m.incomplete);
	assert_int_equal(m.nrrs, 1);
	dns_msg_free(&m);
	/* but not a record cut in the middle */
	b.n -= 2;
	expect_error(&b, DNS_ERR_RDLENGTH);
}

static void
rdlength_lies(void **state)
{
	struct bld b;

	(void)state;
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_A, 5);
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_RDLENGTH);
	/* consistent with the message, wrong for A / AAAA */
	put8(&b, 5);
	expect_error(&b, DNS_ERR_RDATA);
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_AAAA);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_AAAA, 4);
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_RDATA);
	/* a huge rdlength */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, 99, 0xffff);
	expect_error(&b, DNS_ERR_RDLENGTH);
}

static void
rdata_names_must_fill_rdata(void **state)
{
	struct bld b;

	(void)state;
	/* CNAME rdlength 4 but the name (c0 0c) is 2: bytes left over */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_CNAME);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_CNAME, 4);
	putmem(&b, "\xc0\x0c\x00\x00", 4);
	expect_error(&b, DNS_ERR_RDATA);
	/* name runs past rdlength (into the next bytes of the message) */
	header(&b, 0x8180, 1, 1, 0, 1);
	question(&b, DNS_T_CNAME);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_CNAME, 2);
	putmem(&b, "\x01x\x00", 3);	/* name is 3 bytes */
	expect_error(&b, DNS_ERR_RDATA);
	/* MX too short for its preference + name */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_MX);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_MX, 2);
	putmem(&b, "\x00\x05", 2);
	expect_error(&b, DNS_ERR_RDATA);
	/* SRV too short */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_SRV);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_SRV, 6);
	putmem(&b, "\x00\x05\x00\x00\x14\x66", 6);
	expect_error(&b, DNS_ERR_RDATA);
	/* SOA missing its 20 bytes of numbers */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_SOA);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_SOA, 8);
	putmem(&b, "\xc0\x0c\xc0\x0c\x00\x00\x00\x01", 8);
	expect_error(&b, DNS_ERR_RDATA);
	/* TXT string longer than rdata, and empty TXT */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_TXT);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_TXT, 3);
	putmem(&b, "\x05" "ab", 3);
	expect_error(&b, DNS_ERR_RDATA);
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_TXT);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_TXT, 0);
	expect_error(&b, DNS_ERR_RDATA);
}

/* --- names ---------------------------------------------------------------------- */

static void
compression_pointer_loops_rejected(void **state)
{
	struct bld b;

	(void)state;
	/* answer name pointing at itself */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x1d", 2, DNS_T_A, 4);	/* offset 29 = itself */
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_POINTER_NOT_BACKWARD);
	/* forward pointer */
	b.d[30] = 0x40;
	expect_error(&b, DNS_ERR_POINTER_NOT_BACKWARD);
	/* two-step loop: label then pointer back to the label's start */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\x01" "a" "\xc0\x1d", 4, DNS_T_A, 4);
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_POINTER_NOT_BACKWARD);
	/* A -> B -> A: the record at 29 and the one at 45 point at each other */
	header(&b, 0x8180, 1, 2, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x2d", 2, DNS_T_A, 4);		/* 29 -> 45 fwd */
	putmem(&b, "\x01\x02\x03\x04", 4);
	rr_head(&b, "\xc0\x1d", 2, DNS_T_A, 4);		/* 45 -> 29 */
	putmem(&b, "\x01\x02\x03\x04", 4);
	expect_error(&b, DNS_ERR_POINTER_NOT_BACKWARD);
	/* a pointer into the header that then jumps forward again */
	header(&b, 0x8180, 1, 0, 0, 0);
	b.d[0] = 0xc0;
	b.d[1] = 0x0c;
	putmem(&b, "\xc0\x00", 2);
	put16(&b, 1);
	put16(&b, 1);
	expect_error(&b, DNS_ERR_POINTER_NOT_BACKWARD);
}

static void
pointer_chain_bounded(void **state)
{
	uint8_t buf[400];
	char out[DNS_NAME_TEXT_MAX];
	size_t pos, n = 0;

	(void)state;
	/* root at 0, then pointers each to the previous one */
	buf[n++] = 0;
	for (int i = 0; i < 100; i++) {
		buf[n] = 0xc0;
		buf[n + 1] = (uint8_t)(i == 0 ? 0 : n - 2);
		n += 2;
	}
	/* 64 jumps: fine */
	pos = 1 + 2 * 63;
	assert_int_equal(dns_read_name(buf, n, &pos, out), DNS_OK);
	assert_string_equal(out, ".");
	assert_int_equal(pos, 1 + 2 * 64);
	/* 65: refused */
	pos = 1 + 2 * 64;
	assert_int_equal(dns_read_name(buf, n, &pos, out),
	    DNS_ERR_TOO_MANY_POINTERS);
}

static void
name_and_label_sizes_bounded(void **state)
{
	uint8_t buf[600];
	char out[DNS_NAME_TEXT_MAX];
	size_t pos, n = 0;

	(void)state;
	/* 63+63+63+61 labels: 255 wire bytes exactly */
	for (int l = 0; l < 4; l++) {
		size_t len = l < 3 ? 63 : 61;

		buf[n++] = (uint8_t)len;
		memset(buf + n, 'a' + l, len);
		n += len;
	}
	buf[n++] = 0;
	assert_int_equal(n, 255);
	pos = 0;
	assert_int_equal(dns_read_name(buf, n, &pos, out), DNS_OK);
	assert_int_equal(strlen(out), 253);
	/* one byte more */
	buf[192] = 62;
	memmove(buf + 193 + 62, buf + 193 + 61, 1);
	buf[193 + 61] = 'd';
	buf[193 + 62] = 0;
	pos = 0;
	assert_int_equal(dns_read_name(buf, 256, &pos, out),
	    DNS_ERR_NAME_TOO_LONG);
	/* too long only through a pointer: 200-byte name + 60-byte prefix */
	n = 0;
	for (int l = 0; l < 4; l++) {
		buf[n++] = 49;
		memset(buf + n, 'x', 49);
		n += 49;
	}
	buf[n++] = 0;		/* 201 bytes at offset 0 */
	pos = n;
	buf[n++] = 59;
	memset(buf + n, 'y', 59);
	n += 59;
	buf[n++] = 0xc0;
	buf[n++] = 0;
	assert_int_equal(dns_read_name(buf, n, &pos, out), DNS_ERR_NAME_TOO_LONG);
	/* label types 01 and 10 */
	pos = 0;
	assert_int_equal(dns_read_name((const uint8_t *)"\x40" "a\0", 3, &pos,
	    out), DNS_ERR_LABEL_TYPE);
	pos = 0;
	assert_int_equal(dns_read_name((const uint8_t *)"\x81" "a\0", 3, &pos,
	    out), DNS_ERR_LABEL_TYPE);
	/* label runs past the end; pointer cut in half */
	pos = 0;
	assert_int_equal(dns_read_name((const uint8_t *)"\x05" "ab", 3, &pos,
	    out), DNS_ERR_NAME_TRUNCATED);
	pos = 1;
	assert_int_equal(dns_read_name((const uint8_t *)"\x00\xc0", 2, &pos,
	    out), DNS_ERR_NAME_TRUNCATED);
}

static void
name_presentation_escapes(void **state)
{
	static const uint8_t wire[] =
	    "\x03" "a.b" "\x02" "\\\"" "\x03" "x y" "\x02" "\x00\xff"
	    "\x04" "semi" "\x01;" "\x00";
	char out[DNS_NAME_TEXT_MAX];
	size_t pos = 0;

	(void)state;
	assert_int_equal(dns_read_name(wire, sizeof(wire) - 1, &pos, out), DNS_OK);
	assert_string_equal(out,
	    "a\\.b.\\\\\\\".x\\032y.\\000\\255.semi.\\;");
	assert_int_equal(pos, sizeof(wire) - 1);
	pos = 0;
	assert_int_equal(dns_read_name((const uint8_t *)"", 1, &pos, out), DNS_OK);
	assert_string_equal(out, ".");
}

static void
edns_opt_rules(void **state)
{
	struct bld b;
	struct dns_msg m;

	(void)state;
	/* OPT in the answer section */
	header(&b, 0x8180, 1, 1, 0, 0);
	question(&b, DNS_T_A);
	rr_head(&b, "", 1, DNS_T_OPT, 0);
	expect_error(&b, DNS_ERR_BAD_OPT);
	/* two OPTs */
	header(&b, 0x8180, 1, 0, 0, 2);
	question(&b, DNS_T_A);
	rr_head(&b, "", 1, DNS_T_OPT, 0);
	rr_head(&b, "", 1, DNS_T_OPT, 0);
	expect_error(&b, DNS_ERR_BAD_OPT);
	/* OPT owned by a name other than the root */
	header(&b, 0x8180, 1, 0, 0, 1);
	question(&b, DNS_T_A);
	rr_head(&b, "\xc0\x0c", 2, DNS_T_OPT, 0);
	expect_error(&b, DNS_ERR_BAD_OPT);
	/* extended rcode: BADVERS = 16 */
	header(&b, 0x8180, 1, 0, 0, 1);
	question(&b, DNS_T_A);
	putmem(&b, "\x00\x00\x29\x04\xd0\x01\x00\x00\x00\x00\x00", 11);
	assert_int_equal(parse(&b, &m), DNS_OK);
	assert_int_equal(m.rcode, 16);
	assert_string_equal(dns_rcode_str(m.rcode), "BADVERS");
	dns_msg_free(&m);
}

static void
many_records_parsed_but_store_bounded(void **state)
{
	struct bld b;
	struct dns_msg m;

	(void)state;
	header(&b, 0x8180, 1, 300, 0, 0);
	question(&b, DNS_T_A);
	for (int i = 0; i < 300; i++) {
		rr_head(&b, "\xc0\x0c", 2, DNS_T_A, 4);
		put32(&b, (uint32_t)i);
	}
	assert_int_equal(parse(&b, &m), DNS_OK);
	assert_int_equal(m.nrrs, DNS_MAX_STORED_RRS);
	assert_true(m.store_truncated);
	assert_int_equal(m.rrs[255].u.a[3], 255);
	dns_msg_free(&m);
	/* a lie after the stored ones is still found */
	b.d[b.n - 6] = 0;
	b.d[b.n - 5] = 5;
	expect_error(&b, DNS_ERR_RDLENGTH);
}

static void
tcp_length_framing(void **state)
{
	uint8_t buf[512];
	const uint8_t *msg;
	size_t n, mlen, used;
	enum dns_error err = DNS_OK;

	(void)state;
	n = 0;
	buf[n++] = 0;
	buf[n++] = (uint8_t)sizeof(px_dns_a_example);
	memcpy(buf + n, px_dns_a_example, sizeof(px_dns_a_example));
	n += sizeof(px_dns_a_example);
	buf[n++] = 0;
	buf[n++] = (uint8_t)sizeof(px_dns_query_dig);
	memcpy(buf + n, px_dns_query_dig, sizeof(px_dns_query_dig));
	n += sizeof(px_dns_query_dig);

	for (size_t i = 0; i < 2 + sizeof(px_dns_a_example); i++)
		assert_int_equal(dns_tcp_frame(buf, i, &msg, &mlen, &used, &err), 0);
	assert_int_equal(dns_tcp_frame(buf, n, &msg, &mlen, &used, &err), 1);
	assert_int_equal(mlen, sizeof(px_dns_a_example));
	assert_ptr_equal(msg, buf + 2);
	assert_int_equal(dns_tcp_frame(buf + used, n - used, &msg, &mlen, &used,
	    &err), 1);
	assert_int_equal(mlen, sizeof(px_dns_query_dig));
	assert_int_equal(dns_tcp_frame((const uint8_t *)"\x00\x00", 2, &msg,
	    &mlen, &used, &err), -1);
	assert_int_equal(err, DNS_ERR_TCP_LENGTH);
	assert_int_equal(dns_tcp_frame((const uint8_t *)"\x00\x0b", 2, &msg,
	    &mlen, &used, &err), -1);
}

static void
every_error_has_a_distinct_string(void **state)
{
	(void)state;
	for (int i = 0; i < DNS_ERR__COUNT; i++) {
		assert_string_not_equal(dns_error_str((enum dns_error)i),
		    "unknown error");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(dns_error_str((enum dns_error)i),
			    dns_error_str((enum dns_error)j));
	}
	assert_null(dns_type_str(9999));
	assert_null(dns_rcode_str(12));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_answer_with_edns),
		cmocka_unit_test(cname_chain_and_ns_glue_sections),
		cmocka_unit_test(mx_names_through_nested_pointers),
		cmocka_unit_test(nxdomain_with_soa_authority),
		cmocka_unit_test(txt_strings_quoted_and_escaped),
		cmocka_unit_test(srv_aaaa_ptr_https_decoded),
		cmocka_unit_test(dig_query_flags),
		cmocka_unit_test(every_prefix_and_trailing_byte_rejected),
		cmocka_unit_test(header_counts_exceed_data),
		cmocka_unit_test(truncated_flag_allows_missing_records),
		cmocka_unit_test(rdlength_lies),
		cmocka_unit_test(rdata_names_must_fill_rdata),
		cmocka_unit_test(compression_pointer_loops_rejected),
		cmocka_unit_test(pointer_chain_bounded),
		cmocka_unit_test(name_and_label_sizes_bounded),
		cmocka_unit_test(name_presentation_escapes),
		cmocka_unit_test(edns_opt_rules),
		cmocka_unit_test(many_records_parsed_but_store_bounded),
		cmocka_unit_test(tcp_length_framing),
		cmocka_unit_test(every_error_has_a_distinct_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
