/*
 * Unit tests for storeread/, the flow store's reader library: opening
 * (missing, empty, symlinked, hostile files, one whose writer has it
 * closed and whose reader may not make its -shm), keyset pages in both
 * directions with cursors (every entry exactly once), each filter, follow
 * by done_serial, one flow's detail, the JSON of an entry (the error text
 * of a refused flow included), HAR, and a process's flow count — against a
 * store written through proxyd's writer API.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "log.h"
#include "proxyd/store.h"
#include "storeread/storeread.h"
#include "test/unit/helpers/flowfix.h"

static char dir[64];
static char dbpath[128];
static int64_t t0;

#define N_HTTP	30	/* flow 1: keep-alive, 30 exchanges */

/*
 * 1: curl, 30 HTTPS exchanges 1 ms apart (every 5th a 404);
 * 2: a raw TCP flow refused for a bad upstream certificate (error text);
 * 3: wget, one HTTP exchange, later than all of flow 1's;
 * 4: a DNS query and answer.  Entries in time order: 1.1 … 1.30, 2, 3.1, 4.1.
 */
static void
build_store(void)
{
	static const struct http_field req[] = {
		{ "Host", 4, "example.org", 11 },
		{ "X-Evil", 6, "\xc2\x9b" "31m\xe2\x80\xae", 8 },
	};
	struct store_flow_facts bad = { .protocol = "tls", .sni = "bad.test",
		.error = "upstream certificate: not trusted (self-signed)",
		.server_cert_subject = "CN=bad.test",
		.server_cert_verified = -1 };
	struct store_http h;
	struct flow_record rec;
	struct store *st;
	char e[256], target[32];
	int64_t row;
	int i;

	st = store_open(dbpath, NULL, e, sizeof(e));
	if (st == NULL)
		fail_msg("store_open: %s", e);
	flowfix_record(&rec, 1, FLOW_TCP, "curl", 100, "192.0.2.7", 443, t0);
	row = store_flow_begin(st, &rec);
	for (i = 1; i <= N_HTTP; i++) {
		memset(&h, 0, sizeof(h));
		snprintf(target, sizeof(target), "/item/%d", i);
		h.seq = (uint32_t)i;
		h.scheme = "https";
		h.method = "GET";
		h.target = target;
		h.host = "example.org";
		h.version_minor = 1;
		h.status = i % 5 == 0 ? 404 : 200;
		h.reason = i % 5 == 0 ? "Not Found" : "OK";
		h.req_fields = req;
		h.n_req_fields = 2;
		h.resp_body = (const uint8_t *)"hello";
		h.resp_body_len = h.resp_body_size = 5;
		h.req_start_us = (uint64_t)(t0 + i * 1000);
		h.resp_end_us = (uint64_t)(t0 + i * 1000 + 500);
		assert_true(store_http_add(st, row, &h) > 0);
	}
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t0 + 100000;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);

	flowfix_record(&rec, 2, FLOW_TCP, "curl", 100, "192.0.2.8", 443,
	    t0 + N_HTTP * 1000 + 100);
	row = store_flow_begin(st, &rec);
	rec.end = FLOW_END_UPSTREAM_RESET;
	rec.end_us = rec.meta.start_us + 2000;
	assert_int_equal(store_flow_end(st, row, &rec, &bad), 0);

	flowfix_record(&rec, 3, FLOW_TCP, "wget", 300, "192.0.2.9", 80,
	    t0 + N_HTTP * 1000 + 200);
	row = store_flow_begin(st, &rec);
	memset(&h, 0, sizeof(h));
	h.seq = 1;
	h.scheme = "http";
	h.method = "POST";
	h.target = "http://other.test/form";
	h.host = "other.test";
	h.version_minor = 1;
	h.status = 201;
	h.req_start_us = rec.meta.start_us + 10;
	h.resp_end_us = rec.meta.start_us + 90;
	assert_true(store_http_add(st, row, &h) > 0);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = rec.meta.start_us + 100;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);

	flowfix_record(&rec, 4, FLOW_UDP, "resolver", 400, "192.0.2.53", 53,
	    t0 + N_HTTP * 1000 + 300);
	row = store_flow_begin(st, &rec);
	assert_int_equal(store_dns_add_wire(st, row, rec.meta.start_us,
	    flowfix_dns_query, flowfix_dns_query_len), 0);
	rec.end = FLOW_END_IDLE;
	rec.end_us = rec.meta.start_us + 5000;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	store_close(st);
}

