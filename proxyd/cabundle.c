/*
 * Reading a CA bundle into memory (cabundle.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errmsg.h"
#include "proxyd/cabundle.h"

int
cabundle_read(const char *path, unsigned char **buf, size_t *len, char *err,
    size_t errlen)
{
	unsigned char *b = NULL, *nb;
	size_t n = 0, cap = 0;
	ssize_t got;
	int fd;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - n < 4096) {
			/* A trust bundle is a few hundred KiB; refuse the absurd. */
			if (cap >= 16 * 1024 * 1024 ||
			    (nb = realloc(b, cap ? cap * 2 : 256 * 1024)) == NULL) {
				seterr(err, errlen, "%s: too large or out of memory", path);
				goto fail;
			}
			b = nb;
			cap = cap ? cap * 2 : 256 * 1024;
		}
		got = read(fd, b + n, cap - n - 1);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	/* mbedtls_x509_crt_parse wants PEM's NUL counted, and DER without it. */
	*len = memmem(b, n, "-----BEGIN", 10) != NULL ? n + 1 : n;
	return 0;
fail:
	close(fd);
	free(b);
	return -1;
}
