/*
 * The transport's ring buffer, one per direction of a TCP flow: bounded,
 * memory allocated only while it holds bytes (its size chosen then, so a
 * flow under memory pressure gets a smaller one), filled by readv(2) and
 * drained by sendmsg(2) through up to two iovecs.  The caller keeps its own
 * count of bytes and memory held (rbuf_release says what it dropped).
 */
#ifndef LOCALCAP_PROXYD_RBUF_H
#define LOCALCAP_PROXYD_RBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rbuf {
	uint8_t		*data;			/* NULL: no memory */
	size_t		 cap;			/* of data; 0 without */
	size_t		 head;			/* offset of the oldest byte */
	size_t		 len;			/* bytes held */
};

/* Give b memory of cap bytes (it has none).  0, or -1 out of memory. */
int	rbuf_alloc(struct rbuf *b, size_t cap);
/* Free segments of b (which has memory) as up to two iovecs; 0 if full. */
int	rbuf_space(struct rbuf *b, struct iovec iov[2]);
/* Held segments of b as up to two iovecs; 0 if empty. */
int	rbuf_data(const struct rbuf *b, struct iovec iov[2]);
/* n bytes went out from the head. */
void	rbuf_consume(struct rbuf *b, size_t n);
/* Drop what it holds and its memory; returns how many bytes it held. */
size_t	rbuf_release(struct rbuf *b);

#endif
