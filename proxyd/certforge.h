/*
 * Forged server certificates for TLS interception.
 *
 * For each intercepted TLS connection proxyd asks certforge for a leaf that
 * the client will accept: named after the client's SNI (or the original
 * destination address when there is no SNI), copying the upstream server's
 * CN and DNS/IP subjectAltNames when its certificate is known, and signed by
 * the CA through the signer (signer.h — the future process boundary).  All
 * leaves share one ECDSA P-256 key generated when certforge starts; it is
 * never the CA key.
 *
 * Forged certificates are cached by (requested name, SHA-256 of the upstream
 * certificate) in a bounded LRU, so a second connection to the same host does
 * no signing.  A forged_cert is reference counted: a connection keeps its
 * reference until the handshake is over, eviction never frees it under it.
 * Not thread-safe: one certforge per event loop.
 */
#ifndef LOCALCAP_PROXYD_CERTFORGE_H
#define LOCALCAP_PROXYD_CERTFORGE_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "errmsg.h"

struct signer;

#define CERTFORGE_DEFAULT_CACHE	1024
#define CERTFORGE_DEFAULT_DAYS	7	/* leaf lifetime cap from notBefore (signer.h) */
#define CERTFORGE_BACKDATE	(2 * 86400)	/* tolerate client clock skew */

struct certforge_request {
	const char		*sni;		/* client's SNI; NULL or "" if none */
	size_t			sni_len;
	const unsigned char	*dst_ip;	/* original destination, 4 or 16 bytes */
	size_t			dst_ip_len;
	const unsigned char	*upstream_der;	/* upstream leaf certificate or NULL */
	size_t			upstream_len;
};

struct certforge_stats {
	uint64_t	hits;		/* served from the cache */
	uint64_t	misses;		/* had to forge */
	uint64_t	signatures;	/* signing requests that succeeded */
	uint64_t	evictions;	/* LRU evictions and expiries */
	uint64_t	errors;		/* bad requests and failures */
	size_t		entries;	/* current cache size */
};

struct forged_cert;
struct certforge;

/*
 * signer: borrowed, must outlive the certforge.  ca_cert: the CA certificate
 * (for the start-up self-test).  cache_max 0 disables caching.  days caps
 * leaf validity (0: CERTFORGE_DEFAULT_DAYS).  NULL with err set on failure.
 */
LC_MUST_CHECK
struct certforge *certforge_new(struct signer *signer, const mbedtls_x509_crt *ca_cert,
	    size_t cache_max, unsigned int days, char *err, size_t errlen);
void	certforge_free(struct certforge *cf);

/*
 * Returns (a new reference to) the certificate for req in *out, 0 on
 * success; -1 with err set when the SNI is malformed, there is neither SNI
 * nor destination address, the upstream certificate does not parse, or
 * signing fails.  Never crashes on peer bytes.
 */
LC_MUST_CHECK
int	certforge_get(struct certforge *cf, const struct certforge_request *req,
	    struct forged_cert **out, char *err, size_t errlen)
	    __attribute__((warn_unused_result));

/* The leaf as served: for mbedtls_ssl_set_hs_own_cert(ssl, chain, key). */
mbedtls_x509_crt *forged_cert_chain(struct forged_cert *fc);
mbedtls_pk_context *certforge_leaf_key(struct certforge *cf);
const unsigned char *forged_cert_der(const struct forged_cert *fc, size_t *len);

void	forged_cert_ref(struct forged_cert *fc);
void	forged_cert_release(struct forged_cert *fc);

void	certforge_get_stats(const struct certforge *cf, struct certforge_stats *st);

#endif
