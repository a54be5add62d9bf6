/*
 * Linux's cgroup v2, for intercept specs (spec.c's cgroup: and unit:
 * items), capture's owner attribution (cgcache.c) and `localcapctl ps`:
 * the mount point, cgroup ids (name_to_handle_at), and bounded walks of
 * the tree.  Linux-only: the portable builds and macOS leave it out, and
 * spec.c refuses cgroup: and unit: there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "redirectord/spec.h"

#define UNIT_SEARCH_MAX_DEPTH	8
#define UNIT_SEARCH_MAX_DIRS	20000

/*
 * Breadth-first walk of the cgroup directories under root, bounded in depth
 * and directories visited, calling match() on each.  A matching directory's
 * children are not visited.  Returns the number of matches, stopping at
 * `enough`, and the first one's path.
 */
typedef int (*cg_match_fn)(const char *path, const char *name,
    const struct stat *st, const void *arg);

static int
walk_cgroups(const char *root, cg_match_fn match, const void *arg,
    int enough, char *found, size_t flen)
{
	char (*queue)[PATH_MAX];
	int *depth;
	size_t head = 0, tail = 0, cap = 256;
	int matches = 0;

	queue = malloc(cap * sizeof(*queue));
	depth = malloc(cap * sizeof(*depth));
	if (queue == NULL || depth == NULL) {
		free(queue);
		free(depth);
		return -1;
	}
	snprintf(queue[tail], PATH_MAX, "%s", root);
	depth[tail++] = 0;
	while (head < tail && head < UNIT_SEARCH_MAX_DIRS && matches < enough) {
		size_t cur = head++;
		DIR *d = opendir(queue[cur]);
		struct dirent *de;

		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL && matches < enough) {
			char path[PATH_MAX];
			struct stat st;
			int n;

			if (de->d_name[0] == '.')
				continue;
			if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
				continue;
			n = snprintf(path, sizeof(path), "%s/%s", queue[cur],
			    de->d_name);
			if (n < 0 || (size_t)n >= sizeof(path))
				continue;
			if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			if (match(path, de->d_name, &st, arg)) {
				if (matches++ == 0)
					snprintf(found, flen, "%s", path);
				continue;
			}
			if (depth[cur] + 1 >= UNIT_SEARCH_MAX_DEPTH)
				continue;
			if (tail == cap) {
				size_t ncap = cap * 2;
				void *nq, *nd;

				if (ncap > UNIT_SEARCH_MAX_DIRS)
					continue;
				nq = realloc(queue, ncap * sizeof(*queue));
				if (nq == NULL)
					continue;
				queue = nq;
				nd = realloc(depth, ncap * sizeof(*depth));
				if (nd == NULL)
					continue;
				depth = nd;
				cap = ncap;
			}
			snprintf(queue[tail], PATH_MAX, "%s", path);
			depth[tail++] = depth[cur] + 1;
		}
		closedir(d);
	}
	free(queue);
	free(depth);
	return matches;
}

static int
match_name(const char *path, const char *name, const struct stat *st,
    const void *arg)
{
	(void)path;
	(void)st;
	return strcmp(name, (const char *)arg) == 0;
}

int
rd_cgroup_find_unit(const char *root, const char *name, char *found,
    size_t flen)
{
	return walk_cgroups(root, match_name, name, 2, found, flen);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape_mountinfo(char *s)
{
	char *w = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
			    (s[3] - '0'));
			s += 4;
		} else
			*w++ = *s++;
	}
	*w = '\0';
}

int
rd_cgroup2_root(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int found = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *tok, *root = NULL, *mnt = NULL, *sep;
		int field = 0;

		/* Fields after " - " are: fstype source options. */
		sep = strstr(line, " - ");
		if (sep == NULL || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save), field++) {
			if (field == 3)
				root = tok;
			else if (field == 4)
				mnt = tok;
		}
		if (root == NULL || mnt == NULL)
			continue;
		unescape_mountinfo(mnt);
		if (strlen(mnt) >= len)
			continue;
		/* Prefer a mount of the hierarchy's root over a bind of a
		 * subtree. */
		if (!found || strcmp(root, "/") == 0) {
			snprintf(buf, len, "%s", mnt);
			found = strcmp(root, "/") == 0 ? 2 : 1;
			if (found == 2)
				break;
		}
	}
	fclose(f);
	if (!found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

static int
match_id(const char *path, const char *name, const struct stat *st,
    const void *arg)
{
	uint64_t id;

	(void)name;
	(void)st;
	return rd_cgroup_id(path, &id) == 0 && id == *(const uint64_t *)arg;
}

struct foreach_ctx {
	size_t	  rootlen;
	int	(*fn)(const char *rel, uint64_t id, void *arg);
	void	 *arg;
	int	  visited;
};

/* Never "matches": every directory is visited and its children too. */
static int
visit_each(const char *path, const char *name, const struct stat *st,
    const void *arg)
{
	struct foreach_ctx *fc = (struct foreach_ctx *)(uintptr_t)arg;
	uint64_t id;

	(void)name;
	(void)st;
	if (rd_cgroup_id(path, &id) == 0) {
		fc->visited++;
		(void)fc->fn(path + fc->rootlen, id, fc->arg);
	}
	return 0;
}

int
rd_cgroup_foreach(const char *root,
    int (*fn)(const char *rel, uint64_t id, void *arg), void *arg)
{
	struct foreach_ctx fc = { strlen(root), fn, arg, 0 };
	char unused[8];
	uint64_t id;

	if (rd_cgroup_id(root, &id) < 0)
		return -1;
	(void)fn("/", id, arg);
	if (walk_cgroups(root, visit_each, &fc, 1, unused, sizeof(unused)) < 0)
		return -1;
	return fc.visited + 1;
}

int
rd_cgroup_path(const char *root, uint64_t id, char *buf, size_t len)
{
	char found[PATH_MAX];
	size_t rl = strlen(root);
	uint64_t rid;
	int n;

	if (rd_cgroup_id(root, &rid) < 0)
		return -1;
	if (rid == id) {
		snprintf(buf, len, "/");
		return 0;
	}
	/* A walk, not open_by_handle_at(): that needs CAP_DAC_READ_SEARCH,
	 * which redirectord has dropped by the time it asks. */
	n = walk_cgroups(root, match_id, &id, 1, found, sizeof(found));
	if (n <= 0) {
		errno = ENOENT;
		return -1;
	}
	if (strncmp(found, root, rl) != 0 || strlen(found + rl) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(buf, len, "%s", found + rl);
	return 0;
}

int
rd_cgroup_id(const char *path, uint64_t *id)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[sizeof(uint64_t)];
	} h;
	struct statfs sfs;
	struct stat st;
	int mount_id;

	if (statfs(path, &sfs) < 0)
		return -1;
	if (sfs.f_type != CGROUP2_SUPER_MAGIC) {
		errno = EMEDIUMTYPE;
		return -1;
	}
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	/* The kernfs file handle of a cgroup is its 64-bit id (this is how
	 * libbpf's get_cgroup_id finds it). */
	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = sizeof(uint64_t);
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) == 0 &&
	    h.fh.handle_bytes == sizeof(uint64_t)) {
		memcpy(id, h.fh.f_handle, sizeof(*id));
		return 0;
	}
	*id = (uint64_t)st.st_ino;
	return 0;
}
