/*
 * IPv4/IPv6 validation and building for netstackd (see ip.h).
 *
 * Rule: no byte is read before the length that covers it has been checked
 * against the buffer.  Fragments are dropped, not reassembled: TCP from the
 * captured applications always runs with DF/PMTU discovery against our TUN
 * MTU, so only oversized UDP datagrams fragment; reassembly would add a
 * memory-exhaustion surface for a case the counters will show if it matters.
 */
#include <string.h>

#include "netstackd/checksum.h"
#include "netstackd/ip.h"

#define IPV6_EXT_HOPOPTS	0
#define IPV6_EXT_ROUTING	43
#define IPV6_EXT_FRAGMENT	44
#define IPV6_EXT_AH		51
#define IPV6_EXT_DSTOPTS	60

#define ICMP_ECHOREPLY		0
#define ICMP_UNREACH		3
#define ICMP_SOURCEQUENCH	4
#define ICMP_REDIRECT		5
#define ICMP_ECHO		8
#define ICMP_TIMXCEED		11
#define ICMP_PARAMPROB		12
#define ICMP6_UNREACH		1
#define ICMP6_ECHO		128
#define ICMP6_ECHOREPLY		129
#define ICMP6_ROUTER_SOLICIT	133

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static int
parse_v4(const uint8_t *buf, size_t len, struct ip_pkt *pkt, struct ip_stats *st)
{
	size_t ihl, total;
	uint16_t frag;

	if (len < IPV4_HDR_LEN) {
		st->drop_truncated++;
		return -1;
	}
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	if (ihl < IPV4_HDR_LEN || ihl > len) {
		st->drop_v4_bad_ihl++;
		return -1;
	}
	total = rd16(buf + 2);
	if (total < ihl || total > len) {
		st->drop_v4_bad_total_len++;
		return -1;
	}
	/* The header checksum covers the options too. */
	if (csum_fold(csum_add(0, buf, ihl)) != 0) {
		st->drop_v4_bad_csum++;
		return -1;
	}
	frag = rd16(buf + 6);
	if ((frag & 0x2000) || (frag & 0x1fff)) {
		st->drop_v4_fragment++;
		return -1;
	}
	/* Multicast/broadcast/unspecified sources are never a real peer. */
	if (buf[12] >= 224 || (buf[12] == 0 && buf[13] == 0 && buf[14] == 0 &&
	    buf[15] == 0)) {
		st->drop_bad_addr++;
		return -1;
	}
	memset(pkt, 0, sizeof(*pkt));
	pkt->version = 4;
	pkt->ttl = buf[8];
	pkt->proto = buf[9];
	memcpy(pkt->src, buf + 12, 4);
	memcpy(pkt->dst, buf + 16, 4);
	pkt->l3 = buf;
	pkt->l3len = total;
	/* Options (ihl > 20) are skipped: we act on none of them. */
	pkt->l4 = buf + ihl;
	pkt->l4len = total - ihl;
	return 0;
}

static int
parse_v6(const uint8_t *buf, size_t len, struct ip_pkt *pkt, struct ip_stats *st)
{
	size_t total, off, hlen;
	uint8_t next;
	int n;

	if (len < IPV6_HDR_LEN) {
		st->drop_truncated++;
		return -1;
	}
	/* Payload length 0 with a hop-by-hop jumbo option is a jumbogram: a TUN
	 * never carries one, so 0 is only valid for an empty payload. */
	total = IPV6_HDR_LEN + (size_t)rd16(buf + 4);
	if (total > len) {
		st->drop_v6_bad_payload_len++;
		return -1;
	}
	if (buf[8] == 0xff || memcmp(buf + 8, (const uint8_t[16]){ 0 }, 16) == 0) {
		st->drop_bad_addr++;
		return -1;
	}
	next = buf[6];
	off = IPV6_HDR_LEN;
	for (n = 0;; n++) {
		if (next != IPV6_EXT_HOPOPTS && next != IPV6_EXT_ROUTING &&
		    next != IPV6_EXT_DSTOPTS && next != IPV6_EXT_FRAGMENT &&
		    next != IPV6_EXT_AH)
			break;
		if (n >= IPV6_MAX_EXT_HDRS || total - off < 8) {
			st->drop_v6_bad_ext_hdr++;
			return -1;
		}
		if (next == IPV6_EXT_FRAGMENT) {
			st->drop_v6_fragment++;
			return -1;
		}
		/* Hop-by-hop options are only valid right after the header. */
		if (next == IPV6_EXT_HOPOPTS && off != IPV6_HDR_LEN) {
			st->drop_v6_bad_ext_hdr++;
			return -1;
		}
		if (next == IPV6_EXT_AH)
			hlen = ((size_t)buf[off + 1] + 2) * 4;
		else
			hlen = ((size_t)buf[off + 1] + 1) * 8;
		if (hlen > total - off) {
			st->drop_v6_bad_ext_hdr++;
			return -1;
		}
		next = buf[off];
		off += hlen;
	}
	memset(pkt, 0, sizeof(*pkt));
	pkt->version = 6;
	pkt->ttl = buf[7];
	pkt->proto = next;
	memcpy(pkt->src, buf + 8, 16);
	memcpy(pkt->dst, buf + 24, 16);
	pkt->l3 = buf;
	pkt->l3len = total;
	pkt->l4 = buf + off;
	pkt->l4len = total - off;
	return 0;
}

