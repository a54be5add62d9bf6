/*
 * One flow in full: its facts, its HTTP exchanges (bodies on request), its
 * DNS messages, and the stored header and answer lists decoded.
 */
#include <stdlib.h>
#include <string.h>

#include "storeread/internal.h"

int
sr_flow_get(struct sr_store *st, int64_t flow, sr_flow_cb cb, void *ctx)
{
	sqlite3_stmt *s = sr_stmt(st, SR_Q_FLOW);
	struct sr_flow f;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, flow);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		sr_read_flow(s, 0, &f);
		if (cb)
			cb(ctx, &f);
	} else if (rc == SQLITE_DONE)
		sr_seterr(st, "no flow %lld", (long long)flow);
	else
		sr_sqlerr(st);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

long
sr_exchanges(struct sr_store *st, int64_t flow, int64_t seq, bool bodies,
    sr_exchange_cb cb, void *ctx)
{
	char sql[1024];
	sqlite3_stmt *s;
	long n = 0;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT seq, scheme, method, target, url,"
	    " host, http_version, status, reason, req_headers, resp_headers,"
	    " req_body_size, resp_body_size, %s, req_body_truncated,"
	    " resp_body_truncated, req_start_us, req_end_us, resp_start_us,"
	    " resp_end_us, error, done_serial, length(req_body),"
	    " length(resp_body), %s FROM http_exchanges h WHERE flow_id = ?1"
	    " AND (?2 = 0 OR seq = ?2) ORDER BY seq", bodies ?
	    "req_body, resp_body" : "NULL, NULL", st->has_h2 ? SR_H2_COLS :
	    SR_NO_H2_COLS);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		sr_sqlerr(st);
		return -1;
	}
	sqlite3_bind_int64(s, 1, flow);
	sqlite3_bind_int64(s, 2, seq);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct sr_exchange x;

		memset(&x, 0, sizeof(x));
		x.flow = flow;
		x.seq = sqlite3_column_int64(s, 0);
		x.scheme = sr_col_text(s, 1);
		x.method = sr_col_text(s, 2);
		x.target = sr_col_text(s, 3);
		x.url = sr_col_text(s, 4);
		x.host = sr_col_text(s, 5);
		x.http_version = sr_col_text(s, 6);
		x.status = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1 :
		    sqlite3_column_int(s, 7);
		x.reason = sr_col_text(s, 8);
		x.req_headers = sr_col_text(s, 9);
		x.resp_headers = sr_col_text(s, 10);
		x.req_body_size = sr_col_int(s, 11);
		x.resp_body_size = sr_col_int(s, 12);
		if (bodies) {
			x.req_body = sqlite3_column_blob(s, 13);
			x.req_body_len = (size_t)sqlite3_column_bytes(s, 13);
			x.resp_body = sqlite3_column_blob(s, 14);
			x.resp_body_len = (size_t)sqlite3_column_bytes(s, 14);
		} else {
			/* What was kept, though not read. */
			x.req_body_len = (size_t)sqlite3_column_int64(s, 23);
			x.resp_body_len = (size_t)sqlite3_column_int64(s, 24);
		}
		x.req_truncated = sqlite3_column_int(s, 15) != 0;
		x.resp_truncated = sqlite3_column_int(s, 16) != 0;
		x.req_start_us = sr_col_int(s, 17);
		x.req_end_us = sr_col_int(s, 18);
		x.resp_start_us = sr_col_int(s, 19);
		x.resp_end_us = sr_col_int(s, 20);
		x.error = sr_col_text(s, 21);
		x.done_serial = sr_col_int(s, 22);
		x.req_trailers = sr_col_text(s, 25);
		x.resp_trailers = sr_col_text(s, 26);
		x.grpc_status = sr_col_int(s, 27);
		x.grpc_message = sr_col_text(s, 28);
		x.grpc_req_messages = sr_col_int(s, 29);
		x.grpc_resp_messages = sr_col_int(s, 30);
		n++;
		if (cb && cb(ctx, &x) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		sr_sqlerr(st);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : -1;
}

long
sr_dns_list(struct sr_store *st, int64_t flow, int64_t seq, sr_dns_cb cb,
    void *ctx)
{
	sqlite3_stmt *s;
	long n = 0;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT seq, msg_id, qname, qtype_name,"
	    " query_us, response_us, rcode_name, answers, error FROM dns"
	    " WHERE flow_id = ?1 AND (?2 = 0 OR seq = ?2) ORDER BY seq", -1, &s,
	    NULL) != SQLITE_OK) {
		sr_sqlerr(st);
		return -1;
	}
	sqlite3_bind_int64(s, 1, flow);
	sqlite3_bind_int64(s, 2, seq);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct sr_dns d;

		memset(&d, 0, sizeof(d));
		d.flow = flow;
		d.seq = sqlite3_column_int64(s, 0);
		d.msg_id = sqlite3_column_int(s, 1);
		d.qname = sr_col_text(s, 2);
		d.qtype = sr_col_text(s, 3);
		d.query_us = sr_col_int(s, 4);
		d.response_us = sr_col_int(s, 5);
		d.rcode = sr_col_text(s, 6);
		d.answers = sr_col_text(s, 7);
		d.error = sr_col_text(s, 8);
		n++;
		if (cb && cb(ctx, &d) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		sr_sqlerr(st);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : -1;
}

/* A JSON string value (column col of s, with its quotes), decoded. */
static char *
decoded(sqlite3_stmt *s, int col, size_t *len)
{
	size_t n = (size_t)sqlite3_column_bytes(s, col);
	const char *j = (const char *)sqlite3_column_text(s, col);
	char *buf;

	if (j == NULL || (buf = malloc(n + 1)) == NULL)
		return NULL;
	*len = sr_json_decode(j, n, buf);
	buf[*len] = '\0';
	return buf;
}

int
sr_headers_each(struct sr_store *st, const char *json, sr_header_cb cb,
    void *ctx)
{
	sqlite3_stmt *s;
	int rc;

	if (json == NULL)
		return 0;
	/* What proxyd writes, quickly; anything else through SQLite. */
	if (sr_headers_parse(json, strlen(json), cb, ctx) == 0)
		return 0;
	if ((s = sr_stmt(st, SR_Q_HEADERS)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t nl = 0, vl = 0;
		/*
		 * json_extract() would stop at a \u0000 (header values may
		 * hold NULs): the JSON text of each string, decoded here.
		 */
		char *name = decoded(s, 1, &nl), *value = decoded(s, 2, &vl);

		if (name && value)
			cb(ctx, name, nl, value, vl);
		free(name);
		free(value);
	}
	if (rc != SQLITE_DONE)
		sr_sqlerr(st);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
sr_answers_each(struct sr_store *st, const char *json, sr_answer_cb cb,
    void *ctx)
{
	sqlite3_stmt *s;
	int rc;

	if (json == NULL)
		return 0;
	if ((s = sr_stmt(st, SR_Q_ANSWERS)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		cb(ctx, sr_col_text(s, 0), sr_col_text(s, 1), sr_col_int(s, 2),
		    sr_col_text(s, 3));
	if (rc != SQLITE_DONE)
		sr_sqlerr(st);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}
