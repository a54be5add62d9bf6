/*
 * Unit tests for the record cipher: AES-GCM in our mbedTLS build, through
 * Intel's ipsec-mb (scripts/mbedtls/localcap_gcm_accel.c) and through
 * mbedTLS's own code, reached both as mbedtls_gcm_* and as psa_aead_*.
 *
 * - The GCM specification's known answers (McGrew & Viega, "The Galois/
 *   Counter Mode of Operation", test cases 1-4 for AES-128 and 13-16 for
 *   AES-256; the same vectors NIST's CAVP gcmEncryptExtIV files start
 *   from) encrypt and decrypt on every backend.
 * - A flipped bit in the tag, the ciphertext, the additional data or the
 *   IV is refused, and the refused plaintext is not left in the output.
 * - On random keys, IVs and texts -- additional data 0..64 bytes, text
 *   0 B .. 16 KiB + 1 -- ipsec-mb's one shot equals mbedTLS's one shot,
 *   mbedTLS's incremental API fed in uneven pieces, and PSA's one-shot and
 *   multi-part API on both backends; in-place operation gives the same.
 * - Truncated tags (4..16 bytes) and IVs other than 96 bits (which ipsec-mb
 *   leaves to mbedTLS) agree across backends.
 * - LOCALCAP_AEAD=mbedtls in the environment turns the accelerated path
 *   off for the whole process.
 * Where the CPU or the build has no ipsec-mb the cross-backend tests are
 * skipped; the rest still runs on mbedTLS's code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/gcm.h>
#include <psa/crypto.h>

#if !defined(MBEDTLS_GCM_LOCALCAP_ACCEL)
/* A stock mbedTLS: its own code is the only backend. */
static const char *localcap_gcm_accel_name(void) { return "mbedtls"; }
static int localcap_gcm_accel_enable(int on) { (void)on; return 0; }
static int localcap_gcm_accel_active(const mbedtls_gcm_context *c) { (void)c; return 0; }
#endif

static int g_have_accel;

enum backend { B_MBEDTLS, B_ACCEL };

static void
use(enum backend b)
{
	int on = localcap_gcm_accel_enable(b == B_ACCEL);

	assert_int_equal(on, b == B_ACCEL);
}

/* --- known answers ---------------------------------------------------------- */

struct kat {
	const char *key, *iv, *ad, *pt, *ct, *tag;
};

#define P3 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
	   "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
#define P4 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
	   "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define K3 "feffe9928665731c6d6a8f9467308308"
#define IV3 "cafebabefacedbaddecaf888"
#define A4 "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define Z12 "000000000000000000000000"
#define Z16 "00000000000000000000000000000000"

static const struct kat kats[] = {
	/* 1 */ { Z16, Z12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a" },
	/* 2 */ { Z16, Z12, "", Z16, "0388dace60b6a392f328c2b971b2fe78",
		  "ab6e47d42cec13bdf53a67b21257bddf" },
	/* 3 */ { K3, IV3, "", P3,
		  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
		  "4d5c2af327cd64a62cf35abd2ba6fab4" },
	/* 4 */ { K3, IV3, A4, P4,
		  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
		  "5bc94fbc3221a5db94fae95ae7121a47" },
	/* 13 */ { Z16 Z16, Z12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
	/* 14 */ { Z16 Z16, Z12, "", Z16, "cea7403d4d606b6e074ec5d3baf39d18",
		   "d0d1c8a799996bf0265b98b5d48ab919" },
	/* 15 */ { K3 K3, IV3, "", P3,
		   "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
		   "b094dac5d93471bdec1a502270e3cc6c" },
	/* 16 */ { K3 K3, IV3, A4, P4,
		   "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
		   "76fc6ece0f4e1768cddf8853bb2d551b" },
};

static size_t
unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s) / 2;

	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
	return n;
}

struct kbuf {
	unsigned char key[32], iv[12], ad[64], pt[64], ct[64], tag[16];
	size_t keylen, ivlen, adlen, ptlen;
};

static void
load(const struct kat *k, struct kbuf *b)
{
	b->keylen = unhex(k->key, b->key, sizeof(b->key));
	b->ivlen = unhex(k->iv, b->iv, sizeof(b->iv));
	b->adlen = unhex(k->ad, b->ad, sizeof(b->ad));
	b->ptlen = unhex(k->pt, b->pt, sizeof(b->pt));
	assert_int_equal(unhex(k->ct, b->ct, sizeof(b->ct)), b->ptlen);
	assert_int_equal(unhex(k->tag, b->tag, sizeof(b->tag)), 16);
}

