/*
 * Internet checksum (RFC 1071) for netstackd's IP layer and TCP/UDP.
 *
 * Sums are accumulated in a 32-bit one's-complement accumulator over
 * 16-bit big-endian words and folded at the end, so a packet's checksum can
 * be built from pieces (pseudo-header, header, payload) without copying.
 * A received packet is valid when the fold of the sum over everything,
 * checksum field included, is 0xffff (csum_fold() returns 0).
 */
#ifndef NETSTACKD_CHECKSUM_H
#define NETSTACKD_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Add len bytes at p to sum.  Odd lengths are padded with a zero byte, so
 * only the last piece of a packet may have an odd length. */
uint32_t	csum_add(uint32_t sum, const void *p, size_t len);
/* Fold to 16 bits and complement: the value to store in a checksum field
 * (host order), or 0 when verifying a packet that includes its checksum. */
uint16_t	csum_fold(uint32_t sum);
/* Pseudo-header sums for TCP/UDP/ICMPv6 (RFC 793, RFC 8200 §8.1).
 * Addresses in network order; l4len is the upper-layer length. */
uint32_t	csum_pseudo_v4(const uint8_t src[4], const uint8_t dst[4],
		    uint8_t proto, uint32_t l4len);
uint32_t	csum_pseudo_v6(const uint8_t src[16], const uint8_t dst[16],
		    uint8_t proto, uint32_t l4len);

#endif
