/*
 * localcap: AES-GCM one-shot operations through Intel's multi-buffer crypto
 * library (ipsec-mb), hooked into mbedTLS's own gcm.c.
 *
 * scripts/build-mbedtls.sh copies this file into mbedTLS's library/ and
 * applies scripts/mbedtls/localcap-gcm-accel.patch, which #includes it from
 * gcm.c and calls it from four places:
 *   mbedtls_gcm_setkey()        keys the accelerated copy too (AES-128/256)
 *   mbedtls_gcm_crypt_and_tag() one shot through ipsec-mb when keyed
 *                               (mbedtls_gcm_auth_decrypt() goes through it)
 *   mbedtls_gcm_setkey()/free() drop (and wipe) the accelerated copy
 * Everything else -- the incremental starts/update/finish API, IVs other
 * than 96 bits, AES-192, Camellia, ARIA -- stays mbedTLS's code, whose key
 * schedule and H table setkey still computes.  The TLS record layer (with
 * or without MBEDTLS_USE_PSA_CRYPTO) and PSA's built-in AEAD both reach GCM
 * through mbedtls_gcm_crypt_and_tag(), so they all take this path.
 *
 * Which implementation runs is decided at run time, once per process:
 * ipsec-mb when its manager initialises to an AES-NI architecture (SSE,
 * AVX, AVX2, AVX-512; it picks by CPUID), mbedTLS's code when it does not,
 * when the library was built without ipsec-mb (LOCALCAP_HAVE_IPSECMB unset)
 * or when the environment says LOCALCAP_AEAD=mbedtls.
 * localcap_gcm_accel_enable() switches it for contexts keyed afterwards.
 *
 * Not thread-safe by itself (neither is this build of mbedTLS: no
 * MBEDTLS_THREADING_C); the first initialisation is guarded by
 * pthread_once all the same.
 */

#if defined(LOCALCAP_HAVE_IPSECMB)
#include <intel-ipsec-mb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#endif

/* Returned by localcap_gcm_accel_crypt() when it leaves the call to
 * mbedTLS's code; outside the range of mbedTLS's error codes. */
#define LOCALCAP_GCM_ACCEL_DECLINED 1

#if defined(LOCALCAP_HAVE_IPSECMB)

static pthread_once_t localcap_gcm_once = PTHREAD_ONCE_INIT;
static IMB_MGR *localcap_gcm_mgr;      /* NULL: no usable ipsec-mb */
static int localcap_gcm_on;            /* accelerate contexts keyed now */
static char localcap_gcm_name[64] = "mbedtls";

static void localcap_gcm_init_once(void)
{
    static const char *const arch_names[] = {
        [IMB_ARCH_SSE] = "sse", [IMB_ARCH_AVX] = "avx",
        [IMB_ARCH_AVX2] = "avx2", [IMB_ARCH_AVX512] = "avx512",
    };
    IMB_ARCH arch = IMB_ARCH_NONE;
    IMB_MGR *m = alloc_mb_mgr(0);
    const char *env = getenv("LOCALCAP_AEAD");

    if (m == NULL) {
        return;
    }
    init_mb_mgr_auto(m, &arch);
    /* IMB_ARCH_NOAESNI is ipsec-mb's own table-based AES: no faster than
     * mbedTLS's and not constant-time, so it is never used. */
    if (imb_get_errno(m) != 0 || arch < IMB_ARCH_SSE || arch > IMB_ARCH_AVX512 ||
        (m->features & IMB_FEATURE_AESNI) == 0 ||
        (m->features & IMB_FEATURE_PCLMULQDQ) == 0) {
        free_mb_mgr(m);
        return;
    }
    localcap_gcm_mgr = m;
    snprintf(localcap_gcm_name, sizeof(localcap_gcm_name), "ipsec-mb %s %s",
             imb_get_version_str(), arch_names[arch]);
    localcap_gcm_on = !(env != NULL && strcmp(env, "mbedtls") == 0);
}

const char *localcap_gcm_accel_name(void)
{
    pthread_once(&localcap_gcm_once, localcap_gcm_init_once);
    return localcap_gcm_on ? localcap_gcm_name : "mbedtls";
}

int localcap_gcm_accel_enable(int on)
{
    pthread_once(&localcap_gcm_once, localcap_gcm_init_once);
    localcap_gcm_on = on && localcap_gcm_mgr != NULL;
    return localcap_gcm_on;
}

int localcap_gcm_accel_active(const mbedtls_gcm_context *ctx)
{
    return ctx->MBEDTLS_PRIVATE(localcap_accel) != NULL;
}

/* The accelerated copy of a key: ipsec-mb's expanded keys and hash-key
 * powers, 64-byte aligned as the library declares them (mbedTLS builds as
 * C99 without POSIX, so the alignment is done by hand on a larger block). */
struct localcap_gcm_key {
    struct gcm_key_data kd;
    unsigned keybits;
    void *block;                /* what calloc returned */
};

static void localcap_gcm_accel_drop(mbedtls_gcm_context *ctx)
{
    struct localcap_gcm_key *k = ctx->MBEDTLS_PRIVATE(localcap_accel);

    if (k != NULL) {
        void *block = k->block;

        mbedtls_platform_zeroize(k, sizeof(*k));
        free(block);
        ctx->MBEDTLS_PRIVATE(localcap_accel) = NULL;
    }
}