static psa_key_id_t
psa_key(const unsigned char *key, size_t keylen)
{
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t id = 0;

	psa_set_key_type(&a, PSA_KEY_TYPE_AES);
	psa_set_key_bits(&a, keylen * 8);
	psa_set_key_usage_flags(&a, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT);
	psa_set_key_algorithm(&a, PSA_ALG_GCM);
	assert_int_equal(psa_import_key(&a, key, keylen, &id), PSA_SUCCESS);
	return id;
}

static void
kat_on(enum backend be)
{
	use(be);
	for (size_t i = 0; i < sizeof(kats) / sizeof(kats[0]); i++) {
		struct kbuf b;
		unsigned char out[80], tag[16];
		size_t olen;
		mbedtls_gcm_context g;
		psa_key_id_t id;

		load(&kats[i], &b);
		mbedtls_gcm_init(&g);
		assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, b.key,
		    (unsigned)b.keylen * 8), 0);
		assert_int_equal(localcap_gcm_accel_active(&g), be == B_ACCEL);
		assert_int_equal(mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT,
		    b.ptlen, b.iv, b.ivlen, b.ad, b.adlen, b.pt, out, 16, tag), 0);
		assert_memory_equal(out, b.ct, b.ptlen);
		assert_memory_equal(tag, b.tag, 16);
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(mbedtls_gcm_auth_decrypt(&g, b.ptlen, b.iv, b.ivlen,
		    b.ad, b.adlen, b.tag, 16, b.ct, out), 0);
		assert_memory_equal(out, b.pt, b.ptlen);
		mbedtls_gcm_free(&g);

		id = psa_key(b.key, b.keylen);
		assert_int_equal(psa_aead_encrypt(id, PSA_ALG_GCM, b.iv, b.ivlen,
		    b.ad, b.adlen, b.pt, b.ptlen, out, sizeof(out), &olen), PSA_SUCCESS);
		assert_int_equal(olen, b.ptlen + 16);
		assert_memory_equal(out, b.ct, b.ptlen);
		assert_memory_equal(out + b.ptlen, b.tag, 16);
		memcpy(out, b.ct, b.ptlen);
		memcpy(out + b.ptlen, b.tag, 16);
		/* In place, as the TLS record layer does it. */
		assert_int_equal(psa_aead_decrypt(id, PSA_ALG_GCM, b.iv, b.ivlen,
		    b.ad, b.adlen, out, b.ptlen + 16, out, sizeof(out), &olen),
		    PSA_SUCCESS);
		assert_int_equal(olen, b.ptlen);
		assert_memory_equal(out, b.pt, b.ptlen);
		psa_destroy_key(id);
	}
}

static void
test_kat_mbedtls(void **state)
{
	(void)state;
	kat_on(B_MBEDTLS);
}

static void
test_kat_accel(void **state)
{
	(void)state;
	if (!g_have_accel)
		skip();
	kat_on(B_ACCEL);
}

/* --- tampering --------------------------------------------------------------- */

static void
tamper_on(enum backend be)
{
	const struct kat *k = &kats[3];		/* AD and a partial last block */
	struct kbuf b;

	use(be);
	load(k, &b);
	for (int what = 0; what < 4; what++) {
		for (int bit = 0; bit < 8; bit += 7) {
			struct kbuf t = b;
			unsigned char out[64], rec[80];
			size_t olen;
			mbedtls_gcm_context g;
			psa_key_id_t id;

			switch (what) {
			case 0: t.tag[15] ^= (unsigned char)(1u << bit); break;
			case 1: t.ct[0] ^= (unsigned char)(1u << bit); break;
			case 2: t.ad[t.adlen - 1] ^= (unsigned char)(1u << bit); break;
			default: t.iv[5] ^= (unsigned char)(1u << bit); break;
			}
			mbedtls_gcm_init(&g);
			assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES,
			    t.key, (unsigned)t.keylen * 8), 0);
			memset(out, 0xaa, sizeof(out));
			assert_int_equal(mbedtls_gcm_auth_decrypt(&g, t.ptlen, t.iv,
			    t.ivlen, t.ad, t.adlen, t.tag, 16, t.ct, out),
			    MBEDTLS_ERR_GCM_AUTH_FAILED);
			for (size_t i = 0; i < t.ptlen; i++)
				assert_int_equal(out[i], 0);
			/* A truncated tag is checked too. */
			if (what == 0 && bit == 0) {
				t.tag[3] ^= 1;
				assert_int_equal(mbedtls_gcm_auth_decrypt(&g, t.ptlen,
				    t.iv, t.ivlen, t.ad, t.adlen, t.tag, 4, t.ct, out),
				    MBEDTLS_ERR_GCM_AUTH_FAILED);
			}
			mbedtls_gcm_free(&g);

			id = psa_key(t.key, t.keylen);
			memcpy(rec, t.ct, t.ptlen);
			memcpy(rec + t.ptlen, t.tag, 16);
			assert_int_equal(psa_aead_decrypt(id, PSA_ALG_GCM, t.iv, t.ivlen,
			    t.ad, t.adlen, rec, t.ptlen + 16, rec, sizeof(rec), &olen),
			    PSA_ERROR_INVALID_SIGNATURE);
			psa_destroy_key(id);
		}
	}
}

