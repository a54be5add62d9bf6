/*
 * The TLS engine's cache of upstream sessions, for resumption: keyed by
 * "sni|address|port", least recently used evicted, bounded in count.  Each
 * entry keeps the certificate its first handshake was verified with and
 * that verdict, since a resumed handshake carries no certificate and the
 * flow still records one.  One per struct mitm_ctx; not thread-safe.  All
 * functions take a NULL cache (resumption off) and do nothing.
 */
#ifndef LOCALCAP_PROXYD_SESSCACHE_H
#define LOCALCAP_PROXYD_SESSCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>

#define SESSCACHE_KEY_MAX	340

struct sesscache;

/* max > 0 entries; NULL on allocation failure. */
struct sesscache *sesscache_new(size_t max);
void	sesscache_free(struct sesscache *);
/* Entries held now. */
size_t	sesscache_count(const struct sesscache *);

/*
 * Offer the session cached under key to ssl (before its handshake).  true
 * if one was set; then *der (malloc'd copy, NULL if none was kept or no
 * memory), *der_len and *flags are its certificate and verdict.
 */
bool	sesscache_offer(struct sesscache *, const char *key,
	    mbedtls_ssl_context *ssl, unsigned char **der, size_t *der_len,
	    uint32_t *flags);
/* Keep ssl's session under key, with the certificate it was verified with. */
void	sesscache_save(struct sesscache *, const char *key,
	    const mbedtls_ssl_context *ssl, const unsigned char *der,
	    size_t der_len, uint32_t flags);
/* Drop key's session (it led to a failed handshake). */
void	sesscache_forget(struct sesscache *, const char *key);

#endif
