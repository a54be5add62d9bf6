/*
 * netstackd's IP layer: validate IPv4/IPv6 packets read from the TUN device,
 * find the upper-layer payload, answer ICMP echo locally, and build the IP
 * headers and ICMP errors that go back.
 *
 * Pure functions over caller buffers: no allocation, no I/O, no clock.  The
 * stack (stack.c) calls ip_parse() on every packet; only a packet that passes
 * every length/offset/checksum check reaches TCP or UDP.  Every drop bumps one
 * named counter in struct ip_stats, so "why did this packet vanish" is always
 * answerable from the status output.
 */
#ifndef NETSTACKD_IP_H
#define NETSTACKD_IP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define IPPROTO_NS_ICMP		1
#define IPPROTO_NS_TCP		6
#define IPPROTO_NS_UDP		17
#define IPPROTO_NS_ICMPV6	58

#define IPV4_HDR_LEN		20
#define IPV6_HDR_LEN		40
#define IP_DEFAULT_TTL		64
/* Longest IPv6 extension-header chain we walk before giving up. */
#define IPV6_MAX_EXT_HDRS	8

/* A validated packet: pointers into the caller's buffer. */
struct ip_pkt {
	uint8_t		 version;	/* 4 or 6 */
	uint8_t		 proto;		/* upper layer after any v6 extension chain */
	uint8_t		 ttl;		/* TTL / hop limit as received */
	uint8_t		 src[16];	/* v4 uses the first 4 bytes, rest zero */
	uint8_t		 dst[16];
	const uint8_t	*l3;		/* start of the IP header */
	size_t		 l3len;		/* total length per the header (<= buffer) */
	const uint8_t	*l4;		/* upper-layer header; l4 + l4len == l3 + l3len */
	size_t		 l4len;
};

/* One counter per reason a packet can be dropped, plus ICMP handling. */
struct ip_stats {
	uint64_t	rx_packets;		/* everything offered to ip_parse() */
	uint64_t	drop_truncated;		/* shorter than the fixed IP header */
	uint64_t	drop_bad_version;
	uint64_t	drop_v4_bad_ihl;	/* IHL < 5 or beyond the buffer */
	uint64_t	drop_v4_bad_total_len;	/* < IHL*4 or > buffer */
	uint64_t	drop_v4_bad_csum;
	uint64_t	drop_v4_fragment;	/* MF or offset != 0: not reassembled */
	uint64_t	drop_v6_bad_payload_len;/* payload length > buffer (or jumbogram) */
	uint64_t	drop_v6_bad_ext_hdr;	/* chain runs past the packet or too long */
	uint64_t	drop_v6_fragment;	/* Fragment header: not reassembled */
	uint64_t	drop_bad_addr;		/* multicast/unspecified source etc. */
	uint64_t	drop_unknown_proto;	/* not TCP, UDP, ICMP, ICMPv6 */
	uint64_t	drop_l4_truncated;	/* upper-layer header longer than payload */
	uint64_t	drop_l4_bad_csum;
	uint64_t	icmp_echo_replied;
	uint64_t	icmpv6_rs_dropped;	/* the TUN's own router solicitations */
	uint64_t	icmp_other_dropped;	/* any other ICMP/ICMPv6 message */
	uint64_t	icmp_unreach_sent;
};

/*
 * Validate the packet in buf[0..len) and fill *pkt.  Returns 0 if it may be
 * handed to the upper layer, -1 if dropped (one counter in *st bumped).
 * Checks only the IP layer; ip_l4_csum_ok() checks the upper layer's sum.
 */
int	ip_parse(const uint8_t *buf, size_t len, struct ip_pkt *pkt,
	    struct ip_stats *st);

/* Upper-layer checksum over the pseudo-header and pkt->l4.  UDP over IPv4
 * with checksum 0 means "none" and is accepted.  Returns 1 if valid. */
int	ip_l4_csum_ok(const struct ip_pkt *pkt);

/* Length of the header ip_write_hdr() writes: 20 or 40. */
size_t	ip_hdr_len(int version);
/* Write an IP header (no options, no extension headers) at out for an
 * upper-layer payload of l4len bytes, which the caller puts right after. */
void	ip_write_hdr(uint8_t *out, int version, const uint8_t *src,
	    const uint8_t *dst, uint8_t proto, size_t l4len);
/* Compute and store the upper-layer checksum of a packet built by
 * ip_write_hdr(): csum_off is the checksum field's offset within L4. */
void	ip_set_l4_csum(uint8_t *pkt, size_t len, size_t csum_off);
/*
 * The same for a packet of len bytes whose first hdrlen bytes (IP header
 * and an even-length L4 header) are at pkt and the rest in the n slices
 * of payload (any lengths, odd ones too).
 */
void	ip_set_l4_csum_iov(uint8_t *pkt, size_t hdrlen, size_t len,
	    size_t csum_off, const struct iovec *payload, int n);

/*
 * ICMP/ICMPv6 addressed to us: echo requests are answered (reply written to
 * out, *outlen set, returns 1); router solicitations and everything else are
 * counted and dropped (returns 0).  Bad ICMP checksums are dropped too.
 */
int	ip_handle_icmp(const struct ip_pkt *pkt, uint8_t *out, size_t cap,
	    size_t *outlen, struct ip_stats *st);

enum icmp_unreach {
	ICMP_UNREACH_PORT,	/* v4 type 3 code 3, v6 type 1 code 4 */
	ICMP_UNREACH_HOST,	/* v4 type 3 code 1, v6 type 1 code 3 */
};
/*
 * Build an ICMP destination-unreachable for the packet orig (which must have
 * passed ip_parse()), sent from orig's destination back to its source and
 * quoting as much of it as RFC 792/4443 allow (576/1280-byte total).
 * Returns the packet length, or 0 when none must be sent (orig is itself an
 * ICMP error, or cap too small).
 */
size_t	icmp_build_unreach(const struct ip_pkt *orig, enum icmp_unreach kind,
	    uint8_t *out, size_t cap);

#endif