static void
test_tamper_mbedtls(void **state)
{
	(void)state;
	tamper_on(B_MBEDTLS);
}

static void
test_tamper_accel(void **state)
{
	(void)state;
	if (!g_have_accel)
		skip();
	tamper_on(B_ACCEL);
}

/* --- random inputs across backends and APIs ---------------------------------- */

#define MAXTEXT (16384 + 1)

static uint64_t g_rng = 0x9e3779b97f4a7c15u;

static void
fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_rng ^= g_rng << 13;
		g_rng ^= g_rng >> 7;
		g_rng ^= g_rng << 17;
		p[i] = (unsigned char)g_rng;
	}
}

/* mbedtls_gcm_* one shot on a context keyed with backend be. */
static void
gcm_oneshot(enum backend be, int mode, const unsigned char *key, size_t keylen,
    const unsigned char *iv, size_t ivlen, const unsigned char *ad, size_t adlen,
    const unsigned char *in, size_t len, unsigned char *out, size_t taglen,
    unsigned char *tag)
{
	mbedtls_gcm_context g;

	use(be);
	mbedtls_gcm_init(&g);
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key,
	    (unsigned)keylen * 8), 0);
	assert_int_equal(localcap_gcm_accel_active(&g), be == B_ACCEL);
	assert_int_equal(mbedtls_gcm_crypt_and_tag(&g, mode, len, iv, ivlen, ad,
	    adlen, in, out, taglen, tag), 0);
	mbedtls_gcm_free(&g);
}

/* mbedtls_gcm_* incremental, in pieces of 1, 7, 16, 100, ... bytes. */
static void
gcm_incremental(const unsigned char *key, size_t keylen, const unsigned char *iv,
    size_t ivlen, const unsigned char *ad, size_t adlen, const unsigned char *in,
    size_t len, unsigned char *out, unsigned char *tag)
{
	static const size_t pieces[] = { 1, 7, 16, 100, 4093 };
	mbedtls_gcm_context g;
	size_t off = 0, olen, k = 0;

	mbedtls_gcm_init(&g);
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key,
	    (unsigned)keylen * 8), 0);
	assert_int_equal(mbedtls_gcm_starts(&g, MBEDTLS_GCM_ENCRYPT, iv, ivlen), 0);
	assert_int_equal(mbedtls_gcm_update_ad(&g, ad, adlen / 2), 0);
	assert_int_equal(mbedtls_gcm_update_ad(&g, ad + adlen / 2, adlen - adlen / 2), 0);
	while (off < len) {
		size_t n = pieces[k++ % (sizeof(pieces) / sizeof(pieces[0]))];

		if (n > len - off)
			n = len - off;
		/* mbedTLS 3's GCM update puts out as many bytes as it takes. */
		assert_int_equal(mbedtls_gcm_update(&g, in + off, n, out + off,
		    len + 16 - off, &olen), 0);
		assert_int_equal(olen, n);
		off += n;
	}
	assert_int_equal(mbedtls_gcm_finish(&g, NULL, 0, &olen, tag, 16), 0);
	assert_int_equal(olen, 0);
	mbedtls_gcm_free(&g);
}

