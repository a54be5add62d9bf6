/*
 * Unit tests for proxyd/store.c, the SQLite flow store: round trips of
 * flows, HTTP exchanges and DNS messages read back with plain SQL (what
 * localcapctl reads), the schema version (newer refused, older migrated),
 * pruning under both limits, a reader while the writer writes, odd data
 * (binary and NUL in headers, huge values, bodies over the cap), a full
 * disk (recording pauses, nothing crashes), and the insert rate.
 */
#include <errno.h>
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

#include <arpa/inet.h>
#include <sqlite3.h>

#include "log.h"
#include "proxyd/store.h"
#include "test/unit/helpers/flowfix.h"

static char dir[64];
static char dbpath[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_px_store.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/%s", dir, STORE_DB_NAME);
	return 0;
}

static int
teardown(void **state)
{
	char p[160];

	(void)state;
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	rmdir(dir);
	return 0;
}

/* flowfix's record, with what these tests look for besides. */
static void
make_record(struct flow_record *rec, uint64_t id, enum flow_transport t,
    const char *name)
{
	flowfix_record(rec, id, t, name, 4242, "192.0.2.7",
	    t == FLOW_UDP ? 53 : 443, (int64_t)(1700000000000000ULL + id * 1000));
	rec->meta.source_flow_id = 1000 + id;
	rec->meta.src.port = 40000;
	rec->meta.owner.gid = 1000;
	rec->meta.owner.cgroup_id = 77;
	snprintf(rec->meta.owner.cgroup, sizeof(rec->meta.owner.cgroup), "%s",
	    "/user.slice/test");
}

/* One row of one integer or text, for checks. */
static sqlite3_int64
q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	sqlite3_int64 v = -12345;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) !=
	    SQLITE_NULL)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static char *
q_text(sqlite3 *db, const char *sql)
{
	static char buf[4096];
	sqlite3_stmt *s;

	buf[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(buf, sizeof(buf), "%s", sqlite3_column_text(s, 0));
	else
		snprintf(buf, sizeof(buf), "(null)");
	sqlite3_finalize(s);
	return buf;
}

static sqlite3 *
reader(void)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 1000);
	return db;
}

