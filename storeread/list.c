/*
 * Listing entries: keyset pages over the three kinds of entry, following
 * new ones, and counting a process's flows.
 *
 * Why not one query over a UNION ALL view (what the CLI did until schema
 * 4): SQLite sorts such a view whole before it can take the newest 20, so
 * a page cost a second on a store of half a million exchanges.  Instead
 * each kind ("arm") is asked for its own best `limit` keys through an
 * index on its start time, the keys are merged here, and only the page's
 * rows are then read in full by primary key.  Each later arm is bounded
 * by the page's worst key so far, so the flow arm (flows with no exchange
 * or DNS message) never scans flows older than the page.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storeread/internal.h"

#define CHUNK		2048	/* keys per page of an unlimited list */
#define FOLLOW_CHUNK	4096	/* entries per arm per follow poll */
#define PLAN_BUDGET_MS	10	/* a process filter's first plan (arm_keys) */

enum arm { ARM_HTTP, ARM_DNS, ARM_FLOW, ARM__COUNT };

struct hit {
	struct sr_key	key;
	int64_t		rowid;		/* of the arm's table: the row, read later */
	int64_t		serial;
	enum arm	arm;
};

/* The parameters every arm query takes (an arm binds those it names). */
enum {
	P_METHOD = 1, P_STATUS, P_PROCESS, P_SINCE, P_TEXT, P_CUR_START,
	P_CUR_FLOW, P_CUR_SEQ, P_BOUND, P_SERIAL, P_LIMIT,
};

struct arm_cols {
	const char	*from;		/* FROM … (with f when joined) */
	const char	*from_joined;
	const char	*from_planner;	/* a JOIN SQLite may turn round */
	const char	*start, *flow, *seq, *serial, *host, *rowid;
	const char	*text[2];	/* what --text searches besides process */
};

static const struct arm_cols arms[ARM__COUNT] = {
	[ARM_HTTP] = {
		"http_exchanges h",
		/* CROSS JOIN: walk h in time order, look each flow up. */
		"http_exchanges h CROSS JOIN flows f ON f.id = h.flow_id",
		"http_exchanges h JOIN flows f ON f.id = h.flow_id",
		"h.req_start_us", "h.flow_id", "h.seq", "h.done_serial",
		"h.host", "h.id", { "h.url", "h.host" },
	},
	[ARM_DNS] = {
		"dns d",
		"dns d CROSS JOIN flows f ON f.id = d.flow_id",
		"dns d JOIN flows f ON f.id = d.flow_id",
		"coalesce(d.query_us, d.response_us)", "d.flow_id", "d.seq",
		"d.done_serial", "d.qname", "d.id", { "d.qname", NULL },
	},
	[ARM_FLOW] = {
		"flows f", "flows f", "flows f",
		"f.start_us", "f.id", "0", "f.done_serial",
		"coalesce(f.sni, f.host, f.dst_addr)", "f.id",
		{ "coalesce(f.sni, f.host, f.dst_addr)", NULL },
	},
};

int
sr_filter_check(const struct sr_filter *f, char *err, size_t errlen)
{
	regex_t re;
	int rc;

	if (f->host_re) {
		if ((rc = regcomp(&re, f->host_re, REG_EXTENDED | REG_ICASE |
		    REG_NOSUB)) != 0) {
			char msg[128];

			regerror(rc, &re, msg, sizeof(msg));
			snprintf(err, errlen, "host pattern '%s': %s", f->host_re,
			    msg);
			return -1;
		}
		regfree(&re);
	}
	if (f->status != 0 && (f->status < 100 || f->status > 999)) {
		snprintf(err, errlen, "status %d: expected an HTTP status such as "
		    "404", f->status);
		return -1;
	}
	return 0;
}

static bool
arm_wanted(const struct sr_filter *f, enum arm a)
{
	if (a != ARM_HTTP && (f->method || f->status || f->http_only))
		return false;
	return true;
}