static int
setup(void **state)
{
	struct timespec ts;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_storeread.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/%s", dir, STORE_DIR_NAME);
	if (mkdir(dbpath, 0700) == -1)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/%s/%s", dir, STORE_DIR_NAME,
	    STORE_DB_NAME);
	clock_gettime(CLOCK_REALTIME, &ts);
	t0 = ((int64_t)ts.tv_sec - 600) * 1000000;
	build_store();
	return 0;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct sr_store *
open_ok(void)
{
	char e[512];
	struct sr_store *st = sr_open(dir, e, sizeof(e), NULL);

	if (st == NULL)
		fail_msg("sr_open: %s", e);
	return st;
}

/* --- collecting ids --------------------------------------------------------------- */

struct ids {
	char	 v[64][24];
	int	 n;
	int	 stop_after;	/* 0: never */
	struct sr_key last;
};

static int
collect_id(void *ctx, const struct sr_entry *e)
{
	struct ids *ids = ctx;

	if (ids->n < 64) {
		if (e->key.seq)
			snprintf(ids->v[ids->n], sizeof(ids->v[0]), "%lld.%lld",
			    (long long)e->key.flow, (long long)e->key.seq);
		else
			snprintf(ids->v[ids->n], sizeof(ids->v[0]), "%lld",
			    (long long)e->key.flow);
	}
	ids->n++;
	ids->last = e->key;
	return ids->stop_after && ids->n >= ids->stop_after;
}

static long
list(struct sr_store *st, const struct sr_filter *f, bool newest,
    size_t limit, const struct sr_key *cursor, struct ids *ids)
{
	struct sr_page pg = { .newest_first = newest, .limit = limit,
	    .cursor = cursor };

	memset(ids, 0, sizeof(*ids));
	return sr_list(st, f, &pg, collect_id, ids);
}

/* --- tests ------------------------------------------------------------------------------ */

static void
open_refuses_what_is_not_a_store(void **state)
{
	char e[512], p[200];
	enum sr_open_error why;
	struct sr_store *st;

	(void)state;
	snprintf(p, sizeof(p), "%s/none", dir);
	assert_null(sr_open(p, e, sizeof(e), &why));
	assert_int_equal(why, SR_OPEN_EMPTY);
	assert_non_null(strstr(e, "no flows recorded yet in "));

	st = open_ok();
	assert_int_equal(sr_schema_version(st), STORE_SCHEMA_VERSION);
	sr_close(st);

	/* Version 3 (before the reader's indexes) still reads; 2 does not. */
	snprintf(p, sizeof(p), "%s/v3.db", dir);
	assert_int_equal(store_create_at_version(p, 3, e, sizeof(e)), 0);
	st = sr_open_file(p, e, sizeof(e), &why);
	assert_non_null(st);
	{
		struct sr_filter f = { 0 };
		struct ids ids;

		assert_int_equal(list(st, &f, true, 20, NULL, &ids), 0);
	}
	sr_close(st);
	snprintf(p, sizeof(p), "%s/v2.db", dir);
	assert_int_equal(store_create_at_version(p, 2, e, sizeof(e)), 0);
	assert_null(sr_open_file(p, e, sizeof(e), &why));
	assert_non_null(strstr(e, "schema version 2; start proxyd once"));

	/* A symlink in the store's place is not followed. */
	snprintf(p, sizeof(p), "%s/link.db", dir);
	assert_int_equal(symlink(dbpath, p), 0);
	assert_null(sr_open_file(p, e, sizeof(e), &why));
	assert_int_equal(why, SR_OPEN_FAILED);
	assert_non_null(strstr(e, "not a regular file"));
	sr_close(NULL);
}

