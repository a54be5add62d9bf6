/*
 * Which AES-GCM implementation the TLS records use.  Our mbedTLS build
 * (scripts/build-mbedtls.sh, scripts/mbedtls/) sends one-shot AES-128/256-GCM
 * through Intel's ipsec-mb where the CPU allows, decided once per process
 * (LOCALCAP_AEAD=mbedtls in the environment forces mbedTLS's own code); a
 * stock mbedTLS has only its own.
 */
#ifndef PROXYD_AEAD_H
#define PROXYD_AEAD_H

#include <string.h>

#include <mbedtls/gcm.h>

/* "ipsec-mb 1.3.0 avx2" or "mbedtls". */
static inline const char *
aead_aes_gcm_impl(void)
{
#if defined(MBEDTLS_GCM_LOCALCAP_ACCEL)
	return localcap_gcm_accel_name();
#else
	return "mbedtls";
#endif
}

/* 1 when AES-GCM records go through ipsec-mb. */
static inline int
aead_aes_gcm_accelerated(void)
{
	return strcmp(aead_aes_gcm_impl(), "mbedtls") != 0;
}

#endif