static void
cat(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

/*
 * The key query of arm a.  follow: entries completed after P_SERIAL, by
 * serial; else by key in the page's direction, after the cursor, within
 * the bound.
 */
static void
arm_sql(char *sql, size_t len, const struct sr_filter *f, enum arm a,
    bool newest, bool cursor, bool bound, bool follow, bool planner_join)
{
	const struct arm_cols *c = &arms[a];
	bool join = a != ARM_FLOW && (f->process || f->text);
	const char *lt = newest ? "<" : ">", *dir = newest ? " DESC" : "";

	snprintf(sql, len, "SELECT %s, %s, %s, %s, %s FROM %s WHERE 1",
	    c->start, c->flow, c->seq, c->serial, c->rowid, !join ? c->from :
	    planner_join ? c->from_planner : c->from_joined);
	if (a == ARM_FLOW)
		cat(sql, len, " AND NOT EXISTS (SELECT 1 FROM http_exchanges h"
		    " WHERE h.flow_id = f.id) AND NOT EXISTS (SELECT 1 FROM dns d"
		    " WHERE d.flow_id = f.id)");
	if (f->host_re)
		cat(sql, len, " AND lc_host_match(%s)", c->host);
	if (f->method)
		cat(sql, len, " AND upper(h.method) = upper(?%d)", P_METHOD);
	if (f->status)
		cat(sql, len, " AND h.status = ?%d", P_STATUS);
	/* (+: not through flows_process, so that flows go in time order.) */
	if (f->process)
		cat(sql, len, " AND %sf.process = ?%d", a == ARM_FLOW &&
		    !planner_join ? "+" : "", P_PROCESS);
	if (f->since_us)
		cat(sql, len, " AND %s >= ?%d", c->start, P_SINCE);
	if (f->text) {
		cat(sql, len, " AND (instr(lower(coalesce(f.process, '')), ?%d)",
		    P_TEXT);
		for (size_t i = 0; i < 2 && c->text[i]; i++)
			cat(sql, len, " OR instr(lower(coalesce(%s, '')), ?%d)",
			    c->text[i], P_TEXT);
		cat(sql, len, ")");
	}
	if (f->complete_only)
		cat(sql, len, " AND %s IS NOT NULL", c->serial);
	if (follow) {
		cat(sql, len, " AND %s > ?%d ORDER BY %s LIMIT ?%d", c->serial,
		    P_SERIAL, c->serial, P_LIMIT);
		return;
	}
	if (cursor)
		cat(sql, len, " AND (%s, %s, %s) %s (?%d, ?%d, ?%d)", c->start,
		    c->flow, c->seq, lt, P_CUR_START, P_CUR_FLOW, P_CUR_SEQ);
	if (bound)
		cat(sql, len, " AND %s %s ?%d", c->start, newest ? ">=" : "<=",
		    P_BOUND);
	/* (A flow's seq is the constant 0: not a term of its order.) */
	cat(sql, len, " ORDER BY %s%s, %s%s", c->start, dir, c->flow, dir);
	if (a != ARM_FLOW)
		cat(sql, len, ", %s%s", c->seq, dir);
	cat(sql, len, " LIMIT ?%d", P_LIMIT);
}

static int
key_cmp(const struct sr_key *a, const struct sr_key *b)
{
	if (a->start_us != b->start_us)
		return a->start_us < b->start_us ? -1 : 1;
	if (a->flow != b->flow)
		return a->flow < b->flow ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

static int
hit_cmp_asc(const void *a, const void *b)
{
	return key_cmp(&((const struct hit *)a)->key,
	    &((const struct hit *)b)->key);
}

static int
hit_cmp_desc(const void *a, const void *b)
{
	return -hit_cmp_asc(a, b);
}

static int
hit_cmp_serial(const void *a, const void *b)
{
	const struct hit *x = a, *y = b;

	return x->serial < y->serial ? -1 : x->serial > y->serial;
}

/* The filter's text, lower-cased (ASCII, like SQLite's lower()). */
static char *
lower_dup(const char *s)
{
	char *p = strdup(s), *q;

	for (q = p; q && *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

struct query {
	struct sr_store		*st;
	const struct sr_filter	*f;
	char			*text;		/* lower-cased */
};

static int
query_begin(struct query *q, struct sr_store *st, const struct sr_filter *f)
{
	char err[256];

	memset(q, 0, sizeof(*q));
	q->st = st;
	q->f = f;
	if (sr_filter_check(f, err, sizeof(err)) == -1) {
		sr_seterr(st, "%s", err);
		return -1;
	}
	if (st->has_host_re)
		regfree(&st->host_re);
	st->has_host_re = false;
	if (f->host_re) {
		if (regcomp(&st->host_re, f->host_re, REG_EXTENDED | REG_ICASE |
		    REG_NOSUB) != 0) {
			sr_seterr(st, "host pattern '%s' does not compile",
			    f->host_re);
			return -1;
		}
		st->has_host_re = true;
	}
	if (f->text && (q->text = lower_dup(f->text)) == NULL) {
		sr_seterr(st, "out of memory");
		return -1;
	}
	return 0;
}

static void
query_end(struct query *q)
{
	if (q->st->has_host_re)
		regfree(&q->st->host_re);
	q->st->has_host_re = false;
	free(q->text);
}

static void
bind_filters(const struct query *q, sqlite3_stmt *s)
{
	const struct sr_filter *f = q->f;

	/* Parameters an arm does not name fail with SQLITE_RANGE: fine. */
	if (f->method)
		sqlite3_bind_text(s, P_METHOD, f->method, -1, SQLITE_STATIC);
	if (f->status)
		sqlite3_bind_int(s, P_STATUS, f->status);
	if (f->process)
		sqlite3_bind_text(s, P_PROCESS, f->process, -1, SQLITE_STATIC);
	if (f->since_us)
		sqlite3_bind_int64(s, P_SINCE, f->since_us);
	if (q->text)
		sqlite3_bind_text(s, P_TEXT, q->text, -1, SQLITE_STATIC);
}

/* Append arm a's rows of statement s to *hits: 0, or -1. */
static int
collect(struct query *q, sqlite3_stmt *s, enum arm a, struct hit **hits,
    size_t *n, size_t *cap)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct hit *h;

		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;

			if ((h = realloc(*hits, ncap * sizeof(**hits))) == NULL) {
				sr_seterr(q->st, "out of memory");
				return -1;
			}
			*hits = h;
			*cap = ncap;
		}
		h = &(*hits)[(*n)++];
		h->key.start_us = sqlite3_column_int64(s, 0);
		h->key.flow = sqlite3_column_int64(s, 1);
		h->key.seq = sqlite3_column_int64(s, 2);
		h->serial = sr_col_int(s, 3);
		h->rowid = sqlite3_column_int64(s, 4);
		h->arm = a;
	}
	if (rc != SQLITE_DONE) {
		sr_sqlerr(q->st);
		return (rc & 0xff) == SQLITE_INTERRUPT ? -2 : -1;
	}
	return 0;
}

/* Read hit h in full and hand it to cb: 0 go on, 1 stop, -1 failed. */
static int
emit(struct sr_store *st, const struct hit *h, sr_entry_cb cb, void *ctx)
{
	static const enum sr_stmt by_arm[ARM__COUNT] = {
		[ARM_HTTP] = SR_Q_HTTP_ENTRY, [ARM_DNS] = SR_Q_DNS_ENTRY,
		[ARM_FLOW] = SR_Q_FLOW_ENTRY,
	};
	sqlite3_stmt *s = sr_stmt(st, by_arm[h->arm]);
	struct sr_entry e;
	int rc, stop = 0;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, h->rowid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		sr_read_entry(s, &e);
		stop = cb(ctx, &e) != 0;
	} else if (rc != SQLITE_DONE)
		sr_sqlerr(st);
	sqlite3_reset(s);
	/* SQLITE_DONE: pruned meanwhile; skip it. */
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	return stop;
}

