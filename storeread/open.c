/*
 * Opening the flow store read-only and defensively, and what every other
 * storeread file shares (statements, columns, errors).
 *
 * The file belongs to proxyd's user, and proxyd parses network input: a
 * compromised proxyd may rewrite it.  root's localcapctl reads it, so the
 * open refuses a symlink, and the connection runs with
 * SQLITE_DBCONFIG_DEFENSIVE (no writable_schema, no shadow-table writes),
 * trusted_schema off (views and triggers of the file may call only
 * built-in innocuous functions — never ours, which are DIRECTONLY too), no
 * extension loading, no triggers or views of its own needed.  The schema
 * version must be one we read.  Our own queries name tables, not the
 * file's views.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storeread/internal.h"
#include "utf8.h"

void
sr_seterr(struct sr_store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
}

void
sr_sqlerr(struct sr_store *st)
{
	snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
}

const char *
sr_errmsg(const struct sr_store *st)
{
	return st->err;
}

const char *
sr_path(const struct sr_store *st)
{
	return st->path;
}

int
sr_schema_version(const struct sr_store *st)
{
	return st->version;
}

const char *
sr_col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

int64_t
sr_col_int(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? -1 :
	    sqlite3_column_int64(s, i);
}

/* --- columns ------------------------------------------------------------------- */

const char sr_flow_cols[] =
    "f.id, f.transport, f.src_addr, f.src_port, f.dst_addr, f.dst_port,"
    " f.pid, f.uid, f.gid, f.process, f.cgroup, f.start_us, f.end_us,"
    " f.connect_us, f.tls_handshake_us, f.bytes_up, f.bytes_down,"
    " f.packets_up, f.packets_down, f.retransmits, f.rtt_us, f.end_reason,"
    " f.error, f.protocol, f.host, f.tls_version, f.tls_cipher,"
    " f.tls_resumed, f.upstream_tls_version, f.upstream_tls_cipher,"
    " f.upstream_resumed, f.sni, f.alpn, f.client_alpn_offer,"
    " f.server_cert_subject, f.server_cert_issuer, f.server_cert_sha256,"
    " f.server_cert_verified, f.passthrough_reason, f.first_up,"
    " f.first_down, f.done_serial";

/* Columns a store may lack, by its version (6: flows.exe). */
static const char *
flow_cols_tail(const struct sr_store *st)
{
	return st->has_exe ? ", f.exe" : ", NULL";
}

void
sr_read_flow(sqlite3_stmt *s, int c, struct sr_flow *f)
{
	memset(f, 0, sizeof(*f));
	f->id = sqlite3_column_int64(s, c + 0);
	f->transport = sr_col_text(s, c + 1);
	f->src_addr = sr_col_text(s, c + 2);
	f->src_port = sqlite3_column_int(s, c + 3);
	f->dst_addr = sr_col_text(s, c + 4);
	f->dst_port = sqlite3_column_int(s, c + 5);
	f->pid = sqlite3_column_int64(s, c + 6);
	f->uid = sr_col_int(s, c + 7);
	f->gid = sr_col_int(s, c + 8);
	f->process = sr_col_text(s, c + 9);
	f->cgroup = sr_col_text(s, c + 10);
	f->start_us = sqlite3_column_int64(s, c + 11);
	f->end_us = sr_col_int(s, c + 12);
	f->connect_us = sr_col_int(s, c + 13);
	f->tls_handshake_us = sr_col_int(s, c + 14);
	f->bytes_up = sr_col_int(s, c + 15);
	f->bytes_down = sr_col_int(s, c + 16);
	f->packets_up = sr_col_int(s, c + 17);
	f->packets_down = sr_col_int(s, c + 18);
	f->retransmits = sr_col_int(s, c + 19);
	f->rtt_us = sr_col_int(s, c + 20);
	f->end_reason = sr_col_text(s, c + 21);
	f->error = sr_col_text(s, c + 22);
	f->protocol = sr_col_text(s, c + 23);
	f->host = sr_col_text(s, c + 24);
	f->tls_version = sr_col_text(s, c + 25);
	f->tls_cipher = sr_col_text(s, c + 26);
	f->tls_resumed = sqlite3_column_int(s, c + 27) != 0;
	f->upstream_tls_version = sr_col_text(s, c + 28);
	f->upstream_tls_cipher = sr_col_text(s, c + 29);
	f->upstream_resumed = sqlite3_column_int(s, c + 30) != 0;
	f->sni = sr_col_text(s, c + 31);
	f->alpn = sr_col_text(s, c + 32);
	f->client_alpn_offer = sr_col_text(s, c + 33);
	f->cert_subject = sr_col_text(s, c + 34);
	f->cert_issuer = sr_col_text(s, c + 35);
	f->cert_sha256 = sr_col_text(s, c + 36);
	f->cert_verified = sqlite3_column_type(s, c + 37) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(s, c + 37) != 0;
	f->passthrough_reason = sr_col_text(s, c + 38);
	f->first_up = sqlite3_column_blob(s, c + 39);
	f->first_up_len = (size_t)sqlite3_column_bytes(s, c + 39);
	f->first_down = sqlite3_column_blob(s, c + 40);
	f->first_down_len = (size_t)sqlite3_column_bytes(s, c + 40);
	f->done_serial = sr_col_int(s, c + 41);
	f->exe = sr_col_text(s, c + 42);
}

