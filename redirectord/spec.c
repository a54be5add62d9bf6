/*
 * Intercept spec parser and reference evaluator (see spec.h for the
 * language, docs/capture.md for the decisions behind it).
 *
 * The parser turns untrusted text from the control socket into at most
 * LC_MAX_RULES struct lc_rule for the BPF rules map.  Every refusal names
 * the item (1-based) and its byte offset.  Names are resolved here, once:
 * user:NAME via getpwnam_r, cgroup:PATH and unit:NAME to cgroup ids.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
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

struct parse_ctx {
	const char			*text;
	const struct rd_spec_resolver	*res;
	struct ispec_error		 err;
	char				 root[PATH_MAX];
};

/* Always returns -1, so callers can `return spec_fail(...)`. */
#define spec_fail(c, item, off, len, ...) \
	ispec_fail((c)->text, &(c)->err, (item), (off), (len), __VA_ARGS__)

static int
resolve_cgroup_id(struct parse_ctx *c, const char *abs, uint64_t *id)
{
	if (c->res != NULL && c->res->cgroup_id != NULL)
		return c->res->cgroup_id(abs, id, c->res->arg);
	return rd_cgroup_id(abs, id);
}

static const char *
cgroup_root(struct parse_ctx *c)
{
	if (c->root[0] == '\0') {
		if (c->res != NULL && c->res->cgroup_root != NULL)
			snprintf(c->root, sizeof(c->root), "%s",
			    c->res->cgroup_root);
		else if (rd_cgroup2_root(c->root, sizeof(c->root)) < 0)
			c->root[0] = '\0';
	}
	return c->root[0] != '\0' ? c->root : NULL;
}