/* psa_aead_* one shot (ct || tag) and multi-part. */
static void
psa_both(enum backend be, psa_key_id_t id, const unsigned char *iv,
    const unsigned char *ad, size_t adlen, const unsigned char *in, size_t len,
    unsigned char *oneshot, unsigned char *multi)
{
	psa_aead_operation_t op = PSA_AEAD_OPERATION_INIT;
	size_t olen, tot = 0, taglen, off = 0;
	unsigned char tag[16];

	use(be);
	assert_int_equal(psa_aead_encrypt(id, PSA_ALG_GCM, iv, 12, ad, adlen, in,
	    len, oneshot, len + 16, &olen), PSA_SUCCESS);
	assert_int_equal(olen, len + 16);

	assert_int_equal(psa_aead_encrypt_setup(&op, id, PSA_ALG_GCM), PSA_SUCCESS);
	assert_int_equal(psa_aead_set_nonce(&op, iv, 12), PSA_SUCCESS);
	assert_int_equal(psa_aead_update_ad(&op, ad, adlen), PSA_SUCCESS);
	while (off < len) {
		size_t n = len - off > 3000 ? 3000 : len - off;

		assert_int_equal(psa_aead_update(&op, in + off, n, multi + tot,
		    len + 16 - tot, &olen), PSA_SUCCESS);
		tot += olen;
		off += n;
	}
	assert_int_equal(psa_aead_finish(&op, multi + tot, len + 16 - tot, &olen,
	    tag, sizeof(tag), &taglen), PSA_SUCCESS);
	tot += olen;
	assert_int_equal(tot, len);
	assert_int_equal(taglen, 16);
	memcpy(multi + len, tag, 16);
}

static void
test_random_cross(void **state)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65,
	    255, 256, 257, 1000, 4095, 4096, 4097, 16383, 16384, MAXTEXT };
	unsigned char *pt = malloc(MAXTEXT), *ref = malloc(MAXTEXT + 16),
	    *got = malloc(MAXTEXT + 16), *multi = malloc(MAXTEXT + 16);
	unsigned char key[32], iv[12], ad[64], reftag[16], tag[16];

	(void)state;
	assert_non_null(pt); assert_non_null(ref);
	assert_non_null(got); assert_non_null(multi);
	for (size_t keylen = 16; keylen <= 32; keylen += 16) {
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			size_t len = lens[li], adlen = (li * 13 + keylen) % 65;
			psa_key_id_t id;

			if (li < 2)
				adlen = li == 0 ? 0 : 64;
			fill(key, sizeof(key));
			fill(iv, sizeof(iv));
			fill(ad, adlen);
			fill(pt, len);

			/* Reference: mbedTLS's own one shot. */
			gcm_oneshot(B_MBEDTLS, MBEDTLS_GCM_ENCRYPT, key, keylen, iv, 12,
			    ad, adlen, pt, len, ref, 16, reftag);
			memcpy(ref + len, reftag, 16);

			gcm_incremental(key, keylen, iv, 12, ad, adlen, pt, len, got, tag);
			assert_memory_equal(got, ref, len);
			assert_memory_equal(tag, reftag, 16);

			id = psa_key(key, keylen);
			psa_both(B_MBEDTLS, id, iv, ad, adlen, pt, len, got, multi);
			assert_memory_equal(got, ref, len + 16);
			assert_memory_equal(multi, ref, len + 16);

			if (g_have_accel) {
				gcm_oneshot(B_ACCEL, MBEDTLS_GCM_ENCRYPT, key, keylen, iv,
				    12, ad, adlen, pt, len, got, 16, tag);
				assert_memory_equal(got, ref, len);
				assert_memory_equal(tag, reftag, 16);

				/* In place, both directions. */
				memcpy(got, pt, len);
				gcm_oneshot(B_ACCEL, MBEDTLS_GCM_ENCRYPT, key, keylen, iv,
				    12, ad, adlen, got, len, got, 16, tag);
				assert_memory_equal(got, ref, len);
				gcm_oneshot(B_ACCEL, MBEDTLS_GCM_DECRYPT, key, keylen, iv,
				    12, ad, adlen, got, len, got, 16, tag);
				assert_memory_equal(got, pt, len);
				assert_memory_equal(tag, reftag, 16);

				psa_both(B_ACCEL, id, iv, ad, adlen, pt, len, got, multi);
				assert_memory_equal(got, ref, len + 16);
				assert_memory_equal(multi, ref, len + 16);

				/* Decrypt through PSA, accelerated, in place. */
				size_t olen;
				memcpy(got, ref, len + 16);
				assert_int_equal(psa_aead_decrypt(id, PSA_ALG_GCM, iv, 12,
				    ad, adlen, got, len + 16, got, len + 16, &olen),
				    PSA_SUCCESS);
				assert_int_equal(olen, len);
				assert_memory_equal(got, pt, len);
			}
			psa_destroy_key(id);
		}
	}
	free(pt); free(ref); free(got); free(multi);
}

