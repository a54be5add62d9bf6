/*
 * Certificate forging and its cache (see certforge.h).
 *
 * certforge_get():
 *   normalise the SNI (or take the destination address) -> cache key
 *   -> cache hit: bump in the LRU, return a reference
 *   -> miss: parse the upstream certificate, collect CN and DNS/IP SANs,
 *      clip the validity, ask the signer, parse the DER back once (so each
 *      handshake reuses a ready mbedtls_x509_crt), insert, evict the tail.
 *
 * The cache is a hash table (chained, power-of-two buckets, seeded FNV-1a
 * because the names come from peers) plus a doubly linked LRU list.
 * Entries are also dropped when our validity cap on them is about to run
 * out (leaves live days: signer.h).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "proxyd/tlserr.h"
#include "errmsg.h"
#include "log.h"
#include "proxyd/certforge.h"
#include "proxyd/certname.h"
#include "proxyd/signer.h"
#include "proxyd/x509util.h"

#define FP_LEN		32
#define EXPIRY_MARGIN	3600	/* re-forge an hour before a cached leaf expires */

struct forged_cert {
	unsigned int		refs;
	mbedtls_x509_crt	chain;		/* the leaf */
	/*
	 * When to forge it again: an hour before our own validity cap runs
	 * out.  A leaf clipped to an upstream certificate's notAfter (even
	 * an expired one) keeps that date whenever it is forged again for the
	 * same certificate, so it is not re-forged for it: a client retrying
	 * against an expired server must not cost a signature per connection
	 * (and run into the signer's rate limit).
	 */
	int64_t			renew_at;
	struct forged_cert	*lru_prev, *lru_next;	/* head = most recent */
	struct forged_cert	*hnext;
	uint64_t		hash;
	bool			cached;
	size_t			keylen;
	unsigned char		key[];		/* name, NUL, has-upstream, fp */
};

struct certforge {
	struct signer		*signer;
	mbedtls_pk_context	leaf_key;
	unsigned char		spki[SIGNER_MAX_SPKI];
	size_t			spki_len;
	size_t			cache_max;
	unsigned int		days;
	struct forged_cert	**buckets;
	size_t			nbuckets;	/* power of two */
	struct forged_cert	*lru_head, *lru_tail;
	uint64_t		seed;
	struct certforge_stats	st;
};

