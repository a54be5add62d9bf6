/*
 * Record channels (recchan.h): SOCK_SEQPACKET where the system has it for
 * AF_UNIX, length-prefixed SOCK_STREAM where it does not.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "plat.h"
#include "proxyd/recchan.h"

int
recchan_pair(enum recchan_kind kind, int sv[2])
{
	return plat_socketpair(AF_UNIX, kind == RECCHAN_SEQPACKET ?
	    SOCK_SEQPACKET : SOCK_STREAM, sv);
}

static int
send_all(int fd, struct iovec *iov, int niov)
{
	struct msghdr mh;
	ssize_t n;

	while (niov > 0) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		if ((n = sendmsg(fd, &mh, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (niov > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int
recchan_send(enum recchan_kind kind, int fd, const void *buf, size_t len)
{
	unsigned char hdr[4];
	struct iovec iov[2];
	ssize_t n;

	if (kind == RECCHAN_SEQPACKET) {
		while ((n = send(fd, buf, len, MSG_NOSIGNAL)) == -1 &&
		    errno == EINTR)
			;
		return n == -1 ? -1 : 0;
	}
	if (len > RECCHAN_STREAM_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)buf;
	iov[1].iov_len = len;
	return send_all(fd, iov, len > 0 ? 2 : 1);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read exactly len bytes.  started: bytes of this record came already, so
 * an EOF is inside a record and the deadline applies.  0, 1 (EOF before
 * the first byte of a record), or -1 and errno.
 */
static int
read_full(int fd, unsigned char *p, size_t len, int started, int timeout_ms,
    int64_t *deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
	ssize_t n;
	int rc;

	while (len > 0) {
		if (started && timeout_ms >= 0) {
			int64_t left;

			if (*deadline < 0)
				*deadline = now_ms() + timeout_ms;
			left = *deadline - now_ms();
			rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
			if (rc == -1 && errno == EINTR)
				continue;
			if (rc == -1)
				return -1;
			if (rc == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
		}
		if ((n = recv(fd, p, len, 0)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			if (!started)
				return 1;
			errno = EPROTO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		started = 1;
	}
	return 0;
}

ssize_t
recchan_recv(enum recchan_kind kind, int fd, void *buf, size_t cap,
    int timeout_ms)
{
	unsigned char hdr[4];
	int64_t deadline = -1;
	size_t len;
	ssize_t n;
	int rc;

	if (kind == RECCHAN_SEQPACKET) {
		while ((n = recv(fd, buf, cap, MSG_TRUNC)) == -1 &&
		    errno == EINTR)
			;
		return n;
	}
	if ((rc = read_full(fd, hdr, sizeof(hdr), 0, timeout_ms,
	    &deadline)) != 0)
		return rc == 1 ? 0 : -1;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
	    (size_t)hdr[2] << 8 | hdr[3];
	if (len > cap || len > RECCHAN_STREAM_MAX)
		return len > (size_t)SSIZE_MAX ? SSIZE_MAX : (ssize_t)len;
	if (len > 0 && read_full(fd, buf, len, 1, timeout_ms, &deadline) != 0)
		return -1;
	return (ssize_t)len;
}
