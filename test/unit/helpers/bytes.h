/*
 * A byte builder for tests that write wire formats by hand (DNS messages,
 * TLS ClientHellos): big-endian integers, raw bytes, DNS names.  Each put
 * fails the running cmocka test rather than overrun.  (Linked into every
 * unit test, as each test/unit/helpers/ file is.)
 */
#ifndef LOCALCAP_TEST_BYTES_H
#define LOCALCAP_TEST_BYTES_H

#include <stddef.h>
#include <stdint.h>

struct bld {
	uint8_t	d[70000];	/* a ClientHello may span records */
	size_t	n;
};

void	put8(struct bld *, unsigned v);
void	put16(struct bld *, unsigned v);
void	put24(struct bld *, uint32_t v);
void	put32(struct bld *, uint32_t v);
void	putmem(struct bld *, const void *p, size_t n);
/* "example.com" as DNS labels, ending with the root label. */
void	putname(struct bld *, const char *name);

#endif
