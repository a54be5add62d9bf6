/*
 * Which AEAD this machine runs faster with this mbedTLS (aeadbench.h).
 */
#include <time.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "proxyd/aeadbench.h"

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MB/s of one AEAD over 16 KiB records, best of three ~2 ms rounds. */
static double
aead_rate(int aes)
{
	static unsigned char in[16384], out[16384], key[32], iv[12], tag[16];
	mbedtls_gcm_context g;
	mbedtls_chachapoly_context c;
	double best = 0;
	int round, i, n = 8;

	mbedtls_gcm_init(&g);
	mbedtls_chachapoly_init(&c);
	if (mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128) != 0 ||
	    mbedtls_chachapoly_setkey(&c, key) != 0)
		goto out;
	for (round = 0; round < 3; round++) {
		double t = mono_s();

		for (i = 0; i < n; i++)
			if ((aes ? mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT,
			    sizeof(in), iv, sizeof(iv), NULL, 0, in, out,
			    sizeof(tag), tag) :
			    mbedtls_chachapoly_encrypt_and_tag(&c, sizeof(in), iv,
			    NULL, 0, in, out, tag)) != 0)
				goto out;
		t = mono_s() - t;
		if (t > 0 && n * sizeof(in) / t / 1e6 > best)
			best = n * sizeof(in) / t / 1e6;
	}
out:
	mbedtls_gcm_free(&g);
	mbedtls_chachapoly_free(&c);
	return best;
}

enum mitm_cipher_pref
aeadbench_fastest(double *aes_mbs, double *chacha_mbs)
{
	*aes_mbs = aead_rate(1);
	*chacha_mbs = aead_rate(0);
	return *aes_mbs > *chacha_mbs ? MITM_PREFER_AESGCM : MITM_PREFER_CHACHA;
}
