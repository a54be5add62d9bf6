/*
 * localcapctl flows / show / export --har: the reading side of proxyd's
 * flow store (proxyd/store.c writes it; docs/flow-store.md has the schema).
 *
 * The database is opened read-only and never locked for long, so proxyd
 * writes on while these run.  Listing goes through the `entries` view (one
 * row per HTTP exchange, per DNS query, and per flow that has neither);
 * `--follow` polls for entries whose done_serial is past the last one seen
 * (proxyd stamps that serial when an entry is complete, in order).  IDs are
 * "FLOW" or "FLOW.SEQ".  Only macros are shared with proxyd: localcapctl
 * does not link proxyd's code.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ctl/flows.h"
#include "proxyd/store.h"
#include "utf8.h"

#define FOLLOW_POLL_US		250000
#define SHOW_MAX_TEXT		(64 * 1024)	/* body shown by show */

struct filters {
	regex_t		 host_re;
	bool		 has_host;
	const char	*method;
	long		 status;	/* -1: any */
	const char	*process;
	int64_t		 since_us;	/* -1: any */
	long		 limit;		/* 0: all */
	bool		 http_only;	/* export */
};

struct reader {
	sqlite3		*db;
	char		 path[4096];
	bool		 json;
	bool		 color;
	sqlite3_stmt	*tcp_q;		/* a flow's TCP figures (JSON) */
	sqlite3_stmt	*ver_q;		/* an exchange's HTTP version */
	sqlite3_stmt	*err_q;		/* an entry's error text (JSON) */
};

/* --- output helpers ---------------------------------------------------------- */

static void
json_str(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str_n(out, s, strlen(s));
}

/*
 * Text for a terminal: control bytes and non-UTF-8 shown escaped (so
 * recorded bytes never drive the terminal), line ends kept in bodies.
 */
static void
safe_text_nl(FILE *out, const void *data, size_t n, bool lines)
{
	const unsigned char *s = data;
	size_t i = 0, k;

	while (s && i < n) {
		if (lines && s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
			i++;
		else if (s[i] == '\t' || (lines && s[i] == '\n') ||
		    (s[i] >= 0x20 && s[i] < 0x7f)) {
			putc(s[i], out);
			i++;
		} else if (s[i] >= 0x80 && (k = utf8_seq(s + i, n - i)) != 0) {
			fwrite(s + i, 1, k, out);
			i += k;
		} else {
			fprintf(out, "\\x%02x", s[i]);
			i++;
		}
	}
}

static void
safe_text(FILE *out, const void *data, size_t n)
{
	safe_text_nl(out, data, n, false);
}

static int hexval(int c);

static void
put_utf8(char *out, size_t *k, uint32_t cp)
{
	if (cp < 0x80)
		out[(*k)++] = (char)cp;
	else if (cp < 0x800) {
		out[(*k)++] = (char)(0xc0 | cp >> 6);
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*k)++] = (char)(0xe0 | cp >> 12);
		out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*k)++] = (char)(0xf0 | cp >> 18);
		out[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*k)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static int
hex4(const char *p, const char *end, uint32_t *v)
{
	int i, h;

	if (end - p < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		if ((h = hexval(p[i])) < 0)
			return -1;
		*v = *v << 4 | (uint32_t)h;
	}
	return 0;
}

/*
 * Decode one JSON string (with its quotes) into out (at least len bytes;
 * never longer than the JSON text).  SQLite's json_extract() stops at a
 * \u0000, and header values may hold NULs, so the reader decodes the JSON
 * text itself.  Returns the decoded length; garbage decodes as is.
 */
static size_t
json_decode(const char *s, size_t len, char *out)
{
	const char *p = s, *end = s + len;
	size_t k = 0;
	uint32_t cp, lo;

	if (p < end && *p == '"')
		p++;
	if (end > p && end[-1] == '"')
		end--;
	while (p < end) {
		if (*p != '\\' || p + 1 >= end) {
			out[k++] = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': out[k++] = '\n'; p++; break;
		case 'r': out[k++] = '\r'; p++; break;
		case 't': out[k++] = '\t'; p++; break;
		case 'b': out[k++] = '\b'; p++; break;
		case 'f': out[k++] = '\f'; p++; break;
		case 'u':
			if (hex4(p + 1, end, &cp) == -1) {
				out[k++] = *p++;
				break;
			}
			p += 5;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 &&
			    p[0] == '\\' && p[1] == 'u' &&
			    hex4(p + 2, end, &lo) == 0 && lo >= 0xdc00 &&
			    lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			/* 6 bytes of JSON always hold the ≤ 4 of UTF-8. */
			put_utf8(out, &k, cp);
			break;
		default:
			out[k++] = *p++;
			break;
		}
	}
	return k;
}

/* A JSON-string column, decoded, shown safely. */
static void
safe_json_text(FILE *out, sqlite3_stmt *s, int col)
{
	size_t n = (size_t)sqlite3_column_bytes(s, col);
	const char *j = (const char *)sqlite3_column_text(s, col);
	char *buf;

	if (j == NULL || (buf = malloc(n + 1)) == NULL)
		return;
	safe_text(out, buf, json_decode(j, n, buf));
	free(buf);
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static bool
col_null(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL;
}

static void
fmt_time(char *buf, size_t len, int64_t us, bool utc_iso)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (utc_iso) {
		gmtime_r(&t, &tm);
		strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf + strlen(buf), len - strlen(buf), ".%03dZ",
		    (int)((us % 1000000) / 1000));
	} else {
		localtime_r(&t, &tm);
		strftime(buf, len, "%H:%M:%S", &tm);
		snprintf(buf + strlen(buf), len - strlen(buf), ".%03d",
		    (int)((us % 1000000) / 1000));
	}
}

static void
fmt_size(char *buf, size_t len, int64_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%" PRId64 " B", n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
	else if (n < 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
	else
		snprintf(buf, len, "%.1f GiB", (double)n / (1024 * 1024 * 1024));
}

static void
fmt_duration(char *buf, size_t len, int64_t us)
{
	if (us < 0)
		snprintf(buf, len, "-");
	else if (us < 10000)
		snprintf(buf, len, "%.1f ms", (double)us / 1000);
	else if (us < 1000000)
		snprintf(buf, len, "%" PRId64 " ms", us / 1000);
	else
		snprintf(buf, len, "%.2f s", (double)us / 1e6);
}

/* ADDR:PORT, an IPv6 address in brackets ("?" for an unknown address). */
static void
fmt_addr(char *buf, size_t len, const char *addr, int port)
{
	if (addr == NULL)
		addr = "?";
	snprintf(buf, len, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
}

/* --- opening the store ---------------------------------------------------------- */

static const char *
state_dir_of(const char *opt, const char *arg)
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

static void
host_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const regex_t *re = sqlite3_user_data(ctx);
	const char *s;

	(void)argc;
	s = (const char *)sqlite3_value_text(argv[0]);
	sqlite3_result_int(ctx, s && regexec(re, s, 0, NULL, 0) == 0);
}

static void reader_close(struct reader *);

static int
reader_open_1(struct reader *r, const char *dir, struct filters *f)
{
	int v = 0, rc;
	sqlite3_stmt *q;

	snprintf(r->path, sizeof(r->path), "%s/%s/%s", dir, STORE_DIR_NAME,
	    STORE_DB_NAME);
	if (access(r->path, F_OK) == -1 && errno == ENOENT) {
		fprintf(stderr, "localcapctl: no flows recorded yet in %s\n", dir);
		return 1;
	}
	if (access(r->path, R_OK) == -1) {
		fprintf(stderr, "localcapctl: cannot read %s: %s (run as root or "
		    "as proxyd's user)\n", r->path, strerror(errno));
		return 1;
	}
	if ((rc = sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READONLY,
	    NULL)) != SQLITE_OK) {
		fprintf(stderr, "localcapctl: %s: %s\n", r->path,
		    r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		return 1;
	}
	/* The writer commits in milliseconds; wait that out rather than fail. */
	sqlite3_busy_timeout(r->db, 2000);
	if (sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &q, NULL) !=
	    SQLITE_OK || sqlite3_step(q) != SQLITE_ROW) {
		fprintf(stderr, "localcapctl: %s: %s\n", r->path,
		    sqlite3_errmsg(r->db));
		sqlite3_finalize(q);
		return 1;
	}
	v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (v == 0) {
		fprintf(stderr, "localcapctl: no flows recorded yet in %s\n", dir);
		return 1;
	}
	if (v > STORE_SCHEMA_VERSION) {
		fprintf(stderr, "localcapctl: %s has schema version %d, newer than "
		    "this localcapctl reads (%d): use a newer localcapctl\n",
		    r->path, v, STORE_SCHEMA_VERSION);
		return 1;
	}
	if (v < STORE_SCHEMA_VERSION) {
		fprintf(stderr, "localcapctl: %s has schema version %d; start "
		    "proxyd once to upgrade it to %d\n", r->path, v,
		    STORE_SCHEMA_VERSION);
		return 1;
	}
	if (f && f->has_host)
		sqlite3_create_function(r->db, "lc_host_match", 1, SQLITE_UTF8 |
		    SQLITE_DETERMINISTIC, &f->host_re, host_match, NULL, NULL);
	r->color = !r->json && isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
	return 0;
}