/*
 * One page of at most limit keys after the cursor, merged from the arms
 * into *hits (sorted in the page's direction): the count, or -1.
 */
struct budget {
	struct timespec	start;
	long		ms;
};

static int
over_budget(void *arg)
{
	struct budget *b = arg;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - b->start.tv_sec) * 1000 +
	    (now.tv_nsec - b->start.tv_nsec) / 1000000 > b->ms;
}

/*
 * One arm's keys into *hits.  A process filter has two plans: walk the
 * arm in time order looking each flow up (quick when the process is
 * common: the page fills early), or take the process's flows by index and
 * sort their entries (quick when it is rare).  The walk goes first, within
 * a time budget; past it, the other plan.
 */
static int
arm_keys(struct query *q, enum arm a, bool newest, const struct sr_key *cursor,
    size_t limit, bool bound, struct hit **hits, size_t *n, size_t *cap)
{
	char sql[2048];
	bool two_plans = q->f->process != NULL;
	size_t before = *n;
	int plan, rc = -1;

	for (plan = 0; plan < (two_plans ? 2 : 1); plan++) {
		struct budget b = { .ms = PLAN_BUDGET_MS };
		sqlite3_stmt *s;

		*n = before;
		arm_sql(sql, sizeof(sql), q->f, a, newest, cursor != NULL, bound,
		    false, plan == 1);
		if (sqlite3_prepare_v2(q->st->db, sql, -1, &s, NULL) !=
		    SQLITE_OK) {
			sr_sqlerr(q->st);
			return -1;
		}
		bind_filters(q, s);
		if (cursor) {
			sqlite3_bind_int64(s, P_CUR_START, cursor->start_us);
			sqlite3_bind_int64(s, P_CUR_FLOW, cursor->flow);
			sqlite3_bind_int64(s, P_CUR_SEQ, cursor->seq);
		}
		if (bound)
			sqlite3_bind_int64(s, P_BOUND,
			    (*hits)[limit - 1].key.start_us);
		sqlite3_bind_int64(s, P_LIMIT, (sqlite3_int64)limit);
		if (two_plans && plan == 0) {
			clock_gettime(CLOCK_MONOTONIC, &b.start);
			sqlite3_progress_handler(q->st->db, 1000, over_budget, &b);
		}
		rc = collect(q, s, a, hits, n, cap);
		sqlite3_progress_handler(q->st->db, 0, NULL, NULL);
		sqlite3_finalize(s);
		if (rc != -2)
			break;
	}
	return rc == 0 ? 0 : -1;
}

