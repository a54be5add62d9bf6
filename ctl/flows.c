/*
 * localcapctl flows: the recorded entries, one line each (or one JSON
 * object per line), oldest first; --limit N the newest N; --follow then
 * prints what completes while it runs.  The store is read through
 * storeread/ (the viewer's API uses the same library, so `flows --json`
 * and /api/flows are the same bytes); show.c and export.c hold the other
 * two store commands, flowopts.c what they share, textout.c the text
 * helpers.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/flowopts.h"
#include "ctl/flows.h"
#include "ctl/textout.h"
#include "utf8.h"

#define FOLLOW_POLL_US		250000

struct lister {
	struct sr_store	*st;
	bool		 json;
	bool		 color;
};

static const char *
status_color(const struct sr_entry *e)
{
	if (e->status >= 0) {
		if (e->status < 300)
			return "\033[32m";
		if (e->status < 400)
			return "\033[36m";
		if (e->status < 500)
			return "\033[33m";
		return "\033[31m";
	}
	if (e->result && (strcmp(e->result, "closed") == 0 ||
	    strcmp(e->result, "NOERROR") == 0 || strcmp(e->result, "running") ==
	    0))
		return "\033[32m";
	return "\033[31m";
}

static void
print_header(const struct lister *l)
{
	if (l->json)
		return;
	printf("%s%-8s %-12s %-20s %-7s %-50s %-14s %-21s %s%s\n",
	    l->color ? "\033[1m" : "", "ID", "TIME", "PROCESS(PID)", "WHAT",
	    "TARGET", "STATUS", "UP / DOWN", "DURATION",
	    l->color ? "\033[0m" : "");
}

/* The first n characters' worth of s (whole UTF-8 sequences). */
static size_t
utf8_prefix(const char *s, size_t n)
{
	size_t i = 0, chars = 0;

	while (s[i] && chars < n) {
		i++;
		while (((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		chars++;
	}
	return i;
}

/* s[0..n) escaped for the terminal into buf (cut to fit). */
static void
esc(char *buf, size_t len, const char *s, size_t n)
{
	utf8_term_escape(buf, len, s, n);
}

static int
print_entry(void *ctx, const struct sr_entry *e)
{
	struct lister *l = ctx;
	const struct sr_flow *f = &e->flow;
	char id[48], when[40], pid[24], what[24], target[1024], sizes[48];
	char up[16], down[16], dur[24], dst[128], pcol[160], tcol[4096];
	char rcol[128], wcol[96];
	bool cut, http = e->kind && strcmp(e->kind, "http") == 0;
	bool dns = e->kind && strcmp(e->kind, "dns") == 0;
	const char *proc = f->process && f->process[0] ? f->process : "?";
	size_t tlen;

	if (l->json) {
		sr_entry_json(l->st, stdout, e);
		putchar('\n');
		return ferror(stdout) ? 1 : 0;
	}
	if (e->key.seq)
		snprintf(id, sizeof(id), "%lld.%lld", (long long)e->key.flow,
		    (long long)e->key.seq);
	else
		snprintf(id, sizeof(id), "%lld", (long long)e->key.flow);
	if (f->dst_addr == NULL)
		dst[0] = '\0';
	else
		fmt_addr(dst, sizeof(dst), f->dst_addr, f->dst_port);
	fmt_time(when, sizeof(when), e->key.start_us, false);
	/* pid 0: no process known (an explicit-proxy client). */
	if (f->pid == 0)
		pid[0] = '\0';
	else
		snprintf(pid, sizeof(pid), "(%lld)", (long long)f->pid);
	if (http)	/* "GET", or "GET h2" for an HTTP/2 stream */
		snprintf(what, sizeof(what), "%.16s%s", e->method ? e->method :
		    "?", e->http_version && strcmp(e->http_version,
		    "HTTP/2.0") == 0 ? " h2" : "");
	else if (dns && e->host == NULL)
		snprintf(what, sizeof(what), "DNS");	/* not a DNS message */
	else if (dns)
		snprintf(what, sizeof(what), "DNS %.10s", e->method ? e->method :
		    "?");
	else {
		snprintf(what, sizeof(what), "%.16s", e->proto ? e->proto : "?");
		for (char *c = what; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
	}
	if (http)
		snprintf(target, sizeof(target), "%s", e->url ? e->url : "");
	else if (dns)
		snprintf(target, sizeof(target), "%s", e->host ? e->host :
		    "(malformed message)");
	else if (e->host && f->dst_addr && strcmp(e->host, f->dst_addr) != 0)
		snprintf(target, sizeof(target), "%s:%d", e->host, f->dst_port);
	else
		snprintf(target, sizeof(target), "%s", dst);
	if (e->bytes_up < 0)
		snprintf(sizes, sizeof(sizes), "-");
	else {
		fmt_size(up, sizeof(up), e->bytes_up);
		fmt_size(down, sizeof(down), e->bytes_down);
		snprintf(sizes, sizeof(sizes), "%s / %s", up, down);
	}
	fmt_duration(dur, sizeof(dur), e->end_us >= e->key.start_us ?
	    e->end_us - e->key.start_us : -1);

	esc(wcol, sizeof(wcol), what, strlen(what));
	esc(pcol, sizeof(pcol), proc, utf8_prefix(proc, 20));
	snprintf(pcol + strlen(pcol), sizeof(pcol) - strlen(pcol), "%s", pid);
	/* Long URLs are cut on a terminal only: pipes get them whole. */
	tlen = strlen(target);
	cut = l->color && tlen > 50;
	esc(tcol, sizeof(tcol), target, cut ? utf8_prefix(target, 49) : tlen);
	esc(rcol, sizeof(rcol), e->result ? e->result : "-",
	    e->result ? strlen(e->result) : 1);
	printf("%-8s %-12s %-20s %s%-7s%s %s%s", id, when, pcol,
	    l->color ? "\033[1m" : "", wcol, l->color ? "\033[0m" : "", tcol,
	    cut ? "…" : "");
	if (!cut)
		printf("%*s", strlen(tcol) < 50 ? (int)(50 - strlen(tcol)) : 0,
		    "");
	printf(" %s%-14.14s%s %-21s %s\n", l->color ? status_color(e) : "",
	    rcol, l->color ? "\033[0m" : "", sizes, dur);
	return ferror(stdout) ? 1 : 0;
}

static volatile sig_atomic_t follow_stop;

static void
on_follow_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int
follow(struct lister *l, const struct sr_filter *f, int64_t serial)
{
	struct sigaction sa = { .sa_handler = on_follow_signal };
	struct sigaction old_int, old_term;
	long n = 0;

	sigemptyset(&sa.sa_mask);
	follow_stop = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	while (!follow_stop) {
		if ((n = sr_follow(l->st, f, &serial, print_entry, l)) < 0)
			break;
		fflush(stdout);
		if (!follow_stop)
			usleep(FOLLOW_POLL_US);
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (n < 0) {
		fprintf(stderr, "localcapctl: %s: %s\n", sr_path(l->st),
		    sr_errmsg(l->st));
		return 1;
	}
	return 0;
}

int
ctl_flows(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "follow",	no_argument,		NULL, 'f' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "before",	required_argument,	NULL, OPT_BEFORE },
		{ "after",	required_argument,	NULL, OPT_AFTER },
		{ NULL, 0, NULL, 0 },
	};
	struct flow_opts o = { 0 };
	struct lister l = { 0 };
	struct sr_page pg = { 0 };
	struct sr_key cursor;
	const char *before = NULL, *after = NULL;
	bool do_follow = false;
	int64_t serial = 0;
	int c, rc = 0;

	/* 0, not 1: glibc then forgets the "+" (stop at the first
	 * non-option) of localcapctl's own parse, so options may follow
	 * the ID. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "fj", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': do_follow = true; break;
		case 'j': l.json = true; break;
		case OPT_BEFORE: before = optarg; break;
		case OPT_AFTER: after = optarg; break;
		default:
			if (c == '?' || flow_option(&o, c, optarg))
				return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "localcapctl: flows takes options only ('%s'?)\n",
		    argv[optind]);
		return 2;
	}
	if ((before && after) || ((before || after) && do_follow)) {
		fprintf(stderr, "localcapctl: --before, --after and --follow do "
		    "not go together\n");
		return 2;
	}
	if (before && o.limit == 0) {
		fprintf(stderr, "localcapctl: --before needs --limit N (the page "
		    "just older than ID)\n");
		return 2;
	}
	if (before || after) {
		const char *id = before ? before : after;

		if (sr_parse_id(id, &cursor.flow, &cursor.seq) == -1) {
			fprintf(stderr, "localcapctl: --%s '%s': expected an id "
			    "(12 or 12.3), as listed by flows\n", before ?
			    "before" : "after", id);
			return 2;
		}
	}
	if ((l.st = ctl_store_open(ctl_state_dir(o.state_dir, state_dir))) ==
	    NULL)
		return 1;
	l.color = !l.json && isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	/* Following: what is complete now, then what completes later. */
	if (do_follow) {
		o.f.complete_only = true;
		if ((serial = sr_max_serial(l.st)) < 0)
			rc = 1;
	}
	/*
	 * The newest N, printed oldest first; or everything oldest first.  A
	 * page: --before ID the N entries just older than ID, --after ID the
	 * N just newer (both printed oldest first: pages for the viewer).
	 */
	pg.newest_first = o.limit > 0 || before;
	pg.reversed = pg.newest_first;
	pg.limit = (size_t)o.limit;
	if (after) {
		pg.newest_first = false;
		pg.reversed = false;
	}
	if (before || after) {
		if ((rc = sr_key_of(l.st, cursor.flow, cursor.seq, &cursor)) != 0) {
			fprintf(stderr, "localcapctl: --%s: no entry %s in %s\n",
			    before ? "before" : "after", before ? before : after,
			    sr_path(l.st));
			sr_close(l.st);
			return 1;
		}
		pg.cursor = &cursor;
	}
	print_header(&l);
	if (rc == 0 && sr_list(l.st, &o.f, &pg, print_entry, &l) < 0)
		rc = 1;
	if (rc)
		fprintf(stderr, "localcapctl: %s: %s\n", sr_path(l.st),
		    sr_errmsg(l.st));
	fflush(stdout);
	if (rc == 0 && do_follow) {
		o.f.complete_only = false;
		rc = follow(&l, &o.f, serial);
	}
	sr_close(l.st);
	return rc;
}