/* 0, or an exit code with one line on stderr and r closed again. */
static int
reader_open(struct reader *r, const char *dir, struct filters *f)
{
	int rc;

	if ((rc = reader_open_1(r, dir, f)) != 0)
		reader_close(r);
	return rc;
}

static void
reader_close(struct reader *r)
{
	sqlite3_finalize(r->tcp_q);
	r->tcp_q = NULL;
	sqlite3_finalize(r->ver_q);
	r->ver_q = NULL;
	sqlite3_finalize(r->err_q);
	r->err_q = NULL;
	if (r->db)
		sqlite3_close(r->db);
	r->db = NULL;
}

/* --- options ------------------------------------------------------------------- */

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

static int64_t
now_realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

enum {
	OPT_STATE_DIR = 256,
	OPT_FOLLOW, OPT_JSON, OPT_HOST, OPT_METHOD, OPT_STATUS, OPT_PROCESS,
	OPT_SINCE, OPT_LIMIT, OPT_HAR, OPT_BODY,
};

#define FILTER_LONGOPTS \
	{ "state-dir",	required_argument,	NULL, OPT_STATE_DIR }, \
	{ "host",	required_argument,	NULL, OPT_HOST }, \
	{ "method",	required_argument,	NULL, OPT_METHOD }, \
	{ "status",	required_argument,	NULL, OPT_STATUS }, \
	{ "process",	required_argument,	NULL, OPT_PROCESS }, \
	{ "since",	required_argument,	NULL, OPT_SINCE }, \
	{ "limit",	required_argument,	NULL, OPT_LIMIT }

static void
filters_init(struct filters *f)
{
	memset(f, 0, sizeof(*f));
	f->status = -1;
	f->since_us = -1;
}

static void
filters_free(struct filters *f)
{
	if (f->has_host)
		regfree(&f->host_re);
	f->has_host = false;
}

/* One filter option: 0, or 2 after a usage error line. */
static int
filter_option(struct filters *f, int c, const char *arg, const char **state)
{
	char *end;
	int rc;

	switch (c) {
	case OPT_STATE_DIR:
		*state = arg;
		return 0;
	case OPT_HOST:
		if (f->has_host)
			regfree(&f->host_re);
		f->has_host = false;
		if ((rc = regcomp(&f->host_re, arg, REG_EXTENDED | REG_ICASE |
		    REG_NOSUB)) != 0) {
			char msg[128];

			regerror(rc, &f->host_re, msg, sizeof(msg));
			fprintf(stderr, "localcapctl: --host '%s': %s\n", arg, msg);
			return 2;
		}
		f->has_host = true;
		return 0;
	case OPT_METHOD:
		f->method = arg;
		return 0;
	case OPT_STATUS:
		errno = 0;
		f->status = strtol(arg, &end, 10);
		if (errno || end == arg || *end || f->status < 100 ||
		    f->status > 999) {
			fprintf(stderr, "localcapctl: --status '%s': expected an "
			    "HTTP status such as 404\n", arg);
			return 2;
		}
		return 0;
	case OPT_PROCESS:
		f->process = arg;
		return 0;
	case OPT_SINCE:
		if (ctl_parse_since(arg, now_realtime_us(), &f->since_us) == -1) {
			fprintf(stderr, "localcapctl: --since '%s': expected a "
			    "duration (30s, 10m, 2h, 1d) or an ISO time "
			    "(2026-01-31T18:00:00Z)\n", arg);
			return 2;
		}
		return 0;
	case OPT_LIMIT:
		errno = 0;
		f->limit = strtol(arg, &end, 10);
		if (errno || end == arg || *end || f->limit < 1) {
			fprintf(stderr, "localcapctl: --limit '%s': expected a "
			    "positive number\n", arg);
			return 2;
		}
		return 0;
	default:
		return 2;
	}
}

/* --- listing ------------------------------------------------------------------ */

enum {
	E_FLOW, E_SEQ, E_KIND, E_START, E_END, E_PID, E_PROCESS, E_PROTO,
	E_METHOD, E_HOST, E_PATH, E_URL, E_STATUS, E_RESULT, E_UP, E_DOWN,
	E_DST_ADDR, E_DST_PORT, E_SERIAL,
};

#define ENTRY_COLUMNS \
	"flow_id, seq, kind, start_us, end_us, pid, process, proto, method," \
	" host, path, url, status, result, bytes_up, bytes_down, dst_addr," \
	" dst_port, done_serial"

/* The WHERE clause of the filters; binds follow in the same order. */
static void
filters_sql(const struct filters *f, char *buf, size_t len, bool follow)
{
	snprintf(buf, len, "WHERE 1%s%s%s%s%s%s%s",
	    f->has_host ? " AND lc_host_match(host)" : "",
	    f->method ? " AND kind = 'http' AND upper(method) = upper(?)" : "",
	    f->status >= 0 ? " AND status = ?" : "",
	    f->process ? " AND process = ?" : "",
	    f->since_us >= 0 ? " AND start_us >= ?" : "",
	    f->http_only ? " AND kind = 'http'" : "",
	    follow ? " AND done_serial > ?" : "");
}

static int
filters_bind(const struct filters *f, sqlite3_stmt *s)
{
	int i = 1;

	if (f->method)
		sqlite3_bind_text(s, i++, f->method, -1, SQLITE_STATIC);
	if (f->status >= 0)
		sqlite3_bind_int64(s, i++, f->status);
	if (f->process)
		sqlite3_bind_text(s, i++, f->process, -1, SQLITE_STATIC);
	if (f->since_us >= 0)
		sqlite3_bind_int64(s, i++, f->since_us);
	return i;
}

static const char *
status_color(sqlite3_stmt *s)
{
	int status = sqlite3_column_int(s, E_STATUS);
	const char *result = col_text(s, E_RESULT);

	if (!col_null(s, E_STATUS)) {
		if (status < 300)
			return "\033[32m";
		if (status < 400)
			return "\033[36m";
		if (status < 500)
			return "\033[33m";
		return "\033[31m";
	}
	if (result && (strcmp(result, "closed") == 0 ||
	    strcmp(result, "NOERROR") == 0 || strcmp(result, "running") == 0))
		return "\033[32m";
	return "\033[31m";
}

static void
print_header(const struct reader *r)
{
	if (r->json)
		return;
	printf("%s%-8s %-12s %-20s %-7s %-50s %-14s %-21s %s%s\n",
	    r->color ? "\033[1m" : "", "ID", "TIME", "PROCESS(PID)", "WHAT",
	    "TARGET", "STATUS", "UP / DOWN", "DURATION",
	    r->color ? "\033[0m" : "");
}

