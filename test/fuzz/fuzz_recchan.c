/*
 * proxyd/recchan.c's stream framing, as the signer or proxyd reads it from
 * a broken peer: any bytes, then the peer gone.  Each record must come out
 * whole and within the reader's buffer, or be reported (oversized, cut,
 * 0 at a boundary); never a read past the buffer, never a hang (the data is
 * all there before the first read, and the peer's end is closed).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxyd/recchan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char buf[512];
	size_t cap, off = 0;
	ssize_t n;
	int sv[2], sndbuf = 1 << 20;

	if (size < 1 || size > 64 * 1024)
		return 0;
	cap = (size_t)data[0] % sizeof(buf) + 1;	/* the reader's buffer */
	data++;
	size--;
	if (recchan_pair(RECCHAN_STREAM, sv) == -1)
		abort();
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	while (off < size) {
		n = write(sv[0], data + off, size - off);
		if (n <= 0)
			abort();	/* 64 KiB fits a Unix socket's buffer */
		off += (size_t)n;
	}
	close(sv[0]);
	for (;;) {
		n = recchan_recv(RECCHAN_STREAM, sv[1], buf, cap, 1000);
		if (n <= 0 || (size_t)n > cap)
			break;		/* EOF, cut, or oversized: the channel ends */
	}
	if (n == -1 && errno != EPROTO)
		abort();		/* nothing else can go wrong here */
	close(sv[1]);
	return 0;
}