int
ip_parse(const uint8_t *buf, size_t len, struct ip_pkt *pkt, struct ip_stats *st)
{
	int rc;

	st->rx_packets++;
	if (len < 1) {
		st->drop_truncated++;
		return -1;
	}
	switch (buf[0] >> 4) {
	case 4:
		rc = parse_v4(buf, len, pkt, st);
		break;
	case 6:
		rc = parse_v6(buf, len, pkt, st);
		break;
	default:
		st->drop_bad_version++;
		return -1;
	}
	if (rc != 0)
		return rc;
	switch (pkt->proto) {
	case IPPROTO_NS_TCP:
	case IPPROTO_NS_UDP:
		return 0;
	case IPPROTO_NS_ICMP:
		if (pkt->version == 4)
			return 0;
		break;
	case IPPROTO_NS_ICMPV6:
		if (pkt->version == 6)
			return 0;
		break;
	default:
		break;
	}
	st->drop_unknown_proto++;
	return -1;
}

static uint32_t
pseudo_sum(const struct ip_pkt *pkt, size_t l4len)
{
	if (pkt->version == 4)
		return csum_pseudo_v4(pkt->src, pkt->dst, pkt->proto,
		    (uint32_t)l4len);
	return csum_pseudo_v6(pkt->src, pkt->dst, pkt->proto, (uint32_t)l4len);
}

int
ip_l4_csum_ok(const struct ip_pkt *pkt)
{
	uint32_t sum;

	if (pkt->proto == IPPROTO_NS_UDP && pkt->version == 4 &&
	    pkt->l4len >= 8 && rd16(pkt->l4 + 6) == 0)
		return 1;
	if (pkt->proto == IPPROTO_NS_ICMP)
		sum = 0;	/* ICMPv4 has no pseudo-header */
	else
		sum = pseudo_sum(pkt, pkt->l4len);
	return csum_fold(csum_add(sum, pkt->l4, pkt->l4len)) == 0;
}

size_t
ip_hdr_len(int version)
{
	return version == 4 ? IPV4_HDR_LEN : IPV6_HDR_LEN;
}

void
ip_write_hdr(uint8_t *out, int version, const uint8_t *src, const uint8_t *dst,
    uint8_t proto, size_t l4len)
{
	if (version == 4) {
		out[0] = 0x45;
		out[1] = 0;
		wr16(out + 2, (uint16_t)(IPV4_HDR_LEN + l4len));
		wr16(out + 4, 0);	/* ID: unused, DF is set */
		wr16(out + 6, 0x4000);
		out[8] = IP_DEFAULT_TTL;
		out[9] = proto;
		wr16(out + 10, 0);
		memcpy(out + 12, src, 4);
		memcpy(out + 16, dst, 4);
		wr16(out + 10, csum_fold(csum_add(0, out, IPV4_HDR_LEN)));
	} else {
		out[0] = 0x60;
		out[1] = out[2] = out[3] = 0;
		wr16(out + 4, (uint16_t)l4len);
		out[6] = proto;
		out[7] = IP_DEFAULT_TTL;
		memcpy(out + 8, src, 16);
		memcpy(out + 24, dst, 16);
	}
}

void
ip_set_l4_csum(uint8_t *pkt, size_t len, size_t csum_off)
{
	size_t hl = (pkt[0] >> 4) == 4 ? IPV4_HDR_LEN : IPV6_HDR_LEN;
	uint8_t *l4 = pkt + hl;
	size_t l4len = len - hl;
	uint32_t sum;
	uint16_t c;

	wr16(l4 + csum_off, 0);
	if (hl == IPV4_HDR_LEN && pkt[9] == IPPROTO_NS_ICMP)
		sum = 0;
	else if (hl == IPV4_HDR_LEN)
		sum = csum_pseudo_v4(pkt + 12, pkt + 16, pkt[9], (uint32_t)l4len);
	else
		sum = csum_pseudo_v6(pkt + 8, pkt + 24, pkt[6], (uint32_t)l4len);
	c = csum_fold(csum_add(sum, l4, l4len));
	/* UDP sends a computed 0 as 0xffff (0 means "no checksum"). */
	if (c == 0 && ((hl == IPV4_HDR_LEN ? pkt[9] : pkt[6]) == IPPROTO_NS_UDP))
		c = 0xffff;
	wr16(l4 + csum_off, c);
}