/*
 * ,"tcp":{…} — the figures of the entry's flow from the source's TCP stack
 * (shared by every exchange of the flow), or null: not TCP, or none came.
 * A point lookup per entry, so the listing's own query stays as it is.
 */
static void
print_tcp_json(struct reader *r, int64_t flow)
{
	sqlite3_stmt *q;

	if (r->tcp_q == NULL && sqlite3_prepare_v2(r->db, "SELECT packets_up,"
	    " packets_down, retransmits, rtt_us FROM flows WHERE id = ?1 AND"
	    " transport = 'tcp' AND retransmits IS NOT NULL", -1, &r->tcp_q,
	    NULL) != SQLITE_OK) {
		printf(",\"tcp\":null");
		return;
	}
	q = r->tcp_q;
	sqlite3_bind_int64(q, 1, flow);
	if (sqlite3_step(q) != SQLITE_ROW)
		printf(",\"tcp\":null");
	else {
		printf(",\"tcp\":{\"packets_up\":");
		if (col_null(q, 0))
			printf("null,\"packets_down\":null");
		else
			printf("%lld,\"packets_down\":%lld",
			    sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1));
		printf(",\"retransmits\":%lld,\"rtt_us\":",
		    sqlite3_column_int64(q, 2));
		if (col_null(q, 3))
			printf("null}");
		else
			printf("%lld}", sqlite3_column_int64(q, 3));
	}
	sqlite3_reset(q);
}

/*
 * An exchange's HTTP version ("HTTP/2.0"), into buf ("" when unknown): a
 * point lookup, as print_tcp_json's, so the entries view stays as it is.
 */
static const char *
entry_http_version(struct reader *r, sqlite3_stmt *s, char *buf, size_t len)
{
	buf[0] = '\0';
	if (r->ver_q == NULL && sqlite3_prepare_v2(r->db, "SELECT http_version"
	    " FROM http_exchanges WHERE flow_id = ?1 AND seq = ?2", -1,
	    &r->ver_q, NULL) != SQLITE_OK)
		return buf;
	sqlite3_bind_int64(r->ver_q, 1, sqlite3_column_int64(s, E_FLOW));
	sqlite3_bind_int64(r->ver_q, 2, sqlite3_column_int64(s, E_SEQ));
	if (sqlite3_step(r->ver_q) == SQLITE_ROW && col_text(r->ver_q, 0))
		snprintf(buf, len, "%s", col_text(r->ver_q, 0));
	sqlite3_reset(r->ver_q);
	return buf;
}

/*
 * ,"error":… — the text show prints for the entry (an exchange's error,
 * else its flow's; a DNS row's; a bare flow's, e.g. why the upstream
 * certificate was refused), which "result" only summarises.  A point
 * lookup, as the TCP figures'.
 */