static uint64_t
key_hash(uint64_t seed, const unsigned char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/* --- forged_cert lifetime ------------------------------------------------ */

void
forged_cert_ref(struct forged_cert *fc)
{
	fc->refs++;
}

void
forged_cert_release(struct forged_cert *fc)
{
	if (fc == NULL || --fc->refs > 0)
		return;
	mbedtls_x509_crt_free(&fc->chain);
	free(fc);
}

mbedtls_x509_crt *
forged_cert_chain(struct forged_cert *fc)
{
	return &fc->chain;
}

const unsigned char *
forged_cert_der(const struct forged_cert *fc, size_t *len)
{
	*len = fc->chain.raw.len;
	return fc->chain.raw.p;
}

/* --- cache ----------------------------------------------------------------- */

static void
lru_unlink(struct certforge *cf, struct forged_cert *fc)
{
	if (fc->lru_prev != NULL)
		fc->lru_prev->lru_next = fc->lru_next;
	else
		cf->lru_head = fc->lru_next;
	if (fc->lru_next != NULL)
		fc->lru_next->lru_prev = fc->lru_prev;
	else
		cf->lru_tail = fc->lru_prev;
	fc->lru_prev = fc->lru_next = NULL;
}

static void
lru_push_head(struct certforge *cf, struct forged_cert *fc)
{
	fc->lru_prev = NULL;
	fc->lru_next = cf->lru_head;
	if (cf->lru_head != NULL)
		cf->lru_head->lru_prev = fc;
	cf->lru_head = fc;
	if (cf->lru_tail == NULL)
		cf->lru_tail = fc;
}

static void
cache_remove(struct certforge *cf, struct forged_cert *fc)
{
	struct forged_cert **pp = &cf->buckets[fc->hash & (cf->nbuckets - 1)];

	while (*pp != NULL && *pp != fc)
		pp = &(*pp)->hnext;
	if (*pp == fc)
		*pp = fc->hnext;
	lru_unlink(cf, fc);
	fc->cached = false;
	cf->st.entries--;
	cf->st.evictions++;
	forged_cert_release(fc);	/* the cache's reference */
}

static struct forged_cert *
cache_find(struct certforge *cf, const unsigned char *key, size_t keylen, uint64_t h)
{
	struct forged_cert *fc;

	if (cf->nbuckets == 0)
		return NULL;
	for (fc = cf->buckets[h & (cf->nbuckets - 1)]; fc != NULL; fc = fc->hnext)
		if (fc->hash == h && fc->keylen == keylen &&
		    memcmp(fc->key, key, keylen) == 0)
			return fc;
	return NULL;
}

static void
cache_insert(struct certforge *cf, struct forged_cert *fc)
{
	size_t b;

	if (cf->cache_max == 0)
		return;
	while (cf->st.entries >= cf->cache_max && cf->lru_tail != NULL)
		cache_remove(cf, cf->lru_tail);
	b = fc->hash & (cf->nbuckets - 1);
	fc->hnext = cf->buckets[b];
	cf->buckets[b] = fc;
	lru_push_head(cf, fc);
	fc->cached = true;
	fc->refs++;		/* the cache's reference */
	cf->st.entries++;
}

/* --- forging --------------------------------------------------------------- */

struct san_set {
	struct leaf_san		sans[SIGNER_MAX_SANS];
	struct certname		names[SIGNER_MAX_SANS];
	size_t			n;
	size_t			bytes;
};

/* Adds a normalised name unless already present; false when full. */
static bool
san_add(struct san_set *set, const struct certname *cn)
{
	enum leaf_san_type type = cn->kind == CERTNAME_DNS ? LEAF_SAN_DNS : LEAF_SAN_IP;
	const unsigned char *v;
	size_t i, len;

	if (cn->kind == CERTNAME_DNS) {
		v = (const unsigned char *)cn->text;
		len = cn->textlen;
	} else {
		v = cn->ip;
		len = cn->iplen;
	}
	for (i = 0; i < set->n; i++)
		if (set->sans[i].type == type && set->sans[i].len == len &&
		    memcmp(set->sans[i].value, v, len) == 0)
			return true;
	if (set->n == SIGNER_MAX_SANS || set->bytes + len > SIGNER_MAX_SAN_BYTES)
		return false;
	set->names[set->n] = *cn;
	/* Point into our own copy, which stays put inside the set. */
	set->sans[set->n].type = type;
	set->sans[set->n].value = cn->kind == CERTNAME_DNS ?
	    (const unsigned char *)set->names[set->n].text : set->names[set->n].ip;
	set->sans[set->n].len = len;
	set->n++;
	set->bytes += len;
	return true;
}

/* Copies the upstream certificate's DNS and IP SANs that are well formed. */
static void
collect_upstream_sans(struct san_set *set, const mbedtls_x509_crt *up)
{
	const mbedtls_x509_sequence *cur;
	size_t skipped = 0;

	for (cur = &up->subject_alt_names; cur != NULL && cur->buf.p != NULL;
	    cur = cur->next) {
		mbedtls_x509_subject_alternative_name san;
		struct certname cn;
		bool ok = false;

		memset(&san, 0, sizeof(san));
		if (mbedtls_x509_parse_subject_alt_name(&cur->buf, &san) != 0) {
			skipped++;	/* otherName, URI etc.: not for a server */
			continue;
		}
		if (san.type == MBEDTLS_X509_SAN_DNS_NAME) {
			ok = certname_parse((const char *)san.san.unstructured_name.p,
			    san.san.unstructured_name.len, true, &cn) == CERTNAME_DNS;
		} else if (san.type == MBEDTLS_X509_SAN_IP_ADDRESS) {
			size_t l = san.san.unstructured_name.len;

			if (l == 4 || l == 16) {
				memset(&cn, 0, sizeof(cn));
				cn.kind = l == 4 ? CERTNAME_IPV4 : CERTNAME_IPV6;
				memcpy(cn.ip, san.san.unstructured_name.p, l);
				cn.iplen = l;
				ok = certname_ip_to_text(cn.ip, l, cn.text, sizeof(cn.text));
				cn.textlen = strlen(cn.text);
			}
		}
		mbedtls_x509_free_subject_alt_name(&san);
		if (!ok || !san_add(set, &cn))
			skipped++;
	}
	if (skipped > 0)
		log_debug("%zu upstream subjectAltNames not copied", skipped);
}

/* The upstream subject's CN, if it is a usable host name or address. */
static bool
upstream_cn(const mbedtls_x509_crt *up, struct certname *cn)
{
	const mbedtls_x509_name *n;

	for (n = &up->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		return certname_parse((const char *)n->val.p, n->val.len, true, cn) !=
		    CERTNAME_INVALID;
	}
	return false;
}

static struct forged_cert *
forge(struct certforge *cf, const struct certname *want, const mbedtls_x509_crt *up,
    const unsigned char *key, size_t keylen, uint64_t h, char *err, size_t errlen)
{
	struct forged_cert *fc = NULL;
	struct san_set *set = NULL;
	struct certname cn;
	struct leaf_request req;
	unsigned char *der = NULL;
	size_t der_len;
	int64_t now = (int64_t)time(NULL), not_after, renew_at;
	int ret;

	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (der = malloc(SIGNER_DER_MAX)) == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	/* The name the client asked for goes first: it must survive any cap. */
	(void)san_add(set, want);
	cn = *want;
	/* Lifetime counts from notBefore, as browsers count it (signer.h). */
	not_after = now - CERTFORGE_BACKDATE + (int64_t)cf->days * 86400;
	renew_at = not_after - EXPIRY_MARGIN;
	if (up != NULL) {
		int64_t up_after = x509u_time_to_epoch(&up->valid_to);

		collect_upstream_sans(set, up);
		(void)upstream_cn(up, &cn);
		/*
		 * Never outlive the upstream certificate: an expiring origin
		 * certificate shows up as such to the client.  An already
		 * expired one yields an expired leaf (but a well-formed one).
		 */
		if (up_after < not_after)
			not_after = up_after;
	}
	req.subject_cn = cn.text;
	req.sans = set->sans;
	req.nsans = set->n;
	req.not_before = now - CERTFORGE_BACKDATE;
	if (not_after <= req.not_before)
		not_after = req.not_before + 1;
	req.not_after = not_after;
	req.spki_der = cf->spki;
	req.spki_len = cf->spki_len;

	if (signer_sign_leaf(cf->signer, &req, der, SIGNER_DER_MAX, &der_len, err,
	    errlen) != SIGNER_OK)
		goto out;
	cf->st.signatures++;

	if ((fc = calloc(1, sizeof(*fc) + keylen)) == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	mbedtls_x509_crt_init(&fc->chain);
	fc->refs = 1;
	fc->hash = h;
	fc->keylen = keylen;
	memcpy(fc->key, key, keylen);
	fc->renew_at = renew_at;
	if ((ret = mbedtls_x509_crt_parse_der(&fc->chain, der, der_len)) != 0) {
		seterr(err, errlen, "forged certificate does not parse back (-0x%04x)", -ret);
		forged_cert_release(fc);
		fc = NULL;
	}
out:
	free(der);
	free(set);
	return fc;
}

int
certforge_get(struct certforge *cf, const struct certforge_request *req,
    struct forged_cert **out, char *err, size_t errlen)
{
	unsigned char key[CERTNAME_DNS_MAX + 2 + 1 + FP_LEN];
	struct forged_cert *fc;
	mbedtls_x509_crt up;
	struct certname want;
	size_t keylen;
	uint64_t h;
	int ret;

	*out = NULL;
	if (req->sni != NULL && req->sni_len > 0) {
		if (certname_parse(req->sni, req->sni_len, false, &want) == CERTNAME_INVALID) {
			seterr(err, errlen, "malformed SNI (%zu bytes)", req->sni_len);
			cf->st.errors++;
			return -1;
		}
	} else if (req->dst_ip != NULL && (req->dst_ip_len == 4 || req->dst_ip_len == 16)) {
		memset(&want, 0, sizeof(want));
		want.kind = req->dst_ip_len == 4 ? CERTNAME_IPV4 : CERTNAME_IPV6;
		memcpy(want.ip, req->dst_ip, req->dst_ip_len);
		want.iplen = req->dst_ip_len;
		(void)certname_ip_to_text(want.ip, want.iplen, want.text, sizeof(want.text));
		want.textlen = strlen(want.text);
	} else {
		seterr(err, errlen, "neither SNI nor destination address");
		cf->st.errors++;
		return -1;
	}

	/* Key: normalised name, NUL, whether an upstream cert was given, its hash. */
	memcpy(key, want.text, want.textlen);
	key[want.textlen] = '\0';
	key[want.textlen + 1] = req->upstream_der != NULL && req->upstream_len > 0;
	memset(key + want.textlen + 2, 0, FP_LEN);
	if (key[want.textlen + 1] &&
	    mbedtls_sha256(req->upstream_der, req->upstream_len, key + want.textlen + 2, 0) != 0) {
		seterr(err, errlen, "SHA-256 failed");
		cf->st.errors++;
		return -1;
	}
	keylen = want.textlen + 2 + FP_LEN;
	h = key_hash(cf->seed, key, keylen);

	if ((fc = cache_find(cf, key, keylen, h)) != NULL) {
		if (fc->renew_at > (int64_t)time(NULL)) {
			lru_unlink(cf, fc);
			lru_push_head(cf, fc);
			cf->st.hits++;
			fc->refs++;
			*out = fc;
			return 0;
		}
		cache_remove(cf, fc);
	}
	cf->st.misses++;

	mbedtls_x509_crt_init(&up);
	if (key[want.textlen + 1] &&
	    (ret = mbedtls_x509_crt_parse_der(&up, req->upstream_der, req->upstream_len)) != 0) {
		char why[100];

		(void)tls_strerror(ret, why, sizeof(why));
		seterr(err, errlen, "upstream certificate does not parse: %s", why);
		mbedtls_x509_crt_free(&up);
		cf->st.errors++;
		return -1;
	}
	fc = forge(cf, &want, key[want.textlen + 1] ? &up : NULL, key, keylen, h, err, errlen);
	mbedtls_x509_crt_free(&up);
	if (fc == NULL) {
		cf->st.errors++;
		return -1;
	}
	cache_insert(cf, fc);
	*out = fc;
	return 0;
}

/* --- setup ----------------------------------------------------------------- */

/* Forges one leaf and verifies it against the CA: catches an issuer name that
 * does not round-trip or a CA that cannot sign before the first client does. */
static int
self_test(struct certforge *cf, const mbedtls_x509_crt *ca_cert, char *err, size_t errlen)
{
	static const char name[] = "selftest.localcap.invalid";
	struct certforge_request req = { .sni = name, .sni_len = sizeof(name) - 1 };
	struct forged_cert *fc;
	mbedtls_x509_crt trust;
	size_t saved = cf->cache_max;
	uint32_t flags = 0;
	int ret;

	cf->cache_max = 0;	/* keep it out of the cache and the counters */
	ret = certforge_get(cf, &req, &fc, err, errlen);
	cf->cache_max = saved;
	memset(&cf->st, 0, sizeof(cf->st));
	if (ret != 0)
		return -1;
	mbedtls_x509_crt_init(&trust);
	ret = mbedtls_x509_crt_parse_der(&trust, ca_cert->raw.p, ca_cert->raw.len);
	if (ret == 0)
		ret = mbedtls_x509_crt_verify(forged_cert_chain(fc), &trust, NULL, name,
		    &flags, NULL, NULL);
	mbedtls_x509_crt_free(&trust);
	forged_cert_release(fc);
	if (ret != 0) {
		char why[256];

		mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags);
		why[strcspn(why, "\n")] = '\0';
		seterr(err, errlen, "self-test: forged leaf does not verify against the "
		    "CA (%s)", flags ? why : "parse error");
		return -1;
	}
	return 0;
}

struct certforge *
certforge_new(struct signer *signer, const mbedtls_x509_crt *ca_cert, size_t cache_max,
    unsigned int days, char *err, size_t errlen)
{
	struct certforge *cf;
	char why[100];
	int n, ret;

	if (psa_crypto_init() != PSA_SUCCESS) {
		seterr(err, errlen, "psa_crypto_init failed");
		return NULL;
	}
	if ((cf = calloc(1, sizeof(*cf))) == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	cf->signer = signer;
	cf->cache_max = cache_max;
	cf->days = days == 0 || days > CERTFORGE_DEFAULT_DAYS ? CERTFORGE_DEFAULT_DAYS : days;
	mbedtls_pk_init(&cf->leaf_key);
	if (psa_generate_random((unsigned char *)&cf->seed, sizeof(cf->seed)) != PSA_SUCCESS) {
		seterr(err, errlen, "no randomness");
		goto fail;
	}
	if (cache_max > 0) {
		cf->nbuckets = 16;
		while (cf->nbuckets < cache_max * 2 && cf->nbuckets < ((size_t)1 << 24))
			cf->nbuckets <<= 1;
		if ((cf->buckets = calloc(cf->nbuckets, sizeof(*cf->buckets))) == NULL) {
			seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	/* One leaf key per process start: ECDSA P-256, cheap to use in handshakes. */
	if ((ret = mbedtls_pk_setup(&cf->leaf_key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0 ||
	    (ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(cf->leaf_key),
	    mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE)) != 0) {
		(void)tls_strerror(ret, why, sizeof(why));
		seterr(err, errlen, "leaf key generation: %s", why);
		goto fail;
	}
	n = mbedtls_pk_write_pubkey_der(&cf->leaf_key, cf->spki, sizeof(cf->spki));
	if (n <= 0) {
		seterr(err, errlen, "leaf key encoding failed");
		goto fail;
	}
	memmove(cf->spki, cf->spki + sizeof(cf->spki) - (size_t)n, (size_t)n);
	cf->spki_len = (size_t)n;
	if (self_test(cf, ca_cert, err, errlen) != 0)
		goto fail;
	return cf;
fail:
	certforge_free(cf);
	return NULL;
}

void
certforge_free(struct certforge *cf)
{
	if (cf == NULL)
		return;
	while (cf->lru_tail != NULL)
		cache_remove(cf, cf->lru_tail);
	free(cf->buckets);
	mbedtls_pk_free(&cf->leaf_key);
	free(cf);
}

mbedtls_pk_context *
certforge_leaf_key(struct certforge *cf)
{
	return &cf->leaf_key;
}

void
certforge_get_stats(const struct certforge *cf, struct certforge_stats *st)
{
	*st = cf->st;
}