static void
pages_walk_every_entry_once(void **state)
{
	struct sr_filter f = { 0 };
	struct sr_store *st = open_ok();
	struct ids all, page;
	struct sr_key cur;
	char seen[64][24];
	int n = 0, i;

	(void)state;
	/* Oldest first, whole: 30 exchanges, the refused flow, 3.1, 4.1. */
	assert_int_equal(list(st, &f, false, 0, NULL, &all), N_HTTP + 3);
	assert_string_equal(all.v[0], "1.1");
	assert_string_equal(all.v[N_HTTP - 1], "1.30");
	assert_string_equal(all.v[N_HTTP], "2");
	assert_string_equal(all.v[N_HTTP + 1], "3.1");
	assert_string_equal(all.v[N_HTTP + 2], "4.1");

	/* Newest first in pages of 7, each after the last one's key. */
	assert_int_equal(list(st, &f, true, 7, NULL, &page), 7);
	assert_string_equal(page.v[0], "4.1");
	assert_string_equal(page.v[3], "1.30");
	for (;;) {
		for (i = 0; i < page.n; i++)
			memcpy(seen[n++], page.v[i], sizeof(seen[0]));
		if (page.n < 7)
			break;
		cur = page.last;
		list(st, &f, true, 7, &cur, &page);
	}
	assert_int_equal(n, N_HTTP + 3);
	for (i = 0; i < n; i++)
		assert_string_equal(seen[i], all.v[n - 1 - i]);

	/* A cursor from an id; oldest first after it. */
	assert_int_equal(sr_key_of(st, 1, 28, &cur), 0);
	assert_int_equal(list(st, &f, false, 3, &cur, &page), 3);
	assert_string_equal(page.v[0], "1.29");
	assert_string_equal(page.v[2], "2");
	assert_int_equal(sr_key_of(st, 1, 99, &cur), 1);

	/* Reversed: the newest 3, handed oldest first (flows --limit 3). */
	{
		struct sr_page pg = { .newest_first = true, .limit = 3,
		    .reversed = true };

		memset(&page, 0, sizeof(page));
		assert_int_equal(sr_list(st, &f, &pg, collect_id, &page), 3);
		assert_string_equal(page.v[0], "2");
		assert_string_equal(page.v[2], "4.1");
	}
	/* The callback may stop a list. */
	memset(&page, 0, sizeof(page));
	page.stop_after = 2;
	{
		struct sr_page pg = { .newest_first = true };

		assert_true(sr_list(st, &f, &pg, collect_id, &page) >= 2);
		assert_int_equal(page.n, 2);
	}
	sr_close(st);
}

static void
filters_select_entries(void **state)
{
	struct sr_store *st = open_ok();
	struct ids ids;
	char e[256];

	(void)state;
	{
		struct sr_filter f = { .status = 404 };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), N_HTTP / 5);
		assert_string_equal(ids.v[0], "1.30");
	}
	{
		struct sr_filter f = { .process = "wget" };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 1);
		assert_string_equal(ids.v[0], "3.1");
	}
	{
		struct sr_filter f = { .process = "curl" };

		/* curl's exchanges and its refused flow. */
		assert_int_equal(list(st, &f, true, 2, NULL, &ids), 2);
		assert_string_equal(ids.v[0], "2");
		assert_string_equal(ids.v[1], "1.30");
	}
	{
		struct sr_filter f = { .host_re = "^BAD\\." };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 1);
		assert_string_equal(ids.v[0], "2");
	}
	{
		struct sr_filter f = { .method = "post" };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 1);
		assert_string_equal(ids.v[0], "3.1");
	}
	{
		struct sr_filter f = { .text = "ITEM/1" };

		/* /item/1 and /item/10 … /item/19 */
		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 11);
	}
	{
		struct sr_filter f = { .text = "resolv" };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 1);
		assert_string_equal(ids.v[0], "4.1");
	}
	{
		struct sr_filter f = { .since_us = t0 + N_HTTP * 1000 };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), 4);
	}
	{
		struct sr_filter f = { .http_only = true };

		assert_int_equal(list(st, &f, true, 0, NULL, &ids), N_HTTP + 1);
	}
	{
		struct sr_filter f = { .host_re = "a(" };

		assert_int_equal(sr_filter_check(&f, e, sizeof(e)), -1);
		assert_non_null(strstr(e, "a("));
		assert_int_equal(list(st, &f, true, 0, NULL, &ids), -1);
	}
	sr_close(st);
}