static void
print_error_json(struct reader *r, sqlite3_stmt *s, const char *kind)
{
	sqlite3_stmt *q;

	printf(",\"error\":");
	if (r->err_q == NULL && sqlite3_prepare_v2(r->db, "SELECT CASE ?3"
	    " WHEN 'http' THEN (SELECT coalesce(h.error, f.error) FROM"
	    "  http_exchanges h, flows f WHERE h.flow_id = ?1 AND h.seq = ?2"
	    "  AND f.id = ?1)"
	    " WHEN 'dns' THEN (SELECT error FROM dns WHERE flow_id = ?1 AND"
	    "  seq = ?2)"
	    " ELSE (SELECT error FROM flows WHERE id = ?1) END", -1, &r->err_q,
	    NULL) != SQLITE_OK) {
		printf("null");
		return;
	}
	q = r->err_q;
	sqlite3_bind_int64(q, 1, sqlite3_column_int64(s, E_FLOW));
	sqlite3_bind_int64(q, 2, sqlite3_column_int64(s, E_SEQ));
	sqlite3_bind_text(q, 3, kind ? kind : "", -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		json_str(stdout, col_text(q, 0));
	else
		printf("null");
	sqlite3_reset(q);
}

static void
print_entry(struct reader *r, sqlite3_stmt *s)
{
	char id[48], when[40], proc[64], what[24], target[1024], sizes[48];
	char up[16], down[16], dur[24], dst[128], ver[16] = "";
	const char *kind = col_text(s, E_KIND), *host = col_text(s, E_HOST);
	const char *result = col_text(s, E_RESULT);
	int64_t start = sqlite3_column_int64(s, E_START);
	int64_t dur_us = col_null(s, E_END) ? -1 :
	    sqlite3_column_int64(s, E_END) - start;
	bool http = kind && strcmp(kind, "http") == 0;
	bool dns = kind && strcmp(kind, "dns") == 0;

	if (http)
		(void)entry_http_version(r, s, ver, sizeof(ver));
	if (col_null(s, E_SEQ))
		snprintf(id, sizeof(id), "%lld", sqlite3_column_int64(s, E_FLOW));
	else
		snprintf(id, sizeof(id), "%lld.%lld",
		    sqlite3_column_int64(s, E_FLOW), sqlite3_column_int64(s, E_SEQ));
	if (col_null(s, E_DST_ADDR))
		dst[0] = '\0';
	else
		fmt_addr(dst, sizeof(dst), col_text(s, E_DST_ADDR),
		    sqlite3_column_int(s, E_DST_PORT));

	if (r->json) {
		char iso[40];

		fmt_time(iso, sizeof(iso), start, true);
		printf("{\"id\":\"%s\",\"flow\":%lld,\"seq\":", id,
		    sqlite3_column_int64(s, E_FLOW));
		if (col_null(s, E_SEQ))
			printf("null");
		else
			printf("%lld", sqlite3_column_int64(s, E_SEQ));
		printf(",\"kind\":");
		json_str(stdout, kind);
		printf(",\"start\":\"%s\",\"start_us\":%" PRId64, iso, start);
		if (dur_us >= 0)
			printf(",\"duration_us\":%" PRId64, dur_us);
		else
			printf(",\"duration_us\":null");
		printf(",\"pid\":%lld,\"process\":", sqlite3_column_int64(s, E_PID));
		json_str(stdout, col_text(s, E_PROCESS));
		printf(",\"proto\":");
		json_str(stdout, col_text(s, E_PROTO));
		printf(",\"method\":");
		json_str(stdout, http ? col_text(s, E_METHOD) : NULL);
		printf(",\"host\":");
		json_str(stdout, host);
		printf(",\"path\":");
		json_str(stdout, col_text(s, E_PATH));
		printf(",\"url\":");
		json_str(stdout, col_text(s, E_URL));
		if (dns) {
			printf(",\"qtype\":");
			json_str(stdout, col_text(s, E_METHOD));
		}
		if (col_null(s, E_STATUS))
			printf(",\"status\":null");
		else
			printf(",\"status\":%d", sqlite3_column_int(s, E_STATUS));
		printf(",\"http_version\":");
		json_str(stdout, ver[0] ? ver : NULL);
		printf(",\"result\":");
		json_str(stdout, result);
		print_error_json(r, s, kind);
		if (col_null(s, E_UP))
			printf(",\"bytes_up\":null,\"bytes_down\":null");
		else
			printf(",\"bytes_up\":%lld,\"bytes_down\":%lld",
			    sqlite3_column_int64(s, E_UP),
			    sqlite3_column_int64(s, E_DOWN));
		printf(",\"dst\":");
		json_str(stdout, dst[0] ? dst : NULL);
		print_tcp_json(r, sqlite3_column_int64(s, E_FLOW));
		printf("}\n");
		return;
	}

	fmt_time(when, sizeof(when), start, false);
	{
		char pbuf[32];
		const char *p = col_text(s, E_PROCESS);

		/* Process names are the app's choice: no escapes to the TTY. */
		snprintf(pbuf, sizeof(pbuf), "%.20s", p && p[0] ? p : "?");
		for (char *c = pbuf; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		/* pid 0: no process known (an explicit-proxy client). */
		if (sqlite3_column_int64(s, E_PID) == 0)
			snprintf(proc, sizeof(proc), "%s", pbuf);
		else
			snprintf(proc, sizeof(proc), "%s(%lld)", pbuf,
			    sqlite3_column_int64(s, E_PID));
	}
	if (http)	/* "GET", or "GET h2" for an HTTP/2 stream */
		snprintf(what, sizeof(what), "%.16s%s", col_text(s, E_METHOD) ?
		    col_text(s, E_METHOD) : "?",
		    strcmp(ver, "HTTP/2.0") == 0 ? " h2" : "");
	else if (dns && host == NULL)
		snprintf(what, sizeof(what), "DNS");	/* not a DNS message */
	else if (dns)
		snprintf(what, sizeof(what), "DNS %.10s", col_text(s, E_METHOD) ?
		    col_text(s, E_METHOD) : "?");
	else {
		const char *proto = col_text(s, E_PROTO);

		snprintf(what, sizeof(what), "%.16s", proto ? proto : "?");
		for (char *c = what; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
	}
	if (http)
		snprintf(target, sizeof(target), "%s", col_text(s, E_URL) ?
		    col_text(s, E_URL) : "");
	else if (dns)
		snprintf(target, sizeof(target), "%s", host ? host :
		    "(malformed message)");
	else if (host && col_text(s, E_DST_ADDR) &&
	    strcmp(host, col_text(s, E_DST_ADDR)) != 0)
		snprintf(target, sizeof(target), "%s:%d", host,
		    sqlite3_column_int(s, E_DST_PORT));
	else
		snprintf(target, sizeof(target), "%s", dst);
	if (col_null(s, E_UP))
		snprintf(sizes, sizeof(sizes), "-");
	else {
		fmt_size(up, sizeof(up), sqlite3_column_int64(s, E_UP));
		fmt_size(down, sizeof(down), sqlite3_column_int64(s, E_DOWN));
		snprintf(sizes, sizeof(sizes), "%s / %s", up, down);
	}
	fmt_duration(dur, sizeof(dur), dur_us);

	printf("%-8s %-12s %-20s %s%-7s%s ", id, when, proc,
	    r->color ? "\033[1m" : "", what, r->color ? "\033[0m" : "");
	/* Long URLs are cut on a terminal only: pipes get them whole. */
	if (r->color && strlen(target) > 50) {
		safe_text(stdout, target, 49);
		fputs("…", stdout);
	} else {
		safe_text(stdout, target, strlen(target));
		printf("%*s", strlen(target) < 50 ? (int)(50 - strlen(target)) :
		    0, "");
	}
	printf(" %s%-14.14s%s %-21s %s\n", r->color ? status_color(s) : "",
	    result ? result : "-", r->color ? "\033[0m" : "", sizes, dur);
}

static volatile sig_atomic_t follow_stop;

static void
on_follow_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

static int
list_entries(struct reader *r, const struct filters *f, bool follow)
{
	char where[512], sql[2048];
	sqlite3_stmt *s = NULL;
	int64_t last_serial = 0;
	int rc, i;

	filters_sql(f, where, sizeof(where), false);
	if (f->limit > 0)
		snprintf(sql, sizeof(sql), "SELECT * FROM (SELECT " ENTRY_COLUMNS
		    " FROM entries %s%s ORDER BY start_us DESC, flow_id DESC,"
		    " seq DESC LIMIT %ld) ORDER BY start_us, flow_id, seq",
		    where, follow ? " AND done_serial IS NOT NULL" : "", f->limit);
	else
		snprintf(sql, sizeof(sql), "SELECT " ENTRY_COLUMNS " FROM entries"
		    " %s%s ORDER BY start_us, flow_id, seq", where,
		    follow ? " AND done_serial IS NOT NULL" : "");
	if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
		goto sqlerr;
	filters_bind(f, s);
	print_header(r);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		print_entry(r, s);
		if (sqlite3_column_int64(s, E_SERIAL) > last_serial)
			last_serial = sqlite3_column_int64(s, E_SERIAL);
	}
	if (rc != SQLITE_DONE)
		goto sqlerr;
	sqlite3_finalize(s);
	s = NULL;
	fflush(stdout);
	if (!follow)
		return 0;

	/* Everything complete so far was listed; from here on, what completes. */
	if (sqlite3_prepare_v2(r->db, "SELECT max(coalesce((SELECT max(done_serial)"
	    " FROM flows), 0), coalesce((SELECT max(done_serial) FROM"
	    " http_exchanges), 0), coalesce((SELECT max(done_serial) FROM dns),"
	    " 0))", -1, &s, NULL) != SQLITE_OK)
		goto sqlerr;
	if (sqlite3_step(s) == SQLITE_ROW &&
	    sqlite3_column_int64(s, 0) > last_serial)
		last_serial = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = NULL;

	filters_sql(f, where, sizeof(where), true);
	snprintf(sql, sizeof(sql), "SELECT " ENTRY_COLUMNS " FROM entries %s"
	    " ORDER BY done_serial", where);
	if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
		goto sqlerr;
	{
		struct sigaction sa = { .sa_handler = on_follow_signal };
		struct sigaction old_int, old_term;

		sigemptyset(&sa.sa_mask);
		follow_stop = 0;
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		while (!follow_stop) {
			i = filters_bind(f, s);
			sqlite3_bind_int64(s, i, last_serial);
			while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
				print_entry(r, s);
				last_serial = sqlite3_column_int64(s, E_SERIAL);
			}
			sqlite3_reset(s);
			if (rc != SQLITE_DONE && rc != SQLITE_BUSY)
				break;
			fflush(stdout);
			if (!follow_stop)
				usleep(FOLLOW_POLL_US);
		}
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		if (!follow_stop)
			goto sqlerr;
	}
	sqlite3_finalize(s);
	return 0;
sqlerr:
	fprintf(stderr, "localcapctl: %s: %s\n", r->path, sqlite3_errmsg(r->db));
	sqlite3_finalize(s);
	return 1;
}

int
ctl_flows(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "follow",	no_argument,		NULL, 'f' },
		{ "json",	no_argument,		NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct reader r = { 0 };
	struct filters f;
	const char *state_opt = NULL;
	bool follow = false;
	int c, rc;

	filters_init(&f);
	optind = 1;
	while ((c = getopt_long(argc, argv, "fj", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': follow = true; break;
		case 'j': r.json = true; break;
		default:
			if (c == '?' || filter_option(&f, c, optarg, &state_opt)) {
				filters_free(&f);
				return 2;
			}
		}
	}
	if (optind != argc) {
		fprintf(stderr, "localcapctl: flows takes options only ('%s'?)\n",
		    argv[optind]);
		filters_free(&f);
		return 2;
	}
	if ((rc = reader_open(&r, state_dir_of(state_opt, state_dir), &f)) == 0)
		rc = list_entries(&r, &f, follow);
	reader_close(&r);
	filters_free(&f);
	return rc;
}

/* --- show ---------------------------------------------------------------------- */

static int
parse_id(const char *s, int64_t *flow, int64_t *seq)
{
	char *end;
	long long a, b = 0;

	errno = 0;
	a = strtoll(s, &end, 10);
	if (errno || end == s || a < 1 || (*end != '\0' && *end != '.'))
		return -1;
	if (*end == '.') {
		const char *p = end + 1;

		b = strtoll(p, &end, 10);
		if (errno || end == p || b < 1 || *end != '\0')
			return -1;
	}
	*flow = a;
	*seq = b;
	return 0;
}

static void
hexdump(FILE *out, const unsigned char *p, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i += 16) {
		fprintf(out, "  %08zx  ", i);
		for (j = 0; j < 16; j++) {
			if (i + j < n)
				fprintf(out, "%02x ", p[i + j]);
			else
				fputs("   ", out);
			if (j == 7)
				putc(' ', out);
		}
		fputs(" |", out);
		for (j = 0; j < 16 && i + j < n; j++)
			putc(p[i + j] >= 0x20 && p[i + j] < 0x7f ? p[i + j] : '.',
			    out);
		fputs("|\n", out);
	}
}

/* Text: valid UTF-8 with no control bytes but tab, CR, LF and form feed. */
static bool
is_text(const unsigned char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' &&
		    p[i] != '\f')
			return false;
		if (p[i] == 0x7f || (k = utf8_seq(p + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

static void
show_body(const char *what, const void *data, size_t n, int64_t size,
    bool truncated)
{
	char sz[32];

	if (size <= 0 && n == 0)
		return;
	fmt_size(sz, sizeof(sz), size);
	printf("\n%s body: %s%s", what, sz, truncated ? ", truncated" : "");
	if (truncated)
		printf(" (%zu bytes kept)", n);
	printf("\n");
	if (n == 0)
		return;
	if (is_text(data, n)) {
		safe_text_nl(stdout, data, n > SHOW_MAX_TEXT ? SHOW_MAX_TEXT : n,
		    true);
	} else
		hexdump(stdout, data, n > SHOW_MAX_TEXT ? SHOW_MAX_TEXT : n);
	if (n > SHOW_MAX_TEXT)
		printf("\n… %zu more bytes (--body writes the response body "
		    "whole)\n", n - SHOW_MAX_TEXT);
	else
		putchar('\n');
}

/* Headers from the JSON text the store keeps: [[name, value], …]. */
static void
show_headers(sqlite3 *db, const char *json)
{
	sqlite3_stmt *s;

	if (json == NULL || sqlite3_prepare_v2(db, "SELECT value -> 0,"
	    " value -> 1 FROM json_each(?)", -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		printf("  ");
		safe_json_text(stdout, s, 0);
		printf(": ");
		safe_json_text(stdout, s, 1);
		putchar('\n');
	}
	sqlite3_finalize(s);
}

static void
print_rel(const char *label, sqlite3_stmt *s, int col, int64_t base)
{
	char d[24];

	if (col_null(s, col))
		return;
	fmt_duration(d, sizeof(d), sqlite3_column_int64(s, col) - base);
	printf(" %s +%s", label, d);
}

static int
show_flow(struct reader *r, int64_t flow)
{
	static const char sql[] =
	    "SELECT transport, src_addr, src_port, dst_addr, dst_port, pid,"
	    " process, uid, gid, cgroup, start_us, end_us, connect_us,"
	    " tls_handshake_us, bytes_up, bytes_down, packets_up, packets_down,"
	    " retransmits, rtt_us, end_reason, error, protocol, tls_version,"
	    " tls_cipher, sni, alpn, server_cert_subject, server_cert_sha256,"
	    " passthrough_reason, first_up, first_down, upstream_tls_version,"
	    " upstream_tls_cipher, tls_resumed, upstream_resumed,"
	    " client_alpn_offer, server_cert_issuer, server_cert_verified,"
	    " host"
	    " FROM flows WHERE id = ?";
	sqlite3_stmt *s;
	char t[40], d[24], src[128], dst[128];
	bool tcp;
	int rc;

	if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, flow);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? 1 : -1;
	}
	fmt_addr(src, sizeof(src), col_text(s, 1), sqlite3_column_int(s, 2));
	fmt_addr(dst, sizeof(dst), col_text(s, 3), sqlite3_column_int(s, 4));
	printf("flow %lld  %s  %s -> %s\n", (long long)flow, col_text(s, 0),
	    src, dst);
	printf("process    ");
	safe_text(stdout, col_text(s, 6) ? col_text(s, 6) : "?",
	    col_text(s, 6) ? strlen(col_text(s, 6)) : 1);
	printf(" (pid %d, uid %d, gid %d)", sqlite3_column_int(s, 5),
	    sqlite3_column_int(s, 7), sqlite3_column_int(s, 8));
	if (col_text(s, 9) && col_text(s, 9)[0])
		printf(" cgroup %s", col_text(s, 9));
	putchar('\n');
	fmt_time(t, sizeof(t), sqlite3_column_int64(s, 10), true);
	printf("started    %s", t);
	if (col_null(s, 11))
		printf(", running\n");
	else {
		fmt_duration(d, sizeof(d), sqlite3_column_int64(s, 11) -
		    sqlite3_column_int64(s, 10));
		printf(", lasted %s, ended: %s\n", d, col_text(s, 20) ?
		    col_text(s, 20) : "?");
	}
	if (col_text(s, 21))
		printf("error      %s\n", col_text(s, 21));
	printf("protocol   %s\n", col_text(s, 22) ? col_text(s, 22) :
	    "not detected");
	/* The name the client asked its proxy for (proxyd's --listen). */
	if (col_text(s, 39))
		printf("host       %s (asked of the proxy)\n", col_text(s, 39));
	if (!col_null(s, 14))
		printf("bytes      %lld up, %lld down\n",
		    sqlite3_column_int64(s, 14), sqlite3_column_int64(s, 15));
	tcp = col_text(s, 0) && strcmp(col_text(s, 0), "tcp") == 0;
	if (!col_null(s, 16) && !tcp)
		printf("datagrams  %lld up, %lld down\n",
		    sqlite3_column_int64(s, 16), sqlite3_column_int64(s, 17));
	/* What the source's TCP stack saw on the application's side. */
	if (tcp && (!col_null(s, 16) || !col_null(s, 18) || !col_null(s, 19))) {
		printf("tcp        ");
		if (!col_null(s, 16))
			printf("%lld packets up, %lld down, ",
			    sqlite3_column_int64(s, 16),
			    sqlite3_column_int64(s, 17));
		printf("%lld retransmits", sqlite3_column_int64(s, 18));
		if (!col_null(s, 19)) {
			fmt_duration(d, sizeof(d), sqlite3_column_int64(s, 19));
			printf(", rtt %s", d);
		}
		putchar('\n');
	}
	if (!col_null(s, 12) || !col_null(s, 13)) {
		printf("timings   ");
		if (!col_null(s, 12)) {
			fmt_duration(d, sizeof(d), sqlite3_column_int64(s, 12));
			printf(" connect %s", d);
		}
		if (!col_null(s, 13)) {
			fmt_duration(d, sizeof(d), sqlite3_column_int64(s, 13));
			printf(" TLS handshake %s", d);
		}
		putchar('\n');
	}
	if (col_text(s, 23) || col_text(s, 25)) {
		printf("tls        client %s %s%s", col_text(s, 23) ?
		    col_text(s, 23) : "-", col_text(s, 24) ? col_text(s, 24) : "",
		    sqlite3_column_int(s, 34) ? " (resumed)" : "");
		if (col_text(s, 25))
			printf(" sni %s", col_text(s, 25));
		if (col_text(s, 26) && col_text(s, 26)[0])
			printf(" alpn %s", col_text(s, 26));
		if (col_text(s, 36) && col_text(s, 36)[0])
			printf(" (offered %s)", col_text(s, 36));
		putchar('\n');
		if (col_text(s, 32))
			printf("           upstream %s %s%s\n", col_text(s, 32),
			    col_text(s, 33) ? col_text(s, 33) : "",
			    sqlite3_column_int(s, 35) ? " (resumed)" : "");
	}
	if (col_text(s, 27)) {
		printf("server cert %s", col_text(s, 27));
		if (col_text(s, 37))
			printf(", issuer %s", col_text(s, 37));
		if (!col_null(s, 38))
			printf(", %s", sqlite3_column_int(s, 38) ? "verified" :
			    "NOT verified");
		putchar('\n');
		if (col_text(s, 28))
			printf("            sha256 %s\n", col_text(s, 28));
	}
	if (col_text(s, 29))
		printf("passthrough %s\n", col_text(s, 29));
	if (sqlite3_column_bytes(s, 30) > 0) {
		printf("first bytes from the app:\n");
		hexdump(stdout, sqlite3_column_blob(s, 30),
		    (size_t)sqlite3_column_bytes(s, 30));
	}
	if (sqlite3_column_bytes(s, 31) > 0) {
		printf("first bytes to the app:\n");
		hexdump(stdout, sqlite3_column_blob(s, 31),
		    (size_t)sqlite3_column_bytes(s, 31));
	}
	sqlite3_finalize(s);
	return 0;
}

static const char http_sql[] =
    "SELECT seq, method, url, http_version, status, reason, req_headers,"
    " resp_headers, req_body_size, resp_body_size, req_body, resp_body,"
    " req_body_truncated, resp_body_truncated, req_start_us, req_end_us,"
    " resp_start_us, resp_end_us, error, target, host, req_trailers,"
    " resp_trailers, grpc ->> '$.status', grpc ->> '$.message',"
    " grpc ->> '$.request.messages', grpc ->> '$.response.messages'"
    " FROM http_exchanges WHERE flow_id = ?1 AND (?2 = 0 OR seq = ?2)"
    " ORDER BY seq";

static int
show_exchanges(struct reader *r, int64_t flow, int64_t seq)
{
	sqlite3_stmt *s;
	int n = 0, rc;

	if (sqlite3_prepare_v2(r->db, http_sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, flow);
	sqlite3_bind_int64(s, 2, seq);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t t0 = sqlite3_column_int64(s, 14);
		char t[40];

		n++;
		printf("\n--- %lld.%lld ---\n", (long long)flow,
		    sqlite3_column_int64(s, 0));
		fmt_time(t, sizeof(t), t0, true);
		printf("%s ", col_text(s, 1) ? col_text(s, 1) : "?");
		safe_text(stdout, col_text(s, 2) ? col_text(s, 2) : "",
		    col_text(s, 2) ? strlen(col_text(s, 2)) : 0);
		printf(" %s\n", col_text(s, 3) ? col_text(s, 3) : "");
		show_headers(r->db, col_text(s, 6));
		show_body("request", sqlite3_column_blob(s, 10),
		    (size_t)sqlite3_column_bytes(s, 10),
		    sqlite3_column_int64(s, 8), sqlite3_column_int(s, 12));
		if (col_text(s, 21)) {
			printf("request trailers:\n");
			show_headers(r->db, col_text(s, 21));
		}
		if (col_null(s, 4))
			printf("\nno response");
		else {
			printf("\n%s %d ", col_text(s, 3) ? col_text(s, 3) : "",
			    sqlite3_column_int(s, 4));
			safe_text(stdout, col_text(s, 5) ? col_text(s, 5) : "",
			    col_text(s, 5) ? strlen(col_text(s, 5)) : 0);
			putchar('\n');
			show_headers(r->db, col_text(s, 7));
			show_body("response", sqlite3_column_blob(s, 11),
			    (size_t)sqlite3_column_bytes(s, 11),
			    sqlite3_column_int64(s, 9), sqlite3_column_int(s, 13));
			if (col_text(s, 22)) {
				printf("response trailers:\n");
				show_headers(r->db, col_text(s, 22));
			}
		}
		if (!col_null(s, 25)) {		/* a gRPC exchange */
			printf("\ngrpc       %lld message(s) up, %lld down;"
			    " status %s", sqlite3_column_int64(s, 25),
			    sqlite3_column_int64(s, 26), col_null(s, 23) ?
			    "none" : col_text(s, 23));
			if (col_text(s, 24)) {
				printf(" ");
				safe_text(stdout, col_text(s, 24),
				    strlen(col_text(s, 24)));
			}
			putchar('\n');
		}
		if (col_text(s, 18))
			printf("\nerror: %s", col_text(s, 18));
		printf("\ntimings    request at %s;", t);
		print_rel("sent", s, 15, t0);
		print_rel("response began", s, 16, t0);
		print_rel("ended", s, 17, t0);
		putchar('\n');
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : -1;
}

static int
show_dns(struct reader *r, int64_t flow, int64_t seq)
{
	sqlite3_stmt *s, *a;
	int n = 0, rc;

	if (sqlite3_prepare_v2(r->db, "SELECT seq, msg_id, qname, qtype_name,"
	    " query_us, response_us, rcode_name, answers, error FROM dns"
	    " WHERE flow_id = ?1 AND (?2 = 0 OR seq = ?2) ORDER BY seq", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(r->db, "SELECT json_extract(value, '$.name'),"
	    " json_extract(value, '$.type'), json_extract(value, '$.ttl'),"
	    " json_extract(value, '$.data') FROM json_each(?)", -1, &a, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_bind_int64(s, 1, flow);
	sqlite3_bind_int64(s, 2, seq);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		printf("\n--- %lld.%lld dns id %d ---\n", (long long)flow,
		    sqlite3_column_int64(s, 0), sqlite3_column_int(s, 1));
		if (col_text(s, 8)) {
			printf("%s\n", col_text(s, 8));
			continue;
		}
		printf("question   ");
		safe_text(stdout, col_text(s, 2) ? col_text(s, 2) : "?",
		    col_text(s, 2) ? strlen(col_text(s, 2)) : 1);
		printf(" %s\n", col_text(s, 3) ? col_text(s, 3) : "?");
		if (col_null(s, 5)) {
			printf("answer     none\n");
			continue;
		}
		printf("answer     %s", col_text(s, 6) ? col_text(s, 6) : "?");
		if (!col_null(s, 4)) {
			char d[24];

			fmt_duration(d, sizeof(d), sqlite3_column_int64(s, 5) -
			    sqlite3_column_int64(s, 4));
			printf(" after %s", d);
		}
		putchar('\n');
		sqlite3_bind_text(a, 1, col_text(s, 7) ? col_text(s, 7) : "[]",
		    -1, SQLITE_TRANSIENT);
		while (sqlite3_step(a) == SQLITE_ROW) {
			printf("  ");
			safe_text(stdout, sqlite3_column_text(a, 0),
			    (size_t)sqlite3_column_bytes(a, 0));
			printf(" %lld %s ", sqlite3_column_int64(a, 2),
			    col_text(a, 1) ? col_text(a, 1) : "?");
			safe_text(stdout, sqlite3_column_text(a, 3),
			    (size_t)sqlite3_column_bytes(a, 3));
			putchar('\n');
		}
		sqlite3_reset(a);
	}
	sqlite3_finalize(a);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : -1;
}

static bool
show_flow_exists(struct reader *r, int64_t flow)
{
	sqlite3_stmt *s;
	bool found = false;

	if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM flows WHERE id = ?", -1,
	    &s, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_int64(s, 1, flow);
	found = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return found;
}

/* --body: the response body, raw, to stdout. */
static int
write_body(struct reader *r, int64_t flow, int64_t seq, const char *id)
{
	sqlite3_stmt *s;
	int rows = 0, rc = 1;
	const void *p = NULL;
	size_t n = 0;
	int64_t size = 0;
	bool truncated = false;

	if (sqlite3_prepare_v2(r->db, "SELECT resp_body, resp_body_size,"
	    " resp_body_truncated FROM http_exchanges WHERE flow_id = ?1 AND"
	    " (?2 = 0 OR seq = ?2)", -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "localcapctl: %s\n", sqlite3_errmsg(r->db));
		return 1;
	}
	sqlite3_bind_int64(s, 1, flow);
	sqlite3_bind_int64(s, 2, seq);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (++rows > 1)
			break;
		p = sqlite3_column_blob(s, 0);
		n = (size_t)sqlite3_column_bytes(s, 0);
		size = sqlite3_column_int64(s, 1);
		truncated = sqlite3_column_int(s, 2);
		if (n) {
			if (fwrite(p, 1, n, stdout) != n || fflush(stdout) == EOF) {
				fprintf(stderr, "localcapctl: writing the body: "
				    "%s\n", strerror(errno));
				break;
			}
		}
		rc = 0;
	}
	if (rows == 0)
		fprintf(stderr, "localcapctl: %s has no HTTP exchange\n", id);
	else if (rows > 1) {
		fprintf(stderr, "localcapctl: flow %s has several exchanges: pick "
		    "one (%s.1, %s.2, …)\n", id, id, id);
		rc = 2;
	} else if (rc == 0 && truncated)
		fprintf(stderr, "localcapctl: the body was truncated: %zu of "
		    "%" PRId64 " bytes were recorded\n", n, size);
	sqlite3_finalize(s);
	return rc;
}

int
ctl_show(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state-dir",	required_argument,	NULL, OPT_STATE_DIR },
		{ "body",	no_argument,		NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct reader r = { 0 };
	const char *state_opt = NULL, *id;
	int64_t flow, seq;
	bool body = false;
	int c, rc, nx, nd;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': body = true; break;
		case OPT_STATE_DIR: state_opt = optarg; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: localcapctl show ID [--body]\n");
		return 2;
	}
	id = argv[optind];
	if (parse_id(id, &flow, &seq) == -1) {
		fprintf(stderr, "localcapctl: bad id '%s': expected a flow (12) or "
		    "an exchange (12.3), as listed by flows\n", id);
		return 2;
	}
	if ((rc = reader_open(&r, state_dir_of(state_opt, state_dir), NULL)))
		return rc;
	if (body) {
		/* Check the flow exists first, for the right message. */
		rc = show_flow_exists(&r, flow) ? write_body(&r, flow, seq, id) : 1;
		if (rc == 1 && !show_flow_exists(&r, flow))
			fprintf(stderr, "localcapctl: no flow %lld in %s\n",
			    (long long)flow, r.path);
		reader_close(&r);
		return rc;
	}
	if ((rc = show_flow(&r, flow)) != 0) {
		if (rc == 1)
			fprintf(stderr, "localcapctl: no flow %lld in %s\n",
			    (long long)flow, r.path);
		else
			fprintf(stderr, "localcapctl: %s: %s\n", r.path,
			    sqlite3_errmsg(r.db));
		reader_close(&r);
		return 1;
	}
	nx = show_exchanges(&r, flow, seq);
	nd = show_dns(&r, flow, seq);
	rc = 0;
	if (nx < 0 || nd < 0) {
		fprintf(stderr, "localcapctl: %s: %s\n", r.path,
		    sqlite3_errmsg(r.db));
		rc = 1;
	} else if (seq && nx + nd == 0) {
		fprintf(stderr, "localcapctl: flow %lld has no exchange %lld\n",
		    (long long)flow, (long long)seq);
		rc = 1;
	}
	fflush(stdout);
	reader_close(&r);
	return rc;
}

/* --- export --har ----------------------------------------------------------------- */

static void
base64(FILE *out, const unsigned char *p, size_t n)
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

/* HAR headers from the stored JSON; the Content-Type value into ctype. */
static void
har_headers(FILE *out, sqlite3_stmt *each, const char *json, char *ctype,
    size_t ctlen)
{
	bool first = true;

	ctype[0] = '\0';
	fputc('[', out);
	sqlite3_bind_text(each, 1, json ? json : "[]", -1, SQLITE_TRANSIENT);
	while (sqlite3_step(each) == SQLITE_ROW) {
		const char *name = col_text(each, 0);
		const char *value = col_text(each, 1);

		if (name == NULL || value == NULL)
			continue;
		/* The store's JSON strings are valid JSON: copied as they are. */
		fputs(first ? "{\"name\":" : ",{\"name\":", out);
		first = false;
		fputs(name, out);
		fputs(",\"value\":", out);
		fputs(value, out);
		fputc('}', out);
		if (strcasecmp(name, "\"content-type\"") == 0 && !ctype[0] &&
		    strlen(value) < ctlen)
			ctype[json_decode(value, strlen(value), ctype)] = '\0';
	}
	sqlite3_reset(each);
	fputc(']', out);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decoded (and '+' as space) JSON string of s[0..n). */
static void
json_urldecoded(FILE *out, const char *s, size_t n)
{
	char *buf = malloc(n + 1);
	size_t i, k = 0;

	if (buf == NULL) {
		json_str_n(out, s, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			buf[k++] = ' ';
		else if (s[i] == '%' && i + 2 < n + 0 && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			buf[k++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else
			buf[k++] = s[i];
	}
	json_str_n(out, buf, k);
	free(buf);
}

static void
har_query(FILE *out, const char *url)
{
	const char *q = url ? strchr(url, '?') : NULL, *end, *amp, *eq;
	bool first = true;

	fputc('[', out);
	if (q) {
		q++;
		end = q + strcspn(q, "#");
		while (q < end) {
			amp = memchr(q, '&', (size_t)(end - q));
			if (amp == NULL)
				amp = end;
			if (amp > q) {
				eq = memchr(q, '=', (size_t)(amp - q));
				fputs(first ? "{\"name\":" : ",{\"name\":", out);
				first = false;
				json_urldecoded(out, q, (size_t)((eq ? eq : amp) - q));
				fputs(",\"value\":", out);
				if (eq)
					json_urldecoded(out, eq + 1,
					    (size_t)(amp - eq - 1));
				else
					fputs("\"\"", out);
				fputc('}', out);
			}
			q = amp + 1;
		}
	}
	fputc(']', out);
}

/* content.text / postData.text: text as is, anything else base64. */
static void
har_text(FILE *out, const unsigned char *p, size_t n, bool *b64)
{
	*b64 = n > 0 && !is_text(p, n);
	fputs(",\"text\":", out);
	if (*b64) {
		fputc('"', out);
		base64(out, p, n);
		fputc('"', out);
	} else
		json_str_n(out, p, n);
}

static double
ms_between(sqlite3_stmt *s, int from, int to)
{
	if (col_null(s, from) || col_null(s, to))
		return 0;
	if (sqlite3_column_int64(s, to) < sqlite3_column_int64(s, from))
		return 0;
	return (double)(sqlite3_column_int64(s, to) -
	    sqlite3_column_int64(s, from)) / 1000.0;
}

static int
export_har(struct reader *r, const struct filters *f, FILE *out)
{
	static const char sql_tail[] =
	    " ORDER BY e.start_us, e.flow_id, e.seq";
	char where[512], sql[3072];
	sqlite3_stmt *s = NULL, *each = NULL;
	bool first = true;
	int rc;

	filters_sql(f, where, sizeof(where), false);
	snprintf(sql, sizeof(sql),
	    "SELECT e.flow_id, e.seq, h.method, h.url, h.http_version, h.status,"
	    " h.reason, h.req_headers, h.resp_headers, h.req_body_size,"
	    " h.resp_body_size, h.req_body, h.resp_body, h.req_start_us,"
	    " h.req_end_us, h.resp_start_us, h.resp_end_us, h.error,"
	    " f.dst_addr, f.process, f.pid, h.resp_body_truncated,"
	    " f.connect_us, f.tls_handshake_us, f.rtt_us, f.retransmits,"
	    " h.grpc ->> '$.status', h.grpc ->> '$.message', h.resp_trailers"
	    " FROM (SELECT * FROM entries %s%s) e"
	    " JOIN http_exchanges h ON h.flow_id = e.flow_id AND h.seq = e.seq"
	    " JOIN flows f ON f.id = e.flow_id%s",
	    where, f->limit > 0 ? " ORDER BY start_us DESC LIMIT ?" : "",
	    sql_tail);
	if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "SELECT value -> 0, value -> 1"
	    " FROM json_each(?)", -1, &each, NULL) != SQLITE_OK)
		goto sqlerr;
	rc = filters_bind(f, s);
	if (f->limit > 0)
		sqlite3_bind_int64(s, rc, f->limit);
	fprintf(out, "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":"
	    "\"localcap\",\"version\":\"%s\"},\"pages\":[],\"entries\":[",
	    LOCALCAP_VERSION);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char iso[40], ctype[256];
		double send = ms_between(s, 13, 14), wait, recv;
		bool b64;
		const char *ver = col_text(s, 4) ? col_text(s, 4) : "HTTP/1.1";

		/* No end of request recorded: the wait runs from its start. */
		wait = ms_between(s, col_null(s, 14) ? 13 : 14, 15);
		recv = ms_between(s, 15, 16);
		fmt_time(iso, sizeof(iso), sqlite3_column_int64(s, 13), true);
		fprintf(out, "%s{\"startedDateTime\":\"%s\",\"time\":%.3f,"
		    "\"request\":{\"method\":", first ? "" : ",", iso,
		    send + wait + recv);
		first = false;
		json_str(out, col_text(s, 2) ? col_text(s, 2) : "GET");
		fputs(",\"url\":", out);
		json_str(out, col_text(s, 3) ? col_text(s, 3) : "");
		fputs(",\"httpVersion\":", out);
		json_str(out, ver);
		fputs(",\"cookies\":[],\"headers\":", out);
		har_headers(out, each, col_text(s, 7), ctype, sizeof(ctype));
		fputs(",\"queryString\":", out);
		har_query(out, col_text(s, 3));
		if (sqlite3_column_int64(s, 9) > 0) {
			fputs(",\"postData\":{\"mimeType\":", out);
			json_str(out, ctype);
			har_text(out, sqlite3_column_blob(s, 11),
			    (size_t)sqlite3_column_bytes(s, 11), &b64);
			if (b64)
				fputs(",\"encoding\":\"base64\"", out);
			fputs(",\"params\":[]}", out);
		}
		fprintf(out, ",\"headersSize\":-1,\"bodySize\":%lld},",
		    sqlite3_column_int64(s, 9));
		fprintf(out, "\"response\":{\"status\":%d,\"statusText\":",
		    sqlite3_column_int(s, 5));
		json_str(out, col_text(s, 6) ? col_text(s, 6) :
		    col_text(s, 17) ? col_text(s, 17) : "");
		fputs(",\"httpVersion\":", out);
		json_str(out, col_null(s, 5) ? "" : ver);
		fputs(",\"cookies\":[],\"headers\":", out);
		har_headers(out, each, col_text(s, 8), ctype, sizeof(ctype));
		fprintf(out, ",\"content\":{\"size\":%lld,\"mimeType\":",
		    sqlite3_column_int64(s, 10));
		json_str(out, ctype[0] ? ctype : "x-unknown");
		har_text(out, sqlite3_column_blob(s, 12),
		    (size_t)sqlite3_column_bytes(s, 12), &b64);
		if (b64)
			fputs(",\"encoding\":\"base64\"", out);
		if (sqlite3_column_int(s, 21))
			fputs(",\"comment\":\"truncated by localcap\"", out);
		fprintf(out, "},\"redirectURL\":\"\",\"headersSize\":-1,"
		    "\"bodySize\":%lld},", col_null(s, 5) ? -1LL :
		    sqlite3_column_int64(s, 10));
		fprintf(out, "\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":-1,"
		    "\"connect\":-1,\"ssl\":-1,\"send\":%.3f,\"wait\":%.3f,"
		    "\"receive\":%.3f},\"serverIPAddress\":", send, wait, recv);
		json_str(out, col_text(s, 18) ? col_text(s, 18) : "");
		fprintf(out, ",\"connection\":\"%lld\",\"_localcap\":{\"id\":"
		    "\"%lld.%lld\",\"process\":", sqlite3_column_int64(s, 0),
		    sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
		json_str(out, col_text(s, 19));
		fprintf(out, ",\"pid\":%lld", sqlite3_column_int64(s, 20));
		if (sqlite3_column_int64(s, 1) == 1 && !col_null(s, 22))
			fprintf(out, ",\"connect_ms\":%.3f",
			    (double)sqlite3_column_int64(s, 22) / 1000);
		if (sqlite3_column_int64(s, 1) == 1 && !col_null(s, 23))
			fprintf(out, ",\"ssl_ms\":%.3f",
			    (double)sqlite3_column_int64(s, 23) / 1000);
		/* The connection's, like connect_ms: on its first exchange. */
		if (sqlite3_column_int64(s, 1) == 1 && !col_null(s, 24))
			fprintf(out, ",\"rtt_ms\":%.3f",
			    (double)sqlite3_column_int64(s, 24) / 1000);
		if (sqlite3_column_int64(s, 1) == 1 && !col_null(s, 25))
			fprintf(out, ",\"retransmits\":%lld",
			    sqlite3_column_int64(s, 25));
		if (col_text(s, 17)) {
			fputs(",\"error\":", out);
			json_str(out, col_text(s, 17));
		}
		/* HAR has no trailers: ours, and gRPC's status from them. */
		if (col_text(s, 28)) {
			fputs(",\"trailers\":", out);
			har_headers(out, each, col_text(s, 28), ctype,
			    sizeof(ctype));
		}
		if (!col_null(s, 26))
			fprintf(out, ",\"grpc_status\":%lld",
			    sqlite3_column_int64(s, 26));
		if (col_text(s, 27)) {
			fputs(",\"grpc_message\":", out);
			json_str(out, col_text(s, 27));
		}
		fputs("}}", out);
	}
	if (rc != SQLITE_DONE)
		goto sqlerr;
	fputs("]}}\n", out);
	sqlite3_finalize(s);
	sqlite3_finalize(each);
	return 0;
sqlerr:
	fprintf(stderr, "localcapctl: %s: %s\n", r->path, sqlite3_errmsg(r->db));
	sqlite3_finalize(s);
	sqlite3_finalize(each);
	return 1;
}

int
ctl_export(const char *state_dir, int argc, char **argv)
{
	static const struct option longopts[] = {
		FILTER_LONGOPTS,
		{ "har",	required_argument,	NULL, OPT_HAR },
		{ NULL, 0, NULL, 0 },
	};
	struct reader r = { 0 };
	struct filters f;
	const char *state_opt = NULL, *har = NULL;
	char tmp[4096];
	FILE *out;
	int c, rc;

	filters_init(&f);
	f.http_only = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == OPT_HAR)
			har = optarg;
		else if (c == '?' || filter_option(&f, c, optarg, &state_opt)) {
			filters_free(&f);
			return 2;
		}
	}
	if (har == NULL || optind != argc) {
		fprintf(stderr, "usage: localcapctl export --har FILE [--host RE] "
		    "[--method M] [--status N] [--process NAME] [--since TIME] "
		    "[--limit N]\n");
		filters_free(&f);
		return 2;
	}
	if ((rc = reader_open(&r, state_dir_of(state_opt, state_dir), &f))) {
		filters_free(&f);
		return rc;
	}
	/* Written beside FILE and renamed: a failed export leaves no half HAR. */
	if (strcmp(har, "-") == 0)
		out = stdout;
	else {
		snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", har, (long)getpid());
		if ((out = fopen(tmp, "w")) == NULL) {
			fprintf(stderr, "localcapctl: %s: %s\n", tmp,
			    strerror(errno));
			reader_close(&r);
			filters_free(&f);
			return 1;
		}
	}
	rc = export_har(&r, &f, out);
	if (out != stdout) {
		if (fclose(out) == EOF && rc == 0) {
			fprintf(stderr, "localcapctl: %s: %s\n", tmp,
			    strerror(errno));
			rc = 1;
		}
		if (rc == 0 && rename(tmp, har) == -1) {
			fprintf(stderr, "localcapctl: %s: %s\n", har,
			    strerror(errno));
			rc = 1;
		}
		if (rc != 0)
			unlink(tmp);
	} else if (fflush(stdout) == EOF) {
		fprintf(stderr, "localcapctl: writing the HAR: %s\n",
		    strerror(errno));
		rc = 1;
	}
	reader_close(&r);
	filters_free(&f);
	return rc;
}
