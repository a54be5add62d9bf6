/*
 * Upstream TLS sessions for resumption (sesscache.h).  A flat array
 * searched linearly: a thousand entries, looked up once per intercepted
 * flow, cost less than the handshake they save.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/sesscache.h"

struct up_session {
	uint64_t		hash;		/* of key, 0 = free slot */
	char			key[SESSCACHE_KEY_MAX];	/* "sni|ip|port" */
	mbedtls_ssl_session	sess;
	unsigned char		*der;		/* the certificate it was verified with */
	size_t			der_len;
	uint32_t		verify_flags;	/* its verdict (non-zero: insecure mode) */
	uint64_t		used;		/* LRU clock */
};

struct sesscache {
	struct up_session	*s;
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
	if ((c->s = calloc(max, sizeof(*c->s))) == NULL) {
		free(c);
		return NULL;
	}
	c->n = max;
	for (size_t i = 0; i < c->n; i++)
		mbedtls_ssl_session_init(&c->s[i].sess);
	return c;
}

void
sesscache_free(struct sesscache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		mbedtls_ssl_session_free(&c->s[i].sess);
		free(c->s[i].der);
	}
	free(c->s);
	free(c);
}

size_t
sesscache_count(const struct sesscache *c)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->s[i].hash != 0)
			n++;
	return n;
}

static struct up_session *
find(struct sesscache *c, const char *key, uint64_t hash)
{
	for (size_t i = 0; i < c->n; i++) {
		struct up_session *s = &c->s[i];

		if (s->hash == hash && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

static void
drop(struct up_session *s)
{
	mbedtls_ssl_session_free(&s->sess);
	mbedtls_ssl_session_init(&s->sess);
	free(s->der);
	s->der = NULL;
	s->der_len = 0;
	s->hash = 0;
	s->key[0] = '\0';
}

bool
sesscache_offer(struct sesscache *c, const char *key, mbedtls_ssl_context *ssl,
    unsigned char **der, size_t *der_len, uint32_t *flags)
{
	struct up_session *s;

	if (c == NULL || (s = find(c, key, key_hash(key))) == NULL ||
	    mbedtls_ssl_set_session(ssl, &s->sess) != 0)
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
	struct up_session *s, *victim = NULL;
	uint64_t hash;

	if (c == NULL)
		return;
	hash = key_hash(key);
	if ((s = find(c, key, hash)) == NULL) {
		for (size_t i = 0; i < c->n; i++) {
			s = &c->s[i];
			if (s->hash == 0) {
				victim = s;
				break;
			}
			if (victim == NULL || s->used < victim->used)
				victim = s;
		}
		if ((s = victim) == NULL)
			return;		/* no slots: cannot be, max > 0 */
	}
	drop(s);
	if (mbedtls_ssl_get_session(ssl, &s->sess) != 0) {
		drop(s);
		return;
	}
	if (der != NULL) {
		if ((s->der = malloc(der_len)) == NULL) {
			drop(s);
			return;
		}
		memcpy(s->der, der, der_len);
		s->der_len = der_len;
		s->verify_flags = flags;
	}
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->hash = hash;
	s->used = ++c->clock;
}

void
sesscache_forget(struct sesscache *c, const char *key)
{
	struct up_session *s;

	if (c != NULL && (s = find(c, key, key_hash(key))) != NULL)
		drop(s);
}
