/*
 * proxyd's flow store (SQLite): opening a file, the batched writer,
 * pruning, and pausing on errors; the schema's steps are store_schema.c's.
 * See store.h for the contract and docs/flow-store.md for the schema a
 * reader relies on.
 *
 * Why the writer looks the way it does: proxyd is one event loop, so a
 * write must cost microseconds.  Rows go into an open transaction that is
 * committed by a timer or after commit_rows rows; WAL + synchronous=NORMAL
 * makes a commit an append to the WAL (fsync only at checkpoints).  A
 * monotonically increasing done_serial is stamped on every row when it is
 * complete, so a reader can follow new entries with "done_serial > last"
 * (committed serials always form a prefix: one writer, in order).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "utf8.h"
#include "proxyd/store.h"
#include "proxyd/store_int.h"

enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_FLOW_BEGIN,
	S_FLOW_END,
	S_FLOW_END_DNS,
	S_FLOW_FINISH,
	S_HTTP,
	S_DNS_QUERY,
	S_DNS_ANSWER,
	S_DNS_NEXT_SEQ,
	S_PRUNE,
	S__COUNT,
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_FLOW_BEGIN] =
	    "INSERT INTO flows (proxyd_id, source_flow_id, transport,"
	    " src_addr, src_port, dst_addr, dst_port, pid, process, uid, gid,"
	    " cgroup, cgroup_id, start_us, host, protocol, exe) VALUES"
	    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
	    " ?16, ?17)",
	[S_FLOW_END] =
	    "UPDATE flows SET end_us = ?2, connect_us = ?3, bytes_up = ?4,"
	    " bytes_down = ?5, packets_up = ?6, packets_down = ?7,"
	    " dropped = ?8, end_reason = ?9, error = ?10, first_up = ?11,"
	    " first_down = ?12, protocol = ?13, tls_version = ?14,"
	    " tls_cipher = ?15, sni = ?16, alpn = ?17,"
	    " server_cert_subject = ?18, server_cert_sha256 = ?19,"
	    " passthrough_reason = ?20, tls_handshake_us = ?21,"
	    " retransmits = ?22, rtt_us = ?23, done_serial = ?24,"
	    " tls_resumed = ?25, upstream_tls_version = ?26,"
	    " upstream_tls_cipher = ?27, upstream_resumed = ?28,"
	    " client_alpn_offer = ?29, server_cert_issuer = ?30,"
	    " server_cert_der = ?31, server_cert_verified = ?32"
	    " WHERE id = ?1",
	[S_FLOW_END_DNS] =
	    "UPDATE dns SET done_serial = ?2 WHERE flow_id = ?1"
	    " AND done_serial IS NULL",
	/* A figure not given keeps what is there; a stamped row keeps its serial. */
	[S_FLOW_FINISH] =
	    "UPDATE flows SET packets_up = coalesce(?2, packets_up),"
	    " packets_down = coalesce(?3, packets_down),"
	    " retransmits = coalesce(?4, retransmits),"
	    " rtt_us = coalesce(?5, rtt_us),"
	    " done_serial = coalesce(done_serial, ?6) WHERE id = ?1",
	[S_HTTP] =
	    "INSERT INTO http_exchanges (flow_id, seq, scheme, method, target,"
	    " url, host, http_version, status, reason, req_headers,"
	    " resp_headers, req_body_size, resp_body_size, req_body, resp_body,"
	    " req_body_truncated, resp_body_truncated, req_start_us,"
	    " req_end_us, resp_start_us, resp_end_us, error, done_serial,"
	    " req_trailers, resp_trailers, grpc)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
	    " ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26,"
	    " ?27)",
	[S_DNS_QUERY] =
	    "INSERT INTO dns (flow_id, seq, msg_id, qname, qtype, qtype_name,"
	    " query_us, response_us, rcode, rcode_name, answers, error,"
	    " done_serial) VALUES"
	    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[S_DNS_ANSWER] =
	    "UPDATE dns SET response_us = ?4, rcode = ?5, rcode_name = ?6,"
	    " answers = ?7, error = ?8, done_serial = ?9"
	    " WHERE id = (SELECT id FROM dns WHERE flow_id = ?1 AND msg_id = ?2"
	    " AND qname IS ?3 AND response_us IS NULL ORDER BY seq LIMIT 1)",
	[S_DNS_NEXT_SEQ] =
	    "SELECT coalesce(max(seq), 0) + 1 FROM dns WHERE flow_id = ?1",
	[S_PRUNE] =
	    "DELETE FROM flows WHERE id IN"
	    " (SELECT id FROM flows ORDER BY id LIMIT ?1)",
};

struct store {
	sqlite3			*db;
	sqlite3_stmt		*stmt[S__COUNT];
	struct store_config	 cfg;
	struct store_stats	 stats;
	char			*path;

	bool			 in_txn;
	unsigned		 txn_rows;
	int64_t			 next_serial;
	uint64_t		 nflows;	/* rows in flows, kept in step */

	bool			 recount;	/* nflows lost track (a rollback) */
	bool			 paused;	/* after an error */
	uint64_t		 paused_until_ms;