static struct store *
open_store(const struct store_config *cfg)
{
	char err[256];
	struct store *st = store_open(dbpath, cfg, err, sizeof(err));

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

static void
flow_begin_end_round_trip(void **state)
{
	static const uint8_t sha[32] = { 0xab, 0x12, [31] = 0xff };
	struct flow_record rec;
	struct store_flow_facts facts = {
		.protocol = "https", .tls_version = "TLSv1.3",
		.tls_cipher = "TLS1-3-AES-128-GCM-SHA256", .sni = "example.org",
		.alpn = "http/1.1", .server_cert_subject = "CN=example.org",
		.server_cert_sha256 = sha, .tls_handshake_us = 1500,
		.upstream_tls_version = "TLSv1.2",
		.upstream_tls_cipher = "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
		.upstream_resumed = true, .server_cert_issuer = "CN=Test CA",
		.server_cert_der = (const uint8_t *)"\x30\x82\x01", .server_cert_der_len = 3,
		.server_cert_verified = -1, .client_alpn_offer = "h2,http/1.1",
	};
	struct store *st;
	struct stat sb;
	sqlite3 *db;
	int64_t row;

	(void)state;
	st = open_store(NULL);
	assert_int_equal(stat(dbpath, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	make_record(&rec, 1, FLOW_TCP, "curl");
	row = store_flow_begin(st, &rec);
	assert_true(row > 0);
	assert_int_equal(store_flush(st), 0);

	db = reader();
	/* Running: in the table with no end yet, shown as running. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows WHERE end_us IS NULL"), 1);
	assert_string_equal(q_text(db, "SELECT result FROM entries"), "running");

	rec.end_us = rec.meta.start_us + 250000;
	rec.end = FLOW_END_UPSTREAM_RESET;
	rec.error = ECONNRESET;
	rec.bytes_from_app = 517;
	rec.bytes_to_app = 4096;
	/* The source's figures; an RTT of 0 means no sample. */
	rec.has_tcp_stats = 1;
	rec.tcp_stats = (struct flow_tcp_stats){ .packets_from_app = 12,
		.packets_to_app = 9, .retransmits = 3, .rtt_us = 0 };
	flow_keep_first(rec.first_from_app, &rec.first_from_app_len,
	    "\x16\x03\x01\x00\x00", 5);
	assert_int_equal(store_flow_end(st, row, &rec, &facts), 0);
	store_close(st);

	assert_string_equal(q_text(db, "SELECT process || ' ' || pid || ' ' || "
	    "src_addr || ':' || src_port || ' ' || dst_addr || ':' || dst_port"
	    " || ' ' || transport || ' ' || cgroup FROM flows"),
	    "curl 4242 10.0.0.2:40000 192.0.2.7:443 tcp /user.slice/test");
	assert_int_equal(q_int(db, "SELECT end_us - start_us FROM flows"), 250000);
	assert_int_equal(q_int(db, "SELECT bytes_up FROM flows"), 517);
	assert_int_equal(q_int(db, "SELECT bytes_down FROM flows"), 4096);
	assert_int_equal(q_int(db, "SELECT retransmits FROM flows"), 3);
	assert_int_equal(q_int(db, "SELECT packets_up FROM flows"), 12);
	assert_int_equal(q_int(db, "SELECT packets_down FROM flows"), 9);
	assert_int_equal(q_int(db, "SELECT dropped IS NULL FROM flows"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows WHERE"
	    " length(server_cert_sha256) = 64"), 1);
	assert_int_equal(q_int(db, "SELECT rtt_us IS NULL FROM flows"), 1);
	assert_int_equal(q_int(db, "SELECT length(first_up) FROM flows"), 5);
	assert_int_equal(q_int(db, "SELECT length(first_down) FROM flows"), 0);
	assert_string_equal(q_text(db, "SELECT end_reason FROM flows"),
	    "upstream reset");
	assert_string_equal(q_text(db, "SELECT error FROM flows"),
	    strerror(ECONNRESET));
	assert_string_equal(q_text(db, "SELECT protocol || ' ' || tls_version ||"
	    " ' ' || sni || ' ' || alpn || ' ' || server_cert_subject FROM flows"),
	    "https TLSv1.3 example.org http/1.1 CN=example.org");
	assert_string_equal(q_text(db, "SELECT result FROM entries"),
	    "upstream reset");
	assert_string_equal(q_text(db, "SELECT server_cert_sha256 FROM flows"),
	    "ab12000000000000000000000000000000000000000000000000000000000" "0ff");
	assert_string_equal(q_text(db, "SELECT upstream_tls_version || ' ' ||"
	    " upstream_resumed || ' ' || tls_resumed || ' ' || server_cert_verified"
	    " || ' ' || server_cert_issuer || ' ' || client_alpn_offer || ' ' ||"
	    " hex(server_cert_der) FROM flows"),
	    "TLSv1.2 1 0 0 CN=Test CA h2,http/1.1 308201");
	assert_string_equal(q_text(db, "SELECT host FROM entries"), "example.org");
	assert_int_equal(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_string_equal(q_text(db, "PRAGMA journal_mode"), "wal");
	sqlite3_close(db);
}

static void
http_exchange_round_trip(void **state)
{
	static const struct http_field req[] = {
		{ "Host", 4, "example.org", 11 },
		{ "User-Agent", 10, "curl/8", 6 },
	};
	static const struct http_field resp[] = {
		{ "Content-Type", 12, "text/plain", 10 },
	};
	struct store_http h = {
		.seq = 1, .scheme = "https", .method = "POST",
		.target = "/api?x=1", .host = "example.org", .version_minor = 1,
		.status = 201, .reason = "Created",
		.req_fields = req, .n_req_fields = 2,
		.resp_fields = resp, .n_resp_fields = 1,
		.req_body = (const uint8_t *)"a=b", .req_body_len = 3,
		.req_body_size = 3,
		.resp_body = (const uint8_t *)"done\n", .resp_body_len = 5,
		.resp_body_size = 5,
		.req_start_us = 1700000000001000ULL,
		.req_end_us = 1700000000002000ULL,
		.resp_start_us = 1700000000010000ULL,
		.resp_end_us = 1700000000011000ULL,
	};
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;
	int64_t row;

	(void)state;
	st = open_store(NULL);
	make_record(&rec, 1, FLOW_TCP, "curl");
	row = store_flow_begin(st, &rec);
	assert_true(store_http_add(st, row, &h) > 0);
	h.seq = 2;
	h.method = "GET";
	h.target = "http://other.example/abs";
	h.status = 0;
	h.error = "upstream closed";
	assert_true(store_http_add(st, row, &h) > 0);
	/* The same seq twice is a constraint, not a disk failure. */
	assert_int_equal(store_http_add(st, row, &h), 0);
	/* An unknown flow row: dropped, recording goes on. */
	assert_int_equal(store_http_add(st, row + 100, &h), 0);
	assert_int_equal(store_stats(st)->errors, 0);
	rec.end = FLOW_END_CLOSED;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	store_close(st);

	db = reader();
	assert_int_equal(q_int(db, "SELECT count(*) FROM http_exchanges"), 2);
	assert_string_equal(q_text(db, "SELECT url FROM http_exchanges WHERE seq = 1"),
	    "https://example.org/api?x=1");
	assert_string_equal(q_text(db, "SELECT url FROM http_exchanges WHERE seq = 2"),
	    "http://other.example/abs");
	assert_string_equal(q_text(db, "SELECT req_headers FROM http_exchanges"
	    " WHERE seq = 1"),
	    "[[\"Host\",\"example.org\"],[\"User-Agent\",\"curl/8\"]]");
	assert_string_equal(q_text(db, "SELECT json_extract(resp_headers, '$[0][1]')"
	    " FROM http_exchanges WHERE seq = 1"), "text/plain");
	assert_string_equal(q_text(db, "SELECT CAST(resp_body AS TEXT) FROM"
	    " http_exchanges WHERE seq = 1"), "done\n");
	assert_int_equal(q_int(db, "SELECT resp_body_truncated FROM http_exchanges"
	    " WHERE seq = 1"), 0);
	assert_string_equal(q_text(db, "SELECT http_version || ' ' || status || ' '"
	    " || reason FROM http_exchanges WHERE seq = 1"), "HTTP/1.1 201 Created");
	assert_int_equal(q_int(db, "SELECT status IS NULL FROM http_exchanges"
	    " WHERE seq = 2"), 1);
	/* A flow with exchanges is listed by its exchanges only. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM entries"), 2);
	assert_string_equal(q_text(db, "SELECT result FROM entries WHERE seq = 2"),
	    "upstream closed");
	assert_string_equal(q_text(db, "SELECT group_concat(method || ' ' || host,"
	    " ';') FROM (SELECT * FROM entries ORDER BY seq)"),
	    "POST example.org;GET example.org");
	sqlite3_close(db);
}

/* An HTTP/2 exchange: its version, trailers and gRPC summary (schema 5). */
static void
http2_exchange_trailers_grpc(void **state)
{
	static const struct http_field trl[] = {
		{ "grpc-status", 11, "0", 1 },
		{ "grpc-message", 12, "fine \"ok\"", 9 },
	};
	static const uint32_t req_sizes[] = { 5 };
	static const uint32_t resp_sizes[] = { 3, 0, 10 };
	struct store_grpc g = {
		.status = 0, .message = "fine \"ok\"",
		.req_messages = 1, .req_sizes = req_sizes, .n_req_sizes = 1,
		.resp_messages = 3, .resp_sizes = resp_sizes, .n_resp_sizes = 3,
		.resp_partial = true,
	};
	struct store_http h = {
		.seq = 1, .scheme = "https", .method = "POST",
		.target = "/pkg.Svc/Call", .host = "grpc.test",
		.http_version = "HTTP/2.0", .status = 200,
		.resp_trailers = trl, .n_resp_trailers = 2, .grpc = &g,
		.req_start_us = 1700000000001000ULL,
	};
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;
	int64_t row;

	(void)state;
	st = open_store(NULL);
	make_record(&rec, 1, FLOW_TCP, "grpcurl");
	row = store_flow_begin(st, &rec);
	assert_true(store_http_add(st, row, &h) > 0);
	h.seq = 2;
	h.grpc = NULL;
	h.n_resp_trailers = 0;
	h.http_version = NULL;
	h.version_minor = 1;
	assert_true(store_http_add(st, row, &h) > 0);
	/* CONNECT: a tunnel's host:port is its URL; an extended CONNECT
	 * (RFC 8441, a websocket over h2) has a scheme and a path. */
	h.http_version = "HTTP/2.0";
	h.method = "CONNECT";
	h.seq = 3;
	h.target = "grpc.test:443";
	assert_true(store_http_add(st, row, &h) > 0);
	h.seq = 4;
	h.target = "/chat";
	assert_true(store_http_add(st, row, &h) > 0);
	store_close(st);

	db = reader();
	assert_string_equal(q_text(db, "SELECT http_version FROM http_exchanges"
	    " WHERE seq = 1"), "HTTP/2.0");
	assert_string_equal(q_text(db, "SELECT http_version FROM http_exchanges"
	    " WHERE seq = 2"), "HTTP/1.1");
	assert_string_equal(q_text(db, "SELECT json_extract(resp_trailers,"
	    " '$[1][1]') FROM http_exchanges WHERE seq = 1"), "fine \"ok\"");
	assert_string_equal(q_text(db, "SELECT grpc FROM http_exchanges"
	    " WHERE seq = 1"), "{\"status\":0,\"message\":\"fine \\\"ok\\\"\","
	    "\"request\":{\"messages\":1,\"sizes\":[5]},"
	    "\"response\":{\"messages\":3,\"sizes\":[3,0,10],\"partial\":true}}");
	assert_int_equal(q_int(db, "SELECT json_valid(grpc) FROM http_exchanges"
	    " WHERE seq = 1"), 1);
	assert_int_equal(q_int(db, "SELECT grpc IS NULL AND resp_trailers IS NULL"
	    " AND req_trailers IS NULL FROM http_exchanges WHERE seq = 2"), 1);
	assert_string_equal(q_text(db, "SELECT url FROM http_exchanges"
	    " WHERE seq = 3"), "grpc.test:443");
	assert_string_equal(q_text(db, "SELECT url FROM http_exchanges"
	    " WHERE seq = 4"), "https://grpc.test/chat");
	sqlite3_close(db);
}

static void
dns_query_answer_and_malformed(void **state)
{
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;
	int64_t row;
	uint8_t nx[sizeof(flowfix_dns_query)];

	(void)state;
	st = open_store(NULL);
	make_record(&rec, 1, FLOW_UDP, "resolver");
	row = store_flow_begin(st, &rec);
	assert_int_equal(store_dns_add_wire(st, row, 100, flowfix_dns_query,
	    sizeof(flowfix_dns_query)), 0);
	assert_int_equal(store_dns_add_wire(st, row, 150, flowfix_dns_answer,
	    sizeof(flowfix_dns_answer)), 0);
	/* A second query that is never answered, and garbage. */
	memcpy(nx, flowfix_dns_query, sizeof(nx));
	nx[1] = 0x35;
	assert_int_equal(store_dns_add_wire(st, row, 200, nx, sizeof(nx)), 0);
	assert_int_equal(store_dns_add_wire(st, row, 300,
	    (const uint8_t *)"\x00\x01\x02", 3), 0);
	assert_int_equal(store_flush(st), 0);

	db = reader();
	assert_int_equal(q_int(db, "SELECT count(*) FROM dns"), 3);
	assert_string_equal(q_text(db, "SELECT qname || ' ' || qtype_name || ' ' ||"
	    " rcode_name || ' ' || (response_us - query_us) FROM dns WHERE seq = 1"),
	    "example.com A NOERROR 50");
	assert_string_equal(q_text(db, "SELECT json_extract(answers, '$[0].data')"
	    " || ' ' || json_extract(answers, '$[0].ttl') FROM dns WHERE seq = 1"),
	    "93.184.216.34 3600");
	assert_non_null(strstr(q_text(db, "SELECT error FROM dns WHERE seq = 3"),
	    "malformed"));
	/* The unanswered query is not complete until its flow ends. */
	assert_int_equal(q_int(db, "SELECT done_serial IS NULL FROM dns WHERE"
	    " seq = 2"), 1);
	rec.end = FLOW_END_IDLE;
	rec.end_us = rec.meta.start_us + 1000;
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	store_close(st);
	assert_int_equal(q_int(db, "SELECT count(*) FROM dns WHERE done_serial"
	    " IS NULL"), 0);
	assert_string_equal(q_text(db, "SELECT result FROM entries WHERE seq = 2"),
	    "no answer");
	assert_string_equal(q_text(db, "SELECT method || ' ' || host FROM entries"
	    " WHERE seq = 1"), "A example.com");
	sqlite3_close(db);
}

static void
newer_schema_refused(void **state)
{
	char err[256];
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(dbpath, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 99 is newer"));
}

static void
older_schema_migrated_keeping_rows(void **state)
{
	char err[256];
	struct store *st;
	sqlite3 *db;

	(void)state;
	assert_int_equal(store_create_at_version(dbpath, 1, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO flows (transport, start_us,"
	    " end_us, end_reason, done_serial) VALUES ('tcp', 5, 6, 'closed', 41)",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	st = open_store(NULL);
	store_close(st);
	db = reader();
	assert_int_equal(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(q_int(db, "SELECT count(*) FROM entries"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_master WHERE"
	    " type = 'index' AND name = 'flows_start'"), 1);
	sqlite3_close(db);

	/* Serials go on after the highest one already there. */
	st = open_store(NULL);
	{
		struct flow_record rec;
		int64_t row;

		make_record(&rec, 9, FLOW_TCP, "x");
		/* Version 3: the host a source knew, shown where no SNI is. */
		snprintf(rec.meta.host, sizeof(rec.meta.host), "asked.example");
		row = store_flow_begin(st, &rec);
		assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	}
	store_close(st);
	db = reader();
	assert_int_equal(q_int(db, "SELECT max(done_serial) FROM flows"), 42);
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows WHERE"
	    " host = 'asked.example'"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM entries WHERE"
	    " host = 'asked.example'"), 1);
	sqlite3_close(db);
}

static void
unfinished_flows_marked_on_reopen(void **state)
{
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;

	(void)state;
	st = open_store(NULL);
	make_record(&rec, 1, FLOW_TCP, "curl");
	assert_true(store_flow_begin(st, &rec) > 0);
	store_close(st);	/* proxyd died with the flow running */
	st = open_store(NULL);
	store_close(st);
	db = reader();
	assert_string_equal(q_text(db, "SELECT end_reason FROM flows"),
	    "unfinished");
	sqlite3_close(db);
}

/*
 * The source's TCP figures: columns of the first schema, so a store made at
 * version 1 takes them after its migration.  A row ended while they were
 * still to come (held) is not complete until store_flow_finish() (or the
 * next open, if proxyd stopped first), and keeps the serial it got then.
 */
static void
tcp_figures_and_held_rows(void **state)
{
	const struct flow_tcp_stats ts = { .packets_from_app = 120,
		.packets_to_app = 80, .retransmits = 7, .rtt_us = 1250 };
	struct flow_record rec;
	struct store *st;
	char err[256];
	sqlite3 *db;
	int64_t a, b, c, serial;

	(void)state;
	assert_int_equal(store_create_at_version(dbpath, 1, err, sizeof(err)), 0);
	st = open_store(NULL);
	/* a: figures known when it ends. */
	make_record(&rec, 1, FLOW_TCP, "a");
	a = store_flow_begin(st, &rec);
	rec.end = FLOW_END_CLOSED;
	rec.has_tcp_stats = 1;
	rec.tcp_stats = ts;
	assert_int_equal(store_flow_end(st, a, &rec, NULL), 0);
	/* b: held, then finished with them. */
	make_record(&rec, 2, FLOW_TCP, "b");
	b = store_flow_begin(st, &rec);
	rec.end = FLOW_END_CLOSED;
	assert_int_equal(store_flow_end_held(st, b, &rec, NULL), 0);
	/* c: held when proxyd stops. */
	make_record(&rec, 3, FLOW_TCP, "c");
	c = store_flow_begin(st, &rec);
	rec.end = FLOW_END_APP_RESET;
	assert_int_equal(store_flow_end_held(st, c, &rec, NULL), 0);
	assert_int_equal(store_flush(st), 0);

	db = reader();
	assert_int_equal(q_int(db, "SELECT packets_up || ' ' || packets_down ||"
	    " ' ' || retransmits || ' ' || rtt_us = '120 80 7 1250' FROM flows"
	    " WHERE proxyd_id = 1"), 1);
	assert_int_equal(q_int(db, "SELECT done_serial IS NULL AND end_us IS NOT"
	    " NULL AND retransmits IS NULL FROM flows WHERE proxyd_id = 2"), 1);
	/* Listed as ended all the same (flows without --follow, show). */
	assert_string_equal(q_text(db, "SELECT result FROM entries WHERE"
	    " process = 'b'"), "closed");

	/* Nothing to write: nothing written. */
	assert_int_equal(store_flow_finish(st, b, NULL, false), 0);
	assert_int_equal(store_flow_finish(st, b, &ts, true), 0);
	assert_int_equal(store_flush(st), 0);
	serial = q_int(db, "SELECT done_serial FROM flows WHERE proxyd_id = 2");
	assert_true(serial > q_int(db, "SELECT done_serial FROM flows WHERE"
	    " proxyd_id = 1"));
	assert_int_equal(q_int(db, "SELECT retransmits FROM flows WHERE"
	    " proxyd_id = 2"), 7);
	/* Figures after completion: written, the serial kept. */
	assert_int_equal(store_flow_finish(st, b,
	    &(struct flow_tcp_stats){ .packets_from_app = 1, .packets_to_app = 2,
	    .retransmits = 3 }, true), 0);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(q_int(db, "SELECT done_serial FROM flows WHERE"
	    " proxyd_id = 2"), serial);
	assert_int_equal(q_int(db, "SELECT retransmits FROM flows WHERE"
	    " proxyd_id = 2"), 3);
	assert_int_equal(q_int(db, "SELECT rtt_us FROM flows WHERE"
	    " proxyd_id = 2"), 1250);	/* no sample this time: kept */
	store_close(st);

	/* c was never finished: the next open completes it as it is. */
	st = open_store(NULL);
	store_close(st);
	assert_true(q_int(db, "SELECT done_serial FROM flows WHERE"
	    " proxyd_id = 3") > serial);
	assert_string_equal(q_text(db, "SELECT end_reason FROM flows WHERE"
	    " proxyd_id = 3"), "app reset");
	sqlite3_close(db);
}

static void
prune_oldest_by_count(void **state)
{
	struct store_config cfg;
	struct flow_record rec;
	struct store_http h = { .seq = 1, .method = "GET", .target = "/" };
	struct store *st;
	sqlite3 *db;
	uint64_t i;

	(void)state;
	store_config_default(&cfg);
	cfg.max_flows = 50;
	cfg.commit_rows = 10;
	cfg.prune_batch = 1000;
	st = open_store(&cfg);
	for (i = 1; i <= 200; i++) {
		int64_t row;

		make_record(&rec, i, FLOW_TCP, "p");
		row = store_flow_begin(st, &rec);
		assert_true(store_http_add(st, row, &h) > 0 || row == 0);
		store_flow_end(st, row, &rec, NULL);
	}
	store_close(st);
	db = reader();
	assert_true(q_int(db, "SELECT count(*) FROM flows") <= 50);
	assert_true(q_int(db, "SELECT count(*) FROM flows") >= 40);
	/* The newest kept, the oldest gone, children with their flows. */
	assert_int_equal(q_int(db, "SELECT max(proxyd_id) FROM flows"), 200);
	assert_true(q_int(db, "SELECT min(proxyd_id) FROM flows") > 150);
	assert_int_equal(q_int(db, "SELECT count(*) FROM http_exchanges WHERE"
	    " flow_id NOT IN (SELECT id FROM flows)"), 0);
	sqlite3_close(db);
}

static void
prune_oldest_by_size(void **state)
{
	static uint8_t body[8192];
	struct store_config cfg;
	struct flow_record rec;
	struct store_http h = {
		.seq = 1, .method = "GET", .target = "/",
		.resp_body = body, .resp_body_len = sizeof(body),
		.resp_body_size = sizeof(body),
	};
	struct store *st;
	sqlite3 *db;
	uint64_t i;

	(void)state;
	store_config_default(&cfg);
	cfg.max_bytes = 512 * 1024;
	cfg.commit_rows = 20;
	st = open_store(&cfg);
	for (i = 1; i <= 400; i++) {
		int64_t row;

		make_record(&rec, i, FLOW_TCP, "p");
		row = store_flow_begin(st, &rec);
		store_http_add(st, row, &h);
		store_flow_end(st, row, &rec, NULL);
	}
	assert_true(store_stats(st)->pruned > 200);
	store_close(st);
	db = reader();
	/* 400 × 8 KiB would be 3.2 MiB; pages in use stay near the limit. */
	assert_true(q_int(db, "SELECT (page_count - freelist_count) * page_size"
	    " FROM pragma_page_count, pragma_freelist_count, pragma_page_size") <
	    2 * 512 * 1024);
	assert_int_equal(q_int(db, "SELECT max(proxyd_id) FROM flows"), 400);
	assert_true(q_int(db, "SELECT count(*) FROM flows") < 200);
	sqlite3_close(db);
}

static void
odd_header_bytes_and_caps(void **state)
{
	static const char nul_value[] = { 'a', 0, 'b' };
	static const char binary[] = { (char)0xff, (char)0xfe, 'x', (char)0xc3,
		(char)0xa9, '"', '\\', '\n' };
	static char huge[100000];
	static uint8_t big_body[3000];
	struct http_field req[3] = {
		{ "X-Nul", 5, nul_value, sizeof(nul_value) },
		{ "X-Bin", 5, binary, sizeof(binary) },
		{ "X-Huge", 6, huge, sizeof(huge) },
	};
	struct store_config cfg;
	struct store_http h = {
		.seq = 1, .method = "GET", .target = "/", .host = "h",
		.req_fields = req, .n_req_fields = 3,
		.resp_body = big_body, .resp_body_len = sizeof(big_body),
		.resp_body_size = 1u << 30,
		.req_body = big_body, .req_body_len = 10, .req_body_size = 10,
	};
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;
	int64_t row;

	(void)state;
	memset(huge, 'h', sizeof(huge));
	store_config_default(&cfg);
	cfg.body_cap = 1000;
	cfg.header_cap = 4096;
	st = open_store(&cfg);
	make_record(&rec, 1, FLOW_TCP, "we\"ird\nname");
	row = store_flow_begin(st, &rec);
	assert_true(store_http_add(st, row, &h) > 0);
	store_close(st);

	db = reader();
	assert_int_equal(q_int(db, "SELECT json_valid(req_headers) FROM"
	    " http_exchanges"), 1);
	/* NUL kept as \u0000, bytes that are not UTF-8 as U+00XX. */
	assert_int_equal(q_int(db, "SELECT instr(req_headers, 'a\\u0000b') > 0"
	    " FROM http_exchanges"), 1);
	assert_string_equal(q_text(db, "SELECT json_extract(req_headers,"
	    " '$[1][1]') FROM http_exchanges"),
	    "\xc3\xbf\xc3\xbex\xc3\xa9\"\\\n");
	assert_int_equal(q_int(db, "SELECT length(json_extract(req_headers,"
	    " '$[2][1]')) FROM http_exchanges"), 4096);
	assert_int_equal(q_int(db, "SELECT length(resp_body) FROM http_exchanges"),
	    1000);
	assert_int_equal(q_int(db, "SELECT resp_body_truncated FROM"
	    " http_exchanges"), 1);
	assert_int_equal(q_int(db, "SELECT resp_body_size FROM http_exchanges"),
	    1 << 30);
	assert_int_equal(q_int(db, "SELECT req_body_truncated FROM"
	    " http_exchanges"), 0);
	assert_string_equal(q_text(db, "SELECT process FROM flows"),
	    "we\"ird\nname");
	sqlite3_close(db);
}

/* The flow store running out of room: recording pauses, nothing breaks. */
static void
full_disk_pauses_recording(void **state)
{
	static uint8_t body[4096];
	struct store_config cfg;
	struct flow_record rec;
	struct store_http h = {
		.seq = 1, .method = "GET", .target = "/",
		.resp_body = body, .resp_body_len = sizeof(body),
		.resp_body_size = sizeof(body),
	};
	struct store *st;
	sqlite3 *db;
	uint64_t i;
	int failures = 0;

	(void)state;
	store_config_default(&cfg);
	cfg.max_bytes = 0;	/* no pruning: let it fill */
	cfg.commit_rows = 5;
	cfg.retry_after_ms = 60000;
	/* The hard cap on the file plays the full disk (SQLITE_FULL). */
	cfg.hard_max_bytes = 256 * 1024;
	st = open_store(&cfg);
	for (i = 1; i <= 500; i++) {
		int64_t row;

		make_record(&rec, i, FLOW_TCP, "p");
		row = store_flow_begin(st, &rec);
		if (row == 0) {
			failures++;
			continue;
		}
		store_http_add(st, row, &h);
		if (store_flow_end(st, row, &rec, NULL) == -1)
			failures++;
	}
	assert_true(failures > 0);
	assert_true(store_stats(st)->errors >= 1);
	/* Paused: later writes are skipped, not retried against a full disk. */
	assert_true(store_stats(st)->dropped > 100);
	assert_true(store_stats(st)->errors < 5);
	store_close(st);
	db = reader();
	assert_true(q_int(db, "SELECT count(*) FROM flows") > 0);
	assert_string_equal(q_text(db, "PRAGMA integrity_check"), "ok");
	sqlite3_close(db);
}

/* After the pause, recording resumes by itself once there is room again. */
static void
recording_resumes_after_the_pause(void **state)
{
	static uint8_t body[4096];
	struct store_config cfg;
	struct flow_record rec;
	struct store_http h = {
		.seq = 1, .method = "GET", .target = "/",
		.resp_body = body, .resp_body_len = sizeof(body),
		.resp_body_size = sizeof(body),
	};
	struct store *st;
	sqlite3 *db;
	uint64_t i, errors;
	int64_t row = 1;

	(void)state;
	store_config_default(&cfg);
	cfg.max_bytes = 0;
	cfg.commit_rows = 5;
	cfg.retry_after_ms = 100;
	cfg.hard_max_bytes = 256 * 1024;
	st = open_store(&cfg);
	for (i = 1; i <= 1000 && store_stats(st)->errors == 0; i++) {
		make_record(&rec, i, FLOW_TCP, "p");
		row = store_flow_begin(st, &rec);
		store_http_add(st, row, &h);
		store_flow_end(st, row, &rec, NULL);
	}
	assert_int_equal(store_stats(st)->errors, 1);
	errors = store_stats(st)->errors;
	/* Paused: skipped at once. */
	make_record(&rec, 5000, FLOW_TCP, "p");
	assert_int_equal(store_flow_begin(st, &rec), 0);
	assert_true(store_stats(st)->dropped >= 1);
	/* Someone makes room (here: another connection deletes rows). */
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 1000);
	assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON;"
	    " DELETE FROM flows", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	usleep(150000);
	row = store_flow_begin(st, &rec);
	assert_true(row > 0);
	assert_int_equal(store_flow_end(st, row, &rec, NULL), 0);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(store_stats(st)->errors, errors);
	store_close(st);
	db = reader();
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows WHERE proxyd_id"
	    " = 5000 AND done_serial IS NOT NULL"), 1);
	sqlite3_close(db);
}

/* Whatever bytes a peer sends in headers, the stored JSON is valid, one
 * pair per field (a seeded generator: reproducible). */
static void
random_header_bytes_always_valid_json(void **state)
{
	static const char *const pieces[] = {
		"a", "\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xff",
		"\xc0\xaf", "\xf4\x90\x80\x80", "<", "/", " ",
	};
	struct store_config cfg;
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;
	uint32_t seed = 12345;
	int64_t row;
	int i;

	(void)state;
	store_config_default(&cfg);
	st = open_store(&cfg);
	make_record(&rec, 1, FLOW_TCP, "fuzz");
	row = store_flow_begin(st, &rec);
	for (i = 1; i <= 2000; i++) {
		char name[64], value[256];
		size_t nlen = 0, vlen = 0;
		struct http_field f;
		struct store_http h = { .seq = (uint32_t)i, .method = "GET",
			.target = "/" };
		int k, parts;

		seed = seed * 1103515245 + 12345;
		parts = (int)(seed >> 16) % 24;
		for (k = 0; k < parts; k++) {
			const char *p;

			seed = seed * 1103515245 + 12345;
			p = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
			memcpy(value + vlen, p, strlen(p));
			vlen += strlen(p);
			if (k < 8) {
				memcpy(name + nlen, p, strlen(p));
				nlen += strlen(p);
			}
		}
		/* And raw bytes, NUL included. */
		seed = seed * 1103515245 + 12345;
		value[vlen++] = (char)(seed >> 24);
		value[vlen++] = '\0';
		f = (struct http_field){ name, nlen, value, vlen };
		h.req_fields = &f;
		h.n_req_fields = 1;
		assert_true(store_http_add(st, row, &h) > 0);
	}
	store_close(st);
	db = reader();
	assert_int_equal(q_int(db, "SELECT count(*) FROM http_exchanges"), 2000);
	assert_int_equal(q_int(db, "SELECT count(*) FROM http_exchanges WHERE"
	    " NOT json_valid(req_headers)"), 0);
	/* A value that was valid UTF-8 without controls reads back whole. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM http_exchanges WHERE"
	    " json_array_length(req_headers) != 1"), 0);
	sqlite3_close(db);
}

static void
valid_utf8_header_round_trips(void **state)
{
	static const struct http_field f = {
		"X-Text", 6, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\", 20,
	};
	struct store_http h = { .seq = 1, .method = "GET", .target = "/",
		.req_fields = &f, .n_req_fields = 1 };
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;

	(void)state;
	st = open_store(NULL);
	make_record(&rec, 1, FLOW_TCP, "t");
	assert_true(store_http_add(st, store_flow_begin(st, &rec), &h) > 0);
	store_close(st);
	db = reader();
	assert_string_equal(q_text(db, "SELECT json_extract(req_headers, '$[0][1]')"
	    " FROM http_exchanges"), f.value);
	sqlite3_close(db);
}

/* proxyd without a store (a failed open) calls the same functions. */
static void
null_store_and_row_zero_are_harmless(void **state)
{
	struct flow_record rec;
	struct store_http h = { .seq = 1, .method = "GET", .target = "/" };
	struct store *st;

	(void)state;
	make_record(&rec, 1, FLOW_TCP, "t");
	assert_int_equal(store_flow_begin(NULL, &rec), 0);
	assert_int_equal(store_flow_end(NULL, 0, &rec, NULL), 0);
	assert_int_equal(store_http_add(NULL, 1, &h), 0);
	assert_int_equal(store_dns_add_wire(NULL, 1, 0, flowfix_dns_query,
	    sizeof(flowfix_dns_query)), 0);
	assert_int_equal(store_flush(NULL), 0);
	store_set_loop(NULL, NULL);
	store_close(NULL);
	st = open_store(NULL);
	assert_int_equal(store_flow_end(st, 0, &rec, NULL), 0);
	assert_int_equal(store_http_add(st, 0, &h), 0);
	assert_int_equal(store_dns_add_wire(st, 0, 0, flowfix_dns_query,
	    sizeof(flowfix_dns_query)), 0);
	assert_int_equal(store_stats(st)->exchanges + store_stats(st)->dns, 0);
	store_close(st);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A reader (read-only, as localcapctl) polls while another process writes. */
static void
reader_while_writer_writes(void **state)
{
	struct store_config cfg;
	struct store *st;
	sqlite3 *db;
	pid_t pid;
	int status, polls = 0, partial = 0;
	sqlite3_int64 n, last = 0;
	uint64_t deadline;

	(void)state;
	store_config_default(&cfg);
	cfg.commit_rows = 50;
	st = open_store(&cfg);	/* the schema exists before the child runs */
	store_close(st);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct flow_record rec;
		uint64_t i;

		st = open_store(&cfg);
		for (i = 1; i <= 3000; i++) {
			int64_t row;

			make_record(&rec, i, FLOW_TCP, "w");
			row = store_flow_begin(st, &rec);
			store_flow_end(st, row, &rec, NULL);
			if (i % 100 == 0)
				usleep(2000);
		}
		store_close(st);
		_exit(0);
	}
	db = reader();
	deadline = now_us() + 20 * 1000000ULL;
	for (;;) {
		int done = waitpid(pid, &status, WNOHANG) == pid;

		n = q_int(db, "SELECT count(*) FROM entries WHERE done_serial"
		    " IS NOT NULL");
		assert_true(n >= last);	/* never a step back */
		if (n > 0 && n < 3000)
			partial++;
		last = n;
		polls++;
		if (done)
			break;
		assert_true(now_us() < deadline);
		usleep(1000);
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows"), 3000);
	assert_true(partial > 0);
	sqlite3_close(db);
}

static void
timer_commits_without_flush(void **state)
{
	/* From before the loop exists: libev arms the timer from the loop's
	 * cached time, which a slow open_store() (a loaded machine) would
	 * otherwise leave behind t0. */
	uint64_t t0 = now_us();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct flow_record rec;
	struct store *st;
	sqlite3 *db;

	(void)state;
	st = open_store(NULL);
	store_set_loop(st, loop);
	make_record(&rec, 1, FLOW_TCP, "t");
	assert_true(store_flow_begin(st, &rec) > 0);
	db = reader();
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows"), 0);
	ev_run(loop, EVRUN_ONCE);	/* the commit timer is all there is */
	assert_true(now_us() - t0 >= 150000);
	assert_int_equal(q_int(db, "SELECT count(*) FROM flows"), 1);
	assert_int_equal(store_stats(st)->commits, 1);
	sqlite3_close(db);
	store_close(st);
	ev_loop_destroy(loop);
}

/*
 * What the event loop pays per flow: begin + one exchange + end, with the
 * default batching.  Prints the rate and the slowest single call (which
 * includes the commits and WAL checkpoints).
 */
static void
insert_rate_with_default_batching(void **state)
{
	static uint8_t body[2048];
	static const struct http_field fields[] = {
		{ "Host", 4, "example.org", 11 },
		{ "Accept", 6, "*/*", 3 },
		{ "Content-Type", 12, "application/json", 16 },
	};
	struct store_http h = {
		.seq = 1, .scheme = "https", .method = "GET", .target = "/x",
		.host = "example.org", .status = 200, .reason = "OK",
		.req_fields = fields, .n_req_fields = 3,
		.resp_fields = fields, .n_resp_fields = 3,
		.resp_body = body, .resp_body_len = sizeof(body),
		.resp_body_size = sizeof(body),
	};
	struct flow_record rec;
	struct store *st;
	uint64_t t0, t, worst = 0, i, n = 20000;

	(void)state;
	st = open_store(NULL);
	t0 = now_us();
	for (i = 1; i <= n; i++) {
		int64_t row;

		t = now_us();
		make_record(&rec, i, FLOW_TCP, "bench");
		row = store_flow_begin(st, &rec);
		store_http_add(st, row, &h);
		store_flow_end(st, row, &rec, NULL);
		t = now_us() - t;
		if (t > worst)
			worst = t;
	}
	assert_int_equal(store_flush(st), 0);
	t = now_us() - t0;
	print_message("store: %llu flows (begin + 1 exchange + end) in %.3f s: "
	    "%.0f flows/s, slowest flow %.2f ms\n", (unsigned long long)n,
	    (double)t / 1e6, (double)n * 1e6 / (double)t, (double)worst / 1e3);
	assert_int_equal(store_stats(st)->errors, 0);
	/* Loose: a commit per row with fsync would be far below it. */
	assert_true((double)n * 1e6 / (double)t > 1000);
	store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(flow_begin_end_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(http_exchange_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(http2_exchange_trailers_grpc, setup, teardown),
		cmocka_unit_test_setup_teardown(dns_query_answer_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(older_schema_migrated_keeping_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(unfinished_flows_marked_on_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_figures_and_held_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_oldest_by_count, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_oldest_by_size, setup, teardown),
		cmocka_unit_test_setup_teardown(odd_header_bytes_and_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(full_disk_pauses_recording, setup, teardown),
		cmocka_unit_test_setup_teardown(recording_resumes_after_the_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(random_header_bytes_always_valid_json, setup, teardown),
		cmocka_unit_test_setup_teardown(valid_utf8_header_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(null_store_and_row_zero_are_harmless, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_while_writer_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(timer_commits_without_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(insert_rate_with_default_batching, setup, teardown),
	};

	log_init("test_px_store", 1, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