/* After mbedTLS's own setkey succeeded: key the accelerated copy too when
 * the process uses it.  Failing to (no memory) only leaves the context on
 * mbedTLS's code. */
static void localcap_gcm_accel_setkey(mbedtls_gcm_context *ctx,
                                      mbedtls_cipher_id_t cipher,
                                      const unsigned char *key,
                                      unsigned int keybits)
{
    struct localcap_gcm_key *k;
    unsigned char *block;

    pthread_once(&localcap_gcm_once, localcap_gcm_init_once);
    if (!localcap_gcm_on || cipher != MBEDTLS_CIPHER_ID_AES ||
        (keybits != 128 && keybits != 256)) {
        return;
    }
    if ((block = calloc(1, sizeof(*k) + 63)) == NULL) {
        return;
    }
    k = (struct localcap_gcm_key *) (void *) (block + (64 - (uintptr_t) block % 64) % 64);
    k->block = block;
    if (keybits == 128) {
        IMB_AES128_GCM_PRE(localcap_gcm_mgr, key, &k->kd);
    } else {
        IMB_AES256_GCM_PRE(localcap_gcm_mgr, key, &k->kd);
    }
    k->keybits = keybits;
    ctx->MBEDTLS_PRIVATE(localcap_accel) = k;
}

/* One shot, in place or not.  Returns 0, an mbedTLS error, or
 * LOCALCAP_GCM_ACCEL_DECLINED for what mbedTLS's code is left to handle or
 * refuse: IVs other than 96 bits, invalid tag lengths, lengths beyond
 * GCM's limits (SP 800-38D 5.2.1.1). */
static int localcap_gcm_accel_crypt(mbedtls_gcm_context *ctx, int mode,
                                    size_t length,
                                    const unsigned char *iv, size_t iv_len,
                                    const unsigned char *add, size_t add_len,
                                    const unsigned char *input,
                                    unsigned char *output,
                                    size_t tag_len, unsigned char *tag)
{
    const struct localcap_gcm_key *k = ctx->MBEDTLS_PRIVATE(localcap_accel);
    struct gcm_context_data st;
    unsigned char full_tag[16], sink[16];
    static const unsigned char none[1];

    if (iv_len != 12 || tag_len < 4 || tag_len > 16 ||
        (uint64_t) length > ((uint64_t) 1 << 36) - 32 ||
        (uint64_t) add_len >> 61 != 0 ||
        (mode != MBEDTLS_GCM_ENCRYPT && mode != MBEDTLS_GCM_DECRYPT)) {
        return LOCALCAP_GCM_ACCEL_DECLINED;
    }
    /* ipsec-mb reads through its pointers even for zero lengths. */
    if (length == 0) {
        input = none;
        output = sink;          /* nothing is written */
    }
    if (add_len == 0) {
        add = none;
    }

    if (mode == MBEDTLS_GCM_ENCRYPT) {
        if (k->keybits == 128) {
            IMB_AES128_GCM_ENC(localcap_gcm_mgr, &k->kd, &st, output, input,
                               length, iv, add, add_len, full_tag, 16);
        } else {
            IMB_AES256_GCM_ENC(localcap_gcm_mgr, &k->kd, &st, output, input,
                               length, iv, add, add_len, full_tag, 16);
        }
    } else {
        if (k->keybits == 128) {
            IMB_AES128_GCM_DEC(localcap_gcm_mgr, &k->kd, &st, output, input,
                               length, iv, add, add_len, full_tag, 16);
        } else {
            IMB_AES256_GCM_DEC(localcap_gcm_mgr, &k->kd, &st, output, input,
                               length, iv, add, add_len, full_tag, 16);
        }
    }
    memcpy(tag, full_tag, tag_len);
    mbedtls_platform_zeroize(&st, sizeof(st));
    mbedtls_platform_zeroize(full_tag, sizeof(full_tag));
    return 0;
}

#else /* !LOCALCAP_HAVE_IPSECMB: built without ipsec-mb, mbedTLS's code only */

const char *localcap_gcm_accel_name(void)
{
    return "mbedtls";
}

int localcap_gcm_accel_enable(int on)
{
    (void) on;
    return 0;
}

int localcap_gcm_accel_active(const mbedtls_gcm_context *ctx)
{
    (void) ctx;
    return 0;
}

static void localcap_gcm_accel_drop(mbedtls_gcm_context *ctx)
{
    ctx->MBEDTLS_PRIVATE(localcap_accel) = NULL;
}

static void localcap_gcm_accel_setkey(mbedtls_gcm_context *ctx,
                                      mbedtls_cipher_id_t cipher,
                                      const unsigned char *key,
                                      unsigned int keybits)
{
    (void) ctx;
    (void) cipher;
    (void) key;
    (void) keybits;
}

static int localcap_gcm_accel_crypt(mbedtls_gcm_context *ctx, int mode,
                                    size_t length,
                                    const unsigned char *iv, size_t iv_len,
                                    const unsigned char *add, size_t add_len,
                                    const unsigned char *input,
                                    unsigned char *output,
                                    size_t tag_len, unsigned char *tag)
{
    (void) ctx; (void) mode; (void) length; (void) iv; (void) iv_len;
    (void) add; (void) add_len; (void) input; (void) output;
    (void) tag_len; (void) tag;
    return LOCALCAP_GCM_ACCEL_DECLINED;
}

#endif /* LOCALCAP_HAVE_IPSECMB */