	struct ev_loop		*loop;
	ev_timer		 commit_timer;
};

void
store_config_default(struct store_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_flows = STORE_DEFAULT_MAX_FLOWS;
	cfg->max_bytes = STORE_DEFAULT_MAX_BYTES;
	cfg->body_cap = STORE_DEFAULT_BODY_CAP;
	cfg->header_cap = STORE_DEFAULT_HEADER_CAP;
	cfg->commit_interval_ms = 200;
	cfg->commit_rows = 2000;
	cfg->retry_after_ms = 10000;
	cfg->prune_batch = 2000;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- JSON text (headers, answers) ------------------------------------------- */

struct sbuf {
	char	*p;
	size_t	 len, cap;
	bool	 oom;
};

static void
sb_add(struct sbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/*
 * A JSON string of any bytes: valid UTF-8 kept, control characters and NUL
 * escaped, and every byte that is not UTF-8 written as the code point of
 * the same value (\u00XX, Latin-1), so odd header bytes survive readably.
 */
static void
sb_json_string(struct sbuf *b, const void *data, size_t n)
{
	const uint8_t *s = data;
	char esc[8];
	size_t i = 0, k;

	sb_add(b, "\"", 1);
	while (i < n) {
		/* A run of printable ASCII, the usual header, in one append. */
		for (k = i; k < n && s[k] >= 0x20 && s[k] < 0x7f && s[k] != '"' &&
		    s[k] != '\\'; k++)
			;
		if (k > i) {
			sb_add(b, s + i, k - i);
			i = k;
			continue;
		}
		if (s[i] == '"' || s[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)s[i];
			sb_add(b, esc, 2);
			i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			sb_add(b, esc, 6);
			i++;
		} else if ((k = utf8_seq(s + i, n - i)) != 0) {
			sb_add(b, s + i, k);
			i += k;
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
			sb_add(b, esc, 6);
			i++;
		}
	}
	sb_add(b, "\"", 1);
}

static void
headers_json(struct sbuf *b, const struct http_field *f, size_t n, size_t cap)
{
	size_t i;

	sb_add(b, "[", 1);
	for (i = 0; i < n; i++) {
		size_t vlen = f[i].value_len > cap ? cap : f[i].value_len;
		size_t nlen = f[i].name_len > cap ? cap : f[i].name_len;

		sb_str(b, i ? ",[" : "[");
		sb_json_string(b, f[i].name ? f[i].name : "", f[i].name ? nlen : 0);
		sb_add(b, ",", 1);
		sb_json_string(b, f[i].value ? f[i].value : "",
		    f[i].value ? vlen : 0);
		sb_add(b, "]", 1);
	}
	sb_add(b, "]", 1);
}

/* --- errors and transactions ----------------------------------------------- */

/*
 * Something failed: drop the open batch and pause recording, with one log
 * line for the whole pause.  proxyd goes on relaying.
 */
static void
store_fail(struct store *st, const char *what, int rc)
{
	st->stats.errors++;
	if (!st->paused)
		log_warnx("flow store %s: %s: %s; not recording for %u s",
		    st->path, what, sqlite3_errstr(rc),
		    (st->cfg.retry_after_ms + 999) / 1000);
	if (st->in_txn && !sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_txn = false;
	st->txn_rows = 0;
	st->recount = true;	/* flows of the dropped batch were counted */
	st->paused = true;
	st->paused_until_ms = mono_ms() + st->cfg.retry_after_ms;
	if (st->loop)
		ev_timer_stop(st->loop, &st->commit_timer);
}

static int
step_done(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Whether a write may go ahead now: a transaction is open. */
static bool
store_ready(struct store *st)
{
	int rc;

	if (st == NULL)
		return false;
	if (st->paused) {
		if (mono_ms() < st->paused_until_ms) {
			st->stats.dropped++;
			return false;
		}
		st->paused = false;
		log_info("flow store %s: recording again", st->path);
	}
	if (st->in_txn)
		return true;
	if ((rc = step_done(st, S_BEGIN)) != SQLITE_OK) {
		store_fail(st, "begin", rc);
		st->stats.dropped++;
		return false;
	}
	st->in_txn = true;
	st->txn_rows = 0;
	if (st->loop) {
		ev_timer_set(&st->commit_timer,
		    st->cfg.commit_interval_ms / 1000.0, 0.);
		ev_timer_start(st->loop, &st->commit_timer);
	}
	return true;
}

static int64_t
next_serial(struct store *st)
{
	return st->next_serial++;
}

/* After a row: commit when the batch is full. */
static void
row_written(struct store *st)
{
	if (++st->txn_rows >= st->cfg.commit_rows)
		(void)store_flush(st);
}

static int64_t query_int(sqlite3 *, const char *);

/* Oldest flows first, a bounded number per commit, while over a limit. */
static int
prune(struct store *st)
{
	uint64_t excess = 0;
	int rc;

	if (st->recount) {
		st->nflows = (uint64_t)query_int(st->db,
		    "SELECT count(*) FROM flows");
		st->recount = false;
	}
	if (st->cfg.max_flows && st->nflows > st->cfg.max_flows)
		excess = st->nflows - st->cfg.max_flows;
	if (st->cfg.max_bytes) {
		sqlite3_int64 pages = 0, freel = 0, psize = 0;
		sqlite3_stmt *q;

		if (sqlite3_prepare_v2(st->db, "SELECT page_count, freelist_count,"
		    " page_size FROM pragma_page_count, pragma_freelist_count,"
		    " pragma_page_size", -1, &q, NULL) == SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW) {
				pages = sqlite3_column_int64(q, 0);
				freel = sqlite3_column_int64(q, 1);
				psize = sqlite3_column_int64(q, 2);
			}
			sqlite3_finalize(q);
		}
		/* Over the size: a tenth of the flows (at least one). */
		if ((uint64_t)((pages - freel) * psize) > st->cfg.max_bytes &&
		    excess < st->nflows / 10 + 1)
			excess = st->nflows / 10 + 1;
	}
	if (excess == 0)
		return SQLITE_OK;
	if (excess > st->cfg.prune_batch)
		excess = st->cfg.prune_batch;
	sqlite3_bind_int64(st->stmt[S_PRUNE], 1, (sqlite3_int64)excess);
	if ((rc = step_done(st, S_PRUNE)) != SQLITE_OK)
		return rc;
	excess = (uint64_t)sqlite3_changes(st->db);
	st->nflows -= excess < st->nflows ? excess : st->nflows;
	st->stats.pruned += excess;
	return SQLITE_OK;
}

int
store_flush(struct store *st)
{
	int rc;

	if (st == NULL || !st->in_txn)
		return 0;
	if (st->loop)
		ev_timer_stop(st->loop, &st->commit_timer);
	if ((rc = prune(st)) != SQLITE_OK) {
		store_fail(st, "pruning", rc);
		return -1;
	}
	if ((rc = step_done(st, S_COMMIT)) != SQLITE_OK) {
		store_fail(st, "commit", rc);
		return -1;
	}
	st->in_txn = false;
	st->txn_rows = 0;
	st->stats.commits++;
	return 0;
}

static void
commit_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct store *st = (struct store *)((char *)w -
	    offsetof(struct store, commit_timer));

	(void)loop;
	(void)revents;
	(void)store_flush(st);
}

void
store_set_loop(struct store *st, struct ev_loop *loop)
{
	if (st == NULL)
		return;
	st->loop = loop;
	ev_init(&st->commit_timer, commit_timer_cb);
}

/* --- opening a file (its schema: store_schema.c) ------------------------------ */

/* Open the file 0600 (SQLite gives -wal and -shm the same mode). */
static sqlite3 *
open_db(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int fd, rc;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	(void)fchmod(fd, 0600);
	close(fd);
	if ((rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) :
		    sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	/* A reader's lock never makes the writer wait long. */
	sqlite3_busy_timeout(db, 100);
	/*
	 * The WAL keeps the size of its biggest batch unless told not to.
	 * The writer's page cache: its inserts touch the right edge of each
	 * table and leaves of the secondary indexes, but SQLite's default (2 MiB)
	 * fills with the overflow pages of recorded bodies and stays full,
	 * all of it in proxyd's resident memory.  1 MiB: in the capture
	 * benchmark proxyd's peak went 13.8 -> 11.6 MiB (256 KiB: 11.0), and
	 * building 100,000 exchanges (bench_store) costs the same CPU as with
	 * 2 MiB, where 256 KiB added half a second of system time (index
	 * pages read back from the file).
	 */
	if ((rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = NORMAL;"
	    "PRAGMA journal_size_limit = 67108864;"
	    "PRAGMA cache_size = -1024;"
	    "PRAGMA foreign_keys = ON;", NULL, NULL, &msg)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg :
		    sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

int
store_create_at_version(const char *path, int version, char *err,
    size_t errlen)
{
	sqlite3 *db;
	int rc;

	if (version < 1 || version > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen, "no schema version %d", version);
		return -1;
	}
	if ((db = open_db(path, err, errlen)) == NULL)
		return -1;
	rc = store_migrate(db, version, err, errlen);
	sqlite3_close(db);
	return rc;
}

static int64_t
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *q;
	int64_t v = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

struct store *
store_open(const char *path, const struct store_config *cfg, char *err,
    size_t errlen)
{
	struct store *st;
	int i;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(st);
		return NULL;
	}
	if (cfg)
		st->cfg = *cfg;
	else
		store_config_default(&st->cfg);
	if (st->cfg.commit_rows == 0)
		st->cfg.commit_rows = 1;
	if (st->cfg.prune_batch == 0)
		st->cfg.prune_batch = 1;
	if ((st->db = open_db(path, err, errlen)) == NULL)
		goto fail;
	if (store_migrate(st->db, STORE_SCHEMA_VERSION, err, errlen) == -1)
		goto fail;
	if (st->cfg.hard_max_bytes) {
		char sql[80];

		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %llu",
		    (unsigned long long)(st->cfg.hard_max_bytes /
		    (uint64_t)query_int(st->db, "PRAGMA page_size") + 1));
		(void)sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	}
	for (i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s",
			    path, i, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	/*
	 * A flow that had ended but waited for its source's figures when the
	 * previous run stopped is complete as it is: one serial for them all,
	 * past every other, so a follower sees them once.
	 */
	if (sqlite3_exec(st->db, "UPDATE flows SET done_serial = 1 + max("
	    " (SELECT coalesce(max(done_serial), 0) FROM flows),"
	    " (SELECT coalesce(max(done_serial), 0) FROM http_exchanges),"
	    " (SELECT coalesce(max(done_serial), 0) FROM dns))"
	    " WHERE end_us IS NOT NULL AND done_serial IS NULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		log_warnx("flow store %s: %s", path, sqlite3_errmsg(st->db));
	st->next_serial = 1 + query_int(st->db, "SELECT max("
	    " (SELECT coalesce(max(done_serial), 0) FROM flows),"
	    " (SELECT coalesce(max(done_serial), 0) FROM http_exchanges),"
	    " (SELECT coalesce(max(done_serial), 0) FROM dns))");
	st->nflows = (uint64_t)query_int(st->db, "SELECT count(*) FROM flows");
	/* Flows a previous run left running will never end: say so. */
	if (sqlite3_exec(st->db, "UPDATE flows SET end_reason = 'unfinished',"
	    " end_us = start_us WHERE end_us IS NULL", NULL, NULL, NULL) !=
	    SQLITE_OK)
		log_warnx("flow store %s: %s", path, sqlite3_errmsg(st->db));
	return st;
fail:
	store_close(st);
	return NULL;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	(void)store_flush(st);
	if (st->loop)
		ev_timer_stop(st->loop, &st->commit_timer);
	for (i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db)
		sqlite3_close(st->db);
	free(st->path);
	free(st);
}

size_t
store_body_cap(const struct store *st)
{
	return st ? st->cfg.body_cap : STORE_DEFAULT_BODY_CAP;
}

const struct store_stats *
store_stats(const struct store *st)
{
	return &st->stats;
}

/* --- writers ------------------------------------------------------------------ */

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void
bind_addr(sqlite3_stmt *s, int i, const struct endpoint *a)
{
	char buf[64], *colon;

	/* flow_addr_str gives "a:port" or "[a]:port"; keep the address. */
	flow_addr_str(a, buf, sizeof(buf));
	if (buf[0] == '[') {
		if ((colon = strrchr(buf, ']')) != NULL)
			*colon = '\0';
		bind_text(s, i, buf + 1);
	} else {
		if ((colon = strrchr(buf, ':')) != NULL)
			*colon = '\0';
		bind_text(s, i, buf);
	}
	sqlite3_bind_int(s, i + 1, a->port);
}

int64_t
store_flow_begin(struct store *st, const struct flow_record *rec)
{
	sqlite3_stmt *s;
	int rc;

	if (rec == NULL || !store_ready(st))
		return 0;
	s = st->stmt[S_FLOW_BEGIN];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)rec->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)rec->meta.source_flow_id);
	bind_text(s, 3, rec->meta.transport == FLOW_UDP ? "udp" : "tcp");
	bind_addr(s, 4, &rec->meta.src);
	bind_addr(s, 6, &rec->meta.dst);
	sqlite3_bind_int64(s, 8, rec->meta.owner.pid);
	bind_text(s, 9, rec->meta.owner.process);
	sqlite3_bind_int64(s, 10, rec->meta.owner.uid);
	sqlite3_bind_int64(s, 11, rec->meta.owner.gid);
	bind_text(s, 12, rec->meta.owner.cgroup);
	sqlite3_bind_int64(s, 13, (sqlite3_int64)rec->meta.owner.cgroup_id);
	sqlite3_bind_int64(s, 14, (sqlite3_int64)rec->meta.start_us);
	bind_text(s, 15, rec->meta.host[0] != '\0' ? rec->meta.host : NULL);
	bind_text(s, 16, rec->protocol);	/* known from the start: DNS */
	bind_text(s, 17, rec->meta.exe);	/* NULL: not known */
	if ((rc = step_done(st, S_FLOW_BEGIN)) != SQLITE_OK) {
		store_fail(st, "recording a flow", rc);
		return 0;
	}
	st->stats.flows++;
	st->nflows++;
	row_written(st);
	return sqlite3_last_insert_rowid(st->db);
}

static const char *
end_reason(enum flow_end end)
{
	switch (end) {
	case FLOW_END_NONE:		return NULL;
	case FLOW_END_CLOSED:		return "closed";
	case FLOW_END_APP_RESET:	return "app reset";
	case FLOW_END_UPSTREAM_RESET:	return "upstream reset";
	case FLOW_END_CONNECT_FAILED:	return "connect failed";
	case FLOW_END_CONNECT_TIMEOUT:	return "connect timeout";
	case FLOW_END_IDLE:		return "idle";
	case FLOW_END_SOURCE_CLOSED:	return "source closed";
	case FLOW_END_SHUTDOWN:		return "shutdown";
	case FLOW_END_INTERNAL:		return "internal error";
	case FLOW_END_REFUSED:		return "refused";
	}
	return "unknown";
}

static void
bind_tcp_stats(sqlite3_stmt *s, int first, const struct flow_tcp_stats *t)
{
	sqlite3_bind_int64(s, first, (sqlite3_int64)t->packets_from_app);
	sqlite3_bind_int64(s, first + 1, (sqlite3_int64)t->packets_to_app);
	sqlite3_bind_int64(s, first + 2, (sqlite3_int64)t->retransmits);
	if (t->rtt_us)
		sqlite3_bind_int64(s, first + 3, t->rtt_us);
}

static int
flow_end_row(struct store *st, int64_t row, const struct flow_record *rec,
    const struct store_flow_facts *facts, bool complete)
{
	static const struct store_flow_facts none = { 0 };
	char errbuf[256];
	sqlite3_stmt *s;
	int64_t serial = 0;
	int rc;

	if (row <= 0 || rec == NULL || !store_ready(st))
		return row <= 0 ? 0 : -1;
	if (facts == NULL)
		facts = &none;
	s = st->stmt[S_FLOW_END];
	if (complete)
		serial = next_serial(st);
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(rec->end_us ? rec->end_us :
	    rec->meta.start_us));
	if (rec->connect_us)
		sqlite3_bind_int64(s, 3, (sqlite3_int64)rec->connect_us);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)rec->bytes_from_app);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)rec->bytes_to_app);
	if (rec->meta.transport == FLOW_UDP) {
		sqlite3_bind_int64(s, 6, (sqlite3_int64)rec->dgrams_from_app);
		sqlite3_bind_int64(s, 7, (sqlite3_int64)rec->dgrams_to_app);
		sqlite3_bind_int64(s, 8, (sqlite3_int64)rec->dgrams_dropped);
	} else if (rec->has_tcp_stats) {
		sqlite3_bind_int64(s, 6,
		    (sqlite3_int64)rec->tcp_stats.packets_from_app);
		sqlite3_bind_int64(s, 7,
		    (sqlite3_int64)rec->tcp_stats.packets_to_app);
		sqlite3_bind_int64(s, 22,
		    (sqlite3_int64)rec->tcp_stats.retransmits);
		if (rec->tcp_stats.rtt_us)
			sqlite3_bind_int64(s, 23, rec->tcp_stats.rtt_us);
	}
	bind_text(s, 9, rec->end == FLOW_END_NONE ? "closed" :
	    end_reason(rec->end));
	errbuf[0] = '\0';
	if (facts->error && rec->error)
		snprintf(errbuf, sizeof(errbuf), "%s (%s)", facts->error,
		    strerror(rec->error));
	else if (facts->error)
		snprintf(errbuf, sizeof(errbuf), "%s", facts->error);
	else if (rec->error)
		snprintf(errbuf, sizeof(errbuf), "%s", strerror(rec->error));
	else if (rec->source_reason[0] &&
	    /* how the source saw a normal end is no error */
	    strncmp(rec->source_reason, "closed", sizeof(rec->source_reason)) != 0)
		snprintf(errbuf, sizeof(errbuf), "%.*s",
		    (int)strnlen(rec->source_reason, sizeof(rec->source_reason)),
		    rec->source_reason);
	bind_text(s, 10, errbuf[0] ? errbuf : NULL);
	sqlite3_bind_blob(s, 11, rec->first_from_app,
	    rec->first_from_app_len > FLOW_FIRST_BYTES ? FLOW_FIRST_BYTES :
	    rec->first_from_app_len, SQLITE_TRANSIENT);
	sqlite3_bind_blob(s, 12, rec->first_to_app,
	    rec->first_to_app_len > FLOW_FIRST_BYTES ? FLOW_FIRST_BYTES :
	    rec->first_to_app_len, SQLITE_TRANSIENT);
	bind_text(s, 13, facts->protocol);
	bind_text(s, 14, facts->tls_version);
	bind_text(s, 15, facts->tls_cipher);
	bind_text(s, 16, facts->sni);
	bind_text(s, 17, facts->alpn);
	bind_text(s, 18, facts->server_cert_subject);
	if (facts->server_cert_sha256) {
		static const char hex[] = "0123456789abcdef";
		char fp[65];
		int i;

		for (i = 0; i < 32; i++) {
			fp[2 * i] = hex[facts->server_cert_sha256[i] >> 4];
			fp[2 * i + 1] = hex[facts->server_cert_sha256[i] & 15];
		}
		fp[64] = '\0';
		bind_text(s, 19, fp);
	}
	bind_text(s, 20, facts->passthrough_reason);
	if (facts->tls_handshake_us)
		sqlite3_bind_int64(s, 21, (sqlite3_int64)facts->tls_handshake_us);
	if (complete)
		sqlite3_bind_int64(s, 24, serial);
	if (facts->tls_version)
		sqlite3_bind_int(s, 25, facts->tls_resumed);
	bind_text(s, 26, facts->upstream_tls_version);
	bind_text(s, 27, facts->upstream_tls_cipher);
	if (facts->upstream_tls_version)
		sqlite3_bind_int(s, 28, facts->upstream_resumed);
	bind_text(s, 29, facts->client_alpn_offer);
	bind_text(s, 30, facts->server_cert_issuer);
	if (facts->server_cert_der && facts->server_cert_der_len)
		sqlite3_bind_blob64(s, 31, facts->server_cert_der,
		    facts->server_cert_der_len, SQLITE_STATIC);
	if (facts->server_cert_verified)
		sqlite3_bind_int(s, 32, facts->server_cert_verified > 0);
	if ((rc = step_done(st, S_FLOW_END)) != SQLITE_OK) {
		store_fail(st, "ending a flow", rc);
		return -1;
	}
	if (!complete) {
		row_written(st);
		return 0;
	}
	/* DNS queries that got no answer are complete now too. */
	sqlite3_bind_int64(st->stmt[S_FLOW_END_DNS], 1, row);
	sqlite3_bind_int64(st->stmt[S_FLOW_END_DNS], 2, serial);
	if ((rc = step_done(st, S_FLOW_END_DNS)) != SQLITE_OK) {
		store_fail(st, "ending a flow's DNS", rc);
		return -1;
	}
	row_written(st);
	return 0;
}

