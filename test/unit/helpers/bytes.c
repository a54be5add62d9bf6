/* The tests' byte builder (bytes.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "test/unit/helpers/bytes.h"

void
put8(struct bld *b, unsigned v)
{
	assert_true(b->n < sizeof(b->d));
	b->d[b->n++] = (uint8_t)v;
}

void
put16(struct bld *b, unsigned v)
{
	put8(b, (v >> 8) & 0xff);
	put8(b, v & 0xff);
}

void
put24(struct bld *b, uint32_t v)
{
	put8(b, (v >> 16) & 0xff);
	put16(b, v & 0xffff);
}

void
put32(struct bld *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b, v & 0xffff);
}

void
putmem(struct bld *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

void
putname(struct bld *b, const char *name)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		put8(b, (unsigned)l);
		putmem(b, name, l);
		name += l;
		if (*name == '.')
			name++;
	}
	put8(b, 0);
}
