/*
 * mbedTLS error codes as text for log lines and error buffers: the one
 * wrapper (CA, certificate forging, the signer, the TLS engines).
 */
#ifndef LOCALCAP_PROXYD_TLSERR_H
#define LOCALCAP_PROXYD_TLSERR_H

#include <stddef.h>

/*
 * ret (a negative mbedTLS/PSA code) described into buf; returns buf, so it
 * fits in an argument list.  A code mbedTLS has no text for (a build
 * without MBEDTLS_ERROR_C, a PSA code) is given as "mbedTLS error -0xNNNN".
 */
const char	*tls_strerror(int ret, char *buf, size_t len);

#endif
