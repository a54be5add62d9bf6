/*
 * The transport's ring buffer, one per direction of a TCP flow: bounded
 * (cap, the relay's bufsize), memory allocated only while it holds bytes,
 * filled by readv(2) and drained by sendmsg(2) through up to two iovecs.
 * The caller keeps its own count of bytes held (rbuf_release says how
 * many it dropped).
 */
#ifndef LOCALCAP_PROXYD_RBUF_H
#define LOCALCAP_PROXYD_RBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rbuf {
	uint8_t		*data;
	size_t		 head;			/* offset of the oldest byte */
	size_t		 len;			/* bytes held */
};

/* Free segments of b as up to two iovecs; 0 if full, -1 out of memory. */
int	rbuf_space(struct rbuf *b, size_t cap, struct iovec iov[2]);
/* Held segments of b as up to two iovecs; 0 if empty. */
int	rbuf_data(const struct rbuf *b, size_t cap, struct iovec iov[2]);
/* n bytes went out from the head. */
void	rbuf_consume(struct rbuf *b, size_t cap, size_t n);
/* Drop what it holds and its memory; returns how many bytes it held. */
size_t	rbuf_release(struct rbuf *b);

#endif
