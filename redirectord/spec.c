/*
 * Intercept spec parser and reference evaluator (see spec.h for the
 * language, docs/capture.md for the decisions behind it).
 *
 * The parser turns untrusted text from the control socket into at most
 * LC_MAX_RULES struct lc_rule for the BPF rules map.  Every refusal names
 * the item (1-based) and its byte offset.  Names are resolved here, once:
 * user:NAME via getpwnam_r, cgroup:PATH and unit:NAME to cgroup ids (with
 * cgroup_linux.c: this file itself is portable, and builds for macOS).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redirectord/spec.h"

/*
 * The system's cgroups (cgroup_linux.c) on Linux.  macOS has none, and the
 * portable builds compile what macOS does: there cgroup: and unit: are
 * refused unless a resolver (tests) stands in.
 */
#if defined(__linux__) && !defined(LC_PORTABLE) && !defined(LC_PORTABLE_CHECK)
#define SYSTEM_CGROUPS	1
#else
#define SYSTEM_CGROUPS	0
#endif

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
#if SYSTEM_CGROUPS
	return rd_cgroup_id(abs, id);
#else
	(void)abs;
	(void)id;
	errno = ENOSYS;
	return -1;
#endif
}

static const char *
cgroup_root(struct parse_ctx *c)
{
	if (c->root[0] == '\0') {
		if (c->res != NULL && c->res->cgroup_root != NULL)
			snprintf(c->root, sizeof(c->root), "%s",
			    c->res->cgroup_root);
#if SYSTEM_CGROUPS
		else if (rd_cgroup2_root(c->root, sizeof(c->root)) < 0)
			c->root[0] = '\0';
#endif
	}
	return c->root[0] != '\0' ? c->root : NULL;
}

/*
 * A unit outside system.slice (user@1000.service, session scopes, ...):
 * search the tree by name.  2 matches means ambiguous.
 */
static int
find_unit_dir(const char *root, const char *name, char *found, size_t flen)
{
#if SYSTEM_CGROUPS
	return rd_cgroup_find_unit(root, name, found, flen);
#else
	(void)root;
	(void)name;
	(void)found;
	(void)flen;
	return 0;
#endif
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
			return spec_fail(c, item, ioff, ilen, "%s",
			    SYSTEM_CGROUPS ? "no cgroup v2 hierarchy mounted" :
			    "cgroup: and unit: are Linux's (cgroup v2): not "
			    "on this system");
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

