/*
 * localcap: a cache of certificate signature checks, #included from
 * mbedTLS's x509_crt.c by scripts/mbedtls/localcap-x509-sigcache.patch and
 * called from x509_crt_check_signature().
 *
 * Verifying an ECDSA signature costs 1.3-2.3 ms here, and proxyd verifies
 * the same origin chains over and over (every upstream handshake that does
 * not resume).  Whether a certificate's signature verifies under a given
 * public key is a pure function of the two, so a success is remembered
 * under SHA-256(the child's whole DER, which holds its TBS, algorithm and
 * signature) and SHA-256(the parent's SubjectPublicKeyInfo).  Everything
 * else mbedTLS checks -- validity dates, names, key usage, path length,
 * profile, CRLs -- still runs every time; a changed certificate or key is
 * a different entry and is verified afresh.  Failures are not remembered.
 *
 * 256 entries, direct-mapped (about 17 KiB); no expiry is needed for a
 * pure function, and replacement bounds it.  Not thread-safe (neither is
 * this build of mbedTLS).  LOCALCAP_SIGCACHE=0 in the environment turns it
 * off for the process; localcap_x509_sigcache_enable() switches it.
 */
#include "mbedtls/sha256.h"
#include <stdlib.h>

#define LOCALCAP_SIGCACHE_SLOTS 256

struct localcap_sigcache_entry {
    unsigned char key[64];
    unsigned char used;
};

static struct localcap_sigcache_entry localcap_sigcache[LOCALCAP_SIGCACHE_SLOTS];
static int localcap_sigcache_state;     /* 0 unset, 1 on, -1 off */
static uint64_t localcap_sigcache_hits, localcap_sigcache_misses;

static int localcap_sigcache_on(void)
{
    if (localcap_sigcache_state == 0) {
        const char *e = getenv("LOCALCAP_SIGCACHE");

        localcap_sigcache_state = (e != NULL && strcmp(e, "0") == 0) ? -1 : 1;
    }
    return localcap_sigcache_state > 0;
}

int localcap_x509_sigcache_enable(int on)
{
    localcap_sigcache_state = on ? 1 : -1;
    if (!on) {
        memset(localcap_sigcache, 0, sizeof(localcap_sigcache));
    }
    return on ? 1 : 0;
}

void localcap_x509_sigcache_stats(uint64_t *hits, uint64_t *misses)
{
    *hits = localcap_sigcache_hits;
    *misses = localcap_sigcache_misses;
}

/* key: 64 bytes out.  Returns 0, or -1 when it cannot be computed (then
 * the cache is not used). */
static int localcap_sigcache_key(const mbedtls_x509_crt *child,
                                 const mbedtls_x509_crt *parent,
                                 unsigned char key[64])
{
    if (child->raw.p == NULL || parent->pk_raw.p == NULL ||
        mbedtls_sha256(child->raw.p, child->raw.len, key, 0) != 0 ||
        mbedtls_sha256(parent->pk_raw.p, parent->pk_raw.len, key + 32, 0) != 0) {
        return -1;
    }
    return 0;
}

/* 1 if this child's signature was verified under this parent's key before. */
static int localcap_sigcache_lookup(const unsigned char key[64])
{
    const struct localcap_sigcache_entry *e;

    if (!localcap_sigcache_on()) {
        return 0;
    }
    e = &localcap_sigcache[key[0] % LOCALCAP_SIGCACHE_SLOTS];
    if (e->used && memcmp(e->key, key, 64) == 0) {
        localcap_sigcache_hits++;
        return 1;
    }
    localcap_sigcache_misses++;
    return 0;
}

static void localcap_sigcache_store(const unsigned char key[64])
{
    struct localcap_sigcache_entry *e;

    if (!localcap_sigcache_on()) {
        return;
    }
    e = &localcap_sigcache[key[0] % LOCALCAP_SIGCACHE_SLOTS];
    memcpy(e->key, key, 64);
    e->used = 1;
}