void
ip_set_l4_csum_iov(uint8_t *pkt, size_t hdrlen, size_t len, size_t csum_off,
    const struct iovec *payload, int n)
{
	size_t hl = (pkt[0] >> 4) == 4 ? IPV4_HDR_LEN : IPV6_HDR_LEN;
	uint8_t *l4 = pkt + hl;
	size_t l4len = len - hl, at = hdrlen - hl;
	uint64_t sum;
	uint32_t part;

	wr16(l4 + csum_off, 0);
	if (hl == IPV4_HDR_LEN)
		sum = csum_pseudo_v4(pkt + 12, pkt + 16, pkt[9], (uint32_t)l4len);
	else
		sum = csum_pseudo_v6(pkt + 8, pkt + 24, pkt[6], (uint32_t)l4len);
	sum = csum_add((uint32_t)sum, l4, at);
	for (int i = 0; i < n; i++) {
		part = csum_add(0, payload[i].iov_base, payload[i].iov_len);
		while (part >> 16)
			part = (part & 0xffff) + (part >> 16);
		/* A slice starting at an odd offset has its bytes in the
		 * other halves of the 16-bit words (RFC 1071 §2(B)). */
		if (at & 1)
			part = ((part & 0xff) << 8) | (part >> 8);
		sum += part;
		at += payload[i].iov_len;
	}
	while (sum >> 32)
		sum = (sum & 0xffffffffu) + (sum >> 32);
	wr16(l4 + csum_off, csum_fold((uint32_t)sum));
}

int
ip_handle_icmp(const struct ip_pkt *pkt, uint8_t *out, size_t cap,
    size_t *outlen, struct ip_stats *st)
{
	size_t hl = ip_hdr_len(pkt->version), total;
	uint8_t type;

	*outlen = 0;
	if (pkt->l4len < 8) {
		st->drop_l4_truncated++;
		return 0;
	}
	if (!ip_l4_csum_ok(pkt)) {
		st->drop_l4_bad_csum++;
		return 0;
	}
	type = pkt->l4[0];
	if (pkt->version == 6 && type == ICMP6_ROUTER_SOLICIT) {
		st->icmpv6_rs_dropped++;
		return 0;
	}
	if ((pkt->version == 4 && type != ICMP_ECHO) ||
	    (pkt->version == 6 && type != ICMP6_ECHO) || pkt->l4[1] != 0) {
		st->icmp_other_dropped++;
		return 0;
	}
	total = hl + pkt->l4len;
	if (total > cap) {
		st->icmp_other_dropped++;
		return 0;
	}
	/* Same identifier, sequence and data; addresses swapped. */
	ip_write_hdr(out, pkt->version, pkt->dst, pkt->src, pkt->proto,
	    pkt->l4len);
	memcpy(out + hl, pkt->l4, pkt->l4len);
	out[hl] = pkt->version == 4 ? ICMP_ECHOREPLY : ICMP6_ECHOREPLY;
	ip_set_l4_csum(out, total, 2);
	*outlen = total;
	st->icmp_echo_replied++;
	return 1;
}

static int
is_icmp_error(const struct ip_pkt *pkt)
{
	uint8_t t;

	if (pkt->l4len < 1)
		return 0;
	t = pkt->l4[0];
	if (pkt->proto == IPPROTO_NS_ICMP)
		return t == ICMP_UNREACH || t == ICMP_SOURCEQUENCH ||
		    t == ICMP_REDIRECT || t == ICMP_TIMXCEED || t == ICMP_PARAMPROB;
	if (pkt->proto == IPPROTO_NS_ICMPV6)
		return t < 128;
	return 0;
}

size_t
icmp_build_unreach(const struct ip_pkt *orig, enum icmp_unreach kind,
    uint8_t *out, size_t cap)
{
	size_t hl = ip_hdr_len(orig->version);
	size_t limit = orig->version == 4 ? 576 : 1280;
	size_t quote, total;

	if (is_icmp_error(orig))
		return 0;
	if (limit > cap)
		limit = cap;
	if (limit < hl + 8)
		return 0;
	quote = orig->l3len;
	if (quote > limit - hl - 8)
		quote = limit - hl - 8;
	total = hl + 8 + quote;
	ip_write_hdr(out, orig->version, orig->dst, orig->src,
	    orig->version == 4 ? IPPROTO_NS_ICMP : IPPROTO_NS_ICMPV6, 8 + quote);
	memset(out + hl, 0, 8);
	if (orig->version == 4) {
		out[hl] = ICMP_UNREACH;
		out[hl + 1] = kind == ICMP_UNREACH_PORT ? 3 : 1;
	} else {
		out[hl] = ICMP6_UNREACH;
		out[hl + 1] = kind == ICMP_UNREACH_PORT ? 4 : 3;
	}
	memcpy(out + hl + 8, orig->l3, quote);
	ip_set_l4_csum(out, total, 2);
	return total;
}
