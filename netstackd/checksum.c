/*
 * Internet checksum (RFC 1071).  Plain C summing 16-bit words into a 64-bit
 * accumulator per call; fast enough for now (the benchmark will say if an
 * unrolled or vectorised loop is worth it).
 */
#include <string.h>

#include "netstackd/checksum.h"

uint32_t
csum_add(uint32_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t acc = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		acc += (uint32_t)b[len - 1] << 8;
	/* Fold the 64-bit accumulator back into 32 bits without losing carries. */
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t
csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t
csum_pseudo_v4(const uint8_t src[4], const uint8_t dst[4], uint8_t proto,
    uint32_t l4len)
{
	uint8_t tail[4] = { 0, proto, (uint8_t)(l4len >> 8), (uint8_t)l4len };
	uint32_t sum;

	sum = csum_add(0, src, 4);
	sum = csum_add(sum, dst, 4);
	return csum_add(sum, tail, sizeof(tail));
}

uint32_t
csum_pseudo_v6(const uint8_t src[16], const uint8_t dst[16], uint8_t proto,
    uint32_t l4len)
{
	uint8_t tail[8] = { (uint8_t)(l4len >> 24), (uint8_t)(l4len >> 16),
	    (uint8_t)(l4len >> 8), (uint8_t)l4len, 0, 0, 0, proto };
	uint32_t sum;

	sum = csum_add(0, src, 16);
	sum = csum_add(sum, dst, 16);
	return csum_add(sum, tail, sizeof(tail));
}
