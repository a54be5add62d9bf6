/*
 * `localcapctl ps` on Linux (see ps.c and ps.h): the processes from /proc,
 * each decided with spec.c's matcher on the facts the BPF program reads —
 * the leader's comm, pid, uid, the cgroup and its ancestors
 * (cgroup_linux.c).  Linux-only: macOS has no /proc (ps.c says so there).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ps.h"
#include "redirectord/spec.h"

#define PF_KTHREAD_FLAG		0x00200000	/* linux/sched.h PF_KTHREAD */
#define FLOW_CLOCK_SLACK_US	2000000		/* process start vs flow clocks */

const char *const ps_unsupported = NULL;

/* --- /proc -------------------------------------------------------------------- */

/* The whole of a small /proc file, NUL-terminated: its length, or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

/*
 * argv[0] from /proc/PID/cmdline, for a process whose executable we may not
 * read (another user's, when we are not privileged): what the process says
 * it is, so callers show it as such.  NULL when empty or unreadable.
 */
static char *
read_argv0(pid_t pid)
{
	char path[64], buf[4096];

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (read_small(path, buf, sizeof(buf)) <= 0 || buf[0] == '\0')
		return NULL;
	return strdup(buf);	/* up to the first NUL: argv[0] */
}

/* Seconds since the epoch the system booted at (/proc/stat btime). */
static int64_t
boot_time(void)
{
	char buf[8192], *p;

	if (read_small("/proc/stat", buf, sizeof(buf)) < 0 ||
	    (p = strstr(buf, "\nbtime ")) == NULL)
		return 0;
	return strtoll(p + 7, NULL, 10);
}

/*
 * /proc/PID/stat: ppid, flags and start time (ticks after boot).  The
 * name in parentheses may hold anything, so fields count from the last ')'.
 */
static int
read_stat(pid_t pid, pid_t *ppid, unsigned long *flags,
    unsigned long long *start)
{
	char path[64], buf[1024], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0 ||
	    (p = strrchr(buf, ')')) == NULL)
		return -1;
	/* p[2] is field 3 (state). */
	p += 2;
	for (field = 3; *p && field < 22; field++) {
		if (field == 4)
			*ppid = (pid_t)strtol(p, NULL, 10);
		else if (field == 9)
			*flags = strtoul(p, NULL, 10);
		p = strchr(p, ' ');
		if (p == NULL)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

static uint32_t
read_uid(pid_t pid)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0 ||
	    (p = strstr(buf, "\nUid:")) == NULL)
		return UINT32_MAX;
	return (uint32_t)strtoul(p + 5, NULL, 10);
}

/* The cgroup v2 path ("0::/a/b"), or NULL. */
static char *
read_cgroup(pid_t pid)
{
	char path[64], buf[4096], *p, *nl;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return NULL;
	for (p = buf; p && *p; p = nl ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(p, "0::", 3) == 0)
			return strdup(p + 3);
	}
	return NULL;
}

/*
 * The systemd unit a cgroup belongs to: its deepest component that is a
 * service or a scope ("/system.slice/ssh.service" -> "ssh.service").
 */
static char *
unit_of(const char *cgroup)
{
	const char *p, *best = NULL, *end;
	size_t len = 0;

	for (p = cgroup; p && *p; p = end) {
		while (*p == '/')
			p++;
		if ((end = strchr(p, '/')) == NULL)
			end = p + strlen(p);
		if (end - p > 8 && (strncmp(end - 8, ".service", 8) == 0 ||
		    strncmp(end - 6, ".scope", 6) == 0)) {
			best = p;
			len = (size_t)(end - p);
		}
	}
	return best ? strndup(best, len) : NULL;
}

/* --- the decision ------------------------------------------------------------------ */

struct cg_cache {
	char		*path[512];
	uint64_t	 id[512];
	size_t		 n;
};