/*
 * One page of at most limit keys after the cursor, merged from the arms
 * into *hits (sorted in the page's direction): the count, or -1.
 */
static long
page_keys(struct query *q, bool newest, const struct sr_key *cursor,
    size_t limit, struct hit **hits, size_t *cap)
{
	size_t n = 0;
	int a;

	for (a = 0; a < ARM__COUNT; a++) {
		bool bound = n >= limit;

		if (!arm_wanted(q->f, (enum arm)a))
			continue;
		if (bound)
			qsort(*hits, n, sizeof(**hits), newest ? hit_cmp_desc :
			    hit_cmp_asc);
		if (arm_keys(q, (enum arm)a, newest, cursor, limit, bound, hits,
		    &n, cap) == -1)
			return -1;
	}
	if (n)
		qsort(*hits, n, sizeof(**hits), newest ? hit_cmp_desc :
		    hit_cmp_asc);
	return (long)(n < limit ? n : limit);
}

/*
 * A chunk's keys and rows are read in one read transaction: one snapshot
 * (a flow pruned meanwhile cannot vanish between the two), and one lock
 * instead of one per statement.  Only a chunk: a long list must not hold
 * proxyd's WAL checkpoints back.  (Nothing to do if the caller has a
 * transaction open.)
 */
static void
snapshot_begin(struct sr_store *st)
{
	st->own_txn = sqlite3_get_autocommit(st->db) &&
	    sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

static void
snapshot_end(struct sr_store *st)
{
	if (st->own_txn)
		(void)sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	st->own_txn = false;
}

long
sr_list(struct sr_store *st, const struct sr_filter *f,
    const struct sr_page *pg, sr_entry_cb cb, void *ctx)
{
	struct query q;
	struct hit *hits = NULL;
	struct sr_key cur;
	size_t cap = 0, want = pg->limit, chunk;
	long total = 0, n, i;
	bool have_cur = pg->cursor != NULL;
	int rc = 0;

	/* Every entry, reversed, is every entry the other way round. */
	if (pg->reversed && pg->limit == 0) {
		struct sr_page other = *pg;

		if (pg->cursor) {
			sr_seterr(st, "a reversed page after a cursor needs a "
			    "limit");
			return -1;
		}
		other.newest_first = !pg->newest_first;
		other.reversed = false;
		return sr_list(st, f, &other, cb, ctx);
	}
	if (query_begin(&q, st, f) == -1)
		return -1;
	if (have_cur)
		cur = *pg->cursor;
	for (;;) {
		chunk = want == 0 ? CHUNK : want - (size_t)total;
		if (want && chunk > CHUNK && !pg->reversed)
			chunk = CHUNK;
		if (chunk == 0)
			break;
		snapshot_begin(st);
		if ((n = page_keys(&q, pg->newest_first, have_cur ? &cur : NULL,
		    chunk, &hits, &cap)) < 0) {
			snapshot_end(st);
			rc = -1;
			break;
		}
		for (i = 0; i < n && rc == 0; i++) {
			long k = pg->reversed ? n - 1 - i : i;

			if ((rc = emit(st, &hits[k], cb, ctx)) == 1)
				break;
		}
		snapshot_end(st);
		total += n;
		if (rc != 0 || (size_t)n < chunk || pg->reversed)
			break;
		cur = hits[n - 1].key;
		have_cur = true;
	}
	free(hits);
	query_end(&q);
	return rc == -1 ? -1 : total;
}

int
sr_key_of(struct sr_store *st, int64_t flow, int64_t seq, struct sr_key *out)
{
	static const char *const sql[] = {
		"SELECT req_start_us FROM http_exchanges WHERE flow_id = ?1 AND"
		" seq = ?2",
		"SELECT coalesce(query_us, response_us) FROM dns WHERE"
		" flow_id = ?1 AND seq = ?2",
		"SELECT start_us FROM flows WHERE id = ?1",
	};
	size_t i;
	int rc = SQLITE_DONE;

	for (i = seq ? 0 : 2; i < 3 && rc == SQLITE_DONE; i++) {
		sqlite3_stmt *s;

		if (i == 2 && seq)
			break;
		if (sqlite3_prepare_v2(st->db, sql[i], -1, &s, NULL) != SQLITE_OK) {
			sr_sqlerr(st);
			return -1;
		}
		sqlite3_bind_int64(s, 1, flow);
		sqlite3_bind_int64(s, 2, seq);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			out->start_us = sqlite3_column_int64(s, 0);
			out->flow = flow;
			out->seq = seq;
		} else if (rc != SQLITE_DONE)
			sr_sqlerr(st);
		sqlite3_finalize(s);
	}
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		sr_seterr(st, "no entry %lld%s%.0lld", (long long)flow,
		    seq ? "." : "", (long long)seq);
		return 1;
	}
	return -1;
}