static int
to_string(void *ctx, const struct sr_entry *e)
{
	struct { struct sr_store *st; FILE *f; } *c = ctx;

	sr_entry_json(c->st, c->f, e);
	fputc('\n', c->f);
	return 0;
}

static char *
entries_json(struct sr_store *st, const struct sr_filter *f)
{
	struct { struct sr_store *st; FILE *f; } c = { st, NULL };
	struct sr_page pg = { 0 };
	char *buf = NULL;
	size_t len = 0;

	c.f = open_memstream(&buf, &len);
	assert_non_null(c.f);
	assert_true(sr_list(st, f, &pg, to_string, &c) >= 0);
	fclose(c.f);
	return buf;
}

static void
entry_json_carries_error_and_flow_facts(void **state)
{
	struct sr_store *st = open_ok();
	struct sr_filter f = { .host_re = "^bad" };
	char *j;

	(void)state;
	j = entries_json(st, &f);
	assert_non_null(strstr(j, "{\"id\":\"2\",\"flow\":2,\"seq\":null,"
	    "\"kind\":\"tcp\""));
	assert_non_null(strstr(j, "\"result\":\"upstream reset\""));
	assert_non_null(strstr(j, "\"error\":\"upstream certificate: not "
	    "trusted (self-signed)\""));
	assert_non_null(strstr(j, "\"server_cert\":{\"subject\":\"CN=bad.test\""));
	assert_non_null(strstr(j, "\"verified\":false"));
	/* A flow entry: its first bytes too (none here). */
	assert_non_null(strstr(j, "\"first_up\":null,\"first_down\":null}"));
	free(j);

	/* C1 and bidi controls stay escaped-free JSON text (valid UTF-8). */
	f = (struct sr_filter){ .status = 404, .since_us = t0 + 29000 };
	j = entries_json(st, &f);
	assert_non_null(strstr(j, "\"request_headers\":[[\"Host\",\"example.org\"],"
	    "[\"X-Evil\",\"\xc2\x9b" "31m\xe2\x80\xae\"]]"));
	assert_non_null(strstr(j, "\"http_version\":\"HTTP/1.1\""));
	free(j);
	sr_close(st);
}

static void
detail_json_and_exchanges(void **state)
{
	struct sr_store *st = open_ok();
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&buf, &len);
	assert_int_equal(sr_detail_json(st, f, 1, 5, true), 0);
	fclose(f);
	assert_non_null(strstr(buf, "{\"flow\":{\"id\":1,\"transport\":\"tcp\""));
	assert_non_null(strstr(buf, "\"exchanges\":[{\"id\":\"1.5\",\"seq\":5"));
	assert_non_null(strstr(buf, "\"status\":404"));
	assert_non_null(strstr(buf, "\"resp_body\":{\"text\":\"hello\"}"));
	assert_null(strstr(buf, "\"1.6\""));
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(sr_detail_json(st, f, 99, 0, false), 1);
	assert_int_equal(sr_detail_json(st, f, 1, 99, false), 1);
	fclose(f);
	assert_int_equal(len, 0);
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(sr_detail_json(st, f, 4, 0, false), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\"dns\":[{\"id\":\"4.1\",\"seq\":1,"
	    "\"msg_id\":4660,\"qname\":\"example.com\",\"qtype\":\"A\""));
	free(buf);
	sr_close(st);
}

