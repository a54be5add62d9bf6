/*
 * The store's options and opening, shared by flows, show, export and ps
 * (flowopts.h), and --since's time parsing (flows.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/flowopts.h"
#include "ctl/flows.h"

int64_t
ctl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *
ctl_state_dir(const char *opt, const char *arg)
{
	const char *env;

	if (opt)
		return opt;
	if (arg)
		return arg;
	if ((env = getenv("LOCALCAP_STATE_DIR")) != NULL && env[0])
		return env;
	return CTL_DEFAULT_STATE_DIR;
}

struct sr_store *
ctl_store_open(const char *state_dir)
{
	char err[1024];
	struct sr_store *st;

	if ((st = sr_open(state_dir, err, sizeof(err), NULL)) == NULL)
		fprintf(stderr, "localcapctl: %s\n", err);
	return st;
}

int
ctl_parse_since(const char *s, int64_t now_us, int64_t *since_us)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M",
		"%Y-%m-%d %H:%M", "%Y-%m-%d",
	};
	char *end;
	size_t i;

	if (s == NULL || *s == '\0')
		return -1;
	/* A duration back from now. */
	if (s[0] >= '0' && s[0] <= '9') {
		unsigned long long n;
		int64_t unit = 0;

		errno = 0;
		n = strtoull(s, &end, 10);
		if (errno == 0 && end != s && end[0] && end[1] == '\0') {
			switch (end[0]) {
			case 's': unit = 1; break;
			case 'm': unit = 60; break;
			case 'h': unit = 3600; break;
			case 'd': unit = 86400; break;
			default: unit = 0; break;
			}
			if (unit && n <= (unsigned long long)(now_us / 1000000 /
			    unit)) {
				*since_us = now_us - (int64_t)n * unit * 1000000;
				return 0;
			}
			if (unit)
				return -1;
		}
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct tm tm;
		time_t t;
		long frac_us = 0;

		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(s, formats[i], &tm)) == NULL)
			continue;
		if (*end == '.') {
			long scale = 100000;

			for (end++; *end >= '0' && *end <= '9'; end++) {
				frac_us += (*end - '0') * scale;
				scale /= 10;
			}
		}
		if (*end == '\0') {
			tm.tm_isdst = -1;
			t = mktime(&tm);
		} else if ((end[0] == 'Z' || end[0] == 'z') && end[1] == '\0')
			t = timegm(&tm);
		else if ((end[0] == '+' || end[0] == '-') &&
		    end[1] >= '0' && end[1] <= '9' && end[2] >= '0' &&
		    end[2] <= '9') {
			int sign = end[0] == '-' ? -1 : 1;
			int hh = (end[1] - '0') * 10 + (end[2] - '0'), mm = 0;
			const char *p = end + 3;

			if (*p == ':')
				p++;
			if (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' &&
			    p[1] <= '9') {
				mm = (p[0] - '0') * 10 + (p[1] - '0');
				p += 2;
			}
			if (*p != '\0' || hh > 23 || mm > 59)
				return -1;
			t = timegm(&tm) - sign * (hh * 3600 + mm * 60);
		} else
			continue;
		if (t == (time_t)-1)
			return -1;
		*since_us = (int64_t)t * 1000000 + frac_us;
		return 0;
	}
	return -1;
}

int
flow_option(struct flow_opts *o, int c, const char *arg)
{
	char *end, err[256];
	long v;

	switch (c) {
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_HOST:
		o->f.host_re = arg;
		if (sr_filter_check(&o->f, err, sizeof(err)) == -1) {
			fprintf(stderr, "localcapctl: --host '%s': %s\n", arg,
			    strstr(err, ": ") ? strstr(err, ": ") + 2 : err);
			return 2;
		}
		return 0;
	case OPT_METHOD:
		o->f.method = arg;
		return 0;
	case OPT_STATUS:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || end == arg || *end || v < 100 || v > 999) {
			fprintf(stderr, "localcapctl: --status '%s': expected an "
			    "HTTP status such as 404\n", arg);
			return 2;
		}
		o->f.status = (int)v;
		return 0;
	case OPT_PROCESS:
		o->f.process = arg;
		return 0;
	case OPT_TEXT:
		o->f.text = arg;
		return 0;
	case OPT_SINCE:
		if (ctl_parse_since(arg, ctl_now_us(), &o->f.since_us) == -1) {
			fprintf(stderr, "localcapctl: --since '%s': expected a "
			    "duration (30s, 10m, 2h, 1d) or an ISO time "
			    "(2026-01-31T18:00:00Z)\n", arg);
			return 2;
		}
		/* 0 is "any" to the reader: the epoch itself is as good. */
		if (o->f.since_us == 0)
			o->f.since_us = 1;
		return 0;
	case OPT_LIMIT:
		errno = 0;
		o->limit = strtol(arg, &end, 10);
		if (errno || end == arg || *end || o->limit < 1) {
			fprintf(stderr, "localcapctl: --limit '%s': expected a "
			    "positive number\n", arg);
			return 2;
		}
		return 0;
	default:
		return 2;
	}
}