/*
 * Entry rows: the same 24 columns for each kind, then the flow's.  An HTTP
 * entry's result is its error, else its status; a DNS entry's its error,
 * else its rcode; a flow's its end reason.
 */
#define ENTRY_NCOLS	30
#define ENTRY_SQL(COLS, FROM)	"SELECT " COLS ", %s%s FROM " FROM


static const char http_entry_cols[] =
    "'http', h.req_start_us, h.seq, h.resp_end_us, h.scheme, h.method,"
    " h.host, h.target, h.url, h.http_version, h.status, h.reason,"
    " coalesce(h.error, CAST(h.status AS TEXT)), h.error, h.req_body_size,"
    " h.resp_body_size, h.done_serial, h.req_end_us, h.resp_start_us,"
    " h.req_body_truncated, h.resp_body_truncated, h.req_headers,"
    " h.resp_headers, NULL, %s";
static const char dns_entry_cols[] =
    "'dns', d.query_us, d.seq, coalesce(d.response_us, f.end_us), 'dns',"
    " coalesce(d.qtype_name, 'DNS'), d.qname, NULL, NULL, NULL, NULL, NULL,"
    " coalesce(d.error, d.rcode_name, 'no answer'), d.error, NULL, NULL,"
    " d.done_serial, NULL, NULL, 0, 0, NULL, NULL, d.answers, " SR_NO_H2_COLS;
static const char flow_entry_cols[] =
    "f.transport, f.start_us, 0, f.end_us, coalesce(f.protocol, f.transport),"
    " upper(f.transport), coalesce(f.sni, f.host, f.dst_addr), NULL, NULL,"
    " NULL, NULL, NULL, coalesce(f.end_reason, 'running'), NULL, f.bytes_up,"
    " f.bytes_down, f.done_serial, NULL, NULL, 0, 0, NULL, NULL, NULL, "
    SR_NO_H2_COLS;