static void
follow_lists_what_completes(void **state)
{
	struct sr_filter f = { 0 };
	struct sr_store *rd = open_ok();
	struct flow_record rec;
	struct store *st;
	struct ids ids;
	int64_t serial, row;
	char e[256];

	(void)state;
	serial = sr_max_serial(rd);
	assert_true(serial > 0);
	memset(&ids, 0, sizeof(ids));
	assert_int_equal(sr_follow(rd, &f, &serial, collect_id, &ids), 0);

	st = store_open(dbpath, NULL, e, sizeof(e));
	assert_non_null(st);
	flowfix_record(&rec, 5, FLOW_TCP, "late", 500, "192.0.2.30", 9000, t0);
	row = store_flow_begin(st, &rec);
	assert_int_equal(store_flush(st), 0);
	/* Running: not complete, not followed. */
	assert_int_equal(sr_follow(rd, &f, &serial, collect_id, &ids), 0);
	rec.end = FLOW_END_CLOSED;
	rec.end_us = (uint64_t)t0 + 10;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	assert_int_equal(store_flush(st), 0);
	store_close(st);
	assert_int_equal(sr_follow(rd, &f, &serial, collect_id, &ids), 1);
	assert_string_equal(ids.v[0], "5");
	assert_int_equal(sr_follow(rd, &f, &serial, collect_id, &ids), 0);
	sr_close(rd);
}

static void
har_and_counts(void **state)
{
	struct sr_store *st = open_ok();
	struct sr_filter f = { .process = "wget" };
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	out = open_memstream(&buf, &len);
	assert_int_equal(sr_export_har(st, &f, 0, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "{\"log\":{\"version\":\"1.2\""));
	assert_non_null(strstr(buf, "\"url\":\"http://other.test/form\""));
	assert_non_null(strstr(buf, "]}}\n"));
	free(buf);

	assert_int_equal(sr_count_flows_of(st, 100, 0), 2);
	assert_int_equal(sr_count_flows_of(st, 100, t0 + 1), 1);
	assert_int_equal(sr_count_flows_of(st, 4242, 0), 0);
	sr_close(st);
}

/*
 * A store proxyd's user rewrote: its views and triggers are not ours to
 * run, and our SQL functions are not theirs to call.  Here `flows` is a
 * view that would call lc_host_match (a function of ours) and `dns` has a
 * generated column calling it: reading is refused or leaves them inert.
 */
/*
 * HTTP/2's columns (trailers, the gRPC summary) are read where the file has
 * them: a store with them (added here as a later schema step adds them)
 * shows them in the entry, the detail and the HAR; a malformed grpc value
 * is ignored, not an error.
 */
static void
http2_columns_read_where_present(void **state)
{
	struct sr_filter f = { .status = 404, .since_us = t0 + 29000 };
	struct sr_store *st;
	sqlite3 *db;
	char *j, *buf = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	/* A version-4 store, from before schema step 5 added the columns. */
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "ALTER TABLE http_exchanges DROP COLUMN req_trailers;"
	    "ALTER TABLE http_exchanges DROP COLUMN resp_trailers;"
	    "ALTER TABLE http_exchanges DROP COLUMN grpc;"
	    "PRAGMA user_version = 4;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	st = open_ok();
	j = entries_json(st, &f);
	assert_non_null(strstr(j, "\"response_trailers\":null"));
	assert_non_null(strstr(j, "\"grpc\":null"));
	free(j);
	sr_close(st);

	/* Step 5 as proxyd's migration makes it. */
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "ALTER TABLE http_exchanges ADD COLUMN req_trailers TEXT;"
	    "ALTER TABLE http_exchanges ADD COLUMN resp_trailers TEXT;"
	    "ALTER TABLE http_exchanges ADD COLUMN grpc TEXT;"
	    "PRAGMA user_version = 5;"
	    "UPDATE http_exchanges SET http_version = 'HTTP/2.0',"
	    " resp_trailers = '[[\"grpc-status\",\"5\"],[\"grpc-message\","
	    "\"not found\"]]', grpc = '{\"status\":5,\"message\":\"not found\","
	    "\"request\":{\"messages\":1,\"sizes\":[7]},\"response\":"
	    "{\"messages\":0,\"sizes\":[]}}' WHERE seq = 30;"
	    "UPDATE http_exchanges SET grpc = '{broken' WHERE seq = 25;",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	st = open_ok();
	j = entries_json(st, &f);
	assert_non_null(strstr(j, "\"http_version\":\"HTTP/2.0\""));
	assert_non_null(strstr(j, "\"response_trailers\":[[\"grpc-status\","
	    "\"5\"],[\"grpc-message\",\"not found\"]]"));
	assert_non_null(strstr(j, "\"grpc\":{\"status\":5,\"message\":"
	    "\"not found\",\"request_messages\":1,\"response_messages\":0}"));
	free(j);
	/* The malformed one: listed, its grpc null. */
	f.since_us = t0 + 25000;
	j = entries_json(st, &f);
	assert_non_null(strstr(j, "\"id\":\"1.25\""));
	free(j);

	out = open_memstream(&buf, &len);
	assert_int_equal(sr_detail_json(st, out, 1, 30, false), 0);
	fclose(out);
	assert_non_null(strstr(buf, "\"grpc\":{\"status\":5"));
	free(buf);
	buf = NULL;
	out = open_memstream(&buf, &len);
	f = (struct sr_filter){ .since_us = t0 + 30000 };
	assert_int_equal(sr_export_har(st, &f, 0, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "\"httpVersion\":\"HTTP/2.0\""));
	assert_non_null(strstr(buf, "\"trailers\":[{\"name\":\"grpc-status\","
	    "\"value\":\"5\"}"));
	assert_non_null(strstr(buf, "\"grpc_status\":5,\"grpc_message\":"
	    "\"not found\""));
	free(buf);
	sr_close(st);
}

