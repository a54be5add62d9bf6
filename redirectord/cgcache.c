/*
 * cgroup id -> path cache (cgcache.h): an open-addressed table keyed by id,
 * filled by whole-tree walks, confirmed lazily.
 */
#include "redirectord/cgcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/limits.h>

#include "redirectord/spec.h"

#define PROBE_MAX	8	/* slots looked at per key */

struct cgentry {
	uint64_t	id;		/* 0: free slot */
	uint64_t	checked_ms;	/* last confirmed (or filled) */
	int		unknown;	/* no walk found it (at checked_ms) */
	char		path[CGCACHE_PATH_MAX];	/* relative to root */
};

struct cgcache {
	char			 root[PATH_MAX];
	struct cgentry		*slots;
	size_t			 nslots;
	uint64_t		 ttl_ms, gap_ms;
	uint64_t		 fill_ms;	/* the walk under way */
	uint64_t		 want_id;	/* ...and what it is for, kept */
	char			 want_path[CGCACHE_PATH_MAX];	/* even if evicted */
	int			 want_found;
	struct cgcache_ops	 ops;
	struct cgcache_stats	 st;
};

static int
real_foreach(const char *root, int (*fn)(const char *, uint64_t, void *),
    void *arg, void *user)
{
	(void)user;
	return rd_cgroup_foreach(root, fn, arg);
}

static int
real_id_of(const char *path, uint64_t *id, void *user)
{
	(void)user;
	return rd_cgroup_id(path, id);
}

struct cgcache *
cgcache_new(const char *root, size_t capacity, uint64_t ttl_ms,
    uint64_t min_walk_gap_ms, const struct cgcache_ops *ops)
{
	struct cgcache *c;

	if (capacity < PROBE_MAX)
		capacity = PROBE_MAX;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->slots = calloc(capacity, sizeof(*c->slots))) == NULL) {
		free(c);
		return NULL;
	}
	snprintf(c->root, sizeof(c->root), "%s", root);
	c->nslots = capacity;
	c->ttl_ms = ttl_ms;
	c->gap_ms = min_walk_gap_ms;
	c->ops.foreach = ops && ops->foreach ? ops->foreach : real_foreach;
	c->ops.id_of = ops && ops->id_of ? ops->id_of : real_id_of;
	c->ops.user = ops ? ops->user : NULL;
	return c;
}

void
cgcache_free(struct cgcache *c)
{
	if (c == NULL)
		return;
	free(c->slots);
	free(c);
}

const struct cgcache_stats *
cgcache_stats(const struct cgcache *c)
{
	return &c->st;
}

static size_t
slot_of(const struct cgcache *c, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) % c->nslots;
}

static struct cgentry *
find(struct cgcache *c, uint64_t id)
{
	size_t s = slot_of(c, id), i;

	for (i = 0; i < PROBE_MAX; i++) {
		struct cgentry *e = &c->slots[(s + i) % c->nslots];

		if (e->id == id)
			return e;
	}
	return NULL;
}

static void
drop(struct cgcache *c, struct cgentry *e)
{
	e->id = 0;
	c->st.entries--;
}

static void
put(struct cgcache *c, uint64_t id, const char *rel, uint64_t now_ms)
{
	size_t s = slot_of(c, id), i;
	struct cgentry *e = NULL, *oldest = NULL;

	if (id == 0 || (rel != NULL && strlen(rel) >= CGCACHE_PATH_MAX))
		return;
	for (i = 0; i < PROBE_MAX; i++) {
		struct cgentry *x = &c->slots[(s + i) % c->nslots];

		if (x->id == id || x->id == 0) {
			e = x;
			break;
		}
		if (oldest == NULL || x->checked_ms < oldest->checked_ms)
			oldest = x;
	}
	if (e == NULL)
		e = oldest;	/* full here: the least recently confirmed goes */
	if (e->id == 0)
		c->st.entries++;
	e->id = id;
	e->checked_ms = now_ms;
	e->unknown = rel == NULL;
	snprintf(e->path, sizeof(e->path), "%s", rel ? rel : "");
}

static int
fill_one(const char *rel, uint64_t id, void *arg)
{
	struct cgcache *c = arg;

	put(c, id, rel, c->fill_ms);
	if (id == c->want_id && strlen(rel) < sizeof(c->want_path)) {
		memcpy(c->want_path, rel, strlen(rel) + 1);
		c->want_found = 1;
	}
	return 0;
}

static int
answer(const struct cgentry *e, char *buf, size_t len)
{
	if (strlen(e->path) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(buf, len, "%s", e->path);
	return 0;
}

int
cgcache_path(struct cgcache *c, uint64_t id, uint64_t now_ms, char *buf,
    size_t len)
{
	struct cgentry *e = find(c, id);

	if (e != NULL && e->unknown) {
		/* A cgroup no walk found (gone): not looked for again so soon. */
		if (now_ms - e->checked_ms < c->gap_ms) {
			c->st.hits++;
			errno = ENOENT;
			return -1;
		}
		drop(c, e);
	} else if (e != NULL) {
		char abs[PATH_MAX + CGCACHE_PATH_MAX];
		uint64_t got;

		if (now_ms - e->checked_ms < c->ttl_ms) {
			c->st.hits++;
			return answer(e, buf, len);
		}
		/* Old: is the path still this cgroup? (renamed, removed?) */
		snprintf(abs, sizeof(abs), "%s%s", c->root,
		    strcmp(e->path, "/") == 0 ? "" : e->path);
		if (c->ops.id_of(abs, &got, c->ops.user) == 0 && got == id) {
			e->checked_ms = now_ms;
			c->st.confirmed++;
			return answer(e, buf, len);
		}
		drop(c, e);
	}
	c->st.misses++;
	/* One walk fills the map for every cgroup there is. */
	c->fill_ms = now_ms;
	c->want_id = id;
	c->want_found = 0;
	c->st.walks++;
	(void)c->ops.foreach(c->root, fill_one, c, c->ops.user);
	if (!c->want_found) {
		put(c, id, NULL, now_ms);
		errno = ENOENT;
		return -1;
	}
	if (strlen(c->want_path) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(buf, len, "%s", c->want_path);
	return 0;
}