void
sr_read_entry(sqlite3_stmt *s, struct sr_entry *e)
{
	memset(e, 0, sizeof(*e));
	sr_read_flow(s, ENTRY_NCOLS, &e->flow);
	e->kind = sr_col_text(s, 0);
	e->key.start_us = sqlite3_column_int64(s, 1);
	e->key.seq = sqlite3_column_int64(s, 2);
	e->key.flow = e->flow.id;
	e->end_us = sr_col_int(s, 3);
	e->proto = sr_col_text(s, 4);
	e->method = sr_col_text(s, 5);
	e->host = sr_col_text(s, 6);
	e->path = sr_col_text(s, 7);
	e->url = sr_col_text(s, 8);
	e->http_version = sr_col_text(s, 9);
	e->status = sqlite3_column_type(s, 10) == SQLITE_NULL ? -1 :
	    sqlite3_column_int(s, 10);
	e->reason = sr_col_text(s, 11);
	e->result = sr_col_text(s, 12);
	e->error = sr_col_text(s, 13) ? sr_col_text(s, 13) : e->flow.error;
	e->bytes_up = sr_col_int(s, 14);
	e->bytes_down = sr_col_int(s, 15);
	e->done_serial = sr_col_int(s, 16);
	e->req_end_us = sr_col_int(s, 17);
	e->resp_start_us = sr_col_int(s, 18);
	e->req_truncated = sqlite3_column_int(s, 19) != 0;
	e->resp_truncated = sqlite3_column_int(s, 20) != 0;
	e->req_headers = sr_col_text(s, 21);
	e->resp_headers = sr_col_text(s, 22);
	e->answers = sr_col_text(s, 23);
	e->req_trailers = sr_col_text(s, 24);
	e->resp_trailers = sr_col_text(s, 25);
	e->grpc_status = sr_col_int(s, 26);
	e->grpc_message = sr_col_text(s, 27);
	e->grpc_req_messages = sr_col_int(s, 28);
	e->grpc_resp_messages = sr_col_int(s, 29);
	if (e->kind && strcmp(e->kind, "http") == 0)
		e->resp_end_us = e->end_us;
	else
		e->resp_end_us = -1;
}

/* --- statements ---------------------------------------------------------------------- */

sqlite3_stmt *
sr_stmt(struct sr_store *st, enum sr_stmt id)
{
	char sql[4096];

	if (st->stmt[id])
		return st->stmt[id];
	switch (id) {
	case SR_Q_HTTP_ENTRY: {
		char cols[1024];

		snprintf(cols, sizeof(cols), http_entry_cols, st->has_h2 ?
		    SR_H2_COLS : SR_NO_H2_COLS);
		snprintf(sql, sizeof(sql), ENTRY_SQL("%s",
		    "http_exchanges h JOIN flows f ON f.id = h.flow_id"
		    " WHERE h.id = ?1"), cols, sr_flow_cols, flow_cols_tail(st));
		break;
	}
	case SR_Q_DNS_ENTRY:
		snprintf(sql, sizeof(sql), ENTRY_SQL("%s",
		    "dns d JOIN flows f ON f.id = d.flow_id"
		    " WHERE d.id = ?1"), dns_entry_cols,
		    sr_flow_cols, flow_cols_tail(st));
		break;
	case SR_Q_FLOW_ENTRY:
		snprintf(sql, sizeof(sql), ENTRY_SQL("%s",
		    "flows f WHERE f.id = ?1"), flow_entry_cols, sr_flow_cols,
		    flow_cols_tail(st));
		break;
	case SR_Q_FLOW:
		snprintf(sql, sizeof(sql), "SELECT %s%s FROM flows f WHERE"
		    " f.id = ?1", sr_flow_cols, flow_cols_tail(st));
		break;
	case SR_Q_HEADERS:
		/* Header lists are [[name, value], …]; anything else is skipped. */
		snprintf(sql, sizeof(sql), "SELECT value ->> 0, value -> 0,"
		    " value -> 1 FROM json_each(iif(json_valid(?1), ?1, '[]'))"
		    " WHERE type = 'array' AND json_type(value, '$[0]') = 'text'"
		    " AND json_type(value, '$[1]') = 'text'");
		break;
	case SR_Q_ANSWERS:
		snprintf(sql, sizeof(sql), "SELECT json_extract(value, '$.name'),"
		    " json_extract(value, '$.type'), json_extract(value, '$.ttl'),"
		    " json_extract(value, '$.data') FROM"
		    " json_each(iif(json_valid(?1), ?1, '[]'))"
		    " WHERE type = 'object'");
		break;
	default:
		sr_seterr(st, "no such statement");
		return NULL;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &st->stmt[id], NULL) != SQLITE_OK) {
		sr_sqlerr(st);
		return NULL;
	}
	return st->stmt[id];
}

/* --- opening -------------------------------------------------------------------------- */

