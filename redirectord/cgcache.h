/*
 * cgroup id -> path, cached, for flow owners.
 *
 * The BPF programs record a flow owner's cgroup id; people want its path.
 * The kernel offers no id -> path call redirectord may use once it has
 * dropped CAP_DAC_READ_SEARCH (open_by_handle_at), so the path is found by
 * walking the cgroup tree (spec.c, up to 20,000 directories).  Doing that
 * per flow, in the privileged process, cost a tree walk per connection.
 *
 * This cache fills id -> path for every directory a walk visits, so one walk
 * serves the flows of every cgroup that existed then.  An entry is trusted
 * for `ttl` after it was last confirmed; an older one is confirmed by asking
 * the cached path for its id (two syscalls), which catches a renamed or
 * removed cgroup; only a miss (a cgroup new since the last walk) or a
 * failed confirmation walks the tree again.  An id no walk found (a cgroup
 * already gone) is remembered as unknown for `min_walk_gap`, so a burst of
 * flows from it walks once.  Sized in entries; when full, the least
 * recently confirmed entry in the way is replaced.
 */
#ifndef LOCALCAP_REDIRECTORD_CGCACHE_H
#define LOCALCAP_REDIRECTORD_CGCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define CGCACHE_PATH_MAX	256	/* as struct owner's cgroup (owner.h) */

struct cgcache_stats {
	uint64_t	hits;		/* answered from the map alone */
	uint64_t	confirmed;	/* an old entry re-checked and kept */
	uint64_t	misses;		/* not cached, or no longer true */
	uint64_t	walks;		/* tree walks (each fills the map) */
	uint64_t	entries;	/* in the map now */
};

/*
 * How the cache reaches the tree; NULL members: the real ones (spec.c's
 * rd_cgroup_foreach and rd_cgroup_id).  Tests inject a fake tree.
 */
struct cgcache_ops {
	int	(*foreach)(const char *root, int (*fn)(const char *rel,
		    uint64_t id, void *arg), void *arg, void *user);
	int	(*id_of)(const char *abs_path, uint64_t *id, void *user);
	void	*user;
};

struct cgcache;

/* ttl_ms, min_walk_gap_ms: see above.  NULL on allocation failure. */
LC_MUST_CHECK
struct cgcache	*cgcache_new(const char *root, size_t capacity, uint64_t ttl_ms,
		    uint64_t min_walk_gap_ms, const struct cgcache_ops *);
void		 cgcache_free(struct cgcache *);

/*
 * The path of cgroup id relative to root ("/", "/a/b") into buf; now_ms is
 * a monotonic clock.  0, or -1 with errno ENOENT (no such cgroup now) or
 * ENAMETOOLONG.
 */
int		 cgcache_path(struct cgcache *, uint64_t id, uint64_t now_ms,
		    char *buf, size_t len);
const struct cgcache_stats *cgcache_stats(const struct cgcache *);

#endif
