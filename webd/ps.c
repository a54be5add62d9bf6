/*
 * The processes tab's list, read from /proc with the viewer's own rights
 * (an unprivileged viewer sees every pid and name, but not the executable
 * of another user's process: that field is then null).  Kernel threads are
 * left out; each process comes with its flows in the store since it
 * started.
 */
#include "webd/ps.h"

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storeread/storeread.h"
#include "utf8.h"
#include "webd/api.h"

#define PS_MAX	4096	/* processes listed at most */
#define PS_USERS 1024	/* user names remembered */

/*
 * uid -> name, read once before the sandbox (Landlock keeps /etc/passwd
 * out of reach afterwards): a user made later shows as its uid.
 */
static struct {
	unsigned	uid;
	char		name[33];
} users[PS_USERS];
static size_t nusers;

void
ps_init(void)
{
	struct passwd *pw;

	setpwent();
	while (nusers < PS_USERS && (pw = getpwent()) != NULL) {
		users[nusers].uid = pw->pw_uid;
		snprintf(users[nusers].name, sizeof(users[nusers].name), "%s",
		    pw->pw_name);
		nusers++;
	}
	endpwent();
}

static const char *
user_name(unsigned uid)
{
	size_t i;

	for (i = 0; i < nusers; i++)
		if (users[i].uid == uid)
			return users[i].name;
	return NULL;
}

/* A small file of /proc into buf: its length, or -1. */
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

static void
json_s(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str_n(out, s, strlen(s));
}

/* The systemd unit of a cgroup path: its last *.service/.scope part. */
static void
unit_of(const char *cg, char *unit, size_t len)
{
	const char *p = cg, *best = NULL;
	size_t n = 0;

	unit[0] = '\0';
	while ((p = strchr(p, '/')) != NULL) {
		const char *seg = ++p, *end = strchr(seg, '/');
		size_t sl = end ? (size_t)(end - seg) : strlen(seg);

		if ((sl > 8 && memcmp(seg + sl - 8, ".service", 8) == 0) ||
		    (sl > 6 && memcmp(seg + sl - 6, ".scope", 6) == 0)) {
			best = seg;
			n = sl;
		}
	}
	if (best && n < len) {
		memcpy(unit, best, n);
		unit[n] = '\0';
	}
}

/* Seconds since boot of the process's start, from /proc/PID/stat field 22. */
static int64_t
start_us_of(const char *stat, int64_t boot_us)
{
	const char *p = strrchr(stat, ')');
	unsigned long long ticks;
	int field;

	if (p == NULL)
		return 0;
	p += 2;
	for (field = 3; field < 22 && *p; field++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return 0;
		p++;
	}
	if (sscanf(p, "%llu", &ticks) != 1)
		return 0;
	return boot_us + (int64_t)(ticks * 1000000ULL /
	    (unsigned long long)sysconf(_SC_CLK_TCK));
}

char *
ps_json_for_api(struct api *a)
{
	struct timespec rt, bt;
	int64_t boot_us;
	char *out_buf = NULL;
	size_t out_len = 0;
	FILE *out;
	DIR *d;
	struct dirent *de;
	int n = 0;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	boot_us = ((int64_t)rt.tv_sec - bt.tv_sec) * 1000000 +
	    ((int64_t)rt.tv_nsec - bt.tv_nsec) / 1000;
	if ((d = opendir("/proc")) == NULL)
		return NULL;
	if ((out = open_memstream(&out_buf, &out_len)) == NULL) {
		closedir(d);
		return NULL;
	}
	fputc('[', out);
	while ((de = readdir(d)) != NULL && n < PS_MAX) {
		char path[64], stat[1024], status[4096], cg[1024], exe[PATH_MAX];
		char name[64] = "", unit[256], *p;
		unsigned uid = 0, ppid = 0;
		ssize_t k;
		long pid;
		int64_t flows = -1, start_us;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = strtol(de->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%ld/status", pid);
		if (read_small(path, status, sizeof(status)) < 0)
			continue;
		if ((p = strstr(status, "Name:\t")) != NULL)
			sscanf(p + 6, "%63[^\n]", name);
		if ((p = strstr(status, "\nUid:\t")) != NULL)
			sscanf(p + 6, "%u", &uid);
		if ((p = strstr(status, "\nPPid:\t")) != NULL)
			sscanf(p + 7, "%u", &ppid);
		/* Kernel threads: children of kthreadd (pid 2), and it. */
		if (pid == 2 || ppid == 2)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		start_us = read_small(path, stat, sizeof(stat)) > 0 ?
		    start_us_of(stat, boot_us) : 0;
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		if ((k = readlink(path, exe, sizeof(exe) - 1)) < 0)
			exe[0] = '\0';
		else
			exe[k] = '\0';
		snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
		cg[0] = '\0';
		if (read_small(path, cg, sizeof(cg)) > 0 &&
		    (p = strstr(cg, "0::")) != NULL) {
			memmove(cg, p + 3, strlen(p + 3) + 1);
			cg[strcspn(cg, "\n")] = '\0';
		} else
			cg[0] = '\0';
		unit_of(cg, unit, sizeof(unit));
		if (a->store && api_store_open(a) == 0)
			flows = sr_count_flows_of(a->store, pid, start_us);

		fprintf(out, "%s{\"pid\":%ld,\"uid\":%u,\"user\":", n ? "," : "",
		    pid, uid);
		json_s(out, user_name(uid));
		fputs(",\"name\":", out);
		json_s(out, name);
		fputs(",\"exe\":", out);
		json_s(out, exe[0] ? exe : NULL);
		fputs(",\"cgroup\":", out);
		json_s(out, cg[0] ? cg : NULL);
		fputs(",\"unit\":", out);
		json_s(out, unit[0] ? unit : NULL);
		if (flows >= 0)
			fprintf(out, ",\"flows\":%" PRId64 "}", flows);
		else
			fputs(",\"flows\":null}", out);
		n++;
	}
	closedir(d);
	fputs("]", out);
	if (fclose(out) != 0) {
		free(out_buf);
		return NULL;
	}
	return out_buf;
}
