/*
 * redirectord's capture state (see capture.h): spec items, run cgroups,
 * fail-open, daemon exclusion and owner lookups, on top of bpf.c/spec.c.
 */
#include "errmsg.h"
#include "redirectord/capture.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "log.h"
#include "redirectord/backend.h"
#include "redirectord/bpf.h"
#include "redirectord/tun.h"

/* The cgroup (absolute directory) a process is in, from /proc. */
static int
cgroup_of_pid(const struct capture *c, pid_t pid, char *buf, size_t len)
{
	char path[64], line[512];
	FILE *f;
	int found = -1;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* cgroup v2: "0::/path" */
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if ((size_t)snprintf(buf, len, "%s%s", c->root,
			    strcmp(line + 3, "/") == 0 ? "" : line + 3) < len)
				found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

static void
update_enabled(struct capture *c)
{
	bool want = c->chain_up || c->fail_closed;

	if (want == c->enabled)
		return;
	if (rd_bpf_set_enabled(c->bpf, want) == 0) {
		c->enabled = want;
		log_info("capture %s%s", want ? "resumed" : "paused",
		    want ? "" : ": netstackd or proxyd is down (fail-open)");
	}
}

int
capture_init(struct capture *c, const char *attach_path, const struct tun *tun,
    bool fail_closed, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->fail_closed = fail_closed;
	if (rd_cgroup2_root(c->root, sizeof(c->root)) == -1) {
		seterr(err, errlen, "no cgroup v2 hierarchy is mounted "
		    "(capture needs cgroup v2)");
		return -1;
	}
	if (attach_path == NULL)
		attach_path = c->root;
	{
		char real[PATH_MAX];
		size_t rl = strlen(c->root);
		const char *why = NULL;

		/* (realpath may leave errno set when it succeeds.) */
		if (realpath(attach_path, real) == NULL)
			why = strerror(errno);
		else if (strncmp(real, c->root, rl) != 0 ||
		    (real[rl] != '\0' && real[rl] != '/') ||
		    strlen(real) >= sizeof(c->attach) - 32)
			why = "not a directory of the cgroup v2 hierarchy (or too long)";
		if (why != NULL) {
			seterr(err, errlen, "attach point %s: %s", attach_path, why);
			return -1;
		}
		memcpy(c->attach, real, strlen(real) + 1);
	}
	/*
	 * Flow owners' cgroup paths: 4,096 cgroups remembered, each trusted
	 * for 10 s before it is confirmed again, the tree walked at most once
	 * a second (cgcache.h).
	 */
	if ((c->cgroups = cgcache_new(c->root, 4096, 10000, 1000, NULL)) == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	if (rd_bpf_open(&c->bpf) == -1) {
		seterr(err, errlen, "loading the capture programs failed: %s "
		    "(needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)", strerror(errno));
		return -1;
	}
	if (rd_bpf_set_tun(c->bpf, tun->ifindex, tun->netns_cookie) == -1 ||
	    rd_bpf_load_local_addrs(c->bpf) == -1) {
		seterr(err, errlen, "configuring the capture programs: %s",
		    strerror(errno));
		goto fail;
	}
	/* Our own cgroup, when it is under the attach point. */
	capture_exclude_pid(c, getpid(), geteuid());
	/* Nothing is up yet: paused unless fail-closed. */
	c->enabled = c->fail_closed;
	if (rd_bpf_set_enabled(c->bpf, c->enabled) == -1) {
		seterr(err, errlen, "configuring the capture programs: %s",
		    strerror(errno));
		goto fail;
	}
	if (rd_bpf_attach_cgroup(c->bpf, c->attach) == -1) {
		seterr(err, errlen, "attaching to cgroup %s: %s", c->attach,
		    strerror(errno));
		goto fail;
	}
	log_info("capture programs attached at %s (%s)", c->attach,
	    c->fail_closed ? "fail-closed" : "fail-open");
	if (rd_bpf_skipped(c->bpf) & RD_BPF_OPT_SENDMSG)
		log_warnx("this kernel refused the sendmsg hooks: unconnected UDP "
		    "from captured programs to loopback is not exempted");
	if (rd_bpf_skipped(c->bpf) & RD_BPF_OPT_SERVERS)
		log_warnx("this kernel refused the server hooks: servers inside "
		    "captured programs are not reachable");
	return 0;
fail:
	rd_bpf_destroy(c->bpf);
	c->bpf = NULL;
	cgcache_free(c->cgroups);
	c->cgroups = NULL;
	return -1;
}

void
capture_close(struct capture *c)
{
	size_t i;

	rd_bpf_destroy(c->bpf);
	c->bpf = NULL;
	cgcache_free(c->cgroups);
	c->cgroups = NULL;
	free(c->published);
	c->published = NULL;
	/* Run cgroups we made: remove those that emptied; a live one stays. */
	for (i = 0; i < c->nruns; i++)
		if (rmdir(c->runs[i].path) == -1 && errno != ENOENT)
			log_info("run cgroup %s still has processes; left in place",
			    c->runs[i].path);
	c->nruns = 0;
}

/* Parse and publish candidate as the active spec. */
static int
publish(struct capture *c, const char *candidate, size_t user_start, char *err,
    size_t errlen, uint32_t *err_offset)
{
	struct rd_spec_resolver res = { .cgroup_root = c->root };
	struct rd_spec_error e;
	struct rd_spec *spec;
	int rc = -1;

	if ((spec = calloc(1, sizeof(*spec))) == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	if (rd_spec_parse(candidate, &res, spec, &e) == -1) {
		seterr(err, errlen, "%s", e.msg);
		if (err_offset)
			*err_offset = (uint32_t)(e.offset >= user_start ?
			    e.offset - user_start : 0);
		goto out;
	}
	{
		size_t i;

		for (i = 0; i < spec->nrules; i++)
			if (spec->name_truncated[i])
				log_info("spec item at offset %u: a process name is "
				    "matched on its first 15 bytes ('%.15s'), as the "
				    "kernel keeps them", spec->src_offset[i],
				    spec->rules[i].comm);
	}
	if (rd_bpf_set_spec(c->bpf, spec) == -1) {
		seterr(err, errlen, "updating the capture programs: %s",
		    strerror(errno));
		goto out;
	}
	/* memmove: candidate may be c->spec itself. */
	memmove(c->spec, candidate, strlen(candidate) + 1);
	free(c->published);
	c->published = spec;
	spec = NULL;
	rc = 0;
out:
	free(spec);
	return rc;
}

/* The new items alone (backend.c's list calls it before publish). */
static int
check_items(void *arg, const char *items, char *err, size_t errlen,
    uint32_t *err_offset)
{
	struct capture *c = arg;
	struct rd_spec_resolver res = { .cgroup_root = c->root };
	struct rd_spec_error e;
	struct rd_spec *alone = calloc(1, sizeof(*alone));
	int rc;

	if (alone == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	rc = rd_spec_parse(items, &res, alone, &e);
	free(alone);
	if (rc == -1) {
		seterr(err, errlen, "%s", e.msg);
		if (err_offset)
			*err_offset = (uint32_t)e.offset;
	}
	return rc;
}

static int
publish_cb(void *arg, const char *candidate, size_t user_start, char *err,
    size_t errlen, uint32_t *err_offset)
{
	return publish(arg, candidate, user_start, err, errlen, err_offset);
}

static const struct rd_speclist_ops capture_list = {
	.check = check_items,
	.publish = publish_cb,
};

int
capture_attach(struct capture *c, const char *spec, char *err, size_t errlen,
    uint32_t *err_offset)
{
	return rd_speclist_attach(c->spec, spec, &capture_list, c, err, errlen,
	    err_offset);
}

void
capture_written_spec(const struct capture *c, char *buf, size_t len,
    uint32_t *runs)
{
	char tmp[RD_SPEC_MAX_TEXT];
	size_t i;

	snprintf(buf, len, "%s", c->spec);
	*runs = 0;
	for (i = 0; i < c->nruns; i++) {
		if (!rd_speclist_remove(buf, c->runs[i].item, tmp, sizeof(tmp)))
			continue;
		snprintf(buf, len, "%s", tmp);
		(*runs)++;
	}
}

int
capture_detach(struct capture *c, const char *spec, bool all, char *err,
    size_t errlen)
{
	return rd_speclist_detach(c->spec, spec, all, &capture_list, c, err,
	    errlen);
}

int
capture_run(struct capture *c, pid_t pid, char *cgroup, size_t len, char *err,
    size_t errlen)
{
	struct capture_run *r;
	char before[512], procs[600], buf[32];
	int fd, n;

	if (c->nruns == CAPTURE_MAX_RUNS) {
		capture_reap(c);
		if (c->nruns == CAPTURE_MAX_RUNS) {
			seterr(err, errlen, "too many run cgroups at once (%d)",
			    CAPTURE_MAX_RUNS);
			return -1;
		}
	}
	if (cgroup_of_pid(c, pid, before, sizeof(before)) == -1) {
		seterr(err, errlen, "no process %d", (int)pid);
		return -1;
	}
	/*
	 * The run cgroup is made inside the caller's own cgroup, never beside
	 * it: every limit above it (MemoryMax, CPU, TasksMax, a unit's device
	 * and IP filters) still applies to what runs there.  A caller outside
	 * the attach point could not be captured anyway: refused.
	 */
	if (strncmp(before, c->attach, strlen(c->attach)) != 0 ||
	    (before[strlen(c->attach)] != '\0' && before[strlen(c->attach)] != '/')) {
		seterr(err, errlen, "process %d is in cgroup %s, outside the attach "
		    "point %s: capture cannot see it there", (int)pid,
		    before + strlen(c->root), c->attach);
		return -1;
	}
	r = &c->runs[c->nruns];
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	if ((size_t)snprintf(r->path, sizeof(r->path), "%s/localcap-run.%d",
	    before, (int)pid) >= sizeof(r->path)) {
		seterr(err, errlen, "cgroup path too long");
		return -1;
	}
	if (mkdir(r->path, 0755) == -1) {
		seterr(err, errlen, "creating %s: %s", r->path, strerror(errno));
		return -1;
	}
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", r->path);
	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) == -1 ||
	    write(fd, buf, (size_t)n) != n) {
		seterr(err, errlen, "moving %d into %s: %s", (int)pid, r->path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		rmdir(r->path);
		return -1;
	}
	close(fd);
	{
		/* Built apart: gcc cannot tell r->item and r->path never overlap. */
		char item[sizeof(r->item)];

		snprintf(item, sizeof(item), "cgroup:%s", r->path + strlen(c->root));
		memcpy(r->item, item, sizeof(item));
	}
	if (capture_attach(c, r->item, err, errlen, NULL) == -1) {
		/* Put it back where it was; the new cgroup is then empty. */
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", before);
		if ((fd = open(procs, O_WRONLY | O_CLOEXEC)) != -1) {
			(void)!write(fd, buf, (size_t)n);
			close(fd);
		}
		rmdir(r->path);
		return -1;
	}
	snprintf(cgroup, len, "%s", r->path + strlen(c->root));
	c->nruns++;
	return 0;
}

/*
 * cgroup: and unit: items name a directory, the programs match its id: a
 * restarted service gets a new directory (same path, new id).  Resolve the
 * spec again and publish it if any id moved.  A cgroup that is gone for
 * now keeps its old rule (matching nothing) until it comes back.
 */
static void
follow_cgroups(struct capture *c)
{
	struct rd_spec_resolver res = { .cgroup_root = c->root };
	struct rd_spec_error e;
	struct rd_spec *now;
	size_t i;
	int cgroups = 0;

	if (c->published == NULL || c->spec[0] == '\0')
		return;
	for (i = 0; i < c->published->nrules; i++)
		cgroups |= c->published->rules[i].kind == LC_RULE_CGROUP;
	if (!cgroups || (now = calloc(1, sizeof(*now))) == NULL)
		return;
	if (rd_spec_parse(c->spec, &res, now, &e) == 0 &&
	    (now->nrules != c->published->nrules ||
	    memcmp(now->rules, c->published->rules,
	    now->nrules * sizeof(now->rules[0])) != 0)) {
		if (rd_bpf_set_spec(c->bpf, now) == 0) {
			log_info("a cgroup in the spec was recreated; capture "
			    "follows it");
			free(c->published);
			c->published = now;
			return;
		}
	}
	free(now);
}

void
capture_reap(struct capture *c)
{
	size_t i = 0;

	follow_cgroups(c);

	while (i < c->nruns) {
		struct capture_run *r = &c->runs[i];
		char events[300], line[64];
		int populated = 1;
		FILE *f;

		snprintf(events, sizeof(events), "%s/cgroup.events", r->path);
		if ((f = fopen(events, "re")) == NULL)
			populated = 0;	/* gone already */
		else {
			while (fgets(line, sizeof(line), f))
				if (strncmp(line, "populated ", 10) == 0)
					populated = atoi(line + 10);
			fclose(f);
		}
		if (populated) {
			i++;
			continue;
		}
		{
			char err[256];

			if (capture_detach(c, r->item, false, err, sizeof(err)) == -1)
				log_warnx("run cgroup %s: %s", r->path, err);
		}
		if (rmdir(r->path) == -1 && errno != ENOENT)
			log_warn("rmdir %s", r->path);
		else
			log_info("run of pid %d ended; %s removed", (int)r->pid, r->path);
		c->runs[i] = c->runs[--c->nruns];
	}
}

void
capture_chain(struct capture *c, bool up)
{
	c->chain_up = up;
	if (c->bpf)
		update_enabled(c);
}

void
capture_addresses_changed(struct capture *c)
{
	if (c->bpf == NULL)
		return;
	if (rd_bpf_load_local_addrs(c->bpf) == -1)
		log_warnx("could not reload the host's addresses: connects from "
		    "captured programs to a new one would go to the TUN");
	else
		log_debug("host addresses reloaded");
}

bool
capture_active(const struct capture *c)
{
	return c->bpf != NULL && c->enabled && rd_bpf_attached(c->bpf);
}

void
capture_exclude_pid(struct capture *c, pid_t pid, uid_t uid)
{
	char path[512];
	uint64_t id;
	size_t alen = strlen(c->attach);

	if (cgroup_of_pid(c, pid, path, sizeof(path)) == -1)
		return;
	if (uid == (uid_t)-1) {
		struct stat st;
		char proc[32];

		snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
		uid = stat(proc, &st) == 0 ? st.st_uid : 0;
	}
	if (strncmp(path, c->attach, alen) == 0 && path[alen] == '/') {
		/* Under the attach point: the programs see it; exclude it. */
		if (rd_cgroup_id(path, &id) == 0 && rd_bpf_exclude_cgroup(c->bpf, id) == 0)
			log_debug("excluding cgroup %s (pid %d)", path, (int)pid);
	} else if (strcmp(c->attach, path) == 0) {
		/*
		 * It sits in the attach point itself: excluding that cgroup
		 * would exclude everything.  A dedicated uid still works.
		 */
		if (uid != 0 && rd_bpf_exclude_uid(c->bpf, uid) == 0)
			log_debug("excluding uid %d (pid %d)", (int)uid, (int)pid);
		else
			log_warnx("pid %d shares the attach point's cgroup %s and "
			    "runs as root: it is not protected from capture (run "
			    "the daemons in their own cgroups, as systemd does)",
			    (int)pid, path);
	}
	/* Elsewhere (above or beside the attach point): never captured. */
}

int
capture_owner(struct capture *c, int ipversion, int proto, const uint8_t *saddr,
    uint16_t sport, const uint8_t *daddr, uint16_t dport, struct owner *out)
{
	struct lc_flow_key key;
	struct lc_owner o;
	struct timespec now;

	if (c->bpf == NULL)
		return -1;
	memset(&key, 0, sizeof(key));
	key.family = (uint8_t)ipversion;
	key.proto = (uint8_t)proto;
	key.sport = htons(sport);
	key.dport = htons(dport);
	memcpy(key.saddr, saddr, ipversion == 4 ? 4 : 16);
	memcpy(key.daddr, daddr, ipversion == 4 ? 4 : 16);
	if (rd_bpf_owner_by_flow(c->bpf, &key, &o) == -1)
		return -1;
	memset(out, 0, sizeof(*out));
	out->pid = o.tgid;
	out->uid = o.uid;
	out->gid = o.gid;
	out->cgroup_id = o.cgroup_id;
	memcpy(out->process, o.comm, sizeof(o.comm));
	out->process[sizeof(out->process) - 1] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A map lookup; the tree is walked only for a cgroup new to it. */
	if (c->cgroups == NULL || cgcache_path(c->cgroups, o.cgroup_id,
	    (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
	    out->cgroup, sizeof(out->cgroup)) == -1)
		out->cgroup[0] = '\0';
	return 0;
}
