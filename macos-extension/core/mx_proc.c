/*
 * The audit-token cache (see mx_proc.h): a hash of buckets for lookup and
 * one list in recency order for eviction; entries are allocated once, up
 * to the cap, and then recycled from the list's tail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "macos-extension/core/mx_proc.h"

struct pentry {
	LIST_ENTRY(pentry)	 bucket;
	TAILQ_ENTRY(pentry)	 lru;
	uint8_t			 token[MX_AUDIT_TOKEN_LEN];
	size_t			 len;
	struct mx_proc		 proc;
};

LIST_HEAD(pbucket, pentry);

struct mx_proc_cache {
	size_t			 cap, count, nbuckets;
	struct pbucket		*buckets;
	TAILQ_HEAD(pentry_lru, pentry) lru;	/* most recent first */
};

/* FNV-1a: the token is not chosen by an attacker (the kernel makes it). */
static size_t
token_hash(const uint8_t *t, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= t[i];
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

struct mx_proc_cache *
mx_proc_cache_new(size_t cap)
{
	struct mx_proc_cache *c;
	size_t i;

	if (cap == 0)
		cap = MX_PROC_CACHE_DEFAULT;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->cap = cap;
	for (c->nbuckets = 16; c->nbuckets < cap; c->nbuckets *= 2)
		;
	if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
		free(c);
		return NULL;
	}
	for (i = 0; i < c->nbuckets; i++)
		LIST_INIT(&c->buckets[i]);
	TAILQ_INIT(&c->lru);
	return c;
}

void
mx_proc_cache_free(struct mx_proc_cache *c)
{
	struct pentry *e;

	if (c == NULL)
		return;
	while ((e = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, e, lru);
		free(e);
	}
	free(c->buckets);
	free(c);
}

int
mx_proc_cache_get(struct mx_proc_cache *c, const uint8_t *token, size_t len,
    int (*lookup)(void *, const uint8_t *, size_t, struct mx_proc *),
    void *ctx, struct mx_proc *out, bool *hit)
{
	struct pbucket *b;
	struct pentry *e;

	*hit = false;
	if (len == 0 || len > MX_AUDIT_TOKEN_LEN) {
		errno = EINVAL;
		return -1;
	}
	b = &c->buckets[token_hash(token, len) & (c->nbuckets - 1)];
	LIST_FOREACH(e, b, bucket)
		if (e->len == len && memcmp(e->token, token, len) == 0) {
			TAILQ_REMOVE(&c->lru, e, lru);
			TAILQ_INSERT_HEAD(&c->lru, e, lru);
			*out = e->proc;
			*hit = true;
			return 0;
		}
	memset(out, 0, sizeof(*out));
	if (lookup(ctx, token, len, out) < 0)
		return -1;
	out->path[sizeof(out->path) - 1] = '\0';
	out->signing_id[sizeof(out->signing_id) - 1] = '\0';
	if (c->count < c->cap) {
		if ((e = malloc(sizeof(*e))) == NULL)
			return 0;	/* answered, just not cached */
		c->count++;
	} else {
		e = TAILQ_LAST(&c->lru, pentry_lru);
		TAILQ_REMOVE(&c->lru, e, lru);
		LIST_REMOVE(e, bucket);
	}
	memcpy(e->token, token, len);
	e->len = len;
	e->proc = *out;
	LIST_INSERT_HEAD(b, e, bucket);
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	return 0;
}

size_t
mx_proc_cache_count(const struct mx_proc_cache *c)
{
	return c->count;
}
