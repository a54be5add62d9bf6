/*
 * Small X.509 helpers shared by the CA (ca.c), the signer (signer.c) and
 * certificate forging (certforge.c): random serials, the time format
 * mbedTLS's certificate writer wants, and mbedTLS times back to epoch seconds.
 */
#ifndef LOCALCAP_PROXYD_X509UTIL_H
#define LOCALCAP_PROXYD_X509UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/x509.h>

#define X509U_SERIAL_MAX	16	/* 128 random bits */

/*
 * A random positive serial of up to 128 bits, minimally encoded (leading
 * zero bytes dropped; mbedTLS adds the 0x00 that keeps it positive).
 * Needs psa_crypto_init().  0 on success.
 */
int	x509u_random_serial(unsigned char serial[X509U_SERIAL_MAX], size_t *len);

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity takes. */
void	x509u_format_time(time_t t, char out[16]);

/* Seconds since the epoch of an mbedTLS (UTC) time. */
int64_t	x509u_time_to_epoch(const mbedtls_x509_time *t);

#endif