int
store_flow_end(struct store *st, int64_t row, const struct flow_record *rec,
    const struct store_flow_facts *facts)
{
	return flow_end_row(st, row, rec, facts, true);
}

int
store_flow_end_held(struct store *st, int64_t row,
    const struct flow_record *rec, const struct store_flow_facts *facts)
{
	return flow_end_row(st, row, rec, facts, false);
}

int
store_flow_finish(struct store *st, int64_t row,
    const struct flow_tcp_stats *tcp, bool complete)
{
	sqlite3_stmt *s;
	int64_t serial;
	int rc;

	if (row <= 0 || (tcp == NULL && !complete))
		return 0;
	if (!store_ready(st))
		return -1;
	s = st->stmt[S_FLOW_FINISH];
	sqlite3_bind_int64(s, 1, row);
	if (tcp)
		bind_tcp_stats(s, 2, tcp);
	if (complete) {
		serial = next_serial(st);
		sqlite3_bind_int64(s, 6, serial);
	}
	if ((rc = step_done(st, S_FLOW_FINISH)) != SQLITE_OK) {
		store_fail(st, "finishing a flow", rc);
		return -1;
	}
	if (complete) {
		sqlite3_bind_int64(st->stmt[S_FLOW_END_DNS], 1, row);
		sqlite3_bind_int64(st->stmt[S_FLOW_END_DNS], 2, serial);
		if ((rc = step_done(st, S_FLOW_END_DNS)) != SQLITE_OK) {
			store_fail(st, "finishing a flow's DNS", rc);
			return -1;
		}
	}
	row_written(st);
	return 0;
}