/* "/a/b" with no empty, "." or ".." components (no escaping the root). */
static int
cgroup_path_ok(const char *p)
{
	const char *s = p;

	if (*s != '/')
		return 0;
	while (*s != '\0') {
		const char *e;
		size_t n;

		while (*s == '/')
			s++;
		if (*s == '\0')
			break;
		e = strchr(s, '/');
		n = e != NULL ? (size_t)(e - s) : strlen(s);
		if ((n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
	}
	return 1;
}

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

/*
 * A unit outside system.slice (user@1000.service, session scopes, ...):
 * search the tree by name.  2 matches means ambiguous.
 */
static int
find_unit_dir(const char *root, const char *name, char *found, size_t flen)
{
	return walk_cgroups(root, match_name, name, 2, found, flen);
}

static int
unit_name_ok(const char *name)
{
	static const char *const suffixes[] = {
		".service", ".scope", ".slice", ".socket",
	};
	size_t n = strlen(name), i;

	if (n == 0 || name[0] == '.' || strchr(name, '/') != NULL)
		return 0;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t sn = strlen(suffixes[i]);

		if (n > sn && strcmp(name + n - sn, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

/*
 * Resolve one item ispec_split() classified into a BPF rule: users and
 * cgroups to ids, names to the 15-byte comm.
 */
static int
resolve_item(struct parse_ctx *c, size_t item, const struct ispec_item *it,
    struct lc_rule *r, bool *truncated)
{
	char buf[PATH_MAX], path[PATH_MAX];
	const char *pat = c->text + it->arg_off, *root;
	size_t plen = it->arg_len, ioff = it->off, ilen = it->len, n;
	uint64_t cgid;
	int is_unit;

	*truncated = false;
	r->exclude = it->exclude ? 1 : 0;
	switch (it->kind) {
	case ISPEC_PID:
		r->kind = LC_RULE_PID;
		r->id = it->id;
		return 0;
	case ISPEC_UID:
		r->kind = LC_RULE_UID;
		r->id = it->id;
		return 0;
	case ISPEC_USER:
		memcpy(buf, pat, plen);
		buf[plen] = '\0';
		if ((c->res != NULL && c->res->user_uid != NULL ?
		    c->res->user_uid(buf, &r->id, c->res->arg) :
		    ispec_user_uid(buf, &r->id)) < 0)
			return spec_fail(c, item, ioff, ilen,
			    "no such user '%s'%s%s", buf,
			    errno == ENOENT ? "" : ": ",
			    errno == ENOENT ? "" : strerror(errno));
		r->kind = LC_RULE_UID;
		return 0;
	case ISPEC_CGROUP:
	case ISPEC_UNIT:
		is_unit = it->kind == ISPEC_UNIT;
		if (plen >= sizeof(buf) - 64)
			return spec_fail(c, item, ioff, ilen, "%s too long",
			    is_unit ? "unit name" : "path");
		memcpy(buf, pat, plen);
		buf[plen] = '\0';
		if (is_unit && !unit_name_ok(buf))
			return spec_fail(c, item, ioff, ilen,
			    "unit: expects NAME.service, .scope, .slice or "
			    ".socket, without '/'");
		if (!is_unit && !cgroup_path_ok(buf))
			return spec_fail(c, item, ioff, ilen,
			    "cgroup: expects an absolute path as in "
			    "/proc/PID/cgroup, without '.' or '..'");
		if ((root = cgroup_root(c)) == NULL)
			return spec_fail(c, item, ioff, ilen,
			    "no cgroup v2 hierarchy mounted");
		/* root + "/system.slice/" + name must fit, untruncated */
		if (strlen(root) + plen + 16 >= sizeof(path))
			return spec_fail(c, item, ioff, ilen, "path too long");
		if (is_unit) {
			int m;

			if ((size_t)snprintf(path, sizeof(path), "%s/system.slice/%s",
			    root, buf) >= sizeof(path))
				return spec_fail(c, item, ioff, ilen,
				    "cgroup path too long");
			if (resolve_cgroup_id(c, path, &cgid) == 0)
				goto resolved;
			m = find_unit_dir(root, buf, path, sizeof(path));
			if (m == 0 || m < 0)
				return spec_fail(c, item, ioff, ilen,
				    "unit %s has no cgroup under %s "
				    "(not running?)", buf, root);
			if (m > 1)
				return spec_fail(c, item, ioff, ilen,
				    "unit %s is ambiguous: more than one "
				    "cgroup of that name; use cgroup:PATH",
				    buf);
		} else {
			if ((size_t)snprintf(path, sizeof(path), "%s%s", root,
			    buf) >= sizeof(path))
				return spec_fail(c, item, ioff, ilen,
				    "cgroup path too long");
		}
		if (resolve_cgroup_id(c, path, &cgid) < 0)
			return spec_fail(c, item, ioff, ilen,
			    "cannot use cgroup %s: %s", path, strerror(errno));
resolved:
		r->kind = LC_RULE_CGROUP;
		r->cgroup_id = cgid;
		return 0;
	case ISPEC_NAME:
	default:
		break;
	}
	/* A process name, compared with the leader's comm: the kernel keeps
	 * only the first 15 bytes of a program's name, so do we. */
	n = plen;
	if (n > LC_COMM_LEN - 1) {
		n = LC_COMM_LEN - 1;
		*truncated = true;
	}
	memcpy(r->comm, pat, n);
	r->kind = LC_RULE_COMM;
	return 0;
}

static void
copy_error(struct rd_spec_error *dst, const struct ispec_error *src)
{
	if (dst == NULL)
		return;
	dst->offset = src->offset;
	dst->item = src->item;
	snprintf(dst->msg, sizeof(dst->msg), "%s", src->msg);
}

int
rd_spec_parse(const char *text, const struct rd_spec_resolver *res,
    struct rd_spec *out, struct rd_spec_error *err)
{
	struct ispec_item items[LC_MAX_RULES];
	struct parse_ctx c;
	int n, i;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.text = text != NULL ? text : "";
	c.res = res;
	if (err != NULL)
		memset(err, 0, sizeof(*err));

	n = ispec_split(c.text, items, LC_MAX_RULES, "the BPF rules map",
	    &c.err);
	if (n < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		bool truncated;

		if (resolve_item(&c, (size_t)i + 1, &items[i],
		    &out->rules[i], &truncated) < 0)
			goto fail;
		out->src_offset[i] = (uint32_t)items[i].off;
		out->src_len[i] = (uint32_t)items[i].len;
		out->name_truncated[i] = truncated;
		out->nrules++;
	}
	out->default_capture = n > 0 && out->rules[0].exclude != 0;
	return 0;
fail:
	/* All or nothing: a refused spec yields no rules. */
	copy_error(err, &c.err);
	memset(out, 0, sizeof(*out));
	return -1;
}

struct eval_arg {
	const struct rd_spec	*spec;
	const struct rd_proc	*p;
};

static bool
rule_matches(size_t idx, bool *exclude, void *arg)
{
	const struct eval_arg *ea = arg;
	const struct lc_rule *r = &ea->spec->rules[idx];
	const struct rd_proc *p = ea->p;
	size_t i;

	*exclude = r->exclude != 0;
	switch (r->kind) {
	case LC_RULE_PID:
		return r->id == p->tgid;
	case LC_RULE_UID:
		return r->id == p->uid;
	case LC_RULE_COMM:
		/* Both NUL-padded to 16 bytes, as in the BPF program. */
		return memcmp(r->comm, p->comm, LC_COMM_LEN) == 0;
	case LC_RULE_CGROUP:
		for (i = 0; i < p->ncgroups && i < LC_MAX_CGROUP_DEPTH; i++)
			if (p->cgroups[i] == r->cgroup_id)
				return true;
		return false;
	default:
		return false;
	}
}

/* The ordered decision is the shared one (common/ispec.c). */
int
rd_spec_decide(const struct rd_spec *spec, const struct rd_proc *p,
    bool *captured)
{
	struct eval_arg ea = { spec, p };
	int decided;

	*captured = ispec_decide_which(spec->nrules, rule_matches, &ea,
	    &decided);
	return decided;
}

bool
rd_spec_captures(const struct rd_spec *spec, const struct rd_proc *p)
{
	bool capture;

	(void)rd_spec_decide(spec, p, &capture);
	return capture;
}

/* 1 if a process name, written plainly, would parse as a pid or a keyword. */
static int
reads_as_other(const char *s, size_t n)
{
	static const char *const kw[] = { "uid:", "user:", "cgroup:", "unit:",
	    "name:" };
	size_t i, digits = 0;

	while (digits < n && s[digits] >= '0' && s[digits] <= '9')
		digits++;
	if (n > 0 && digits == n)
		return 1;
	for (i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (n >= strlen(kw[i]) && memcmp(s, kw[i], strlen(kw[i])) == 0)
			return 1;
	return 0;
}

void
rd_spec_format(const struct rd_spec *spec, char *buf, size_t len)
{
	size_t i, used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < spec->nrules && used < len; i++) {
		const struct lc_rule *r = &spec->rules[i];
		const char *sep = i > 0 ? "," : "";
		const char *bang = r->exclude ? "!" : "";
		int n;

		switch (r->kind) {
		case LC_RULE_PID:
			n = snprintf(buf + used, len - used, "%s%s%u", sep,
			    bang, r->id);
			break;
		case LC_RULE_UID:
			n = snprintf(buf + used, len - used, "%s%suid:%u", sep,
			    bang, r->id);
			break;
		case LC_RULE_CGROUP:
			n = snprintf(buf + used, len - used,
			    "%s%scgroup-id:%llu", sep, bang,
			    (unsigned long long)r->cgroup_id);
			break;
		default: {
			/* A name that would read as a pid or a keyword: name:X */
			size_t cl = strnlen(r->comm, LC_COMM_LEN);
			bool plain = !reads_as_other(r->comm, cl);

			n = snprintf(buf + used, len - used, "%s%s%s%.*s", sep,
			    bang, plain ? "" : "name:", (int)cl, r->comm);
			break;
		}
		}
		if (n < 0)
			break;
		used += (size_t)n;
	}
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
