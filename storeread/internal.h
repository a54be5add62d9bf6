/*
 * What storeread's files share (not part of the interface: storeread.h).
 */
#ifndef LOCALCAP_STOREREAD_INTERNAL_H
#define LOCALCAP_STOREREAD_INTERNAL_H

#include <regex.h>

#include <sqlite3.h>

#include "storeread/storeread.h"

/* Statements prepared once per open store. */
enum sr_stmt {
	SR_Q_HTTP_ENTRY,	/* an HTTP entry by its row id */
	SR_Q_DNS_ENTRY,		/* a DNS entry by its row id */
	SR_Q_FLOW_ENTRY,	/* a flow entry by flow */
	SR_Q_FLOW,		/* a flow's facts */
	SR_Q_HEADERS,		/* json_each over a header list */
	SR_Q_ANSWERS,		/* json_each over a DNS answer list */
	SR_Q__COUNT,
};

struct sr_store {
	sqlite3		*db;
	char		*path;
	int		 version;
	char		 err[512];
	sqlite3_stmt	*stmt[SR_Q__COUNT];
	/* lc_host_match's pattern, while a list with a host filter runs. */
	regex_t		 host_re;
	bool		 has_host_re;
	bool		 own_txn;	/* list.c's read transaction is open */
	bool		 has_h2;	/* http_exchanges has trailers, grpc */
	bool		 has_exe;	/* flows has exe (schema 6) */
};

/* sr_errmsg's text: printf-style, or SQLite's last error when fmt is NULL. */
void	sr_seterr(struct sr_store *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	sr_sqlerr(struct sr_store *);
/* The statement, prepared on first use; NULL (and the error set) on failure. */
sqlite3_stmt *sr_stmt(struct sr_store *, enum sr_stmt);

/* Column helpers: text or NULL, integer or -1 when NULL. */
const char *sr_col_text(sqlite3_stmt *, int);
int64_t	sr_col_int(sqlite3_stmt *, int);

/*
 * HTTP/2's columns (trailers and the gRPC summary, in the schema step that
 * added them): read where the file has them, NULL where it has not, so a
 * reader works on either.  grpc is JSON proxyd wrote; read only if valid.
 */
#define SR_H2_COLS								\
	"h.req_trailers, h.resp_trailers,"				\
	" iif(json_valid(h.grpc), h.grpc ->> '$.status', NULL),"	\
	" iif(json_valid(h.grpc), h.grpc ->> '$.message', NULL),"	\
	" iif(json_valid(h.grpc), h.grpc ->> '$.request.messages', NULL),"	\
	" iif(json_valid(h.grpc), h.grpc ->> '$.response.messages', NULL)"
#define SR_NO_H2_COLS	"NULL, NULL, NULL, NULL, NULL, NULL"

/* The flow columns (FLOW_COLS, aliased f) read from column first on. */
#define SR_FLOW_NCOLS	42
extern const char sr_flow_cols[];
void	sr_read_flow(sqlite3_stmt *, int first, struct sr_flow *);

/* An entry row of one of the SR_Q_*_ENTRY statements. */
void	sr_read_entry(sqlite3_stmt *, struct sr_entry *);

/*
 * Decode one JSON string (with its quotes) into out (at least len bytes):
 * the decoded length.  Garbage decodes as is.
 */
size_t	sr_json_decode(const char *s, size_t len, char *out);

/*
 * A header list as proxyd writes it, [["name","value"],...], each pair to
 * cb: 0, or -1 (and no callback) if json is anything else.
 */
int	sr_headers_parse(const char *json, size_t len, sr_header_cb cb,
	    void *ctx);

/* UTC ISO 8601 with milliseconds: "2026-12-07T18:00:00.123Z". */
void	sr_fmt_iso(char *buf, size_t len, int64_t us);
/* ADDR:PORT, an IPv6 address in brackets ("?" for an unknown address). */
void	sr_fmt_addr(char *buf, size_t len, const char *addr, int port);

/* Base64 of p[0..n) (no quotes). */
void	sr_base64(FILE *, const uint8_t *, size_t);
/* Valid UTF-8 with no control bytes but tab, CR, LF and form feed. */
bool	sr_is_text(const uint8_t *, size_t);

#endif
