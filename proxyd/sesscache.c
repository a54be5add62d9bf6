/*
 * Upstream TLS sessions for resumption (sesscache.h).  A flat array of
 * slots searched linearly: a thousand entries, looked up once per
 * intercepted flow, cost less than the handshake they save.  A slot's
 * entry (880 bytes with its mbedTLS session) is allocated when a session
 * is first kept in it: the 1,024 entries initialised up front were 880 KiB
 * of proxyd's resident memory for a cache that holds one entry per origin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "proxyd/sesscache.h"

struct up_session {
	char			key[SESSCACHE_KEY_MAX];	/* "sni|ip|port" */
	mbedtls_ssl_session	sess;
	unsigned char		*der;		/* the certificate it was verified with */
	size_t			der_len;
	uint32_t		verify_flags;	/* its verdict (non-zero: insecure mode) */
	uint64_t		used;		/* LRU clock */
};

struct sesscache {
	struct up_session	**s;		/* n slots, NULL until first used */
	uint64_t		*hash;		/* n: the slot's key hash, 0 = free */
	size_t			 n;
	uint64_t		 clock;
};

/* Seeded FNV-1a would be overkill: keys come from validated SNI and addresses. */
static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h == 0 ? 1 : h;
}

struct sesscache *
sesscache_new(size_t max)
{
	struct sesscache *c;

	if (max == 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->s = calloc(max, sizeof(*c->s))) == NULL ||
	    (c->hash = calloc(max, sizeof(*c->hash))) == NULL) {
		free(c->s);
		free(c);
		return NULL;
	}
	c->n = max;
	return c;
}

void
sesscache_free(struct sesscache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (c->s[i] == NULL)
			continue;
		mbedtls_ssl_session_free(&c->s[i]->sess);
		free(c->s[i]->der);
		free(c->s[i]);
	}
	free(c->s);
	free(c->hash);
	free(c);
}

size_t
sesscache_count(const struct sesscache *c)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->hash[i] != 0)
			n++;
	return n;
}

/* The slot holding key, or -1. */
static ssize_t
find(const struct sesscache *c, const char *key, uint64_t hash)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->hash[i] == hash && strcmp(c->s[i]->key, key) == 0)
			return (ssize_t)i;
	return -1;
}

/* Empty slot i's entry (kept allocated, for the next session). */
static void
drop(struct sesscache *c, size_t i)
{
	struct up_session *s = c->s[i];

	c->hash[i] = 0;
	if (s == NULL)
		return;
	mbedtls_ssl_session_free(&s->sess);
	mbedtls_ssl_session_init(&s->sess);
	free(s->der);
	s->der = NULL;
	s->der_len = 0;
	s->key[0] = '\0';
}

bool
sesscache_offer(struct sesscache *c, const char *key, mbedtls_ssl_context *ssl,
    unsigned char **der, size_t *der_len, uint32_t *flags)
{
	struct up_session *s;
	ssize_t i;

	if (c == NULL || (i = find(c, key, key_hash(key))) < 0)
		return false;
	s = c->s[i];
	if (mbedtls_ssl_set_session(ssl, &s->sess) != 0)
		return false;
	if (s->der != NULL && (*der = malloc(s->der_len)) != NULL) {
		memcpy(*der, s->der, s->der_len);
		*der_len = s->der_len;
		*flags = s->verify_flags;
	}
	s->used = ++c->clock;
	return true;
}

void
sesscache_save(struct sesscache *c, const char *key,
    const mbedtls_ssl_context *ssl, const unsigned char *der, size_t der_len,
    uint32_t flags)
{
	struct up_session *s;
	uint64_t hash;
	ssize_t i;

	if (c == NULL)
		return;
	hash = key_hash(key);
	if ((i = find(c, key, hash)) < 0) {
		/* A free slot, else the least recently used entry. */
		for (size_t j = 0; j < c->n; j++) {
			if (c->hash[j] == 0) {
				i = (ssize_t)j;
				break;
			}
			if (i < 0 || c->s[j]->used < c->s[i]->used)
				i = (ssize_t)j;
		}
		if (i < 0)
			return;		/* no slots: cannot be, max > 0 */
	}
	drop(c, (size_t)i);
	if ((s = c->s[i]) == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;
		mbedtls_ssl_session_init(&s->sess);
		c->s[i] = s;
	}
	if (mbedtls_ssl_get_session(ssl, &s->sess) != 0) {
		drop(c, (size_t)i);
		return;
	}
	if (der != NULL) {
		if ((s->der = malloc(der_len)) == NULL) {
			drop(c, (size_t)i);
			return;
		}
		memcpy(s->der, der, der_len);
		s->der_len = der_len;
		s->verify_flags = flags;
	}
	snprintf(s->key, sizeof(s->key), "%s", key);
	c->hash[i] = hash;
	s->used = ++c->clock;
}

void
sesscache_forget(struct sesscache *c, const char *key)
{
	ssize_t i;

	if (c != NULL && (i = find(c, key, key_hash(key))) >= 0)
		drop(c, (size_t)i);
}