/* A constraint (the flow's row was lost with a failed batch) is not the
 * disk's fault: drop that one row quietly instead of pausing. */
static bool
lost_parent(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT;
}

static void
sizes_json(struct sbuf *b, const char *key, uint64_t count,
    const uint32_t *sizes, size_t n, bool partial)
{
	char num[32];
	size_t i;

	sb_str(b, key);
	snprintf(num, sizeof(num), "{\"messages\":%" PRIu64, count);
	sb_str(b, num);
	sb_str(b, ",\"sizes\":[");
	for (i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%s%" PRIu32, i ? "," : "", sizes[i]);
		sb_str(b, num);
	}
	sb_str(b, partial ? "],\"partial\":true}" : "]}");
}

/* {"status":0,"message":"…","request":{"messages":1,"sizes":[5]},
 *  "response":{…}} */
static void
grpc_json(struct sbuf *b, const struct store_grpc *g)
{
	char num[32];

	sb_str(b, "{\"status\":");
	if (g->status >= 0) {
		snprintf(num, sizeof(num), "%d", g->status);
		sb_str(b, num);
	} else
		sb_str(b, "null");
	if (g->message != NULL) {
		sb_str(b, ",\"message\":");
		sb_json_string(b, g->message, strlen(g->message));
	}
	sizes_json(b, ",\"request\":", g->req_messages, g->req_sizes,
	    g->n_req_sizes, g->req_partial);
	sizes_json(b, ",\"response\":", g->resp_messages, g->resp_sizes,
	    g->n_resp_sizes, g->resp_partial);
	sb_str(b, "}");
}

