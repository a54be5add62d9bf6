/* tls_strerror (tlserr.h). */
#include "proxyd/tlserr.h"

#include <stdio.h>

#include <mbedtls/error.h>

const char *
tls_strerror(int ret, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	buf[0] = '\0';
	mbedtls_strerror(ret, buf, len);
	if (buf[0] == '\0')
		snprintf(buf, len, "mbedTLS error -0x%04x", (unsigned)-ret);
	return buf;
}