/* Truncated tags and IVs other than 96 bits agree across backends. */
static void
test_tags_and_ivs(void **state)
{
	unsigned char key[32], iv[32], ad[20], pt[100], a[100], b[100], ta[16], tb[16];

	(void)state;
	if (!g_have_accel)
		skip();
	fill(key, sizeof(key));
	fill(iv, sizeof(iv));
	fill(ad, sizeof(ad));
	fill(pt, sizeof(pt));
	for (size_t keylen = 16; keylen <= 32; keylen += 16) {
		for (size_t taglen = 4; taglen <= 16; taglen++) {
			gcm_oneshot(B_MBEDTLS, MBEDTLS_GCM_ENCRYPT, key, keylen, iv, 12,
			    ad, sizeof(ad), pt, sizeof(pt), a, taglen, ta);
			gcm_oneshot(B_ACCEL, MBEDTLS_GCM_ENCRYPT, key, keylen, iv, 12,
			    ad, sizeof(ad), pt, sizeof(pt), b, taglen, tb);
			assert_memory_equal(a, b, sizeof(pt));
			assert_memory_equal(ta, tb, taglen);
		}
		for (size_t ivlen = 1; ivlen <= sizeof(iv); ivlen += 7) {
			gcm_oneshot(B_MBEDTLS, MBEDTLS_GCM_ENCRYPT, key, keylen, iv, ivlen,
			    ad, sizeof(ad), pt, sizeof(pt), a, 16, ta);
			gcm_oneshot(B_ACCEL, MBEDTLS_GCM_ENCRYPT, key, keylen, iv, ivlen,
			    ad, sizeof(ad), pt, sizeof(pt), b, 16, tb);
			assert_memory_equal(a, b, sizeof(pt));
			assert_memory_equal(ta, tb, 16);
		}
	}
}

/* A context keyed again (or keyed after the backend changed) follows it. */
static void
test_rekey(void **state)
{
	mbedtls_gcm_context g;
	unsigned char key[32] = { 1 };

	(void)state;
	if (!g_have_accel)
		skip();
	mbedtls_gcm_init(&g);
	use(B_ACCEL);
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128), 0);
	assert_true(localcap_gcm_accel_active(&g));
	/* AES-192 has no accelerated path. */
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 192), 0);
	assert_false(localcap_gcm_accel_active(&g));
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256), 0);
	assert_true(localcap_gcm_accel_active(&g));
	/* A refused key leaves no accelerated copy of the previous one. */
	assert_int_not_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 100), 0);
	use(B_MBEDTLS);
	assert_int_equal(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256), 0);
	assert_false(localcap_gcm_accel_active(&g));
	mbedtls_gcm_free(&g);
}

/* LOCALCAP_AEAD=mbedtls, read once per process, turns ipsec-mb off. */
static void
test_env_switch(void **state)
{
	int fds[2], st;
	char buf[128] = "";
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		setenv("TEST_PX_AEAD_CHILD", "1", 1);
		setenv("LOCALCAP_AEAD", "mbedtls", 1);
		execl("/proc/self/exe", "test_px_aead", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_true(n > 0);
	assert_string_equal(buf, "mbedtls 0\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kat_mbedtls),
		cmocka_unit_test(test_kat_accel),
		cmocka_unit_test(test_tamper_mbedtls),
		cmocka_unit_test(test_tamper_accel),
		cmocka_unit_test(test_random_cross),
		cmocka_unit_test(test_tags_and_ivs),
		cmocka_unit_test(test_rekey),
		cmocka_unit_test(test_env_switch),
	};
	int had;

	if (getenv("TEST_PX_AEAD_CHILD") != NULL) {
		mbedtls_gcm_context g;
		unsigned char key[16] = { 0 };

		mbedtls_gcm_init(&g);
		if (mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128) != 0)
			return 1;
		printf("%s %d\n", localcap_gcm_accel_name(), localcap_gcm_accel_active(&g));
		mbedtls_gcm_free(&g);
		return 0;
	}
	if (psa_crypto_init() != PSA_SUCCESS)
		return 1;
	/* What the process would use; then whether ipsec-mb is there at all. */
	had = strcmp(localcap_gcm_accel_name(), "mbedtls") != 0;
	g_have_accel = localcap_gcm_accel_enable(1);
	fprintf(stderr, "test_px_aead: accelerated AES-GCM: %s%s\n",
	    g_have_accel ? localcap_gcm_accel_name() : "none (mbedTLS only)",
	    g_have_accel && !had ? " (was off by LOCALCAP_AEAD)" : "");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