/* The id of cgroup path (relative to the v2 root), cached; 0 unknown. */
static uint64_t
cg_id(struct cg_cache *c, const char *root, const char *path)
{
	char abs[PATH_MAX];
	uint64_t id = 0;
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->path[i], path) == 0)
			return c->id[i];
	if ((size_t)snprintf(abs, sizeof(abs), "%s%s", root, path) <
	    sizeof(abs))
		(void)rd_cgroup_id(abs, &id);
	if (c->n < sizeof(c->id) / sizeof(c->id[0]) &&
	    (c->path[c->n] = strdup(path)) != NULL)
		c->id[c->n++] = id;
	return id;
}

static void
cg_free(struct cg_cache *c)
{
	while (c->n)
		free(c->path[--c->n]);
}

struct decider {
	const struct ps_capture	*cap;
	struct rd_spec		*spec;		/* NULL: unknown or refused */
	bool			 has_cgroup_rules;
	char			 root[PATH_MAX];	/* cgroup v2 mount */
	const char		*attach_rel;	/* attach point under root */
	struct cg_cache		 cache;
};

static bool
under(const char *path, const char *top)
{
	size_t n = strlen(top);

	if (n == 0 || strcmp(top, "/") == 0)
		return true;
	return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void
decide(struct decider *d, struct ps_proc *p)
{
	uint64_t ids[LC_MAX_CGROUP_DEPTH];
	struct rd_proc rp;
	size_t i;
	bool captured;
	int rule;

	p->captured = -1;
	p->reason = "redirectord did not answer";
	if (!d->cap->known)
		return;
	for (i = 0; i < d->cap->ndaemons; i++)
		if (d->cap->daemons[i] == p->pid) {
			p->captured = 0;
			p->reason = "localcap's own daemon: never captured";
			return;
		}
	if (p->kernel_thread) {
		p->captured = 0;
		p->reason = "kernel thread: opens no sockets of its own";
		return;
	}
	if (d->spec == NULL) {
		p->reason = "the spec redirectord reported did not parse here";
		return;
	}
	if (d->attach_rel && p->cgroup && !under(p->cgroup, d->attach_rel)) {
		p->captured = 0;
		p->reason = "outside the attach point";
		return;
	}
	memset(&rp, 0, sizeof(rp));
	rp.tgid = (uint32_t)p->pid;
	rp.uid = p->uid;
	memcpy(rp.comm, p->name, strnlen(p->name, LC_COMM_LEN - 1));
	/* The cgroup and its ancestors, as bpf_get_current_ancestor_cgroup_id. */
	if (d->has_cgroup_rules && p->cgroup) {
		char path[PATH_MAX], *slash;

		snprintf(path, sizeof(path), "%s", p->cgroup);
		for (i = 0; i < LC_MAX_CGROUP_DEPTH; ) {
			if ((ids[i] = cg_id(&d->cache, d->root, path[0] ? path :
			    "/")) != 0)
				i++;
			if (path[0] == '\0' || strcmp(path, "/") == 0)
				break;
			if ((slash = strrchr(path, '/')) == NULL)
				break;
			*slash = '\0';
		}
		rp.cgroups = ids;
		rp.ncgroups = i;
	}
	rule = rd_spec_decide(d->spec, &rp, &captured);
	p->captured = captured;
	if (rule >= 0) {
		const char *text = d->cap->spec + d->spec->src_offset[rule];

		p->decided_by = strndup(text, d->spec->src_len[rule]);
		p->reason = captured ? "captured by this item" :
		    "excluded by this item";
	} else
		p->reason = captured ? "the spec begins with an exclusion: "
		    "everything else is captured" : d->cap->spec[0] ?
		    "no item of the spec matches" : "the spec is empty";
	if (captured && !d->cap->capturing)
		p->reason = "the spec captures it, but capture is paused";
}

/* --- collecting ------------------------------------------------------------------- */

static int
proc_cmp(const void *a, const void *b)
{
	const struct ps_proc *x = a, *y = b;

	if ((x->captured == 1) != (y->captured == 1))
		return x->captured == 1 ? -1 : 1;
	if ((x->flows > 0) != (y->flows > 0))
		return x->flows > 0 ? -1 : 1;
	if (x->flows != y->flows)
		return x->flows > y->flows ? -1 : 1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static void
user_name(uint32_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", res->pw_name);
	else
		snprintf(buf, len, "%u", uid);
}

int
ps_collect(const struct ps_capture *cap, struct sr_store *store, bool all,
    struct ps_proc **out, size_t *n, char *err, size_t errlen)
{
	struct decider d = { .cap = cap };
	struct rd_spec_resolver res = { 0 };
	struct rd_spec_error serr;
	struct ps_proc *v = NULL;
	size_t cap_n = 0, count = 0, i;
	int64_t btime = boot_time();
	long hz = sysconf(_SC_CLK_TCK);
	struct dirent *de;
	DIR *dir;

	if (rd_cgroup2_root(d.root, sizeof(d.root)) == -1)
		d.root[0] = '\0';
	res.cgroup_root = d.root[0] ? d.root : NULL;
	if (cap->known && (d.spec = calloc(1, sizeof(*d.spec))) != NULL &&
	    rd_spec_parse(cap->spec ? cap->spec : "", &res, d.spec, &serr) ==
	    -1) {
		free(d.spec);
		d.spec = NULL;
	}
	for (i = 0; d.spec && i < d.spec->nrules; i++)
		if (d.spec->rules[i].kind == LC_RULE_CGROUP)
			d.has_cgroup_rules = true;
	if (cap->attach && d.root[0] && strncmp(cap->attach, d.root,
	    strlen(d.root)) == 0)
		d.attach_rel = cap->attach + strlen(d.root);
	if ((dir = opendir("/proc")) == NULL) {
		snprintf(err, errlen, "/proc: %s", strerror(errno));
		free(d.spec);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		struct ps_proc *p;
		char path[64], link[PATH_MAX];
		unsigned long flags = 0;
		unsigned long long start = 0;
		pid_t pid, ppid = 0;
		ssize_t k;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)strtol(de->d_name, NULL, 10);
		/* Gone meanwhile: skipped. */
		if (read_stat(pid, &ppid, &flags, &start) == -1)
			continue;
		if ((flags & PF_KTHREAD_FLAG) && !all)
			continue;
		if (count == cap_n) {
			size_t nc = cap_n ? cap_n * 2 : 256;
			struct ps_proc *nv = realloc(v, nc * sizeof(*v));

			if (nv == NULL) {
				snprintf(err, errlen, "out of memory");
				closedir(dir);
				ps_free(v, count);
				free(d.spec);
				cg_free(&d.cache);
				return -1;
			}
			v = nv;
			cap_n = nc;
		}
		p = &v[count];
		memset(p, 0, sizeof(*p));
		p->pid = pid;
		p->ppid = ppid;
		p->kernel_thread = (flags & PF_KTHREAD_FLAG) != 0;
		p->start_us = (btime + (int64_t)(start / (unsigned long long)hz)) *
		    1000000 + (int64_t)(start % (unsigned long long)hz) * 1000000 /
		    hz;
		p->uid = read_uid(pid);
		user_name(p->uid, p->user, sizeof(p->user));
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		if (read_small(path, p->name, sizeof(p->name)) > 0)
			p->name[strcspn(p->name, "\n")] = '\0';
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		if ((k = readlink(path, link, sizeof(link) - 1)) > 0) {
			link[k] = '\0';
			p->exe = strdup(link);
		} else if (!p->kernel_thread)
			p->argv0 = read_argv0(pid);
		p->cgroup = read_cgroup(pid);
		p->unit = p->cgroup ? unit_of(p->cgroup) : NULL;
		p->flows = store ? sr_count_flows_of(store, pid, p->start_us -
		    FLOW_CLOCK_SLACK_US) : -1;
		decide(&d, p);
		count++;
	}
	closedir(dir);
	free(d.spec);
	cg_free(&d.cache);
	if (count)
		qsort(v, count, sizeof(*v), proc_cmp);
	*out = v;
	*n = count;
	return 0;
}