static void
dummy_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int(ctx, 1);
}

static void
hostile_schema_is_refused_or_inert(void **state)
{
	static const char *const hostile[] = {
		/* flows a view over a function of ours */
		"CREATE TABLE http_exchanges (id INTEGER PRIMARY KEY,"
		" flow_id, seq, req_start_us, status, method, host, url,"
		" done_serial);"
		"CREATE TABLE dns (id INTEGER PRIMARY KEY, flow_id, seq,"
		" query_us, response_us, qname, done_serial);"
		"CREATE VIEW flows AS SELECT 1 AS id, lc_host_match('x') AS"
		" start_us, 'p' AS process, NULL AS sni, NULL AS host,"
		" NULL AS dst_addr, 1 AS done_serial;"
		"PRAGMA user_version = 4;",
		/* a trigger and a generated column calling ours */
		"CREATE TABLE flows (id INTEGER PRIMARY KEY, start_us, process,"
		" sni, host, dst_addr, done_serial, pid,"
		" g AS (lc_host_match(process)));"
		"CREATE TABLE http_exchanges (id INTEGER PRIMARY KEY,"
		" flow_id, seq, req_start_us, status, method, host, url,"
		" done_serial);"
		"CREATE TABLE dns (id INTEGER PRIMARY KEY, flow_id, seq,"
		" query_us, response_us, qname, done_serial);"
		"CREATE TABLE log (x);"
		"CREATE TRIGGER t AFTER INSERT ON log BEGIN"
		" SELECT lc_host_match('y'); END;"
		"INSERT INTO flows (start_us, process, dst_addr, done_serial,"
		" pid) VALUES (1, 'p', '1.2.3.4', 1, 7);"
		"PRAGMA user_version = 4;",
	};
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		char p[200], e[512];
		struct sr_filter f = { .host_re = "." };
		struct sr_store *st;
		struct ids ids;
		sqlite3 *db;
		long n;

		snprintf(p, sizeof(p), "%s/hostile%zu.db", dir, i);
		assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
		/* The schema names it: it must exist when the file is made. */
		sqlite3_create_function(db, "lc_host_match", 1, SQLITE_UTF8 |
		    SQLITE_DETERMINISTIC,
		    NULL, dummy_fn, NULL, NULL);
		if (sqlite3_exec(db, hostile[i], NULL, NULL, NULL) != SQLITE_OK)
			fail_msg("hostile %zu: %s", i, sqlite3_errmsg(db));
		sqlite3_close(db);
		st = sr_open_file(p, e, sizeof(e), NULL);
		if (st == NULL)
			continue;	/* refused at the door: fine */
		n = list(st, &f, true, 0, NULL, &ids);
		if (i == 0) {
			/* The view may not call our function (and views are
			 * off): the query is refused, with SQLite's message. */
			assert_int_equal(n, -1);
			/* (Which check speaks first is SQLite's choice.) */
			if (strstr(sr_errmsg(st), "unsafe use of lc_host_match")
			    == NULL && strstr(sr_errmsg(st), "flows") == NULL)
				fail_msg("error: %s", sr_errmsg(st));
		} else {
			/* The column is never read; the row lists by our
			 * own function, called by our own statement. */
			assert_true(n == -1 || n == 1);
		}
		if (i == 0)
			assert_int_equal(sr_count_flows_of(st, 7, 0), -1);
		else {
			int64_t c = sr_count_flows_of(st, 7, 0);

			assert_true(c == -1 || c == 1);
		}
		sr_close(st);
	}
}

