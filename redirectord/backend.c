/*
 * What both capture backends share (backend.h): the active spec as a list
 * of written items, and a status row.  Moved from capture.c (the list) and
 * redirectord.c (the row) when the macOS backend came.
 */
#include "redirectord/backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include "errmsg.h"

/* Trimmed copy of s[0..n). */
static void
trimmed(const char *s, size_t n, char *out, size_t len)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

int
rd_speclist_attach(const char *active, const char *spec,
    const struct rd_speclist_ops *ops, void *arg, char *err, size_t errlen,
    uint32_t *err_offset)
{
	char *candidate;
	size_t prefix;
	int rc;

	if (spec == NULL || strlen(spec) == 0 || strlen(spec) >= RD_SPEC_TEXT_MAX) {
		seterr(err, errlen, "empty or oversized spec (at most %d bytes)",
		    RD_SPEC_TEXT_MAX - 1);
		return -1;
	}
	/* The new items alone first, so errors count items and bytes in SPEC. */
	if (ops->check(arg, spec, err, errlen, err_offset) == -1)
		return -1;
	if ((candidate = malloc(2 * RD_SPEC_TEXT_MAX)) == NULL) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	prefix = active[0] ? strlen(active) + 1 : 0;
	snprintf(candidate, 2 * RD_SPEC_TEXT_MAX, "%s%s%s", active,
	    active[0] ? "," : "", spec);
	if (strlen(candidate) >= RD_SPEC_TEXT_MAX) {
		seterr(err, errlen, "the spec would exceed %d bytes",
		    RD_SPEC_TEXT_MAX - 1);
		free(candidate);
		return -1;
	}
	rc = ops->publish(arg, candidate, prefix, err, errlen, err_offset);
	free(candidate);
	return rc;
}

int
rd_speclist_remove(const char *list, const char *want, char *out, size_t len)
{
	char item[RD_SPEC_TEXT_MAX];
	const char *k, *next;
	size_t used = 0;
	int found = 0;

	out[0] = '\0';
	for (k = list; *k; k = *next ? next + 1 : next) {
		next = k + strcspn(k, ",");
		trimmed(k, (size_t)(next - k), item, sizeof(item));
		if (item[0] == '\0')
			continue;
		if (!found && strcmp(item, want) == 0) {
			found = 1;
			continue;
		}
		used += (size_t)snprintf(out + used, len - used, "%s%s",
		    used ? "," : "", item);
		if (used >= len)
			used = len - 1;
	}
	return found;
}

int
rd_speclist_detach(const char *active, const char *spec, bool all,
    const struct rd_speclist_ops *ops, void *arg, char *err, size_t errlen)
{
	char *keep, *tmp, want[RD_SPEC_TEXT_MAX];
	const char *p, *q;
	int rc = -1;

	if (all)
		return ops->publish(arg, "", 0, err, errlen, NULL);
	if (spec == NULL || *spec == '\0') {
		seterr(err, errlen, "nothing to detach (give items, or all)");
		return -1;
	}
	keep = malloc(RD_SPEC_TEXT_MAX);
	tmp = malloc(RD_SPEC_TEXT_MAX);
	if (keep == NULL || tmp == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	snprintf(keep, RD_SPEC_TEXT_MAX, "%s", active);
	/* Every item of spec must be an item of the active spec. */
	for (p = spec; *p; p = *q ? q + 1 : q) {
		q = p + strcspn(p, ",");
		trimmed(p, (size_t)(q - p), want, sizeof(want));
		if (want[0] == '\0')
			continue;
		if (!rd_speclist_remove(keep, want, tmp, RD_SPEC_TEXT_MAX)) {
			seterr(err, errlen, "'%s' is not attached (active: %s)", want,
			    active[0] ? active : "nothing");
			goto out;
		}
		memcpy(keep, tmp, RD_SPEC_TEXT_MAX);
	}
	rc = ops->publish(arg, keep, 0, err, errlen, NULL);
out:
	free(keep);
	free(tmp);
	return rc;
}

void
rd_fill_daemon(Lc__DaemonStatus *ds, const char *name, int running,
    uint32_t pid, const char *version)
{
	lc__daemon_status__init(ds);
	ds->name = (char *)(uintptr_t)name;
	ds->running = running;
	ds->pid = pid;
	ds->software_version = (char *)(uintptr_t)(version ? version : "");
	if (running && pid > 0)
		ds->uid_known = rd_effective_uid((pid_t)pid, &ds->uid) == 0;
}

/*
 * A process's effective uid now: the daemons drop to their users after they
 * connect, so the peer credentials taken at connect would say root.
 */
int
rd_effective_uid(pid_t pid, uint32_t *uid)
{
#ifdef __APPLE__
	int mib[4] = { CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid };
	struct kinfo_proc kp;
	size_t len = sizeof(kp);

	memset(&kp, 0, sizeof(kp));
	if (sysctl(mib, 4, &kp, &len, NULL, 0) == -1 || len == 0)
		return -1;
	*uid = (uint32_t)kp.kp_eproc.e_ucred.cr_uid;
	return 0;
#else
	char path[64], line[256];
	unsigned r, e;
	FILE *f;
	int found = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (found == -1 && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u %u", &r, &e) == 2) {
			*uid = e;
			found = 0;
		}
	fclose(f);
	return found;
#endif
}
