/*
 * A record channel between proxyd and its signer process (signer.c): one
 * request, one answer, each a record the receiver gets whole or not at all.
 *
 *   RECCHAN_SEQPACKET  Linux: an AF_UNIX SOCK_SEQPACKET socketpair; the
 *                      kernel keeps record boundaries, MSG_TRUNC tells a
 *                      record's true size.
 *   RECCHAN_STREAM     macOS (whose AF_UNIX has no SOCK_SEQPACKET), and the
 *                      portable builds: SOCK_STREAM, each record preceded by
 *                      its length, 4 bytes big-endian.
 *
 * Both kinds are compiled everywhere and unit-tested on Linux
 * (test_recchan); RECCHAN_NATIVE is the one signer.c uses.
 */
#ifndef LOCALCAP_PROXYD_RECCHAN_H
#define LOCALCAP_PROXYD_RECCHAN_H

#include <stddef.h>
#include <sys/types.h>

#include "plat.h"

enum recchan_kind {
	RECCHAN_SEQPACKET,
	RECCHAN_STREAM,
};

#if LC_PLAT_LINUX
#define RECCHAN_NATIVE	RECCHAN_SEQPACKET
#else
#define RECCHAN_NATIVE	RECCHAN_STREAM
#endif

/* A record is at most this long on a stream (a larger header is a broken
 * peer: recchan_recv says so without reading it). */
#define RECCHAN_STREAM_MAX	(16u * 1024 * 1024)

/* A connected pair, blocking, close-on-exec.  0, or -1 and errno. */
int	recchan_pair(enum recchan_kind, int sv[2]);

/* Send one record of len bytes (blocking, EINTR retried).  0, or -1 and
 * errno (EPIPE or ECONNRESET: the peer is gone; EMSGSIZE: too long). */
int	recchan_send(enum recchan_kind, int fd, const void *buf, size_t len);

/*
 * Receive one record into buf.  Returns its size; a size above cap means
 * the record was too large and was not read (the channel is then out of
 * step: the caller ends it).  0: the peer closed between records.  -1 and
 * errno: EPROTO, the peer closed inside a record; ETIMEDOUT, a record
 * started but the rest did not come within timeout_ms (on a stream: only
 * then does the wait count, a record not yet started is waited for);
 * others from recv/poll.  timeout_ms < 0 waits for ever.
 */
ssize_t	recchan_recv(enum recchan_kind, int fd, void *buf, size_t cap,
	    int timeout_ms);

#endif
