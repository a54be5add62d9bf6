/*
 * The process list behind `localcapctl ps` (ctl/pscmd.c) and the viewer's
 * processes tab (webd/ps.c): the running processes, whether the current
 * spec captures each and which item decided, and their flows in the store
 * (ps.h says how the decision is made).  The caller asks redirectord for
 * the spec (its status) and hands it in; nothing here talks to a daemon,
 * so the viewer links it as it is.
 *
 * This file is portable (its output and redirectord's answer); collecting
 * is the system's: ps_linux.c reads /proc.  macOS has no /proc and its
 * extension decides by executable path, not by cgroup: there ps refuses,
 * saying so (ps_unsupported), rather than show decisions that would not
 * be the extension's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ps.h"
#include "utf8.h"

/* Linux collects from /proc (ps_linux.c); macOS and the portable builds,
 * which compile what macOS does, do not. */
#if !(defined(__linux__) && !defined(LC_PORTABLE) && \
    !defined(LC_PORTABLE_CHECK))
const char *const ps_unsupported =
    "ps lists processes from Linux's /proc; on macOS it is not supported "
    "yet (the extension matches executables by name: see "
    "`ps -o comm= -p PID` and docs/macos.md)";

int
ps_collect(const struct ps_capture *cap, struct sr_store *store, bool all,
    struct ps_proc **out, size_t *n, char *err, size_t errlen)
{
	(void)cap;
	(void)store;
	(void)all;
	*out = NULL;
	*n = 0;
	snprintf(err, errlen, "%s", ps_unsupported);
	errno = ENOSYS;
	return -1;
}
#endif

void
ps_free(struct ps_proc *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].exe);
		free(v[i].argv0);
		free(v[i].cgroup);
		free(v[i].unit);
		free(v[i].decided_by);
	}
	free(v);
}

/* --- output ---------------------------------------------------------------------- */

static void
jkey(FILE *out, const char *key, const char *s)
{
	fprintf(out, ",\"%s\":", key);
	if (s)
		json_str_n(out, s, strlen(s));
	else
		fputs("null", out);
}

void
ps_json(FILE *out, const struct ps_proc *p)
{
	fprintf(out, "{\"pid\":%d,\"ppid\":%d,\"uid\":%" PRIu32, (int)p->pid,
	    (int)p->ppid, p->uid);
	jkey(out, "user", p->user);
	jkey(out, "name", p->name);
	jkey(out, "exe", p->exe);
	jkey(out, "argv0", p->argv0);
	jkey(out, "cgroup", p->cgroup);
	jkey(out, "unit", p->unit);
	fprintf(out, ",\"kernel_thread\":%s,\"start_us\":%" PRId64
	    ",\"captured\":%s", p->kernel_thread ? "true" : "false", p->start_us,
	    p->captured < 0 ? "null" : p->captured ? "true" : "false");
	jkey(out, "decided_by", p->decided_by);
	jkey(out, "reason", p->reason);
	if (p->flows < 0)
		fputs(",\"flows\":null}", out);
	else
		fprintf(out, ",\"flows\":%" PRId64 "}", p->flows);
}

void
ps_capture_from_status(struct ps_capture *cap, const Lc__StatusReply *st)
{
	size_t i;

	cap->known = true;
	cap->capturing = st->capturing;
	cap->spec = strdup(st->spec ? st->spec : "");
	cap->attach = strdup(st->attach_point ? st->attach_point : "");
	for (i = 0; i < st->n_daemons && cap->ndaemons < 8; i++)
		if (st->daemons[i]->running && st->daemons[i]->pid)
			cap->daemons[cap->ndaemons++] = (pid_t)st->daemons[i]->pid;
}

void
ps_capture_free(struct ps_capture *cap)
{
	free(cap->spec);
	free(cap->attach);
	cap->spec = cap->attach = NULL;
}
