/*
 * redirectord/cgcache.c: a flow owner's cgroup path is a map lookup; the
 * tree is walked once for many flows, again only for a cgroup new to the
 * cache or one renamed or removed, and an unknown id once per gap.
 * A fake tree stands in for cgroupfs (cgcache_ops).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "redirectord/cgcache.h"

#define ROOT	"/sys/fs/cgroup"
#define NDIRS	200

static struct {
	char		rel[64];
	uint64_t	id;
	int		gone;
} tree[NDIRS];
static int walks_seen;

static void
make_tree(void)
{
	int i;

	memset(tree, 0, sizeof(tree));
	snprintf(tree[0].rel, sizeof(tree[0].rel), "/");
	tree[0].id = 1;
	for (i = 1; i < NDIRS; i++) {
		snprintf(tree[i].rel, sizeof(tree[i].rel), "/svc/unit%d", i);
		tree[i].id = 1000 + (uint64_t)i;
	}
	walks_seen = 0;
}

static int
fake_foreach(const char *root, int (*fn)(const char *, uint64_t, void *),
    void *arg, void *user)
{
	int i, n = 0;

	(void)root;
	(void)user;
	walks_seen++;
	for (i = 0; i < NDIRS; i++)
		if (!tree[i].gone) {
			fn(tree[i].rel, tree[i].id, arg);
			n++;
		}
	return n;
}

static int
fake_id_of(const char *abs_path, uint64_t *id, void *user)
{
	int i;

	(void)user;
	for (i = 0; i < NDIRS; i++) {
		char p[256];

		snprintf(p, sizeof(p), "%s%.64s", ROOT,
		    strcmp(tree[i].rel, "/") == 0 ? "" : tree[i].rel);
		if (!tree[i].gone && strcmp(p, abs_path) == 0) {
			*id = tree[i].id;
			return 0;
		}
	}
	errno = ENOENT;
	return -1;
}

static const struct cgcache_ops ops = { fake_foreach, fake_id_of, NULL };

static void
many_flows_one_walk(void **state)
{
	struct cgcache *c;
	char buf[CGCACHE_PATH_MAX];
	uint64_t now = 5000;
	int i;

	(void)state;
	make_tree();
	c = cgcache_new(ROOT, 4096, 10000, 1000, &ops);
	assert_non_null(c);
	/* 10,000 flows from 199 cgroups and the root, within the TTL. */
	for (i = 0; i < 10000; i++) {
		int d = i % NDIRS;

		assert_int_equal(cgcache_path(c, tree[d].id, now + (uint64_t)i / 10,
		    buf, sizeof(buf)), 0);
		assert_string_equal(buf, tree[d].rel);
	}
	assert_int_equal(walks_seen, 1);
	assert_int_equal(cgcache_stats(c)->walks, 1);
	assert_int_equal(cgcache_stats(c)->misses, 1);
	assert_int_equal(cgcache_stats(c)->hits, 9999);
	assert_int_equal(cgcache_stats(c)->entries, NDIRS);
	cgcache_free(c);
}

static void
renamed_cgroup_is_found_again_after_the_ttl(void **state)
{
	struct cgcache *c;
	char buf[CGCACHE_PATH_MAX];

	(void)state;
	make_tree();
	c = cgcache_new(ROOT, 4096, 10000, 1000, &ops);
	assert_int_equal(cgcache_path(c, tree[7].id, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/svc/unit7");
	snprintf(tree[7].rel, sizeof(tree[7].rel), "/svc/renamed");
	/* Within the TTL the old path stands (bounded staleness)... */
	assert_int_equal(cgcache_path(c, tree[7].id, 9999, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/svc/unit7");
	/* ...after it, the old path no longer has that id: walked again. */
	assert_int_equal(cgcache_path(c, tree[7].id, 10001, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/svc/renamed");
	assert_int_equal(walks_seen, 2);
	/* An unchanged one is confirmed in place, without a walk. */
	assert_int_equal(cgcache_path(c, tree[8].id, 30000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/svc/unit8");
	assert_int_equal(walks_seen, 2);
	assert_int_equal(cgcache_stats(c)->confirmed, 1);
	cgcache_free(c);
}

static void
removed_or_unknown_cgroup_walks_at_most_once_per_gap(void **state)
{
	struct cgcache *c;
	char buf[CGCACHE_PATH_MAX];
	int i;

	(void)state;
	make_tree();
	c = cgcache_new(ROOT, 4096, 10000, 1000, &ops);
	for (i = 0; i < 100; i++) {
		errno = 0;
		assert_int_equal(cgcache_path(c, 424242, (uint64_t)i, buf,
		    sizeof(buf)), -1);
		assert_int_equal(errno, ENOENT);
	}
	assert_int_equal(walks_seen, 1);
	/* A cgroup made since (a new run session) is found at once. */
	snprintf(tree[4].rel, sizeof(tree[4].rel), "/run.1");
	tree[4].id = 515151;
	assert_int_equal(cgcache_path(c, 515151, 100, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run.1");
	assert_int_equal(walks_seen, 2);
	/* The unknown id, made meanwhile, is looked for again after the gap. */
	snprintf(tree[3].rel, sizeof(tree[3].rel), "/new");
	tree[3].id = 424242;
	assert_int_equal(cgcache_path(c, 424242, 500, buf, sizeof(buf)), -1);
	assert_int_equal(cgcache_path(c, 424242, 1000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/new");
	assert_int_equal(walks_seen, 3);
	/* Removed: confirmation fails after the TTL, and the walk finds none. */
	tree[3].gone = 1;
	assert_int_equal(cgcache_path(c, 424242, 20000, buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENOENT);
	cgcache_free(c);
}

static void
a_tree_larger_than_the_cache_still_answers(void **state)
{
	struct cgcache *c;
	char buf[CGCACHE_PATH_MAX];
	int i;

	(void)state;
	make_tree();
	c = cgcache_new(ROOT, 16, 10000, 0, &ops);
	for (i = 0; i < NDIRS; i++) {
		assert_int_equal(cgcache_path(c, tree[i].id, 100, buf,
		    sizeof(buf)), 0);
		assert_string_equal(buf, tree[i].rel);
	}
	assert_true(cgcache_stats(c)->entries <= 16);
	/* A buffer too small is refused, not cut. */
	assert_int_equal(cgcache_path(c, tree[150].id, 100, buf, 4), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	cgcache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(many_flows_one_walk),
		cmocka_unit_test(renamed_cgroup_is_found_again_after_the_ttl),
		cmocka_unit_test(removed_or_unknown_cgroup_walks_at_most_once_per_gap),
		cmocka_unit_test(a_tree_larger_than_the_cache_still_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