static void
host_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sr_store *st = sqlite3_user_data(ctx);
	const char *s;

	(void)argc;
	s = (const char *)sqlite3_value_text(argv[0]);
	sqlite3_result_int(ctx, st->has_host_re && s &&
	    regexec(&st->host_re, s, 0, NULL, 0) == 0);
}

/* Whether table has column (a later schema step may have added it). */
static bool
has_column(sqlite3 *db, const char *table, const char *column)
{
	sqlite3_stmt *q;
	bool found = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE"
	    " name = ?2", -1, &q, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, column, -1, SQLITE_STATIC);
	found = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_finalize(q);
	return found;
}

static int
open_fail(struct sr_store *st, char *err, size_t errlen,
    enum sr_open_error *why, enum sr_open_error code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int
open_fail(struct sr_store *st, char *err, size_t errlen,
    enum sr_open_error *why, enum sr_open_error code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (why)
		*why = code;
	sr_close(st);
	return 0;
}

/*
 * A WAL database is read through its -shm file.  When its writer closed
 * it last, SQLite removed -wal and -shm; a reader that may read the file
 * but not create files beside it (root without CAP_DAC_OVERRIDE, as webd
 * starts under its unit; another user) then fails with "readonly" or
 * "cannot open" until the writer opens the store again.
 */
static bool
wal_needed_but_absent(const char *path, int code)
{
	char shm[4200];
	struct stat sb;

	if ((code & 0xff) != SQLITE_READONLY && (code & 0xff) != SQLITE_CANTOPEN)
		return false;
	if ((size_t)snprintf(shm, sizeof(shm), "%s-shm", path) >= sizeof(shm))
		return false;
	return lstat(shm, &sb) == -1 && errno == ENOENT;
}

struct sr_store *
sr_open_file(const char *path, char *err, size_t errlen,
    enum sr_open_error *why)
{
	struct sr_store *st;
	sqlite3_stmt *q = NULL;
	struct stat sb;
	int rc, on = 1, off = 0;

	if (why)
		*why = SR_OPEN_OK;
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: %s", path,
		    strerror(ENOMEM));
		return NULL;
	}
	if (lstat(path, &sb) == -1) {
		open_fail(st, err, errlen, why, errno == ENOENT ? SR_OPEN_EMPTY :
		    SR_OPEN_FAILED, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: not a "
		    "regular file", path);
		return NULL;
	}
	if (access(path, R_OK) == -1) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "cannot read %s: "
		    "%s (run as root or as proxyd's user)", path, strerror(errno));
		return NULL;
	}
	/* NOMUTEX: a handle is used by one thread at a time (storeread.h);
	 * SQLite's per-call mutex cost an eighth of a long listing. */
	if ((rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL)) != SQLITE_OK) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: %s", path,
		    st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		return NULL;
	}
	sqlite3_extended_result_codes(st->db, 1);
	if (sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) !=
	    SQLITE_OK || on != 1 ||
	    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &off) !=
	    SQLITE_OK || off != 0 ||
	    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0,
	    &off) != SQLITE_OK ||
	    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &off) !=
	    SQLITE_OK ||
	    sqlite3_db_config(st->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &off) !=
	    SQLITE_OK) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: cannot make "
		    "the connection defensive: %s", path, sqlite3_errmsg(st->db));
		return NULL;
	}
	/* The writer commits in milliseconds; wait that out rather than fail. */
	sqlite3_busy_timeout(st->db, 2000);
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) !=
	    SQLITE_OK || sqlite3_step(q) != SQLITE_ROW) {
		char msg[256];
		int code = sqlite3_errcode(st->db);

		/* The statement goes first, or the close would fail (busy). */
		snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(st->db));
		sqlite3_finalize(q);
		if (wal_needed_but_absent(path, code)) {
			open_fail(st, err, errlen, why, SR_OPEN_NOT_LIVE, "%s: "
			    "readable only while proxyd has it open (its -wal "
			    "and -shm files are gone, and this reader may not "
			    "make them): start proxyd", path);
			return NULL;
		}
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: %s", path,
		    msg);
		return NULL;
	}
	st->version = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (st->version == 0) {
		open_fail(st, err, errlen, why, SR_OPEN_EMPTY, "%s: no flows "
		    "recorded yet", path);
		return NULL;
	}
	if (st->version > STORE_SCHEMA_VERSION) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s has schema "
		    "version %d, newer than this localcapctl reads (%d): use a "
		    "newer localcapctl", path, st->version, STORE_SCHEMA_VERSION);
		return NULL;
	}
	if (st->version < STORE_READ_MIN_VERSION) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s has schema "
		    "version %d; start proxyd once to upgrade it to %d", path,
		    st->version, STORE_SCHEMA_VERSION);
		return NULL;
	}
	st->has_exe = has_column(st->db, "flows", "exe");
	st->has_h2 = has_column(st->db, "http_exchanges", "grpc") &&
	    has_column(st->db, "http_exchanges", "req_trailers") &&
	    has_column(st->db, "http_exchanges", "resp_trailers");
	/* Only our own statements may call it (SQLITE_DIRECTONLY). */
	if (sqlite3_create_function(st->db, "lc_host_match", 1, SQLITE_UTF8 |
	    SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, st, host_match, NULL,
	    NULL) != SQLITE_OK) {
		open_fail(st, err, errlen, why, SR_OPEN_FAILED, "%s: %s", path,
		    sqlite3_errmsg(st->db));
		return NULL;
	}
	return st;
}

