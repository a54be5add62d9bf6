/*
 * localcapctl ps [--all] [--json]: the process list (ctl/ps.c, which the
 * viewer links too) as a table or JSON lines.  Without redirectord the
 * capture column is unknown; without a store, the flows.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/flowopts.h"
#include "ctl/flows.h"
#include "ctl/ps.h"
#include "ctl/textout.h"
#include "utf8.h"

/* A column of recorded text: escaped, padded to width (cut on a TTY). */
static void
column(const char *s, size_t width, bool last)
{
	char buf[512];
	size_t n = utf8_term_escape(buf, sizeof(buf), s ? s : "-",
	    s ? strlen(s) : 1);

	fputs(buf, stdout);
	if (!last)
		printf("%*s ", n < width ? (int)(width - n) : 0, "");
}

static void
status_cb(void *arg, const Lc__StatusReply *st)
{
	ps_capture_from_status(arg, st);
}

int
ctl_ps(const char *ctl_sock, const char *state_dir, int json, int argc,
    char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir",	required_argument,	NULL, OPT_STATE_DIR },
		{ "all",	no_argument,		NULL, 'a' },
		{ "json",	no_argument,		NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ps_capture cap = { 0 };
	struct sr_store *store;
	struct ps_proc *v = NULL;
	const char *state_opt = NULL;
	char err[256], serr[1024];
	size_t n = 0, i;
	bool all = false;
	int c, rc = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "aj", longopts, NULL)) != -1) {
		switch (c) {
		case 'a': all = true; break;
		case 'j': json = 1; break;
		case OPT_STATE_DIR: state_opt = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: localcapctl ps [--all] [--json]\n");
		return 2;
	}
	if (ps_unsupported != NULL) {
		fprintf(stderr, "localcapctl: %s\n", ps_unsupported);
		return 1;
	}
	/* Without redirectord the list still helps: capture unknown. */
	(void)ctl_status_fetch(ctl_sock, false, status_cb, &cap);
	/* Without a store, too: flows unknown (said once). */
	if ((store = sr_open(ctl_state_dir(state_opt, state_dir), serr,
	    sizeof(serr), NULL)) == NULL)
		fprintf(stderr, "localcapctl: %s: flows not counted\n", serr);
	if (ps_collect(&cap, store, all, &v, &n, err, sizeof(err)) == -1) {
		fprintf(stderr, "localcapctl: %s\n", err);
		rc = 1;
	}
	if (rc == 0 && !json)
		printf("%-7s %-10s %-15s %-8s %-20s %5s  %-24s %s\n", "PID",
		    "USER", "NAME", "CAPTURE", "BY", "FLOWS", "UNIT", "EXE");
	for (i = 0; i < n; i++) {
		const struct ps_proc *p = &v[i];

		if (json) {
			ps_json(stdout, p);
			putchar('\n');
			continue;
		}
		printf("%-7d ", (int)p->pid);
		column(p->user, 10, false);
		column(p->name, 15, false);
		printf("%-8s ", p->captured < 0 ? "?" : p->captured ? "yes" :
		    "no");
		column(p->decided_by ? p->decided_by : "", 20, false);
		if (p->flows < 0)
			printf("%5s  ", "-");
		else
			printf("%5" PRId64 "  ", p->flows);
		column(p->unit, 24, false);
		if (p->exe == NULL && p->argv0 != NULL) {
			/* Not the kernel's word: bracketed, as ps(1) does. */
			putchar('[');
			column(p->argv0, 0, true);
			putchar(']');
		} else
			column(p->exe, 0, true);
		putchar('\n');
	}
	if (rc == 0 && !json && cap.known && !cap.capturing)
		printf("(capture is paused: %s)\n", cap.spec && cap.spec[0] ?
		    "a daemon is down (fail-open)" : "the spec is empty");
	if (fflush(stdout) == EOF)
		rc = 1;
	ps_free(v, n);
	sr_close(store);
	ps_capture_free(&cap);
	return rc;
}