int64_t
store_http_add(struct store *st, int64_t flow_row, const struct store_http *h)
{
	struct sbuf req = { 0 }, resp = { 0 }, url = { 0 };
	struct sbuf rqt = { 0 }, rst = { 0 }, grpc = { 0 };
	char version[16];
	sqlite3_stmt *s;
	size_t n;
	int64_t id = 0;
	int rc;

	if (flow_row <= 0 || h == NULL || !store_ready(st))
		return 0;
	s = st->stmt[S_HTTP];
	headers_json(&req, h->req_fields, h->n_req_fields, st->cfg.header_cap);
	headers_json(&resp, h->resp_fields, h->n_resp_fields,
	    st->cfg.header_cap);
	if (h->n_req_trailers > 0)
		headers_json(&rqt, h->req_trailers, h->n_req_trailers,
		    st->cfg.header_cap);
	if (h->n_resp_trailers > 0)
		headers_json(&rst, h->resp_trailers, h->n_resp_trailers,
		    st->cfg.header_cap);
	if (h->grpc != NULL)
		grpc_json(&grpc, h->grpc);
	if (h->target && (strncasecmp(h->target, "http://", 7) == 0 ||
	    strncasecmp(h->target, "https://", 8) == 0))
		sb_str(&url, h->target);
	else if (h->target && h->target[0] != '/' && h->method &&
	    strcasecmp(h->method, "CONNECT") == 0)
		/* host:port; an extended CONNECT (RFC 8441) has a path. */
		sb_str(&url, h->target);
	else {
		sb_str(&url, h->scheme ? h->scheme : "http");
		sb_str(&url, "://");
		sb_str(&url, h->host ? h->host : "");
		sb_str(&url, h->target ? h->target : "/");
	}
	if (req.oom || resp.oom || url.oom || rqt.oom || rst.oom || grpc.oom) {
		st->stats.dropped++;
		goto out;
	}
	sqlite3_bind_int64(s, 1, flow_row);
	sqlite3_bind_int64(s, 2, h->seq);
	bind_text(s, 3, h->scheme);
	bind_text(s, 4, h->method);
	bind_text(s, 5, h->target);
	bind_text(s, 6, url.p);
	bind_text(s, 7, h->host);
	if (h->http_version != NULL)
		snprintf(version, sizeof(version), "%s", h->http_version);
	else
		snprintf(version, sizeof(version), "HTTP/1.%d",
		    h->version_minor);
	bind_text(s, 8, version);
	if (h->status)
		sqlite3_bind_int(s, 9, h->status);
	bind_text(s, 10, h->reason);
	sqlite3_bind_text(s, 11, req.p, (int)req.len, SQLITE_STATIC);
	sqlite3_bind_text(s, 12, resp.p, (int)resp.len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 13, (sqlite3_int64)h->req_body_size);
	sqlite3_bind_int64(s, 14, (sqlite3_int64)h->resp_body_size);
	n = h->req_body_len < st->cfg.body_cap ? h->req_body_len :
	    st->cfg.body_cap;
	if (h->req_body)
		sqlite3_bind_blob64(s, 15, h->req_body, n, SQLITE_STATIC);
	sqlite3_bind_int(s, 17, h->req_body_budget_cut ? 2 :
	    h->req_body_size > (h->req_body ? n : 0));
	n = h->resp_body_len < st->cfg.body_cap ? h->resp_body_len :
	    st->cfg.body_cap;
	if (h->resp_body)
		sqlite3_bind_blob64(s, 16, h->resp_body, n, SQLITE_STATIC);
	sqlite3_bind_int(s, 18, h->resp_body_budget_cut ? 2 :
	    h->resp_body_size > (h->resp_body ? n : 0));
	sqlite3_bind_int64(s, 19, (sqlite3_int64)h->req_start_us);
	if (h->req_end_us)
		sqlite3_bind_int64(s, 20, (sqlite3_int64)h->req_end_us);
	if (h->resp_start_us)
		sqlite3_bind_int64(s, 21, (sqlite3_int64)h->resp_start_us);
	if (h->resp_end_us)
		sqlite3_bind_int64(s, 22, (sqlite3_int64)h->resp_end_us);
	bind_text(s, 23, h->error);
	sqlite3_bind_int64(s, 24, next_serial(st));
	if (rqt.p != NULL)
		sqlite3_bind_text(s, 25, rqt.p, (int)rqt.len, SQLITE_STATIC);
	if (rst.p != NULL)
		sqlite3_bind_text(s, 26, rst.p, (int)rst.len, SQLITE_STATIC);
	if (grpc.p != NULL)
		sqlite3_bind_text(s, 27, grpc.p, (int)grpc.len, SQLITE_STATIC);
	if ((rc = step_done(st, S_HTTP)) != SQLITE_OK) {
		if (lost_parent(rc))
			st->stats.dropped++;
		else
			store_fail(st, "recording an HTTP exchange", rc);
		goto out;
	}
	id = sqlite3_last_insert_rowid(st->db);
	st->stats.exchanges++;
	row_written(st);
out:
	free(req.p);
	free(resp.p);
	free(url.p);
	free(rqt.p);
	free(rst.p);
	free(grpc.p);
	return id;
}

