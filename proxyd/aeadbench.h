/*
 * Which AEAD is faster on this machine with this mbedTLS, measured when
 * proxyd starts: each encrypts 16 KiB records for a few milliseconds (best
 * of three).  AES-GCM wins where mbedTLS's AES-NI code is built for
 * SSE4.1, ChaCha20 elsewhere.  The answer sets mitm_options.cipher_pref;
 * the figures (MB/s per core) are returned for the log.
 */
#ifndef LOCALCAP_PROXYD_AEADBENCH_H
#define LOCALCAP_PROXYD_AEADBENCH_H

#include "proxyd/mitm.h"

enum mitm_cipher_pref aeadbench_fastest(double *aes_mbs, double *chacha_mbs);

#endif