struct sr_store *
sr_open(const char *state_dir, char *err, size_t errlen,
    enum sr_open_error *why)
{
	char path[4096];
	struct sr_store *st;
	enum sr_open_error w;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", state_dir,
	    STORE_DIR_NAME, STORE_DB_NAME) >= sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", state_dir);
		if (why)
			*why = SR_OPEN_FAILED;
		return NULL;
	}
	st = sr_open_file(path, err, errlen, &w);
	if (why)
		*why = w;
	if (st == NULL && w == SR_OPEN_EMPTY)
		snprintf(err, errlen, "no flows recorded yet in %s", state_dir);
	return st;
}

void
sr_close(struct sr_store *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < SR_Q__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db)
		sqlite3_close(st->db);
	if (st->has_host_re)
		regfree(&st->host_re);
	free(st->path);
	free(st);
}

int
sr_parse_id(const char *s, int64_t *flow, int64_t *seq)
{
	char *end;
	long long a, b = 0;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	a = strtoll(s, &end, 10);
	if (errno || end == s || a < 1 || (*end != '\0' && *end != '.'))
		return -1;
	if (*end == '.') {
		const char *p = end + 1;

		if (*p < '0' || *p > '9')
			return -1;
		b = strtoll(p, &end, 10);
		if (errno || end == p || b < 1 || *end != '\0')
			return -1;
	}
	*flow = a;
	*seq = b;
	return 0;
}

/* --- formatting shared by the writers ---------------------------------------------- */

void
sr_fmt_iso(char *buf, size_t len, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	size_t n;

	if (us < 0)
		t = 0, us = 0;
	gmtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)((us % 1000000) / 1000));
}

void
sr_fmt_addr(char *buf, size_t len, const char *addr, int port)
{
	if (addr == NULL)
		addr = "?";
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
}

void
sr_base64(FILE *out, const uint8_t *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		putc(tab[p[i] >> 2], out);
		putc(tab[(p[i] & 3) << 4 | p[i + 1] >> 4], out);
		putc(tab[(p[i + 1] & 15) << 2 | p[i + 2] >> 6], out);
		putc(tab[p[i + 2] & 63], out);
	}
	if (n - i == 1) {
		putc(tab[p[i] >> 2], out);
		putc(tab[(p[i] & 3) << 4], out);
		fputs("==", out);
	} else if (n - i == 2) {
		putc(tab[p[i] >> 2], out);
		putc(tab[(p[i] & 3) << 4 | p[i + 1] >> 4], out);
		putc(tab[(p[i + 1] & 15) << 2], out);
		putc('=', out);
	}
}

bool
sr_is_text(const uint8_t *p, size_t n)
{
	return utf8_is_text(p, n);
}