static void
answers_json(struct sbuf *b, const struct dns_msg *m)
{
	char data[1024], num[32];
	size_t i;
	bool first = true;

	sb_add(b, "[", 1);
	for (i = 0; i < m->nrrs; i++) {
		const struct dns_rr *rr = &m->rrs[i];
		const char *t = dns_type_str(rr->type);

		if (rr->section != DNS_SEC_ANSWER)
			continue;
		sb_str(b, first ? "{\"name\":" : ",{\"name\":");
		first = false;
		sb_json_string(b, rr->name, strlen(rr->name));
		sb_str(b, ",\"type\":");
		if (t)
			sb_json_string(b, t, strlen(t));
		else {
			snprintf(num, sizeof(num), "\"TYPE%u\"", rr->type);
			sb_str(b, num);
		}
		snprintf(num, sizeof(num), ",\"ttl\":%" PRIu32 ",\"data\":",
		    rr->ttl);
		sb_str(b, num);
		dns_rr_format(rr, data, sizeof(data));
		sb_json_string(b, data, strlen(data));
		sb_add(b, "}", 1);
	}
	sb_add(b, "]", 1);
}

static int
dns_next_seq(struct store *st, int64_t flow_row, int64_t *seq)
{
	sqlite3_stmt *s = st->stmt[S_DNS_NEXT_SEQ];
	int rc;

	sqlite3_bind_int64(s, 1, flow_row);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int
dns_insert(struct store *st, int64_t flow_row, uint64_t time_us,
    const struct dns_msg *m, const struct dns_question *q, const char *answers,
    const char *error)
{
	sqlite3_stmt *s = st->stmt[S_DNS_QUERY];
	int64_t seq = 1;
	const char *t;
	char tn[16];
	int rc;

	if ((rc = dns_next_seq(st, flow_row, &seq)) != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(s, 1, flow_row);
	sqlite3_bind_int64(s, 2, seq);
	if (m)
		sqlite3_bind_int(s, 3, m->id);
	if (q) {
		bind_text(s, 4, q->name);
		sqlite3_bind_int(s, 5, q->type);
		if ((t = dns_type_str(q->type)) == NULL) {
			snprintf(tn, sizeof(tn), "TYPE%u", q->type);
			t = tn;
		}
		bind_text(s, 6, t);
	}
	if (m && m->qr) {
		sqlite3_bind_int64(s, 8, (sqlite3_int64)time_us);
		sqlite3_bind_int(s, 9, m->rcode);
		bind_text(s, 10, dns_rcode_str(m->rcode));
		bind_text(s, 11, answers);
	} else
		sqlite3_bind_int64(s, 7, (sqlite3_int64)time_us);
	bind_text(s, 12, error);
	/* A query waits for its answer (or its flow's end) to be complete. */
	if ((m && m->qr) || error)
		sqlite3_bind_int64(s, 13, next_serial(st));
	return step_done(st, S_DNS_QUERY);
}

int
store_dns_add(struct store *st, int64_t flow_row, uint64_t time_us,
    const struct dns_msg *m, enum dns_error err)
{
	struct sbuf ans = { 0 };
	char errbuf[128];
	size_t i;
	int rc = SQLITE_OK;

	if (flow_row <= 0 || !store_ready(st))
		return flow_row <= 0 ? 0 : -1;
	if (err != DNS_OK || m == NULL) {
		snprintf(errbuf, sizeof(errbuf), "malformed: %s",
		    dns_error_str(err));
		rc = dns_insert(st, flow_row, time_us, NULL, NULL, NULL, errbuf);
		goto done;
	}
	if (!m->qr) {
		for (i = 0; i < m->nquestions && rc == SQLITE_OK; i++)
			rc = dns_insert(st, flow_row, time_us, m,
			    &m->questions[i], NULL, NULL);
		if (m->nquestions == 0)
			rc = dns_insert(st, flow_row, time_us, m, NULL, NULL,
			    NULL);
		goto done;
	}
	answers_json(&ans, m);
	if (ans.oom) {
		st->stats.dropped++;
		return -1;
	}
	if (m->nquestions == 0) {
		rc = dns_insert(st, flow_row, time_us, m, NULL, ans.p, NULL);
		goto done;
	}
	for (i = 0; i < m->nquestions && rc == SQLITE_OK; i++) {
		sqlite3_stmt *s = st->stmt[S_DNS_ANSWER];

		sqlite3_bind_int64(s, 1, flow_row);
		sqlite3_bind_int(s, 2, m->id);
		bind_text(s, 3, m->questions[i].name);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)time_us);
		sqlite3_bind_int(s, 5, m->rcode);
		bind_text(s, 6, dns_rcode_str(m->rcode));
		bind_text(s, 7, ans.p);
		sqlite3_bind_int64(s, 9, next_serial(st));
		if ((rc = step_done(st, S_DNS_ANSWER)) == SQLITE_OK &&
		    sqlite3_changes(st->db) == 0)
			rc = dns_insert(st, flow_row, time_us, m,
			    &m->questions[i], ans.p, NULL);
	}
done:
	free(ans.p);
	if (rc != SQLITE_OK) {
		if (lost_parent(rc))
			st->stats.dropped++;
		else
			store_fail(st, "recording DNS", rc);
		return -1;
	}
	st->stats.dns++;
	row_written(st);
	return 0;
}

int
store_dns_add_wire(struct store *st, int64_t flow_row, uint64_t time_us,
    const uint8_t *msg, size_t len)
{
	struct dns_msg m;
	enum dns_error err;
	int rc;

	if (flow_row <= 0 || st == NULL)
		return 0;
	err = dns_parse(msg, len, &m);
	rc = store_dns_add(st, flow_row, time_us, err == DNS_OK ? &m : NULL,
	    err);
	dns_msg_free(&m);
	return rc;
}
