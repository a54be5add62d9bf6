/*
 * What localcapctl's flow-store commands (flows, show, export, ps) share:
 * finding and opening the store, and the filter options of flows and
 * export (--host, --method, --status, --process, --since, --limit).
 */
#ifndef LOCALCAP_CTL_FLOWOPTS_H
#define LOCALCAP_CTL_FLOWOPTS_H

#include <getopt.h>
#include <stdint.h>

#include "storeread/storeread.h"

enum {
	OPT_STATE_DIR = 256,
	OPT_HOST, OPT_METHOD, OPT_STATUS, OPT_PROCESS, OPT_SINCE, OPT_LIMIT,
	OPT_TEXT, OPT_HAR, OPT_BEFORE, OPT_AFTER,
};

#define FILTER_LONGOPTS \
	{ "state-dir",	required_argument,	NULL, OPT_STATE_DIR }, \
	{ "host",	required_argument,	NULL, OPT_HOST }, \
	{ "method",	required_argument,	NULL, OPT_METHOD }, \
	{ "status",	required_argument,	NULL, OPT_STATUS }, \
	{ "process",	required_argument,	NULL, OPT_PROCESS }, \
	{ "since",	required_argument,	NULL, OPT_SINCE }, \
	{ "limit",	required_argument,	NULL, OPT_LIMIT }, \
	{ "text",	required_argument,	NULL, OPT_TEXT }

struct flow_opts {
	struct sr_filter f;
	long		 limit;		/* 0: all */
	const char	*state_dir;	/* --state-dir, or NULL */
};

/*
 * One option of FILTER_LONGOPTS: 0, or 2 after a usage error line on
 * stderr.  (Strings point into argv.)
 */
int	flow_option(struct flow_opts *, int c, const char *arg);

/* --state-dir, else the command line's -s, else $LOCALCAP_STATE_DIR, else
 * the default. */
const char *ctl_state_dir(const char *opt, const char *arg);

/* The store, or NULL after one line on stderr. */
struct sr_store *ctl_store_open(const char *state_dir);

int64_t	ctl_now_us(void);

#endif