int64_t
sr_max_serial(struct sr_store *st)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, "SELECT max(coalesce((SELECT"
	    " max(done_serial) FROM flows), 0), coalesce((SELECT"
	    " max(done_serial) FROM http_exchanges), 0), coalesce((SELECT"
	    " max(done_serial) FROM dns), 0))", -1, &s, NULL) != SQLITE_OK) {
		sr_sqlerr(st);
		return -1;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		sr_sqlerr(st);
	sqlite3_finalize(s);
	return v;
}

long
sr_follow(struct sr_store *st, const struct sr_filter *f, int64_t *serial,
    sr_entry_cb cb, void *ctx)
{
	struct query q;
	struct hit *hits = NULL;
	char sql[2048];
	size_t cap = 0, n = 0, before, i;
	int64_t upto = INT64_MAX;
	long listed = 0;
	int a, rc = 0;

	if (query_begin(&q, st, f) == -1)
		return -1;
	snapshot_begin(st);
	for (a = 0; a < ARM__COUNT && rc == 0; a++) {
		sqlite3_stmt *s;

		if (!arm_wanted(f, (enum arm)a))
			continue;
		arm_sql(sql, sizeof(sql), f, (enum arm)a, false, false, false,
		    true, false);
		if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
			sr_sqlerr(st);
			rc = -1;
			break;
		}
		bind_filters(&q, s);
		sqlite3_bind_int64(s, P_SERIAL, *serial);
		sqlite3_bind_int64(s, P_LIMIT, FOLLOW_CHUNK);
		before = n;
		rc = collect(&q, s, (enum arm)a, &hits, &n, &cap);
		sqlite3_finalize(s);
		/* A full arm: what lies past its last serial waits a poll. */
		if (rc == 0 && n - before == FOLLOW_CHUNK &&
		    hits[n - 1].serial < upto)
			upto = hits[n - 1].serial;
	}
	if (rc == 0) {
		if (n)
			qsort(hits, n, sizeof(*hits), hit_cmp_serial);
		for (i = 0; i < n && hits[i].serial <= upto; i++) {
			if ((rc = emit(st, &hits[i], cb, ctx)) == -1)
				break;
			*serial = hits[i].serial;
			listed++;
			/* Stopped: the rest comes at the next poll. */
			if (rc == 1) {
				rc = 0;
				break;
			}
		}
	}
	snapshot_end(st);
	free(hits);
	query_end(&q);
	return rc == -1 ? -1 : listed;
}

int64_t
sr_count_flows_of(struct sr_store *st, int64_t pid, int64_t since_us)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM flows WHERE"
	    " pid = ?1 AND start_us >= ?2", -1, &s, NULL) != SQLITE_OK) {
		sr_sqlerr(st);
		return -1;
	}
	sqlite3_bind_int64(s, 1, pid);
	sqlite3_bind_int64(s, 2, since_us);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		sr_sqlerr(st);
	sqlite3_finalize(s);
	return v;
}