/*
 * A reader that may read the store but not create files beside it (webd
 * as root under its unit, without CAP_DAC_OVERRIDE; here: nobody, in a
 * root-owned directory) cannot open it while its writer has it closed
 * (SQLite removed -wal and -shm): it is told so apart from other failures
 * (SR_OPEN_NOT_LIVE), and opens it once the writer has it open again.
 */
static void
open_tells_a_store_its_writer_has_closed(void **state)
{
	char d[] = "/tmp/test_storeread_live.XXXXXX", p[128], e[512], cmd[160];
	int ready[2], go[2], status;
	struct store *w;
	sqlite3 *db;
	pid_t pid;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(d));
	assert_int_equal(chmod(d, 0755), 0);
	snprintf(p, sizeof(p), "%s/%s", d, STORE_DB_NAME);
	assert_non_null(w = store_open(p, NULL, e, sizeof(e)));
	store_close(w);
	assert_int_equal(chmod(p, 0644), 0);
	snprintf(cmd, sizeof(cmd), "%s-shm", p);
	assert_int_equal(access(cmd, F_OK), -1);	/* the writer's close removed it */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	if ((pid = fork()) == 0) {
		enum sr_open_error why;
		struct sr_store *st;
		char c;

		close(ready[0]);
		close(go[1]);
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(10);
		st = sr_open_file(p, e, sizeof(e), &why);
		if (st != NULL || why != SR_OPEN_NOT_LIVE ||
		    strstr(e, "readable only while proxyd has it open") == NULL)
			_exit(11);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(12);
		if ((st = sr_open_file(p, e, sizeof(e), &why)) == NULL ||
		    why != SR_OPEN_OK)
			_exit(13);
		sr_close(st);
		_exit(0);
	}
	assert_true(pid > 0);
	close(ready[1]);	/* a child that ended early: read() gets 0 */
	close(go[0]);
	{
		char c;

		if (read(ready[0], &c, 1) != 1) {
			assert_int_equal(waitpid(pid, &status, 0), pid);
			fail_msg("the reader ended early (exit %d)",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		}
	}
	/* The writer opens it again: -wal and -shm, with the file's mode. */
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL; "
	    "SELECT count(*) FROM flows", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	sqlite3_close(db);
	close(ready[0]);
	close(go[1]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(open_refuses_what_is_not_a_store, setup, teardown),
		cmocka_unit_test_setup_teardown(pages_walk_every_entry_once, setup, teardown),
		cmocka_unit_test_setup_teardown(filters_select_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(entry_json_carries_error_and_flow_facts, setup, teardown),
		cmocka_unit_test_setup_teardown(detail_json_and_exchanges, setup, teardown),
		cmocka_unit_test_setup_teardown(follow_lists_what_completes, setup, teardown),
		cmocka_unit_test_setup_teardown(har_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(http2_columns_read_where_present, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_schema_is_refused_or_inert, setup, teardown),
		cmocka_unit_test(open_tells_a_store_its_writer_has_closed),
	};

	log_init("test_storeread", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
