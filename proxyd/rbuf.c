/*
 * The transport's ring buffer (rbuf.h).
 */
#include <stdlib.h>

#include "proxyd/rbuf.h"

int
rbuf_space(struct rbuf *b, size_t cap, struct iovec iov[2])
{
	size_t end;

	if (b->len == cap)
		return 0;
	if (b->data == NULL && (b->data = malloc(cap)) == NULL)
		return -1;
	if (b->len == 0)
		b->head = 0;
	end = b->head + b->len;
	if (end < cap) {
		/* Data does not wrap: free space after it, then before it. */
		iov[0].iov_base = b->data + end;
		iov[0].iov_len = cap - end;
		iov[1].iov_base = b->data;
		iov[1].iov_len = b->head;
		return b->head ? 2 : 1;
	}
	/* Data wraps (or ends at cap): free space is between its end and head. */
	iov[0].iov_base = b->data + (end - cap);
	iov[0].iov_len = b->head - (end - cap);
	return 1;
}

int
rbuf_data(const struct rbuf *b, size_t cap, struct iovec iov[2])
{
	size_t first;

	if (b->len == 0)
		return 0;
	first = cap - b->head < b->len ? cap - b->head : b->len;
	iov[0].iov_base = b->data + b->head;
	iov[0].iov_len = first;
	if (first == b->len)
		return 1;
	iov[1].iov_base = b->data;
	iov[1].iov_len = b->len - first;
	return 2;
}

void
rbuf_consume(struct rbuf *b, size_t cap, size_t n)
{
	b->head = (b->head + n) % cap;
	b->len -= n;
	if (b->len == 0)
		b->head = 0;
}

size_t
rbuf_release(struct rbuf *b)
{
	size_t held = b->len;

	free(b->data);
	b->data = NULL;
	b->head = b->len = 0;
	return held;
}
